"""UCF101 and HMDB51 from archives in their official layouts, served over loopback HTTP:
downloaded, verified, extracted, converted to UCF101's split format and indexed."""

import hashlib
import http.server
import io
import shutil
import threading
import zipfile

import pandas as pd
import pytest

from conftest import FIXTURES
from svar.datasets import prepare
from svar.datasets.hmdb51 import hmdb_split_lists
from svar.download import download
from svar.manifest import build_manifest, load_manifest, write_index
from svar.splits import build_split
from svar.datasets.synthetic import render_video, write_avi

import numpy as np

UCF_CLASSES = ["ApplyEyeMakeup", "Archery"]
HMDB_CLASSES = ["brush_hair", "climb_stairs"]


def avi_bytes(tmp_path, seed):
    frames, _ = render_video("red", "square", "moving left", 8, 32, np.random.default_rng(seed))
    path = tmp_path / f"clip{seed}.avi"
    write_avi(path, frames)
    return path.read_bytes()


def zip_bytes(members: dict) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buf.getvalue()


@pytest.fixture
def server():
    """A loopback HTTP server for the archives a test builds (127.0.0.1 only)."""
    files = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()

    def serve(name, data):
        files[f"/{name}"] = data
        return f"http://127.0.0.1:{httpd.server_address[1]}/{name}"

    yield serve
    httpd.shutdown()


def fetch(serve, tmp_path, name, data):
    dest = tmp_path / "archives" / name
    download(serve(name, data), dest, sha256=hashlib.sha256(data).hexdigest(), progress=False)
    return dest


def test_ucf101_layout_downloaded_prepared_indexed(server, tmp_path):
    videos, train, test = {}, [], []
    for label, cls in enumerate(UCF_CLASSES, 1):
        for g, c in ((1, 1), (1, 2), (8, 1), (9, 1)):
            rel = f"{cls}/v_{cls}_g{g:02d}_c{c:02d}.avi"
            videos[f"UCF-101/{rel}"] = avi_bytes(tmp_path, len(videos))
            (test if g < 8 else train).append((rel, label))
    splits = {"ucfTrainTestlist/classInd.txt": "".join(f"{i} {c}\r\n" for i, c in enumerate(UCF_CLASSES, 1))}
    for k in (1, 2, 3):  # UCF101's files have CRLF line ends
        splits[f"ucfTrainTestlist/trainlist0{k}.txt"] = "".join(f"{r} {lab}\r\n" for r, lab in train)
        splits[f"ucfTrainTestlist/testlist0{k}.txt"] = "".join(f"{r}\r\n" for r, _ in test)
    archives = [fetch(server, tmp_path, "ucf_videos.zip", zip_bytes(videos)),
                fetch(server, tmp_path, "ucf_splits.zip", zip_bytes(splits))]
    out = prepare("ucf101", archives, tmp_path / "ucf101")
    assert sorted(p.name for p in (out / "splits").iterdir()) == sorted(
        ["classInd.txt"] + [f"{r}list0{k}.txt" for r in ("train", "test") for k in (1, 2, 3)])
    manifest = build_manifest(out / "videos", out / "splits")
    assert len(manifest) == 8 and manifest["decodes"].all() and (manifest["frames"] == 8).all()
    assert manifest.loc[manifest.video_id == "v_Archery_g09_c01", "split1"].item() == "train"
    assert set(manifest["split3"]) == {"train", "test"}
    assert not (tmp_path / ".ucf101.partial").exists() and not (tmp_path / ".ucf101.extracted").exists()


