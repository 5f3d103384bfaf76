"""Evaluation metrics and aggregation into tables and a plot."""

import json
import re

import pandas as pd
import pytest
import torch

from svar.aggregate import aggregate, cell_text, summarise, summary_metrics
from svar.evaluate import accuracy_metrics


def test_accuracy_metrics_by_hand():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    logits = torch.tensor([
        [5, 1, 0, 0, 0, 0, 0],  # right
        [3, 5, 1, .5, .4, .3, .2],  # wrong, 0 is second
        [0, 1, 2, 3, 4, 5, 6],  # wrong, 0 is last: not in the top 5
        [0, 5, 0, 0, 0, 0, 0],  # right
        [0, 0, 5, 0, 0, 0, 0],  # right
        [5, .1, 4, .3, .2, .05, 0],  # wrong, 2 is second
    ], dtype=torch.float)
    m = accuracy_metrics(logits, labels, 7)
    assert m["top1"] == pytest.approx(3 / 6)
    assert m["top5"] == pytest.approx(5 / 6)
    # classes 0: 1/3, 1: 1/1, 2: 1/2 -> mean over the classes present
    assert m["mean_class"] == pytest.approx((1 / 3 + 1 + 1 / 2) / 3)


def predicted(top1: float, n: int = 10) -> dict:
    """Test labels and predictions (two classes of n / 2 videos) that give top1 and mean-class
    accuracy `top1`, as svar evaluate stores them: svar aggregate checks a run against them."""
    labels = [0] * (n // 2) + [1] * (n // 2)
    right = round(top1 * n)
    return {"test_labels": labels, "test_predictions": [lab if i < right else 1 - lab for i, lab in enumerate(labels)]}


def test_aggregate_tables(tmp_path):
    files = []
    for method in ("supervised", "distill"):
        for seed, top1 in ((0, 0.5), (1, 0.7)):
            path = tmp_path / f"{method}_{seed}.json"
            path.write_text(json.dumps({"dataset": "synthetic", "method": method, "fraction": 0.1, "seed": seed,
                                        "top1": top1, "top5": 0.9, "mean_class": top1, **predicted(top1)}))
            files.append(path)
    aggregate(files, tmp_path / "metrics.csv", tmp_path / "summary.csv")
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert list(metrics.columns) == ["dataset", "teacher", "method", "fraction", "seed", "metric", "value",
                                     "convention", "list_source", "seed_varies"]
    assert (metrics["teacher"] == "unrecorded / unrecorded").all()  # these runs name no teacher
    # made without `svar splits --info-out`: said so, not guessed
    assert (metrics["convention"] == "unrecorded (trained without svar splits --info-out)").all()
    assert len(metrics) == 2 * 2 * 3
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == ["dataset", "teacher", "method", "fraction", "metric", "mean", "std", "n_seeds"]
    row = summary[(summary.method == "distill") & (summary.metric == "top1")].iloc[0]
    assert row["mean"] == pytest.approx(0.6) and row["std"] == pytest.approx(0.1414213, rel=1e-5)
    assert row["n_seeds"] == 2


def test_aggregate_refuses_values_outside_unit_interval(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"dataset": "s", "method": "m", "fraction": 1, "seed": 0,
                                "top1": 87.5, "top5": 1, "mean_class": 1}))
    with pytest.raises(ValueError, match="bad.json: top1 = 87.5 is not in"):
        aggregate([path], tmp_path / "m.csv", tmp_path / "s.csv")
    assert not (tmp_path / "m.csv").exists()


def test_summary_std_is_missing_for_one_seed():
    metrics = pd.DataFrame([{"dataset": "s", "method": "m", "fraction": 1.0, "seed": 0, "metric": "top1",
                             "value": 0.4}])
    summary = summarise(metrics)
    assert summary["std"].isna().tolist() == [True]
    assert cell_text(summary["mean"][0], summary["std"][0]) == "40.0"
    assert summary_metrics(summary)["s"]["m"]["1"] == {"top1": 0.4, "top1_std": None}


