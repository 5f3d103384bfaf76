"""The workflow under re-runs, faults and bad input: what a user does, and what breaks.

Each test reproduces one case of issue 2/6 on a complete tiny run (conftest's `tiny_run`, shared
with test_workflow.py) or on one of its own, and asserts the fixed behaviour. The `dvc repro`
after a code change is in test_dvc.py; a resume across a teacher change in test_resume.py.
"""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from conftest import ROOT, TINY, copy_checkout, copy_outputs, job_counts, scheduled, snakemake, tiny_outputs, write_config

pytestmark = pytest.mark.slow


def dry_run(workdir, config=TINY):
    result = snakemake(workdir, "-n", "--cores", "1", "--configfile", str(config))
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def nothing_to_do(workdir, config=TINY) -> bool:
    result = dry_run(workdir, config)
    return "Nothing to be done" in result.stdout + result.stderr


def stamps(folder) -> dict:
    return {p: p.stat().st_mtime_ns for p in sorted(folder.rglob("*")) if p.is_file()}


def test_another_config_never_touches_this_ones_results(tiny_run, tmp_path):
    """tiny, then another config (its own name and generated dataset) in the same folder, then
    tiny again: the second tiny run has nothing to do, and neither touched the other's files."""
    workdir = tiny_run[0]
    before = stamps(workdir / "results" / "tiny")
    other = write_config(tmp_path / "other.yaml", name="other", seeds=[0], fractions=[1.0],
                         methods=["clip_zeroshot"],
                         dataset={"synthetic": {"classes": 3, "size": 32, "groups": 3, "clips_per_group": 2,
                                                "test_groups": 1, "pretrain_videos": 16}})
    result = snakemake(workdir, "--cores", "2", "--configfile", str(other))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (workdir / "results" / "other" / "metrics.csv").exists()
    assert len(list((workdir / "data").glob("synthetic-*"))) == 2  # one folder per generated spec
    assert nothing_to_do(workdir) and nothing_to_do(workdir, other)
    assert stamps(workdir / "results" / "tiny") == before


def test_a_changed_generated_dataset_is_another_dataset(tiny_run, tmp_path):
    """dataset.synthetic changed: a new data folder, and every stage that reads it reruns."""
    config = yaml.safe_load(TINY.read_text())
    config["dataset"]["synthetic"]["seed"] = 7
    (tmp_path / "seed7.yaml").write_text(yaml.safe_dump(config))
    result = dry_run(tiny_run[0], tmp_path / "seed7.yaml")
    counts = job_counts(result.stdout)
    assert counts["dataset"] == 1 and counts["index"] == 1 and counts["pretrain_teacher"] == 1
    methods = len(config.get("methods") or yaml.safe_load((ROOT / "workflow" / "config" / "config.yaml").read_text())[
        "methods"])
    assert counts["train"] == methods * 2 * 2 and counts["evaluate"] == methods
    from svar.config import load_workflow_config
    from svar.datasets import dataset_folder

    new, old = dataset_folder(load_workflow_config(tmp_path / "seed7.yaml")), dataset_folder(load_workflow_config(TINY))
    assert new != old and f"data/{new}" in result.stdout


def test_a_video_added_to_a_list_reruns_the_index_and_one_it_does_not_name_nothing(tiny_run):
    from svar.config import load_workflow_config
    from svar.datasets import dataset_folder

    workdir = tiny_run[0]
    data = workdir / "data" / dataset_folder(load_workflow_config(TINY))
    folder = data / "videos" / "RedSquareMovingLeft"
    source = sorted(folder.glob("*.avi"))[0]
    added = folder / "v_RedSquareMovingLeft_g09_c01.avi"
    lists = data / "splits" / "trainlist01.txt"
    original = lists.read_text()
    shutil.copy(source, added)
    try:
        assert nothing_to_do(workdir)  # not named by any list: index does not read it
        lists.write_text(original + "RedSquareMovingLeft/v_RedSquareMovingLeft_g09_c01.avi 1\n")
        jobs = scheduled(dry_run(workdir).stdout)
        runs = yaml.safe_load((ROOT / "workflow" / "config" / "config.yaml").read_text())["methods"]
        assert ("index", {}) in jobs and sum(rule == "train" for rule, _ in jobs) == len(runs) * 2 * 2
    finally:
        lists.write_text(original)
        added.unlink()
    assert nothing_to_do(workdir)


