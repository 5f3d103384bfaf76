"""Importing the VideoSSL and SVFormer label-fraction lists reproduces their published counts.

The real videos are not here, so each manifest is built from the lists' own names: one row per
listed video, as `svar index` would write it for a dataset whose every video decodes.
"""

import logging
from collections import Counter
from dataclasses import asdict
from pathlib import Path, PurePosixPath

import pandas as pd
import pytest

from svar.literature import (
    LiteratureListError,
    discover_lists,
    import_split,
    read_svformer_list,
    read_videossl_list,
)
from svar.manifest import MANIFEST_COLUMNS

FIXTURES = Path(__file__).resolve().parents[2] / "shared" / "fixtures"
SPLITS = FIXTURES / "splits"
UCF_VIDEOSSL = SPLITS / "ucf101_videossl"
HMDB_VIDEOSSL = SPLITS / "hmdb51_videossl"
UCF_SVFORMER = SPLITS / "ucf101_svformer"
HMDB_SVFORMER = SPLITS / "hmdb51_svformer"


# skip, not fail, in a plain clone: the real-world fixtures live outside the project
pytestmark = pytest.mark.skipif(not FIXTURES.is_dir(), reason=f"{FIXTURES} is absent")


def _listed(path: Path) -> list[tuple[str, str, int]]:
    """(class, stem, label index) of every line of a VideoSSL list, parsed independently of svar."""
    rows = []
    for line in path.read_text().splitlines():
        name, _frames, label = line.rsplit(maxsplit=2)
        video = PurePosixPath(name)
        rows.append((video.parent.name, video.name, int(label)))
    return rows


def manifest_from_lists(train_list: Path, test_list: Path) -> pd.DataFrame:
    """A manifest holding every video of a training pool list and a test list, all decodable.

    A class's label is the index most of its videos carry: the HMDB51 lists give a few videos a
    neighbouring class's index, and a real manifest takes labels from classInd.txt instead.
    """
    listed = [(*row, "train") for row in _listed(train_list)] + [(*row, "test") for row in _listed(test_list)]
    votes: dict[str, Counter] = {}
    for class_name, _stem, label, _role in listed:
        votes.setdefault(class_name, Counter())[label] += 1
    label_of = {c: v.most_common(1)[0][0] for c, v in votes.items()}
    frame = pd.DataFrame({
        "video_id": [stem for _, stem, _, _ in listed],
        "path": [f"videos/{c}/{stem}.avi" for c, stem, _, _ in listed],
        "class_name": [c for c, _, _, _ in listed],
        "label": [label_of[c] for c, _, _, _ in listed],
        "frames": 100, "fps": 25.0, "width": 320, "height": 240, "codec": "mpeg4",
        "decoder": "decord", "decodes": True, "error": "",
        "split1": [role for *_, role in listed],
    })
    assert list(frame.columns[:len(MANIFEST_COLUMNS)]) == MANIFEST_COLUMNS
    return frame


@pytest.fixture(scope="module")
def ucf101():
    return manifest_from_lists(UCF_VIDEOSSL / "ucf101_train_split_1_rawframes.txt",
                               UCF_VIDEOSSL / "ucf101_val_split_1_rawframes.txt")


@pytest.fixture(scope="module")
def hmdb51():
    # the 100% list is every HMDB51 video outside the split-1 test list
    return manifest_from_lists(HMDB_VIDEOSSL / "hmdb51_train_100_percent_labeled_split_1_rawframes.txt",
                               HMDB_VIDEOSSL / "hmdb51_val_split_1_rawframes.txt")


def roles(table: pd.DataFrame) -> dict[str, int]:
    return table["role"].value_counts().to_dict()


def ids(table: pd.DataFrame, role: str) -> set[str]:
    return set(table.loc[table["role"] == role, "video_id"])


# --------------------------------------------------------------------------- published counts


@pytest.mark.parametrize("fraction, labeled, unlabeled", [
    (0.05, 476, 9061), (0.1, 953, 8584), (0.2, 1907, 7630), (0.5, 4768, 4769)])
def test_ucf101_videossl_counts(ucf101, fraction, labeled, unlabeled):
    table = import_split(ucf101, **asdict(discover_lists(UCF_VIDEOSSL)[fraction]))
    assert list(table.columns) == ["video_id", "label", "role"]
    assert roles(table) == {"labeled": labeled, "unlabeled": unlabeled, "test": 3783}
    assert not table["video_id"].duplicated().any()