def test_top5_is_missing_with_five_classes_or_fewer(tmp_path):
    """With ≤ 5 classes every prediction is in the top 5: top-5 is reported missing, not 1."""
    logits = torch.randn(12, 5)
    labels = torch.arange(12) % 5
    assert accuracy_metrics(logits, labels, 5)["top5"] is None
    assert accuracy_metrics(torch.randn(12, 6), labels, 6)["top5"] is not None
    paths = []
    for seed in (0, 1):
        path = tmp_path / f"{seed}.json"
        path.write_text(json.dumps({"dataset": "s", "method": "m", "fraction": 1, "seed": seed,
                                    "top1": 0.5, "top5": None, "mean_class": 0.5, **predicted(0.5)}))
        paths.append(path)
    aggregate(paths, tmp_path / "m.csv", tmp_path / "s.csv")
    summary = pd.read_csv(tmp_path / "s.csv")
    top5 = summary[summary.metric == "top5"].iloc[0]
    assert top5["mean"] != top5["mean"] and top5["n_seeds"] == 0
    assert cell_text(top5["mean"], top5["std"]) == "–"


def test_a_methods_runs_scored_together_equal_one_by_one(tiny_manifest, tiny_store, tmp_path, monkeypatch, capsys):
    """`svar evaluate` with several runs (rule evaluate: all runs of a method) writes what
    evaluating each alone writes, and decodes the shared test list once."""
    from svar import evaluate as evaluate_module
    from svar.cli import main
    from svar.splits import make_split
    from svar.trainer import train
    from test_training import with_options

    manifest, index_dir = tiny_manifest
    options = with_options(train={"steps": 2})
    args, alone = [], {}
    for seed in (0, 1):
        split = make_split(manifest, 0.5, seed=seed)
        split.to_csv(tmp_path / f"split{seed}.csv", index=False)
        train(manifest, split, tiny_store, "supervised", options, tmp_path / f"model{seed}.pt", seed,
              {"dataset": "synthetic", "fraction": 0.5})
        alone[seed] = evaluate_module.evaluate(tmp_path / f"model{seed}.pt", manifest, split, tiny_store,
                                               tmp_path / f"alone{seed}.json")
        args += ["--model", str(tmp_path / f"model{seed}.pt"), "--split", str(tmp_path / f"split{seed}.csv"),
                 "--out", str(tmp_path / f"together{seed}.json")]
    torch.save(tiny_store, tmp_path / "features.pt")
    decodes = []
    real = evaluate_module.memory_test_store
    monkeypatch.setattr(evaluate_module, "memory_test_store", lambda *a, **k: decodes.append(1) or real(*a, **k))
    main(["evaluate", *args, "--manifest", str(index_dir / "manifest.csv"), "--teacher", str(tmp_path / "features.pt")])
    assert len(decodes) == 1
    for seed in (0, 1):
        together = json.loads((tmp_path / f"together{seed}.json").read_text())
        assert together["seed"] == seed
        for key in ("top1", "top5", "mean_class", "test_predictions", "per_class"):
            assert together[key] == alone[seed][key]
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", *args[:6], *args[6:8], "--manifest", "m", "--teacher", "t"])
    assert stop.value.code == 2 and "2 --model, 1 --split" in capsys.readouterr().err


def test_evaluation_settings_are_its_own_not_the_checkpoints(tiny_manifest, tiny_store, tmp_path, monkeypatch):
    """Clips, batch size and device come from `svar evaluate`'s own flags (rule evaluate's params,
    the config's evaluate section): a checkpoint trained on other settings is scored as told."""
    from svar import evaluate as evaluate_module
    from svar.cli import main
    from svar.splits import make_split
    from svar.trainer import train
    from test_training import with_options

    manifest, index_dir = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    split.to_csv(tmp_path / "split.csv", index=False)
    options = {k: v for k, v in with_options(train={"steps": 2}).items() if k in ("student", "train")}
    train(manifest, split, tiny_store, "supervised", options, tmp_path / "model.pt", 0,
          {"dataset": "synthetic", "fraction": 0.5})
    torch.save(tiny_store, tmp_path / "features.pt")
    decodes, scored = [], []
    real = evaluate_module.memory_test_store
    monkeypatch.setattr(evaluate_module, "memory_test_store",
                        lambda manifest, ids, spec, n_clips, *a, **k: decodes.append(n_clips)
                        or real(manifest, ids, spec, n_clips, *a, **k))

    import svar.students

    class Counted(svar.students.Student):
        def forward(self, clips):
            scored.append(len(clips))
            return super().forward(clips)

    monkeypatch.setattr(svar.students, "Student", Counted)  # what evaluation rebuilds a checkpoint as
    main(["evaluate", "--model", str(tmp_path / "model.pt"), "--split", str(tmp_path / "split.csv"),
          "--out", str(tmp_path / "m.json"), "--manifest", str(index_dir / "manifest.csv"),
          "--teacher", str(tmp_path / "features.pt"), "--clips", "2", "--crops", "3", "--batch-size", "3",
          "--device", "cpu"])
    assert decodes == [2]  # the frames of two clips a video, decoded once
    n_test = int((split["role"] == "test").sum())
    assert sum(scored) == n_test * 2 * 3 and max(scored) <= 3  # clips × crops views, in batches of 3
    result = json.loads((tmp_path / "m.json").read_text())
    assert result["provenance"]["evaluate"] == {"clips": 2, "crops": 3, "batch_size": 3, "device": "cpu"}
    assert result["provenance"]["views"] == "2 clips × 3 crops"
    assert result["provenance"]["clips"]["sampling"] == "segments"
    assert "evaluate" not in result["provenance"]["options"]  # training never saw them