def test_hmdb51_nested_archive_and_split_files_converted(server, tmp_path):
    inner, split_files = {}, {}
    for cls in HMDB_CLASSES:
        names = [f"{cls}_video_{i}_f_cm_np1_ri_med_{i}.avi" for i in range(3)]
        inner[f"{cls}.zip"] = zip_bytes({f"{cls}/{n}": avi_bytes(tmp_path, 100 + i) for i, n in enumerate(names)})
        for k in (1, 2, 3):  # 1 = train, 2 = test, 0 = not used in this split
            split_files[f"testTrainMulti_7030_splits/{cls}_test_split{k}.txt"] = (
                f"{names[0]} 1 \n{names[1]} 2 \n{names[2]} {0 if k == 1 else 1} \n")
    archives = [fetch(server, tmp_path, "hmdb_videos.zip", zip_bytes(inner)),
                fetch(server, tmp_path, "hmdb_splits.zip", zip_bytes(split_files))]
    out = prepare("hmdb51", archives, tmp_path / "hmdb51")
    assert (out / "splits" / "classInd.txt").read_text() == "1 brush_hair\n2 climb_stairs\n"
    train1 = (out / "splits" / "trainlist01.txt").read_text().splitlines()
    assert train1 == [f"brush_hair/brush_hair_video_0_f_cm_np1_ri_med_0.avi 1",
                      f"climb_stairs/climb_stairs_video_0_f_cm_np1_ri_med_0.avi 2"]
    assert len((out / "splits" / "trainlist02.txt").read_text().splitlines()) == 4
    write_index(out / "videos", out / "splits", tmp_path / "m.csv", tmp_path / "x.csv", tmp_path / "c.csv")
    manifest = load_manifest(tmp_path / "m.csv", decodable_only=False)
    assert len(manifest) == 6 and manifest["decodes"].all()
    unused = manifest[manifest.video_id.str.endswith("_2")]
    assert (unused["split1"] == "unused").all() and (unused["split2"] == "train").all()


def test_hmdb51_split_file_with_a_bad_line_is_named(tmp_path):
    (tmp_path / "brush_hair_test_split1.txt").write_text("a.avi 1\nb.avi 7\n")
    with pytest.raises(ValueError, match=r"brush_hair_test_split1.txt:2"):
        hmdb_split_lists(tmp_path)


def test_random_convention_is_seeded_and_not_class_balanced():
    rows = [{"video_id": f"v{c}_{i}", "label": c, "split1": "train"} for c in range(10) for i in range(20)]
    rows += [{"video_id": f"t{c}", "label": c, "split1": "test"} for c in range(10)]
    manifest = pd.DataFrame(rows)
    a = build_split(manifest, 0.05, 0, convention="random")
    assert a.equals(build_split(manifest, 0.05, 0, convention="random"))
    labeled = a[a.role == "labeled"]
    assert len(labeled) == 10 and labeled.groupby("label").size().max() > 1


@pytest.mark.skipif(not (FIXTURES / "videos").is_dir(), reason="../shared/fixtures absent")
def test_fixture_videos_indexed_corrupt_one_excluded_with_reason(tmp_path):
    import av

    root = tmp_path / "ds"
    (root / "splits").mkdir(parents=True)
    (root / "videos" / "Mixed").mkdir(parents=True)
    names = []
    for source in sorted((FIXTURES / "videos").iterdir()):
        # stems must be unique (mmaction2_test.avi and .mp4 share one): the extension joins the stem
        name = f"{source.stem}_{source.suffix[1:]}{source.suffix}"
        shutil.copy(source, root / "videos" / "Mixed" / name)
        names.append(name)
    (root / "splits" / "classInd.txt").write_text("1 Mixed\n")
    (root / "splits" / "trainlist01.txt").write_text("".join(f"Mixed/{n} 1\n" for n in names))
    (root / "splits" / "testlist01.txt").write_text("")
    write_index(root / "videos", root / "splits", tmp_path / "m.csv", tmp_path / "x.csv", tmp_path / "c.csv",
                workers=2)
    manifest = load_manifest(tmp_path / "m.csv", decodable_only=False)
    assert len(manifest) == 13 and manifest["decodes"].sum() == 12
    excluded = pd.read_csv(tmp_path / "x.csv")
    assert list(excluded["video_id"]) == ["decord_corrupted_mp4"] and "no decoder could read" in excluded["reason"][0]
    for row in manifest[manifest["decodes"]].itertuples():
        with av.open(row.path) as container:
            assert row.frames == sum(1 for _ in container.decode(video=0)), row.path