@pytest.mark.parametrize("fraction, per_class, unlabeled", [(0.01, 1, 9436), (0.1, 10, 8527)])
def test_ucf101_svformer_is_class_balanced(ucf101, fraction, per_class, unlabeled):
    table = import_split(ucf101, **asdict(discover_lists(UCF_SVFORMER)[fraction]))
    assert roles(table) == {"labeled": 101 * per_class, "unlabeled": unlabeled, "test": 3783}
    per_label = table[table["role"] == "labeled"]["label"].value_counts()
    assert len(per_label) == 101 and set(per_label) == {per_class}


def test_ucf101_test_set_is_the_same_in_both_conventions(ucf101):
    videossl = import_split(ucf101, **asdict(discover_lists(UCF_VIDEOSSL)[0.1]))
    svformer = import_split(ucf101, **asdict(discover_lists(UCF_SVFORMER)[0.1]))
    assert ids(videossl, "test") == ids(svformer, "test") == set(ucf101.loc[ucf101["split1"] == "test", "video_id"])


def test_hmdb51_40_percent_matches_across_conventions(hmdb51):
    videossl = import_split(hmdb51, **asdict(discover_lists(HMDB_VIDEOSSL)[0.4]))
    svformer = import_split(hmdb51, **asdict(discover_lists(HMDB_SVFORMER)[0.4]))
    # VideoSSL publishes no unlabeled list for HMDB51: the pool (100% list) minus the labeled
    assert roles(videossl) == {"labeled": 2094, "unlabeled": 3142, "test": 1530}
    assert ids(videossl, "labeled") == ids(svformer, "labeled")
    assert ids(videossl, "unlabeled") == ids(svformer, "unlabeled")
    assert ids(videossl, "test") == ids(svformer, "test")


def test_without_unlabeled_list_or_pool_the_pool_is_everything_outside_the_test_list(hmdb51):
    lists = discover_lists(HMDB_VIDEOSSL)[0.4]
    from_pool = import_split(hmdb51, **asdict(lists))
    from_manifest = import_split(hmdb51, lists.labeled_file, lists.test_file)
    pd.testing.assert_frame_equal(from_pool, from_manifest)


def test_hmdb51_label_noise_is_reported_and_manifest_labels_are_used(hmdb51, caplog):
    with caplog.at_level(logging.WARNING, logger="svar.literature"):
        table = import_split(hmdb51, **asdict(discover_lists(HMDB_VIDEOSSL)[0.4]))
    noisy = [r for r in caplog.records if "another class's label index" in r.getMessage()]
    assert noisy and all(r.levelno == logging.WARNING for r in noisy)
    assert any("climb" in r.getMessage() for r in noisy)
    expected = hmdb51.set_index("video_id")["label"]
    assert (table["label"].to_numpy() == expected[table["video_id"]].to_numpy()).all()


# --------------------------------------------------------------------------- mismatches


def test_undecodable_videos_are_left_out_with_a_count(ucf101, caplog):
    lists = discover_lists(UCF_VIDEOSSL)[0.05]
    dropped = [stem for stem, _ in read_videossl_list(lists.labeled_file)[:3]]
    manifest = ucf101.copy()
    manifest.loc[manifest["video_id"].isin(dropped), ["decodes", "error"]] = [False, "corrupt"]
    with caplog.at_level(logging.WARNING, logger="svar.literature"):
        table = import_split(manifest, **asdict(lists))
    assert roles(table) == {"labeled": 476 - 3, "unlabeled": 9061, "test": 3783}
    assert not set(dropped) & set(table["video_id"])
    message = next(r.getMessage() for r in caplog.records if "decodable videos" in r.getMessage())
    assert "3 of 476" in message and str(lists.labeled_file) in message and dropped[0] in message


def test_a_listed_video_the_manifest_lacks_is_an_error_naming_file_and_line(ucf101):
    """Nothing is silently dropped: a line naming a video this dataset does not have stops the import."""
    lists = discover_lists(UCF_VIDEOSSL)[0.05]
    listed = [stem for stem, _ in read_videossl_list(lists.labeled_file)]
    manifest = ucf101[ucf101["video_id"] != listed[4]]
    with pytest.raises(LiteratureListError, match=f"{lists.labeled_file}:5: {listed[4]} is not a video of this"):
        import_split(manifest, **asdict(lists))


