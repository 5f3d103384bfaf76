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
