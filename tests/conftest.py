"""Shared fixtures: a small generated dataset, its manifest and a random-weight teacher store."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

# never reach for a model hub from a test: weights come from files the tests make
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FIXTURES = SHARED / "fixtures"


# make test runs the slow tier under pytest-xdist with --dist loadgroup, scheduled by
# SlowTierScheduling: its tests share the tiny run (tiny_run) and a Slurm cluster and change files
# in them, so they are one work unit, run one at a time on one worker; each rehearsal runs in a
# folder of its own, a unit of its own, on whichever worker is free, beside them. (xdist's own
# loadgroup reads xdist_group marks into the test ids, which pytest 9.2's ids no longer take: the
# scope is read from the id here instead.)
SHARED_RUN_UNIT = "tests that share the tiny run"
REHEARSAL_TEST = "tests/test_rehearsal.py::test_rehearsal_runs_end_to_end"


def slow_tier_unit(nodeid: str) -> str:
    """The work unit of a slow test: a rehearsal's own (configs rehearsed with the same files share
    one, as test_rehearsal's rehearsal_runs runs them once; the tiny config's is tiny_run), every
    other test the shared run's."""
    from rehearsal import REHEARSALS, config_files, shipped_configs

    if not nodeid.startswith(REHEARSAL_TEST + "["):
        return SHARED_RUN_UNIT
    name = nodeid[len(REHEARSAL_TEST) + 1:-1]
    files = config_files(name, None)
    if files == (str(TINY),):
        return SHARED_RUN_UNIT
    first = next(other for other in shipped_configs()
                 if config_files(other, None) == files and REHEARSALS[other] == REHEARSALS[name])
    return f"rehearsal of {first}"