def test_a_deleted_metrics_file_is_rebuilt_by_the_next_run(tiny_run):
    workdir = tiny_run[0]
    victim = workdir / "results" / "tiny" / "runs" / "distill" / "fraction1_seed0" / "metrics.json"
    victim.unlink()
    result = snakemake(workdir, "--cores", "2", "--configfile", str(TINY))
    assert result.returncode == 0 and victim.exists(), result.stderr[-3000:]
    # the jobs that run, as Snakemake lists them before each starts (a dry run lists the same)
    jobs = scheduled(result.stdout + result.stderr)
    assert sorted(rule for rule, _ in jobs) == ["aggregate", "all", "evaluate", "report"]
    assert ("evaluate", {"root": "results/tiny", "method": "distill"}) in jobs  # the first teacher's folder
    assert nothing_to_do(workdir)


def test_a_truncated_model_is_trained_again_by_the_next_run(tiny_run):
    workdir = tiny_run[0]
    run = workdir / "results" / "tiny" / "runs" / "supervised" / "fraction1_seed1"
    metrics = (run / "metrics.json").read_text()
    model = run / "model.pt"
    model.write_bytes(model.read_bytes()[:200])
    dry = dry_run(workdir)
    assert f"{model.relative_to(workdir)}: corrupt or truncated" in dry.stdout + dry.stderr
    assert model.stat().st_size == 200  # a dry run changes nothing
    result = snakemake(workdir, "--cores", "2", "--configfile", str(TINY))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "moved to" in result.stdout + result.stderr and (run / "model.pt.corrupt").exists()
    assert job_counts(result.stdout + result.stderr)["train"] == 1

    assert json.loads((run / "metrics.json").read_text())["top1"] == json.loads(metrics)["top1"]  # CPU: the same
    (run / "model.pt.corrupt").unlink()
    assert nothing_to_do(workdir)


def test_a_truncated_feature_store_is_named_and_nothing_is_deleted(tiny_run, tmp_path):
    workdir = tiny_run[0]
    store = workdir / "results" / "tiny" / "teacher" / "features.pt"
    models = sorted((workdir / "results" / "tiny" / "runs").rglob("model.pt"))
    before = {p: p.stat().st_mtime_ns for p in models}
    saved = tmp_path / "features.pt"
    shutil.copy2(store, saved)
    store.write_bytes(store.read_bytes()[:300])
    try:
        result = snakemake(workdir, "--cores", "2", "--configfile", str(TINY))
        assert result.returncode != 0
        said = result.stdout + result.stderr
        assert "features.pt: the teacher feature store is corrupt or truncated" in said and "rule teacher" in said
        assert {p: p.stat().st_mtime_ns for p in models} == before
    finally:
        shutil.copy2(saved, store)  # the bytes and the time stamp it had
    assert nothing_to_do(workdir)


def test_a_setting_the_schema_cannot_see_is_named_before_any_job(tmp_path):
    """One of svar.config_checks.problems' checks (each is tested in test_config.py) through Snakemake."""
    config = write_config(tmp_path / "bad.yaml", teacher={**yaml.safe_load(TINY.read_text())["teacher"],
                                                         "model": "ViT-B-99"})
    result = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(config))
    said = result.stdout + result.stderr
    assert result.returncode != 0 and "teacher.model: unknown open_clip model 'ViT-B-99'" in said, said[-2000:]
    assert not (tmp_path / "results").exists() and not (tmp_path / "data").exists()