def test_a_list_that_matches_nothing_is_refused_naming_the_file(ucf101, hmdb51):
    lists = discover_lists(HMDB_VIDEOSSL)[0.4]
    with pytest.raises(LiteratureListError, match=f"{lists.labeled_file}.*none of its 2094 videos"):
        import_split(ucf101, **asdict(lists))


def test_a_stem_in_another_class_is_refused(ucf101):
    lists = discover_lists(UCF_VIDEOSSL)[0.05]
    stem, _ = read_videossl_list(lists.labeled_file)[0]
    manifest = ucf101.copy()
    manifest.loc[manifest["video_id"] == stem, "class_name"] = "SomeOtherClass"
    with pytest.raises(LiteratureListError, match=f"{lists.labeled_file}:1: {stem} is in class .* SomeOtherClass"):
        import_split(manifest, **asdict(lists))


def test_a_different_class_numbering_is_refused(ucf101):
    manifest = ucf101.assign(label=(ucf101["label"] + 1) % 101)
    with pytest.raises(LiteratureListError, match="numbers classes differently"):
        import_split(manifest, **asdict(discover_lists(UCF_VIDEOSSL)[0.1]))


def test_a_video_in_two_roles_is_refused(ucf101):
    lists = discover_lists(UCF_VIDEOSSL)[0.1]
    with pytest.raises(LiteratureListError, match="both in"):
        import_split(ucf101, lists.labeled_file, lists.test_file, unlabeled_file=lists.labeled_file)


def test_malformed_and_duplicated_lines_name_file_and_line(tmp_path, ucf101):
    malformed = tmp_path / "malformed.txt"
    malformed.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01 120 0\nv_ApplyEyeMakeup_g08_c02 0\n")
    with pytest.raises(LiteratureListError, match=f"{malformed}:2: expected"):
        read_videossl_list(malformed)
    twice = tmp_path / "twice.txt"
    twice.write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01 120 0\nApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01 120 0\n")
    test_list = UCF_VIDEOSSL / "ucf101_val_split_1_rawframes.txt"
    with pytest.raises(LiteratureListError, match=f"{twice}:2: v_ApplyEyeMakeup_g08_c01 is listed twice"):
        import_split(ucf101, twice, test_list)


# --------------------------------------------------------------------------- reading and discovery


def test_readers_give_stem_and_label():
    assert read_videossl_list(UCF_VIDEOSSL / "ucf101_train_5_percent_labeled_split_1_rawframes.txt")[0] == \
        ("v_HighJump_g12_c01", 39)
    # SVFormer lines end in CRLF and carry the authors' absolute paths
    assert read_svformer_list(UCF_SVFORMER / "list_ucf_1" / "train.csv")[0] == ("v_Archery_g18_c07", 2)


def test_discover_lists_finds_every_published_fraction():
    ucf = discover_lists(UCF_VIDEOSSL)
    assert sorted(ucf) == [0.05, 0.1, 0.2, 0.5]
    assert ucf[0.1].unlabeled_file.name == "ucf101_train_10_percent_unlabeled_split_1_rawframes.txt"
    assert ucf[0.1].test_file.name == "ucf101_val_split_1_rawframes.txt"
    hmdb = discover_lists(HMDB_VIDEOSSL)
    assert sorted(hmdb) == [0.4, 0.5, 0.6, 1.0]
    assert hmdb[0.4].unlabeled_file is None
    assert hmdb[0.4].pool_file.name == "hmdb51_train_100_percent_labeled_split_1_rawframes.txt"
    assert sorted(discover_lists(UCF_SVFORMER)) == [0.01, 0.1]
    one = discover_lists(UCF_SVFORMER / "list_ucf_10")  # a single SVFormer folder
    assert list(one) == [0.1] and one[0.1].list_format == "csv"


def test_discover_lists_refuses_a_folder_without_lists(tmp_path):
    with pytest.raises(LiteratureListError, match=f"{tmp_path}: no published lists found"):
        discover_lists(tmp_path)


# --------------------------------------------------------------------------- lists as their authors ship them


