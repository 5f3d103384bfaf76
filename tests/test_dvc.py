"""DVC: `dvc repro` runs the workflow, a second one does nothing, and one after a code change keeps
the results Snakemake would keep; the config is the stage's params (`dvc params diff`, `dvc exp
run -S`, `dvc exp show`); metrics and plots show the summary; a local remote's push/pull
restores the data byte-identically."""

import hashlib
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import copy_checkout

BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow  # a Snakemake run of the tiny config inside `dvc repro`


def sh(cwd, *cmd, check=True, timeout=900):
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={"PATH": f"{BIN}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "HOME": str(cwd)})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def tree_digest(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_run):
    """A copy of the repository's tracked files, in its own git repository, set to the tiny config,
    holding the data, results and Snakemake records of conftest's complete tiny run (so that the
    first `dvc repro` hands Snakemake a finished workflow: it decides, and finds nothing to do)."""
    repo = copy_checkout(tmp_path_factory.mktemp("dvc") / "svar")
    # the stage runs the tiny overlay, which is then a params file of the stage too
    dvc_yaml = repo / "dvc.yaml"
    text = dvc_yaml.read_text()
    assert "cmd: snakemake --cores 2 --configfile workflow/config/config.yaml" in text
    text = text.replace("--configfile workflow/config/config.yaml", "--configfile workflow/config/tiny.yaml")
    assert "  - workflow/config/config.yaml:name,methods\n" in text  # the results folder is the overlay's name
    text = text.replace("  - workflow/config/config.yaml:name,methods\n",
                        "  - workflow/config/config.yaml:methods\n  - workflow/config/tiny.yaml:name\n")
    text = text.replace("      - workflow/config/config.yaml:\n",
                        "      - workflow/config/config.yaml:\n      - workflow/config/tiny.yaml:\n")
    dvc_yaml.write_text(text)
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy")
    # the tiny run's dataset (tracked by data.dvc as the project tracks its own), results and records
    for folder in ("data", "results", ".snakemake"):
        shutil.copytree(tiny_run[0] / folder, repo / folder, symlinks=True, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("locks", "incomplete"))
    sh(repo, "dvc", "add", "-q", "data")
    return repo


def test_repro_twice_second_is_a_no_op(project):
    first = sh(project, "dvc", "repro")
    assert "Running stage 'benchmark'" in first.stdout
    assert "Nothing to be done" in first.stdout + first.stderr  # Snakemake decided: the copied run is complete
    assert (project / "results" / "tiny" / "metrics.csv").exists()
    second = sh(project, "dvc", "repro")
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout

    metrics = sh(project, "dvc", "metrics", "show").stdout
    assert "results/tiny/summary.json" in metrics and "supervised" in metrics
    plots = json.loads(sh(project, "dvc", "plots", "show", "--json").stdout)
    text = json.dumps(plots)
    assert "top1_by_fraction" in text and "distill_pl" in text


def jobs_run(dvc_output: str) -> dict:
    """Snakemake's job counts in the output of the `dvc repro` that ran it."""
    table = dvc_output.split("Job stats:")[1] if "Job stats:" in dvc_output else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_repro_after_a_code_change_keeps_what_snakemake_keeps(project):
    """DVC would delete the stage's outputs before its command (Snakemake would then rerun all);
    they persist, so a change to a dependency reruns Snakemake, which finds nothing to do."""
    sh(project, "dvc", "repro")
    models = sorted((project / "results" / "tiny" / "runs").rglob("model.pt"))
    stamps = [p.stat().st_mtime_ns for p in models]
    with open(project / "svar" / "__init__.py", "a") as f:
        f.write("# a comment: a dependency of the stage changed\n")
    again = sh(project, "dvc", "repro")
    assert "Running stage 'benchmark'" in again.stdout
    assert "Nothing to be done" in again.stdout + again.stderr
    assert [p.stat().st_mtime_ns for p in models] == stamps


def test_config_is_the_stages_params(project):
    """`dvc params diff` names a changed key; `dvc exp run -S` runs one (`++key`: a key the file
    does not set yet, its default living in the schema; Snakemake reruns only the
    runs that read it); `dvc exp show` lists the setting beside the summary metrics."""
    sh(project, "dvc", "repro")
    sh(project, "git", "add", "-A")
    sh(project, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "baseline")
    tiny = project / "workflow" / "config" / "tiny.yaml"
    original = tiny.read_text()
    tiny.write_text(original.replace("linear_probe: {max_iter: 10}", "linear_probe: {max_iter: 12}"))
    diff = sh(project, "dvc", "params", "diff").stdout
    assert "linear_probe.max_iter" in diff and "10" in diff and "12" in diff
    tiny.write_text(original)

    exp = sh(project, "dvc", "exp", "run", "-n", "probe-l2", "-S", "workflow/config/tiny.yaml:++linear_probe.l2=0.01")
    jobs = jobs_run(exp.stdout + exp.stderr)
    assert jobs.get("train") == 4 and jobs.get("evaluate") == 1, jobs  # clip_linear_probe's 2 fractions × 2 seeds
    shown = json.loads(sh(project, "dvc", "exp", "show", "--json").stdout)
    text = json.dumps(shown)
    assert "probe-l2" in text and "linear_probe" in text and "0.01" in text
    assert "results/tiny/summary.json" in text and "clip_linear_probe" in text


def test_remote_push_pull_restores_data_byte_identically(project, tmp_path):
    before = tree_digest(project / "data")
    sh(project, "dvc", "remote", "add", "-f", "-d", "local", str(tmp_path / "remote"))
    sh(project, "dvc", "push", "-q", "data.dvc")
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    sh(project, "dvc", "pull", "-q", "data.dvc")
    assert tree_digest(project / "data") == before