def test_ucf101_video_archive_can_be_the_tfds_mirror(tmp_path):
    from svar.datasets import archive_paths

    assert [p.name for p in archive_paths("ucf101", tmp_path)] == [
        "UCF101.rar", "UCF101TrainTestSplits-RecognitionTask.zip"]
    assert archive_paths("ucf101", tmp_path, "UCF101_videos.zip")[0] == tmp_path / "UCF101_videos.zip"
    with pytest.raises(ValueError, match="dataset.video_archive"):
        archive_paths("hmdb51", tmp_path, "UCF101_videos.zip")


def test_hmdb51_pool_is_every_video_outside_the_test_list(server, tmp_path):
    """HMDB51's split files mark each video 1 (train), 2 (test) or 0 (unused): the literature's
    pool is every video outside the test list; `official_train` keeps the train list only."""
    inner, split_files = {}, {}
    for cls in HMDB_CLASSES:
        names = [f"{cls}_video_{i}_f_cm_np1_ri_med_{i}.avi" for i in range(4)]
        inner[f"{cls}.zip"] = zip_bytes({f"{cls}/{n}": avi_bytes(tmp_path, 100 + i) for i, n in enumerate(names)})
        split_files[f"splits/{cls}_test_split1.txt"] = f"{names[0]} 1\n{names[1]} 2\n{names[2]} 0\n{names[3]} 0\n"
    archives = [fetch(server, tmp_path, "hmdb_videos.zip", zip_bytes(inner)),
                fetch(server, tmp_path, "hmdb_splits.zip", zip_bytes(split_files))]
    out = prepare("hmdb51", archives, tmp_path / "hmdb51")
    assert len((out / "splits" / "unusedlist01.txt").read_text().splitlines()) == 2 * len(HMDB_CLASSES)
    write_index(out / "videos", out / "splits", tmp_path / "m.csv", tmp_path / "x.csv", tmp_path / "c.csv")
    manifest = load_manifest(tmp_path / "m.csv")
    assert manifest["split1"].value_counts().to_dict() == {"unused": 4, "train": 2, "test": 2}
    literature = build_split(manifest, 1.0, 0)
    assert literature["role"].value_counts().to_dict() == {"labeled": 6, "test": 2}
    partial = build_split(manifest, 0.5, 0, val_per_class=0)
    assert set(partial[partial.role != "test"]["video_id"]) == set(manifest[manifest.split1 != "test"]["video_id"])
    official = build_split(manifest, 1.0, 0, pool="official_train")
    assert official["role"].value_counts().to_dict() == {"labeled": 2, "test": 2}


@pytest.mark.parametrize("pool,fraction,labeled", [
    (9537, 0.05, 476), (9537, 0.1, 953), (9537, 0.2, 1907), (9537, 0.5, 4768),
    (5236, 0.4, 2094), (5236, 0.5, 2618), (5236, 0.6, 3141)])
def test_random_convention_counts_are_the_videossl_lists(pool, fraction, labeled):
    """floor(f × N_pool), as VideoSSL's published lists count (UCF101 split 1: 9,537 training
    videos; HMDB51 split 1: 5,236 outside the test list, 3,570 of them on the official train list)."""
    classes = 101 if pool == 9537 else 51
    rows = [{"video_id": f"v{i}", "label": i % classes, "split1": "train" if i < 3570 or pool == 9537 else "unused"}
            for i in range(pool)]
    rows += [{"video_id": f"t{c}", "label": c, "split1": "test"} for c in range(classes)]
    table = build_split(pd.DataFrame(rows), fraction, 0, convention="random")
    assert (table["role"] == "labeled").sum() == labeled
    assert table["role"].isin(["labeled", "unlabeled", "val"]).sum() == pool
    # validation videos come out of the unlabeled ones: the labeled count is the literature's
    assert (table["role"] == "val").sum() == 2 * classes


