"""DVC: `dvc repro` runs the workflow and a second one does nothing; metrics and plots show the
summary; a local remote's push/pull restores the data byte-identically."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

BIN = Path(sys.executable).parent


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
def project(tmp_path_factory):
    """A copy of the repository's tracked files, in its own git repository, set to the tiny config."""
    repo = tmp_path_factory.mktemp("dvc") / "svar"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    dvc_yaml = repo / "dvc.yaml"
    dvc_yaml.write_text(dvc_yaml.read_text().replace("workflow/config/config.yaml", "workflow/config/tiny.yaml"))
    sh(repo, "git", "init", "-q")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    sh(repo, "git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "copy")
    # the tiny config's dataset, tracked by data.dvc as the project tracks its own
    sh(repo, "python", "-m", "snakemake", "data/synthetic", "--cores", "2", "--configfile", "workflow/config/tiny.yaml")
    sh(repo, "dvc", "add", "-q", "data")
    return repo


def test_repro_twice_second_is_a_no_op(project):
    first = sh(project, "dvc", "repro")
    assert "Running stage 'benchmark'" in first.stdout
    assert (project / "results" / "metrics.csv").exists()
    second = sh(project, "dvc", "repro")
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout

    metrics = sh(project, "dvc", "metrics", "show").stdout
    assert "results/summary.json" in metrics and "supervised" in metrics
    plots = json.loads(sh(project, "dvc", "plots", "show", "--json").stdout)
    text = json.dumps(plots)
    assert "top1_by_fraction" in text and "distill_pl" in text


def test_remote_push_pull_restores_data_byte_identically(project, tmp_path):
    before = tree_digest(project / "data")
    sh(project, "dvc", "remote", "add", "-f", "-d", "local", str(tmp_path / "remote"))
    sh(project, "dvc", "push", "-q", "data.dvc")
    shutil.rmtree(project / "data")
    shutil.rmtree(project / ".dvc" / "cache")
    sh(project, "dvc", "pull", "-q", "data.dvc")
    assert tree_digest(project / "data") == before
