"""The Snakemake workflow: lint-clean, the teacher scheduled once per dataset, a tiny config run
end to end, and a bad config stopped before any job starts."""

import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT

TINY = ROOT / "workflow" / "config" / "tiny.yaml"


def snakemake(workdir, *args, timeout=900):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def write_config(path, **overrides):
    config = yaml.safe_load(TINY.read_text())
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


def job_counts(output: str) -> dict:
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_lint_reports_nothing(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_teacher_runs_once_for_a_whole_grid(tmp_path):
    config = write_config(tmp_path / "grid.yaml", fractions=[0.25, 1.0], seeds=[0, 1],
                          methods=["supervised", "distill", "distill_pl"])
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config))
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["teacher"] == 1 and counts["pretrain_teacher"] == 1 and counts["index"] == 1
    assert counts["train"] == 2 * 2 * 3 and counts["evaluate"] == 2 * 2 * 3
    assert counts["splits"] == 2 * 2


@pytest.mark.parametrize("override,named", [
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"methods": ["supervised", "mean_teacher"]}, "mean_teacher"),
    ({"fractions": [0.1, 1.5]}, "fractions"),
])
def test_bad_config_stops_before_any_job(tmp_path, override, named):
    config = write_config(tmp_path / "bad.yaml", **override)
    result = snakemake(tmp_path, "--cores", "1", "--configfile", str(config))
    assert result.returncode != 0
    assert named in result.stderr
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_tiny_benchmark_end_to_end(tmp_path):
    result = snakemake(tmp_path, "--cores", "2", "--configfile", str(TINY))
    assert result.returncode == 0, result.stderr[-3000:]
    config = yaml.safe_load(TINY.read_text())
    metrics = pd.read_csv(tmp_path / "results" / "metrics.csv")
    expected = {("synthetic", m, float(f), s, metric) for m in config["methods"] for f in config["fractions"]
                for s in config["seeds"] for metric in ("top1", "top5", "mean_class")}
    rows = list(metrics[["dataset", "method", "fraction", "seed", "metric"]].itertuples(index=False, name=None))
    assert len(rows) == len(expected) and set(rows) == expected
    assert metrics["value"].between(0, 1).all()
    summary = pd.read_csv(tmp_path / "results" / "summary.csv")
    assert len(summary) == len(config["methods"]) * len(config["fractions"]) * 3
    assert (summary["n_seeds"] == len(config["seeds"])).all()
    assert (tmp_path / "results" / "plots" / "top1_vs_fraction.png").stat().st_size > 1000
    assert "svar summary" in result.stdout
    logs = list((tmp_path / "results" / "logs").rglob("*.log"))
    assert {p.relative_to(tmp_path / "results" / "logs").parts[0] for p in logs} >= {
        "dataset", "index", "splits", "pretrain_teacher", "teacher", "train", "evaluate"}
    # a second run has nothing to do
    again = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(TINY))
    assert "Nothing to be done" in again.stdout + again.stderr
