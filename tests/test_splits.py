"""Label-fraction splits: deterministic, class-balanced, at least one labeled video per class."""

import pandas as pd
import pytest

from svar.splits import make_split, per_class_count


def synthetic_manifest(per_class=(30, 25, 40, 28), test_per_class=10):
    rows = []
    for label, n in enumerate(per_class):
        rows += [{"video_id": f"v_C{label}_{i:03d}", "label": label, "split1": "train"} for i in range(n)]
        rows += [{"video_id": f"v_C{label}_t{i:03d}", "label": label, "split1": "test"} for i in range(test_per_class)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5, 1.0])
def test_same_seed_same_split(fraction):
    manifest = synthetic_manifest()
    a, b = make_split(manifest, fraction, seed=3), make_split(manifest, fraction, seed=3)
    pd.testing.assert_frame_equal(a, b)
    # and the draw does not depend on the manifest's row order
    c = make_split(manifest.sample(frac=1, random_state=0), fraction, seed=3)
    pd.testing.assert_frame_equal(a.sort_values("video_id").reset_index(drop=True),
                                  c.sort_values("video_id").reset_index(drop=True))


def test_other_seed_other_labeled_set():
    manifest = synthetic_manifest()
    a = make_split(manifest, 0.1, seed=0)
    b = make_split(manifest, 0.1, seed=1)
    assert set(a[a.role == "labeled"].video_id) != set(b[b.role == "labeled"].video_id)


@pytest.mark.parametrize("fraction,expected_per_class", [(0.01, 1), (0.1, 4), (0.3, 10)])
def test_class_balanced_at_least_one_per_class(fraction, expected_per_class):
    manifest = synthetic_manifest()
    split = make_split(manifest, fraction, seed=0)
    labeled = split[split.role == "labeled"]
    assert labeled.groupby("label").size().tolist() == [expected_per_class] * 4
    train = split[split.role != "test"]
    assert len(train) == 123 and set(train.video_id) == set(manifest[manifest.split1 == "train"].video_id)
    assert (split[split.role == "test"].video_id.str.contains("_t")).all()
    assert len(split[split.role == "test"]) == 40


def test_full_fraction_labels_everything():
    split = make_split(synthetic_manifest(), 1.0, seed=0)
    assert (split[split.role != "test"].role == "labeled").all()


def test_svformer_convention_counts_on_ucf101_sizes():
    # UCF101 split 1: 9,537 training videos, 101 classes -> "1%" = 1 per class, "10%" = 10 per class
    assert per_class_count(0.01, 9537, 101) == 1
    assert per_class_count(0.10, 9537, 101) == 10


def test_fraction_out_of_range_is_refused():
    with pytest.raises(ValueError, match="fraction"):
        make_split(synthetic_manifest(), 0.0, seed=0)