@pytest.mark.parametrize("pool,fraction,labeled", [
    (9537, 0.01, 101), (9537, 0.1, 1010), (5236, 0.4, 2142), (5236, 0.5, 2652), (5236, 0.6, 3162)])
def test_balanced_convention_counts(pool, fraction, labeled):
    """ceil(f × N_pool / C) a class (SVFormer's rule), the counts docs/datasets.md's table gives."""
    classes = 101 if pool == 9537 else 51
    rows = [{"video_id": f"v{i}", "label": i % classes, "split1": "train" if i < 3570 or pool == 9537 else "unused"}
            for i in range(pool)]
    rows += [{"video_id": f"t{c}", "label": c, "split1": "test"} for c in range(classes)]
    table = build_split(pd.DataFrame(rows), fraction, 0)
    assert (table["role"] == "labeled").sum() == labeled


@pytest.mark.parametrize("name", ["ucf101", "hmdb51"])
def test_extracted_dir_is_laid_out_by_links_with_the_same_roles(name, tmp_path):
    """dataset.extracted_dir: the archives already extracted (a cluster's shared copy, in the
    layout the archives extract to) give the dataset its archives would: the same videos, split
    files converted (HMDB51's 0/1/2 files, UCF101's CRLF lists), the videos linked, not copied."""
    import os

    from rehearsal import hmdb51_extracted, ucf101_extracted
    from svar.datasets import prepare_extracted
    from svar.datasets.synthetic import DEFAULT_CLASSES, generate
    from conftest import tiny_spec

    spec = tiny_spec(DEFAULT_CLASSES)
    generated = generate(tmp_path / "generated", spec)
    make = {"ucf101": ucf101_extracted, "hmdb51": hmdb51_extracted}[name]
    extracted = make(generated, tmp_path / "extracted", spec.groups)
    out = prepare_extracted(name, extracted, tmp_path / "data" / name)
    assert (out / "videos").is_symlink() and os.path.isabs(os.readlink(out / "videos"))
    assert (out / "videos").resolve().parent == extracted.resolve()
    mine = build_manifest(out / "videos", out / "splits")
    reference = build_manifest(generated / "videos", generated / "splits")
    assert sorted(mine["video_id"]) == sorted(reference["video_id"])
    roles = mine.set_index("video_id")["split1"]
    expected = reference.set_index("video_id")["split1"]
    if name == "hmdb51":  # the last training video of each class is marked 0: unused in every split
        assert (roles == "unused").sum() == len(DEFAULT_CLASSES[:4]) and set(roles[roles == "unused"].index) <= set(
            expected[expected == "train"].index)
        roles = roles[roles != "unused"]
    assert (roles == expected[roles.index]).all()
    assert {"split2", "split3"} <= set(mine.columns)


def test_extracted_dir_errors_name_the_key(tmp_path):
    from svar.config import ConfigError, load_workflow_config
    from svar.config_checks import check

    base = load_workflow_config()
    for dataset, match in (({"name": "ucf101", "extracted_dir": str(tmp_path / "nowhere")}, "is not a folder"),
                           ({"name": "synthetic", "extracted_dir": str(tmp_path)}, "not a dataset svar builds")):
        with pytest.raises(ConfigError, match=rf"dataset.extracted_dir: .*{match}"):
            check({**base, "dataset": {**base["dataset"], **dataset}})
    from svar.datasets import prepare_extracted

    with pytest.raises(FileNotFoundError, match="UCF101's split lists"):
        (tmp_path / "empty" / "UCF-101" / "A").mkdir(parents=True)
        prepare_extracted("ucf101", tmp_path / "empty", tmp_path / "out")