def rewrite(src: Path, dest: Path, crlf: bool = False, commas: bool = False, names=None) -> Path:
    """A copy of a published list folder with CRLF line ends, `path,label` lines (SeFAR's form)
    and/or its files renamed (names: {"unlabel.csv": "unlabe.csv", "test.csv": "val.csv"})."""
    dest.mkdir(parents=True)
    for path in sorted(src.iterdir()):
        lines = path.read_text().splitlines()
        if commas:
            lines = [",".join(line.rsplit(maxsplit=1)) for line in lines]
        (dest / (names or {}).get(path.name, path.name)).write_bytes(
            (("\r\n" if crlf else "\n").join(lines) + ("\r\n" if crlf else "\n")).encode())
    return dest


@pytest.mark.parametrize("crlf,commas,names", [
    (True, False, None),
    (False, True, None),
    (True, True, {"unlabel.csv": "unlabe.csv"}),
    (True, True, {"test.csv": "val.csv"}),
])
def test_svformer_and_sefar_forms_import_to_the_same_split(ucf101, tmp_path, crlf, commas, names):
    original = import_split(ucf101, **asdict(discover_lists(UCF_SVFORMER)[0.1]))
    folder = rewrite(UCF_SVFORMER / "list_ucf_10", tmp_path / "list_ucf_10", crlf, commas, names)
    rewritten = import_split(ucf101, **asdict(discover_lists(folder)[0.1]))
    pd.testing.assert_frame_equal(rewritten, original)


def test_a_folder_without_a_test_list_takes_the_official_one(ucf101, tmp_path):
    """Some SeFAR folders (list_ucf_1, list_ucf_5) hold train and unlabeled lists only."""
    original = import_split(ucf101, **asdict(discover_lists(UCF_SVFORMER)[0.01]))
    folder = tmp_path / "list_ucf_1"
    folder.mkdir()
    for name in ("train.csv", "unlabel.csv"):
        (folder / name).write_bytes((UCF_SVFORMER / "list_ucf_1" / name).read_bytes())
    lists = discover_lists(folder)[0.01]
    assert lists.test_file is None
    pd.testing.assert_frame_equal(import_split(ucf101, **asdict(lists)), original)


def test_videossl_lists_with_crlf_import_to_the_same_split(ucf101, tmp_path):
    original = import_split(ucf101, **asdict(discover_lists(UCF_VIDEOSSL)[0.1]))
    folder = tmp_path / "videossl"
    folder.mkdir()
    for path in UCF_VIDEOSSL.glob("*_10_percent_*"):
        (folder / path.name).write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    val = UCF_VIDEOSSL / "ucf101_val_split_1_rawframes.txt"
    (folder / val.name).write_bytes(val.read_bytes().replace(b"\n", b"\r\n"))
    pd.testing.assert_frame_equal(import_split(ucf101, **asdict(discover_lists(folder)[0.1])), original)


def test_a_malformed_csv_line_names_its_file_and_line(ucf101, tmp_path):
    folder = rewrite(UCF_SVFORMER / "list_ucf_10", tmp_path / "list_ucf_10", commas=True)
    lines = (folder / "train.csv").read_text().splitlines()
    lines[6] = "/root/UCF-101/Archery/v_Archery_g01_c01.avi;two"
    (folder / "train.csv").write_text("\n".join(lines) + "\n")
    with pytest.raises(LiteratureListError, match=r"train.csv:7: expected"):
        import_split(ucf101, **asdict(discover_lists(folder)[0.1]))


def test_the_sefar_convention_reads_the_csv_folders(ucf101, tmp_path):
    from svar.splits import build_split

    folder = rewrite(UCF_SVFORMER / "list_ucf_10", tmp_path / "lists" / "list_ucf_10", crlf=True, commas=True,
                     names={"unlabel.csv": "unlabe.csv", "test.csv": "val.csv"})
    sefar = build_split(ucf101, 0.1, 0, convention="sefar", lists_dir=folder.parent)
    svformer = build_split(ucf101, 0.1, 0, convention="svformer", lists_dir=UCF_SVFORMER)
    pd.testing.assert_frame_equal(sefar, svformer)
    with pytest.raises(ValueError, match="the videossl lists are videossl"):
        build_split(ucf101, 0.1, 0, convention="videossl", lists_dir=folder.parent)