def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own scheduler (the fast tier's, --dist load)
    from xdist.scheduler import LoadScopeScheduling

    class SlowTierScheduling(LoadScopeScheduling):
        """xdist's loadscope over slow_tier_unit's units: the largest first (the shared run's),
        then the rehearsals in collection order (test_rehearsal: longest first)."""

        def _split_scope(self, nodeid: str) -> str:
            return slow_tier_unit(nodeid)

    return SlowTierScheduling(config, log)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """4 classes × 3 groups × 2 clips of 32×32 video, plus a small captioned pool."""
    from svar.datasets.synthetic import DEFAULT_CLASSES, SyntheticSpec, generate

    out = tmp_path_factory.mktemp("data") / "synthetic"
    generate(out, tiny_spec(DEFAULT_CLASSES))
    return out


def tiny_spec(classes, seed: int = 0):
    from svar.datasets.synthetic import SyntheticSpec

    return SyntheticSpec(size=32, groups=3, clips_per_group=2, test_groups=1, min_frames=10, max_frames=16,
                         pretrain_videos=12, seed=seed, classes=tuple(classes[:4]))


@pytest.fixture(scope="session")
def tiny_manifest(tiny_dataset, tmp_path_factory):
    from svar.manifest import load_manifest, write_index

    out = tmp_path_factory.mktemp("index")
    write_index(tiny_dataset / "videos", tiny_dataset / "splits", out / "manifest.csv", out / "exclusions.csv",
                out / "classes.csv")
    return load_manifest(out / "manifest.csv"), out


@pytest.fixture(scope="session")
def tiny_store(tiny_manifest, tmp_path_factory):
    """Teacher features from svar-tiny-clip with random weights (shapes, not knowledge)."""
    import pandas as pd

    from svar.teacher.features import extract

    manifest, index_dir = tiny_manifest
    classes = pd.read_csv(index_dir / "classes.csv")["class_name"].tolist()
    out = tmp_path_factory.mktemp("teacher") / "features.pt"
    return extract(manifest, classes, out, "svar-tiny-clip", "none", frames_per_video=3, batch_size=8,
                   device="cpu", templates=("a {}.",))


# --------------------------------------------------------------------------- the workflow


def copy_checkout(dest: Path) -> Path:
    """The repository's files as git sees them (tracked, and untracked but not ignored) copied to
    dest: a checkout elsewhere, without the venv, data or results."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for rel in files:
        if (ROOT / rel).is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    return dest


TINY = ROOT / "workflow" / "config" / "tiny.yaml"


def snakemake(workdir, *args, timeout=900, env=None):
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


def snakemake_side_by_side(runs: dict, timeout=900) -> dict:
    """snakemake(workdir, *args) for each key: (workdir, *args) of runs, two at a time, each in a
    folder of its own: the CompletedProcess of each, by key. For dry runs (one busy core each,
    most of it the config check importing torch and open_clip) on this 2-core machine."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        started = {key: pool.submit(snakemake, *run, timeout=timeout) for key, run in runs.items()}
        return {key: future.result() for key, future in started.items()}


def write_config(path, **overrides):
    """The tiny overlay with some top-level keys replaced (an overlay's dicts merge over config.yaml's)."""
    config = yaml.safe_load(TINY.read_text())
    config.update(overrides)
    path.write_text(yaml.safe_dump(config))
    return path


def job_counts(output: str) -> dict:
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def scheduled(output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs = []
    for block in re.split(r"\n(?=\[|(?:local)?rule \w+:)", output):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if m:
            w = re.search(r"^\s*wildcards: (.*)$", block, re.M)
            jobs.append((m.group(1), dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w else {}))
    return jobs


def dry_run_jobs(output: str) -> list[dict]:
    """rule, wildcards, threads and resources of every job a dry run lists."""
    jobs = []
    for block in re.split(r"\n(?=\[|(?:local)?rule \w+:)", output):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m:
            continue
        w = re.search(r"^\s*wildcards: (.*)$", block, re.M)
        r = re.search(r"^\s*resources: (.*)$", block, re.M)
        t = re.search(r"^\s*threads: (\d+)$", block, re.M)
        resources = dict(kv.split("=", 1) for kv in r.group(1).split(", ")) if r else {}
        jobs.append({"rule": m.group(1), "wildcards": dict(kv.split("=", 1) for kv in w.group(1).split(", ")) if w
                     else {}, "threads": int(t.group(1)) if t else 1, "resources": resources})
    return jobs


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """The tiny config, run once without interruption: (its folder, Snakemake's output). Tests
    that change its files leave it complete again (a dry run there finds nothing to do). Its
    jobs that take --options write which keys they read to <folder>/config-reads
    (svar.read_tracking)."""
    from svar.read_tracking import ENV

    workdir = tmp_path_factory.mktemp("tiny")
    result = snakemake(workdir, "--cores", "2", "--configfile", str(TINY),
                       env={ENV: str(workdir / "config-reads")})
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir, result


def tiny_outputs(*stages: str) -> list[str]:
    """Files and folders (relative to a run's folder) that tiny.yaml's stages write, for
    copy_outputs: "dataset" (its generated set), "index", "pretrain_teacher", "teacher" (the
    feature store and its shards), "clip_cache" (both parts' shards and receipts),
    "splits:<fraction>_<seed>" (one split's two files)."""
    from svar.config import load_workflow_config, split_path
    from svar.datasets import dataset_folder

    results = "results/tiny"
    paths = {"dataset": [f"data/{dataset_folder(load_workflow_config(TINY))}"],
             "index": [f"{results}/{name}.csv" for name in ("manifest", "exclusions", "classes")],
             "pretrain_teacher": [f"{results}/teacher/pretrained.pt", f"{results}/teacher/pretrain_curve.csv"],
             "teacher": [f"{results}/teacher/features.pt", f"{results}/teacher/shards"],
             "clip_cache": [f"{results}/clip_cache"]}
    out = []
    for stage in stages:
        if stage.startswith("splits:"):
            fraction, seed = stage.split(":")[1].split("_")
            out += [split_path(results, fraction, seed, ext) for ext in ("csv", "json")]
        else:
            out += paths[stage]
    return out


def copy_outputs(src: Path, dest: Path, paths) -> Path:
    """Outputs of a finished run (usually tiny_run's) copied into dest with their time stamps
    (shutil.copy2) and Snakemake's records of the jobs that wrote them (.snakemake/metadata:
    their params and code), so that Snakemake there takes them as up to date and a test of a
    later stage does not pay again for the earlier ones (the generated set, the pretrained
    teacher, the features). The caller checks, with a dry run or a job count, which jobs run."""
    for rel in paths:
        if (src / rel).is_dir():
            shutil.copytree(src / rel, dest / rel, symlinks=True, copy_function=shutil.copy2, dirs_exist_ok=True)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / rel, dest / rel)
    # records of files not copied say nothing: a missing output is made whatever its record says
    shutil.copytree(src / ".snakemake" / "metadata", dest / ".snakemake" / "metadata", copy_function=shutil.copy2,
                    dirs_exist_ok=True)
    return dest
