"""One Snakemake run per folder (svar.run_lock): a second one names the first and stops."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ROOT, TINY, snakemake


def test_a_second_holder_is_refused_with_the_first_named(tmp_path):
    from svar.run_lock import FolderBusy, hold, running_here

    assert running_here(tmp_path) is None
    held = hold(tmp_path)
    try:
        assert str(os.getpid()) in running_here(tmp_path)
        code = f"from svar.run_lock import hold; hold({str(tmp_path)!r})"
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
        assert other.returncode != 0 and "FolderBusy" in other.stderr
        assert f"pid {os.getpid()}" in other.stderr and "already running in this folder" in other.stderr
        with pytest.raises(FolderBusy):
            hold(tmp_path)  # another open file of the same process is refused too
    finally:
        held.close()
    # released with its file (or its process, however it ends): nothing stale is left to unlock
    assert running_here(tmp_path) is None
    hold(tmp_path).close()


@pytest.mark.slow
def test_a_second_snakemake_in_a_running_folder_stops_and_leaves_the_run_alone(tiny_run, tmp_path):
    """The red-team case: a second `snakemake` while one ran said IncompleteFilesException ...
    rerun with --rerun-incomplete, and following it started the same jobs twice."""
    work = tmp_path / "run"
    shutil.copytree(tiny_run[0], work, symlinks=True, copy_function=shutil.copy2)
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(work),
           "--cores", "1", "--configfile", str(TINY), "--forcerun", "evaluate",
           # one job of a few seconds, scoring one student method's runs
           "results/tiny/runs/distill/fraction1_seed0/metrics.json"]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lock = work / ".snakemake" / "svar-run.lock"
        deadline = time.time() + 120
        while not (lock.exists() and str(first.pid) in lock.read_text()):
            assert first.poll() is None and time.time() < deadline, "the first run never took the folder"
            time.sleep(0.2)
        # wait for a job of the first run to be under way, as in the red-team case
        while not list((work / "results" / "tiny" / "logs" / "evaluate").glob("*.log")) or not any(
                p.stat().st_mtime > lock.stat().st_mtime for p in (work / "results/tiny/logs/evaluate").glob("*.log")):
            assert first.poll() is None and time.time() < deadline, \
                f"the first run ended before the test: {first.communicate()[0][-2000:]}"
            time.sleep(0.2)
        second = snakemake(work, "--cores", "1", "--configfile", str(TINY))
        dry = snakemake(work, "-n", "--cores", "1", "--configfile", str(TINY))
        still_running = first.poll() is None
    finally:
        out, _ = first.communicate(timeout=600)
    assert still_running, "the first run ended before the second started: nothing was tested"
    text = second.stdout + second.stderr
    assert second.returncode != 0
    assert "already running in this folder" in text and f"pid {first.pid}" in text, text[-2000:]
    assert "IncompleteFilesException" not in text and "Job stats" not in text
    # a dry run changes nothing: it says so and goes on
    assert "already running in this folder" in dry.stdout + dry.stderr
    # the first run was not touched: it ends as it would have
    assert first.returncode == 0, out[-3000:]
    assert "steps (100%) done" in out