def test_a_checkout_at_a_path_with_spaces_runs_its_own_svar_and_names_its_commit(tiny_run, tmp_path):
    """A copy of the repository at `…/my svar é/…`, run with --directory elsewhere: no shell
    warnings, the jobs import that copy's svar (first on PYTHONPATH, whatever the venv has
    installed), and its provenance names that copy's commit and whether its tree is dirty.
    The work folder starts with tiny_run's stages before training (copied): the checkout's path
    reaches a job only through the shell prefix every rule shares, so the jobs from training on
    show what the others would."""
    checkout = copy_checkout(tmp_path / "my svar é" / "svar")
    git = lambda *a: subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *a], cwd=checkout,  # noqa
                                    capture_output=True, text=True, check=True).stdout.strip()
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "copy")
    commit = git("rev-parse", "HEAD")
    small = write_config(tmp_path / "small.yaml", seeds=[0], fractions=[1.0], methods=["clip_zeroshot"])
    workdir = copy_outputs(tiny_run[0], tmp_path / "work dir",
                           tiny_outputs("dataset", "index", "pretrain_teacher", "teacher", "splits:1_0"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(checkout / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(small)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert job_counts(result.stdout + result.stderr) == {"train": 1, "evaluate": 1, "plan": 1, "aggregate": 1,
                                                         "report": 1, "all": 1, "total": 6}
    assert "not a valid identifier" not in result.stdout + result.stderr
    logs = "".join(p.read_text() for p in (workdir / "results" / "tiny" / "logs").rglob("*.log"))
    assert "not a valid identifier" not in logs
    run = workdir / "results" / "tiny" / "runs" / "clip_zeroshot" / "fraction1_seed0" / "metrics.json"
    provenance = json.loads(run.read_text())["provenance"]
    assert provenance["git_commit"] == commit and provenance["git_dirty"] is False


def test_a_full_disk_is_named_and_the_rerun_after_freeing_space_matches_a_clean_run(tiny_run, tmp_path):
    """The runs' folder on a 1.5 MB tmpfs (two of the grid's four student models fit): a training
    job fails saying No space left on device and which file; with space freed, the rerun
    finishes with the metrics of a clean run (tiny_run's, for the same runs). The folder starts
    with tiny_run's stages before training, copied: the disk fills in training (making them again
    took ~20 s)."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    grid = write_config(tmp_path / "grid.yaml", methods=["supervised", "distill"], seeds=[0])
    copy_outputs(tiny_run[0], tmp_path, tiny_outputs("dataset", "index", "pretrain_teacher", "teacher", "clip_cache",
                                                     "splits:0.25_0", "splits:1_0"))
    runs = tmp_path / "results" / "tiny" / "runs"
    runs.mkdir(parents=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1536k", "tmpfs", str(runs)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode()[-200:]}")
    try:
        full = snakemake(tmp_path, "--cores", "2", "--configfile", str(grid), "--keep-going")
        assert full.returncode != 0
        # the copied stages were up to date: the run trained the four models and went on from there
        assert job_counts(full.stdout + full.stderr) == {"train": 4, "evaluate": 2, "plan": 1, "aggregate": 1,
                                                         "report": 1, "all": 1, "total": 10}
        logs = "".join(p.read_text() for p in (tmp_path / "results" / "tiny" / "logs").rglob("*.log"))
        assert "No space left on device: results/tiny/runs/" in logs, logs[-3000:]
        assert "Traceback" not in logs
        subprocess.run(["mount", "-o", "remount,size=64m", str(runs)], check=True)
        again = snakemake(tmp_path, "--cores", "2", "--configfile", str(grid))
        assert again.returncode == 0, again.stderr[-3000:]
        clean = pd.read_csv(tiny_run[0] / "results" / "tiny" / "metrics.csv")
        clean = clean[clean["method"].isin(["supervised", "distill"]) & (clean["seed"] == 0)].reset_index(drop=True)
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "results" / "tiny" / "metrics.csv"), clean)
    finally:
        subprocess.run(["umount", str(runs)], capture_output=True)
