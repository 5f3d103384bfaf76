"""The generated dataset: UCF101's layout and split format, deterministic, decodable."""

import hashlib

import av

from conftest import tiny_spec
from svar.manifest import read_class_index, read_split_list
from svar.datasets.synthetic import DEFAULT_CLASSES, generate
from svar.teacher.prompts import class_text


def digest_tree(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_ucf101_layout_and_split_files(tiny_dataset):
    classes = read_class_index(tiny_dataset / "splits" / "classInd.txt")
    assert classes == ["RedSquareMovingLeft", "RedSquareMovingRight", "BlueCircleGrowing", "BlueCircleShrinking"]
    train = read_split_list(tiny_dataset / "splits" / "trainlist01.txt")
    test = read_split_list(tiny_dataset / "splits" / "testlist01.txt")
    assert len(train) == 4 * 2 * 2 and len(test) == 4 * 1 * 2 and not set(train) & set(test)
    assert "RedSquareMovingLeft/v_RedSquareMovingLeft_g01_c01.avi" in test
    # trainlist lines carry the 1-based label, testlist lines only the path (UCF101's format)
    first = (tiny_dataset / "splits" / "trainlist01.txt").read_text().splitlines()[0].split()
    assert first[0].startswith(classes[int(first[1]) - 1] + "/")
    assert all(len(line.split()) == 1 for line in (tiny_dataset / "splits" / "testlist01.txt").read_text().splitlines())
    for rel in train + test:
        path = tiny_dataset / "videos" / rel
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert container.format.name == "avi"
            assert stream.codec_context.name == "mpeg4"
            assert float(stream.average_rate) == 25.0


def test_same_seed_same_bytes_other_seed_other_bytes(tiny_dataset, tmp_path):
    again = generate(tmp_path / "again", tiny_spec(DEFAULT_CLASSES))
    assert digest_tree(again) == digest_tree(tiny_dataset)
    other = generate(tmp_path / "other", tiny_spec(DEFAULT_CLASSES, seed=1))
    videos = [k for k in digest_tree(other) if k.startswith("videos/")]
    assert all(digest_tree(other)[k] != digest_tree(tiny_dataset)[k] for k in videos)


def test_interrupted_generation_resumes_to_identical_files(tiny_dataset, tmp_path):
    partial = generate(tmp_path / "partial", tiny_spec(DEFAULT_CLASSES))
    victims = sorted((partial / "videos").rglob("*.avi"))[::3]
    for path in victims:  # as if the run had died before writing these
        path.unlink()
    generate(partial, tiny_spec(DEFAULT_CLASSES))
    assert digest_tree(partial) == digest_tree(tiny_dataset)


def test_pretrain_pool_has_a_caption_per_frame(tiny_dataset):
    import pandas as pd

    captions = pd.read_csv(tiny_dataset / "pretrain" / "captions.csv")
    assert captions["video"].nunique() == 12
    for video, group in captions.groupby("video"):
        with av.open(str(tiny_dataset / "pretrain" / video)) as container:
            n = sum(1 for _ in container.decode(video=0))
        assert sorted(group["frame"]) == list(range(n))
    # a caption says what one frame shows, never the motion
    assert captions["caption"].str.match(r"a \w+ \w+ at the [\w ]+ on a (light|dark) background").all()
    assert not captions["caption"].str.contains("moving|rotating|growing|shrinking|oscillating").any()


def test_class_names_read_as_text():
    assert class_text("RedSquareMovingLeft") == "red square moving left"
    assert class_text("ApplyEyeMakeup") == "apply eye makeup"
    assert class_text("YoYo") == "yo yo"
    assert class_text("brush_hair") == "brush hair"  # HMDB51's class folders


# the default benchmark's data folder, named before width, height, min_frames and max_frames
# existed: a key added later must not rename it (nor any other earlier spec's)
DEFAULT_FOLDER = "synthetic-312da2c2"


def test_earlier_specs_keep_their_folder_and_new_keys_name_a_new_one():
    from svar.config import load_workflow_config
    from svar.datasets import dataset_folder

    config = load_workflow_config()
    assert dataset_folder(config) == DEFAULT_FOLDER
    config["dataset"]["synthetic"]["width"] = 320
    assert dataset_folder(config) != DEFAULT_FOLDER


def test_up_to_101_distinct_classes_the_default_ten_first():
    import pytest

    from svar.datasets.synthetic import spec_classes

    classes = spec_classes(101)
    assert len(set(classes)) == 101 and classes[:10] == DEFAULT_CLASSES
    assert len({c[0] for c in classes}) == 8 and len({c[2] for c in classes}) == 8  # every colour and motion
    # appearances shared by classes that differ only by motion
    appearances = [c[:2] for c in classes]
    assert sum(appearances.count(a) > 1 for a in set(appearances)) >= 10
    with pytest.raises(ValueError, match="2..101"):
        spec_classes(102)


def test_non_square_frames_and_durations_and_workers_give_the_same_bytes(tmp_path):
    import dataclasses

    import pytest

    from svar.datasets.synthetic import SyntheticSpec, spec_classes

    spec = SyntheticSpec(size=32, width=40, height=30, min_frames=12, max_frames=14, groups=2, clips_per_group=2,
                         test_groups=1, pretrain_videos=3, seed=1, classes=spec_classes(12)[-3:])
    one = generate(tmp_path / "one", spec)
    two = generate(tmp_path / "two", spec, workers=2)
    assert digest_tree(one) == digest_tree(two)
    videos = sorted((one / "videos").rglob("*.avi"))
    assert len(videos) == 3 * 2 * 2
    for path in videos[:3]:
        with av.open(str(path)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert frames[0].shape == (30, 40, 3) and 12 <= len(frames) <= 14
    with pytest.raises(ValueError, match="min_frames .* max_frames"):
        dataclasses.replace(spec, min_frames=20)
    with pytest.raises(ValueError, match="width: 8 pixels"):
        dataclasses.replace(spec, width=8)


def test_square_frames_render_as_before_the_non_square_code():
    """The digest of renders made by the square-only renderer (before width, height and the
    bounding-box drawing): the default spec's videos keep their bytes."""
    import numpy as np

    from svar.datasets.synthetic import COLOURS, MOTIONS, SHAPES, render_video

    h = hashlib.sha256()
    for k, motion in enumerate(MOTIONS):
        frames, captions = render_video(list(COLOURS)[k], SHAPES[k % 4], motion, 16, 32, np.random.default_rng([5, k]))
        h.update(frames.tobytes())
        h.update("\n".join(captions).encode())
    assert h.hexdigest()[:16] == "d5f3ab3c59bcf41d"


def test_every_synthetic_key_is_a_dataset_flag_and_a_bad_duration_is_one_line(tmp_path, capsys):
    """Rule dataset passes each key of dataset.synthetic as `--key value` (common.smk's flags):
    scale.yaml's section parses, and min_frames above max_frames names both keys."""
    import pytest

    from conftest import ROOT
    from svar.cli import build_parser, main
    from svar.config import load_workflow_config

    section = load_workflow_config(ROOT / "workflow" / "config" / "scale.yaml")["dataset"]["synthetic"]
    argv = [x for k in sorted(section) for x in (f"--{k.replace('_', '-')}", str(section[k]))]
    args = build_parser().parse_args(["dataset", *argv, "--workers", "3", "--out", str(tmp_path / "ds")])
    assert {k: getattr(args, k) for k in section} == section and args.workers == 3
    with pytest.raises(SystemExit) as exit:
        main(["dataset", "--min-frames", "50", "--max-frames", "40", "--out", str(tmp_path / "bad")])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "min_frames (50)" in err and "max_frames (40)" in err and "Traceback" not in err
