"""A run killed mid-way and started again continues from `<out>.resume.pt` exactly: the same final
weights, the same training curve and the same test metrics as a run that was never stopped."""

import copy
import json

import pytest
import torch

import svar.trainer
from svar.evaluate import evaluate
from svar.splits import make_split
from svar.trainer import TrainingStopped, train

from test_training import with_options

RUN = {"dataset": "synthetic", "fraction": 0.5}


def run(tiny_manifest, tiny_store, out, name, options, stop_after=None):
    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    return train(manifest, split, tiny_store, name, copy.deepcopy(options), out, 0, RUN, stop_after=stop_after)


def metrics(tiny_manifest, tiny_store, model, out):
    manifest, _ = tiny_manifest
    result = evaluate(model, manifest, make_split(manifest, 0.5, seed=0), tiny_store, out)
    return {k: result[k] for k in ("top1", "top5", "mean_class", "test_predictions", "weights")}


@pytest.mark.parametrize("prefetch", [False, True], ids=["in_line", "prefetched"])
@pytest.mark.parametrize("name,changes,stop", [
    # killed right after a checkpoint
    ("distill_pl", {"train": {"steps": 6, "checkpoint_every": 2}}, 4),
    # killed between checkpoints (step 4 is redone), mid-way through a pass over the pools, with EMA
    # and strong views
    ("fixmatch", {"train": {"steps": 5, "checkpoint_every": 3, "ema": 0.8}}, 4),
])
def test_resumed_run_ends_exactly_like_an_uninterrupted_one(tiny_manifest, tiny_store, tmp_path, monkeypatch, name,
                                                             changes, stop, prefetch):
    """In line, and with each next batch cut in the background (a checkpoint is then saved with
    a batch in flight): the resumed run ends like the uninterrupted one, and a prefetching run
    like one that builds in line."""
    options = with_options(**changes)
    in_line = run(tiny_manifest, tiny_store, tmp_path / "in_line.pt", name, options) if prefetch else None
    monkeypatch.setattr(svar.trainer, "prefetch_pays", lambda device: prefetch)
    whole = run(tiny_manifest, tiny_store, tmp_path / "whole.pt", name, options)
    if in_line is not None:
        assert all(torch.equal(in_line["state_dict"][k], whole["state_dict"][k]) for k in whole["state_dict"])
        assert (tmp_path / "in_line.pt.curve.csv").read_text() == (tmp_path / "whole.pt.curve.csv").read_text()
    assert not (tmp_path / "whole.pt.resume.pt").exists()

    out = tmp_path / "resumed.pt"
    with pytest.raises(TrainingStopped):
        run(tiny_manifest, tiny_store, out, name, options, stop_after=stop)
    resume = tmp_path / "resumed.pt.resume.pt"
    assert resume.exists() and not out.exists()
    state = torch.load(resume, weights_only=True)
    every = options["train"]["checkpoint_every"]
    assert state["step"] == stop - stop % every and len(state["curve"]) == state["step"]

    resumed = run(tiny_manifest, tiny_store, out, name, options)
    assert not resume.exists()  # removed once the final checkpoint is written
    a, b = whole["state_dict"], resumed["state_dict"]
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "whole.pt.curve.csv").read_text() == (tmp_path / "resumed.pt.curve.csv").read_text()
    assert whole["meta"]["weights"] == resumed["meta"]["weights"]
    assert metrics(tiny_manifest, tiny_store, tmp_path / "whole.pt", tmp_path / "a.json") == \
        metrics(tiny_manifest, tiny_store, out, tmp_path / "b.json")


def test_a_resume_file_from_another_config_is_ignored(tiny_manifest, tiny_store, tmp_path):
    options = with_options(train={"steps": 4, "checkpoint_every": 2})
    out = tmp_path / "m.pt"
    with pytest.raises(TrainingStopped):
        run(tiny_manifest, tiny_store, out, "supervised", options, stop_after=2)
    other = with_options(train={"steps": 4, "checkpoint_every": 2, "lr": 0.001})
    fresh = run(tiny_manifest, tiny_store, tmp_path / "fresh.pt", "supervised", other)
    ignored = run(tiny_manifest, tiny_store, out, "supervised", other)
    assert all(torch.equal(fresh["state_dict"][k], ignored["state_dict"][k]) for k in fresh["state_dict"])
    assert not (tmp_path / "m.pt.resume.pt").exists()


def test_no_resume_file_without_checkpoint_every(tiny_manifest, tiny_store, tmp_path):
    with pytest.raises(TrainingStopped):
        run(tiny_manifest, tiny_store, tmp_path / "m.pt", "supervised", with_options(train={"steps": 4}), stop_after=2)
    assert not list(tmp_path.iterdir())


def test_a_resume_file_made_with_another_teacher_is_ignored(tiny_manifest, tiny_store, tmp_path, caplog):
    """Killed mid-run, then the teacher's features change (another sampling, other weights):
    the rerun starts from step 0, says so, and ends as a fresh run on the new teacher."""
    options = with_options(train={"steps": 4, "checkpoint_every": 2})
    out = tmp_path / "m.pt"
    with pytest.raises(TrainingStopped):
        run(tiny_manifest, tiny_store, out, "distill", options, stop_after=2)
    other_teacher = {**tiny_store, "frame_features": tiny_store["frame_features"].flip(1).contiguous()}
    fresh = run(tiny_manifest, other_teacher, tmp_path / "fresh.pt", "distill", options)
    with caplog.at_level("WARNING"):
        resumed = run(tiny_manifest, other_teacher, out, "distill", options)
    assert "made from other inputs" in caplog.text and "starting from step 0" in caplog.text
    assert all(torch.equal(fresh["state_dict"][k], resumed["state_dict"][k]) for k in fresh["state_dict"])


def test_a_corrupt_resume_file_is_named_and_training_starts_fresh(tiny_manifest, tiny_store, tmp_path, caplog):
    options = with_options(train={"steps": 4, "checkpoint_every": 2})
    out = tmp_path / "m.pt"
    with pytest.raises(TrainingStopped):
        run(tiny_manifest, tiny_store, out, "supervised", options, stop_after=2)
    resume = tmp_path / "m.pt.resume.pt"
    resume.write_bytes(resume.read_bytes()[:100])
    fresh = run(tiny_manifest, tiny_store, tmp_path / "fresh.pt", "supervised", options)
    with caplog.at_level("WARNING"):
        again = run(tiny_manifest, tiny_store, out, "supervised", options)
    assert f"{resume}: cannot be read as the resume checkpoint: it is corrupt or truncated" in caplog.text
    assert all(torch.equal(fresh["state_dict"][k], again["state_dict"][k]) for k in fresh["state_dict"])
