"""The student's clip-sampling modes (svar/clips/sampling.py): one registry, the schema's names,
the keys each mode reads and its checks (which frames each view holds: test_training.py and
test_clip_cache.py)."""

import pytest

import svar.config as cfg
from svar.clips.cache_parts import cache_reads
from svar.clips.sampling import CLIP_KEYS, CLIP_SAMPLINGS, CROP_KEYS, ClipSpec, clip_keys, clip_problems
from svar.registry import names

STUDENT = {"sampling": "segments", "frames": 4, "stride": 2, "cache_frames": 8, "cache_size": [16, 16], "size": 16}


def test_the_schema_names_the_registered_modes():
    assert names("clip_sampling") == CLIP_SAMPLINGS.names() == ("segments", "dense")
    assert cfg.schema()["properties"]["student"]["properties"]["sampling"]["enum"] == list(CLIP_SAMPLINGS.names())
    assert list(CROP_KEYS) == cfg.enum_of("train.crop")
    assert cfg.default("student.sampling") in CLIP_SAMPLINGS


@pytest.mark.parametrize("sampling,own", [("segments", "student.cache_frames"), ("dense", "student.stride")])
@pytest.mark.parametrize("crop,crop_key", [("random", "train.crop_padding"), ("random_resized", "train.crop_scale")])
def test_each_mode_reads_its_own_key(sampling, own, crop, crop_key):
    config = {"student": {**STUDENT, "sampling": sampling}, "train": {"crop": crop}, "dataset": {"split": 1}}
    assert CLIP_SAMPLINGS[sampling].reads == (own,)
    assert clip_keys(config) == (own, crop_key)
    assert set(CLIP_KEYS) & set(clip_keys(config)) == set()
    assert cache_reads(config, "train") == ("student.sampling", "student.frames", "student.cache_size", own,
                                            "dataset.split")
    # a run's options hold only the keys its mode reads; the other one does not reach the spec
    other = {"segments": "stride", "dense": "cache_frames"}[sampling]
    student = {k: v for k, v in config["student"].items() if k != other}
    spec = ClipSpec.from_options(student)
    assert (spec.stride, spec.cache_frames) == ((1, 8) if sampling == "segments" else (2, 4))
    assert spec == ClipSpec.from_options(config["student"]) and spec.mode is CLIP_SAMPLINGS[sampling]


@pytest.mark.parametrize("student,message", [
    ({"sampling": "strided"}, r"student.sampling: 'strided' is not one of \['segments', 'dense'\]"),
    ({"frames": 9}, "student.frames: 9 frames a clip, but only student.cache_frames = 8 are decoded a video"),
    ({"size": 32}, r"student.cache_size: \[16, 16\] is smaller than the crop, student.size = 32"),
    ({"sampling": "dense", "stride": None}, "student.stride: missing, and student.sampling dense reads it"),
    ({"cache_frames": None}, "student.cache_frames: missing, and student.sampling segments reads it"),
])
def test_impossible_clips_are_refused_by_key(student, message):
    given = {k: v for k, v in {**STUDENT, **student}.items() if v is not None}
    with pytest.raises(ValueError, match=message):
        ClipSpec.from_options(given)


@pytest.mark.parametrize("student", [{}, {"frames": 9}, {"size": 32}, {"sampling": "dense", "frames": 9},
                                     {"sampling": "dense", "size": 32}])
def test_the_config_check_says_what_the_modes_say(student):
    """The config check (svar.config_checks) names what the modes refuse, word for word."""
    from svar.config import defaults, merge
    from svar.config_checks import problems

    config = merge(defaults(), {"name": "t", "fractions": [0.5], "seeds": [0], "methods": ["supervised"],
                                "student": {**STUDENT, **student}})
    assert set(clip_problems({**STUDENT, **student})) <= set(problems(config, local=False))


def test_a_cache_spec_holds_no_crop():
    """A clip cache part's options (cache_reads) hold no student.size: any crop within its frames."""
    spec = ClipSpec.from_options({k: v for k, v in STUDENT.items() if k not in ("size", "stride")})
    assert spec.size is None and spec.training_frames(40).tolist() == sorted(set(spec.cached_indices(40)) | set(spec.val_indices(40)))
    assert spec.test_frames(40, 2).tolist() == sorted(set(spec.test_indices(40, 0, 2)) | set(spec.test_indices(40, 1, 2)))
