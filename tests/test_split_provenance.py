"""Every number says how its split was made: the convention, the list source (drawn with the seed,
or a published file and its sha256) and what the seed varies, from `svar splits --info-out`
through the trained checkpoint to metrics.json and metrics.csv."""

from __future__ import annotations

import json

import pytest

from svar.aggregate import collect
from svar.download import file_digests
from svar.evaluate import evaluate
from svar.splits import load_split, write_split
from svar.trainer import train


def write_published_lists(manifest, folder):
    """SVFormer-style lists for the tiny set, as SeFAR ships them: comma-separated, CRLF,
    `unlabe.csv`, and `val.csv` as the test list; half of each class's pool labeled."""
    folder.mkdir(parents=True)
    pool = manifest[manifest["split1"] == "train"].sort_values("video_id")
    labeled = pool.groupby("label").head(3)
    unlabeled = pool[~pool["video_id"].isin(labeled["video_id"])]
    test = manifest[manifest["split1"] == "test"]

    def lines(rows):
        return "".join(f"/home/authors/data/{r.class_name}/{r.video_id}.avi,{r.label}\r\n" for r in rows.itertuples())

    (folder / "train.csv").write_bytes(lines(labeled).encode())
    (folder / "unlabe.csv").write_bytes(lines(unlabeled).encode())
    (folder / "val.csv").write_bytes(lines(test).encode())
    return labeled


@pytest.mark.parametrize("convention", ["balanced", "random", "svformer"])
def test_a_run_of_each_convention_records_it_in_metrics_json_and_csv(tiny_manifest, tiny_store, tmp_path,
                                                                    convention):
    manifest, _ = tiny_manifest
    lists_dir = None
    if convention == "svformer":
        lists_dir = tmp_path / "lists"
        labeled = write_published_lists(manifest, lists_dir / "list_synthetic_25")
    info_path = tmp_path / "split.json"
    write_split(manifest, 0.25, 1, tmp_path / "split.csv", convention=convention, lists_dir=lists_dir,
                val_per_class=1, info_out=info_path)
    info = json.loads(info_path.read_text())
    split = load_split(tmp_path / "split.csv")
    assert info["convention"] == convention and info["counts"]["labeled"] == (split["role"] == "labeled").sum()
    assert info["counts"]["val"] == 4  # one a class, out of the unlabeled videos
    if convention == "svformer":
        assert set(split[split.role == "labeled"]["video_id"]) == set(labeled["video_id"])
        files = {f["file"].rsplit("/", 1)[-1]: f["sha256"] for f in info["list_files"]}
        assert files["train.csv"] == file_digests(lists_dir / "list_synthetic_25" / "train.csv", ["sha256"])["sha256"]
        assert set(files) == {"train.csv", "unlabe.csv", "val.csv"}
        assert "train.csv (sha256 " in info["list_source"] and info["seed_varies"].startswith("initialisation only")
        assert info["comparable_with"] == ["svformer"]  # its own lists; no dataset-specific twin
    else:
        assert info["list_source"] == "drawn with seed 1" and info["seed_varies"] == "split and initialisation"
        assert info["comparable_with"] == []

    run_info = {"dataset": "synthetic", "fraction": 0.25, "split": info}
    train(manifest, split, tiny_store, "clip_zeroshot", {}, tmp_path / "model.pt", 1, run_info)
    result = evaluate(tmp_path / "model.pt", manifest, split, tiny_store, tmp_path / "metrics.json")
    assert result["split"] == info and result["provenance"]["split_convention"] == convention
    assert json.loads((tmp_path / "metrics.json").read_text())["split"]["list_source"] == info["list_source"]
    rows = collect([tmp_path / "metrics.json"])
    assert set(rows["convention"]) == {convention} and set(rows["list_source"]) == {info["list_source"]}
    assert set(rows["seed_varies"]) == {info["seed_varies"]}


def test_validation_videos_come_from_the_unlabeled_ones_and_leave_the_labeled_set_alone(tiny_manifest, tmp_path):
    from svar.splits import build_split

    manifest, _ = tiny_manifest
    without = build_split(manifest, 0.25, 3, val_per_class=0)
    with_val = build_split(manifest, 0.25, 3, val_per_class=2)
    labeled = lambda t: set(t[t.role == "labeled"]["video_id"])  # noqa: E731
    assert labeled(without) == labeled(with_val)
    val = with_val[with_val.role == "val"]
    assert val.groupby("label").size().tolist() == [2, 2, 2, 2]
    assert set(val["video_id"]) <= set(without[without.role == "unlabeled"]["video_id"])
    assert not set(val["video_id"]) & set(without[without.role == "test"]["video_id"])
    # the same seed, the same validation videos; another seed, another draw
    assert build_split(manifest, 0.25, 3, val_per_class=2).equals(with_val)
    assert set(build_split(manifest, 0.25, 4, val_per_class=2).query("role == 'val'")["video_id"]) != set(val["video_id"])
    # at fraction 1 every pool video is labeled: no validation set
    assert not (build_split(manifest, 1.0, 3, val_per_class=2)["role"] == "val").any()