def test_summary_is_written_without_float32_noise_and_metrics_csv_as_the_runs_wrote_it(tmp_path):
    """svar.evaluate counts in float32: a top-1 of 0.2 arrives as 0.20000000298023224. metrics.csv
    keeps each value as the run wrote it (its bytes are the benchmark's record); summary.csv and
    top1_by_fraction.csv say 0.2, and a mean or std of such values carries float32's digits, not
    double noise."""
    import numpy as np

    paths = []
    for seed, top1 in ((0, 0.1), (1, 0.2)):
        value = float(np.float32(top1))  # what .float().mean().item() returns
        for method in ("supervised", "distill"):
            path = tmp_path / f"{method}{seed}.json"
            path.write_text(json.dumps({"dataset": "s", "method": method, "fraction": 0.2, "seed": seed,
                                        "top1": value, "top5": None, "mean_class": value, **predicted(top1)}))
            paths.append(path)
    aggregate(paths, tmp_path / "metrics.csv", tmp_path / "summary.csv", top1_csv_out=tmp_path / "top1.csv")
    metrics = (tmp_path / "metrics.csv").read_text()
    assert ",0.2,1,top1,0.20000000298023224," in metrics and ",0.2,0,top1,0.10000000149011612," in metrics
    summary = (tmp_path / "summary.csv").read_text()
    # mean of the two: 0.15000000223517418 from the doubles; std 0.07071067811865477 → float32's 0.07071068
    assert "s,unrecorded / unrecorded,supervised,0.2,top1,0.15,0.07071068,2\n" in summary
    assert not re.search(r"\d\.\d{9,}", summary), summary
    assert (tmp_path / "top1.csv").read_text() == "fraction,distill,supervised\n0.2,0.15,0.15\n"


def test_evaluation_progress_counts_videos(tiny_manifest, tiny_store, tmp_path, monkeypatch):
    """The bar's total is the test videos and it moves by each batch's videos, not by batches."""
    from svar import evaluate as evaluate_module
    from svar.splits import make_split
    from svar.trainer import train
    from test_training import with_options

    manifest, _ = tiny_manifest
    split = make_split(manifest, 0.5, seed=0)
    options = {k: v for k, v in with_options(train={"steps": 1}).items() if k in ("student", "train")}
    train(manifest, split, tiny_store, "supervised", options, tmp_path / "model.pt", 0,
          {"dataset": "synthetic", "fraction": 0.5})
    bars = []

    class Bar:
        def __init__(self, *args, **kwargs):
            self.kwargs, self.updates = kwargs, []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(evaluate_module, "tqdm", Bar)
    settings = evaluate_module.evaluate_settings(clips=1, batch_size=3, device="cpu")
    test = split[split["role"] == "test"]
    ckpt = torch.load(tmp_path / "model.pt", weights_only=False)
    logits = evaluate_module.test_logits(ckpt, manifest, test, tiny_store, settings=settings)
    n_test = len(test)
    assert n_test > 3 and len(logits) == n_test
    (bar,) = bars
    assert bar.kwargs["total"] == n_test and bar.kwargs["unit"] == "video"
    assert bar.updates == [3] * (n_test // 3) + ([n_test % 3] if n_test % 3 else [])
