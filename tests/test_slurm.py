"""The SLURM profile on a real single-node Slurm cluster (scripts/slurm-local.sh): the tiny
benchmark run with workflow/profiles/slurm (+ the slurm-test overlay for this CPU-only node) sends
every job it runs but the local rules through sbatch, a job that fails once is retried and the run
completes, and its metrics equal the local tiny run's (conftest's `tiny_run`) byte for byte.

The grid is tiny.yaml with one seed, one fraction and one method (SLURM_METHODS), started from
the generated set and its index as the local tiny run left them (COPIED_STAGES, copied with their
time stamps and Snakemake's records): every later stage goes through sbatch, among them the
four GPU rules of the profile (pretrain_teacher, teacher_shard, train, evaluate). Each SLURM job starts
Snakemake twice (the job step, then its srun) on top of the rule, about 14 s a job on 2 CPUs, so
one seed of the whole tiny grid (32 jobs) took 455 s. SVAR_SLURM_TEST_FULL=1 runs tiny.yaml
unchanged, every stage from the dataset on.

Needs root and Slurm's Debian packages (`bash .ci/slurm-deps.sh`); skips without them."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, copy_outputs, tiny_outputs

SCRIPT = ROOT / "scripts" / "slurm-local.sh"
TINY = ROOT / "workflow" / "config" / "tiny.yaml"
PROFILE = ROOT / "workflow" / "profiles" / "slurm"
TEST_PROFILE = ROOT / "workflow" / "profiles" / "slurm-test"
SLURM_CONF = Path("/etc/slurm/slurm.conf")
MARK = "# written by svar scripts/slurm-local.sh"
# the rule whose first job fails on purpose, and the `svar` subcommand that rule runs: a clip
# cache shard, a job beside the chain's longest path (the teacher's pretraining runs beside it,
# the teacher's shards beside its retry), so that the retry adds no step to the run (a split,
# the job once failed here, is a local rule now: not an sbatch job). Each step of jobs that
# wait for each other costs ~36 s here: the plugin's status queries come 2, 14 and 36 s after
# the last one that found a job finished (+10 s after each that finds none), and a job takes ~20 s
FAIL_ONCE_RULE = "clip_cache_shard"
FAIL_ONCE_COMMAND = "clip-cache"


def alive(pid: int, comm: str | None = None) -> bool:
    """Whether the process runs (a zombie waiting to be reaped does not), named comm if given."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state != "Z" and (comm is None or Path(f"/proc/{pid}/comm").read_text().strip() == comm)
    except (OSError, IndexError):
        return False


def _why_not() -> str | None:
    if os.name != "posix" or os.geteuid() != 0:
        return "needs root (slurmd runs the jobs; slurm.conf must be /etc/slurm/slurm.conf)"
    path = f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"
    missing = [c for c in ("sinfo", "sbatch", "squeue", "slurmctld", "slurmd", "munged")
               if shutil.which(c, path=path) is None]
    if missing:
        return f"Slurm not installed ({', '.join(missing)} missing): bash .ci/slurm-deps.sh"
    if SLURM_CONF.exists():
        lines = SLURM_CONF.read_text(errors="replace").splitlines()
        if MARK not in lines:
            return f"{SLURM_CONF} belongs to this machine's own Slurm; not replacing it"
        # another test run's cluster (the same ports and config path): leave it alone
        other = [line.split(": ", 1)[1] for line in lines if line.startswith("# svar-slurm-dir: ")]
        pid_file = Path(other[0]) / "run" / "slurmctld.pid" if other else None
        if pid_file is not None and pid_file.exists() and alive(int(pid_file.read_text().strip() or 0), "slurmctld"):
            return f"another svar test cluster is running (state in {other[0]})"
    return None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(_why_not() is not None, reason=_why_not() or "")]


def slurm_local(state_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "SVAR_SLURM_DIR": str(state_dir),
           "PATH": f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin"}
    result = subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=180)
    if check and result.returncode != 0:
        raise AssertionError(f"slurm-local.sh {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}\n"
                             + log_tails(state_dir))
    return result


def log_tails(state_dir: Path, lines: int = 30) -> str:
    out = []
    for log in sorted(state_dir.glob("log/*.log")) + sorted(state_dir.glob("munge/*.log")):
        text = log.read_text(errors="replace").splitlines()[-lines:]
        out.append(f"--- {log}\n" + "\n".join(text))
    return "\n".join(out)


def daemon_pids(state_dir: Path) -> dict[str, int]:
    files = {"munged": state_dir / "munge" / "munged.pid", "slurmctld": state_dir / "run" / "slurmctld.pid",
             "slurmd": state_dir / "run" / "slurmd.pid"}
    return {name: int(f.read_text().strip()) for name, f in files.items() if f.exists()}


def new_state_dir() -> Path:
    # directly under /tmp: munged (user munge) must reach its key and socket, and pytest's own
    # temporary folders are private to root
    return Path(tempfile.mkdtemp(prefix="svar-slurm-", dir="/tmp"))


def test_stop_leaves_nothing_running():
    """A cluster of its own, before the module's starts (tests run in file order): start, a
    running job, stop; every process it started is gone, slurm.conf removed, stop idempotent."""
    if SLURM_CONF.exists():
        pytest.skip("a test cluster is up already; run this test on its own to check stop")
    state_dir = new_state_dir()
    try:
        slurm_local(state_dir, "start")
        pids = daemon_pids(state_dir)
        assert set(pids) == {"munged", "slurmctld", "slurmd"} and all(alive(p) for p in pids.values())
        assert slurm_local(state_dir, "status").returncode == 0
        job = subprocess.run(["sbatch", "--parsable", "-o", "/dev/null", "--wrap", "sleep 300"],
                             capture_output=True, text=True, check=True).stdout.strip().split(";")[0]
        job_pids: list[int] = []
        for _ in range(100):
            listed = subprocess.run(["scontrol", "listpids", job], capture_output=True, text=True).stdout
            job_pids = [int(line.split()[0]) for line in listed.splitlines()[1:] if line.split()[:1] != ["-1"]
                        and line.split()[0].isdigit()]
            if job_pids:
                break
            time.sleep(0.2)
        assert job_pids, "the job never started"
        slurm_local(state_dir, "stop")
        deadline = time.monotonic() + 10
        while any(alive(p) for p in job_pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [name for name, pid in pids.items() if alive(pid, name)]
        assert not [pid for pid in job_pids if alive(pid)]
        assert not SLURM_CONF.exists()
        assert slurm_local(state_dir, "status", check=False).returncode != 0
        slurm_local(state_dir, "stop")  # idempotent
    finally:
        slurm_local(state_dir, "stop", check=False)
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    state_dir = new_state_dir()
    try:
        slurm_local(state_dir, "start")
        yield state_dir
    finally:
        slurm_local(state_dir, "stop", check=False)
        shutil.rmtree(state_dir, ignore_errors=True)


def run_env(tmp: Path, fail_marker: Path | None = None) -> dict:
    """The venv's python first on PATH (the rules call `python -m svar`); with fail_marker, a
    `python` shim before it that fails the first `python -m svar <FAIL_ONCE_COMMAND>` it sees."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    path = f"{Path(sys.executable).parent}:{env.get('PATH', '')}:/usr/sbin:/sbin"
    if fail_marker is not None:
        shim_dir = tmp / "shim"
        shim_dir.mkdir()
        shim = shim_dir / "python"
        shim.write_text(
            "#!/bin/sh\n"
            "# test shim: the first `python -m svar <command>` fails (mkdir is atomic), the rest run\n"
            f'if [ "$1 $2 $3" = "-m svar {FAIL_ONCE_COMMAND}" ] && mkdir "$SVAR_TEST_FAIL_ONCE" 2>/dev/null; then\n'
            '    echo "test shim: failing the first attempt on purpose" >&2\n'
            "    exit 3\n"
            "fi\n"
            f'exec "{sys.executable}" "$@"\n'
        )
        shim.chmod(0o755)
        env["SVAR_TEST_FAIL_ONCE"] = str(fail_marker)
        path = f"{shim_dir}:{path}"
    env["PATH"] = path
    return env


# the method the SLURM run trains unless SVAR_SLURM_TEST_FULL=1: the paper's student (labeled and
# unlabeled clips, teacher features and pseudo-labels); each job through sbatch costs ~14 s here
# (one seed of the whole tiny grid, 32 jobs, took 455 s; four methods at one fraction, 288 s)
SLURM_METHODS = ["distill_pl"]
# the stages the SLURM run finds done, copied from the local tiny run unless SVAR_SLURM_TEST_FULL=1:
# the first two jobs of the chain (everything else waits for them), neither a GPU rule nor
# otherwise set apart by the profiles. Copying pretrain_teacher too saves no step on 2 CPUs: the
# failing split and both teacher shards then share the first step, and a shard misses its 36 s
COPIED_STAGES = ("dataset", "index")


def full() -> bool:
    return os.environ.get("SVAR_SLURM_TEST_FULL") == "1"


def grid_config(folder: Path) -> Path:
    """tiny.yaml, with one seed, one fraction and SLURM_METHODS unless SVAR_SLURM_TEST_FULL=1."""
    if full():
        return TINY
    config = yaml.safe_load(TINY.read_text())
    config["seeds"] = config["seeds"][:1]
    config["fractions"] = config["fractions"][:1]
    config["methods"] = SLURM_METHODS
    config["clip_cache"] = {"shards": 1}  # a shard a part: two sbatch jobs of ~14 s, not four
    path = folder / "grid.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake_cmd(workdir: Path, config: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
            "--configfile", str(config), *args]


def job_counts(output: str) -> dict:
    table = output.split("Job stats:")[1]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


@pytest.fixture(scope="module")
def runs(cluster, tiny_run, tmp_path_factory):
    """The tiny benchmark through SLURM, in a folder holding the local tiny run's COPIED_STAGES;
    its metrics are compared with that local run's."""
    slurm_dir = tmp_path_factory.mktemp("slurm")
    aux = tmp_path_factory.mktemp("aux")
    marker = aux / "failed-once"
    config = grid_config(aux)
    if not full():
        copy_outputs(tiny_run[0], slurm_dir, tiny_outputs(*COPIED_STAGES))

    # what the SLURM run has to do there: every job of it but the local rules must go through sbatch
    dry = subprocess.run(snakemake_cmd(slurm_dir, config, "-n", "--cores", "1"), capture_output=True, text=True,
                         env=run_env(aux), timeout=300)
    assert dry.returncode == 0, dry.stderr[-3000:]
    dag = job_counts(dry.stdout)
    skipped = set(COPIED_STAGES) - set(dag)
    assert skipped == (set() if full() else set(COPIED_STAGES)), dag  # the copies are taken as up to date
    assert {"pretrain_teacher", "teacher_shard", "train", "evaluate"} <= set(dag), dag  # the profile's GPU rules

    started = time.monotonic()
    slurm = subprocess.run(
        snakemake_cmd(slurm_dir, config, "--profile", str(PROFILE), "--workflow-profile", str(TEST_PROFILE)),
        capture_output=True, text=True, env=run_env(aux, fail_marker=marker), timeout=900)
    (aux / "slurm.log").write_text(slurm.stdout + slurm.stderr)
    return {"dag": dag, "config": config, "local_dir": tiny_run[0], "slurm_dir": slurm_dir, "slurm": slurm,
            "slurm_log": slurm.stdout + slurm.stderr, "marker": marker, "state_dir": cluster,
            "seconds": time.monotonic() - started}


def main_log(log: str) -> str:
    """Snakemake's own lines: without the job logs it prints for a failed job (show-failed-logs),
    which hold the job step's Snakemake output."""
    return re.sub(r"^Logfile [^\n]*:\n(=+)\n.*?^\1$", "", log, flags=re.M | re.S)


def submissions(log: str) -> list[tuple[str, str]]:
    """(rule, SLURM job id) of every sbatch submission Snakemake reported."""
    pattern = r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: \S*?/rule_([A-Za-z0-9_]+)/"
    return [(m.group(2), m.group(1)) for m in re.finditer(pattern, log)]


def test_slurm_run_completes(runs):
    result = runs["slurm"]
    assert result.returncode == 0, runs["slurm_log"][-6000:] + log_tails(runs["state_dir"])
    assert "svar summary" in result.stdout
    print(f"tiny benchmark through SLURM: {runs['seconds']:.0f} s")


# the rules that run on the submit host (`localrule: True`): the target, the splits, the clip
# cache's and the teacher's gathers, the plan, and the seconds-long tables and report
LOCAL_RULES = ("splits", "clip_cache", "teacher", "plan", "aggregate", "report", "all")


def test_every_job_but_the_local_rules_goes_through_sbatch(runs):
    assert runs["slurm"].returncode == 0, runs["slurm_log"][-6000:]
    dag = runs["dag"]
    expected = {rule: n for rule, n in dag.items() if rule not in (*LOCAL_RULES, "total")}
    expected[FAIL_ONCE_RULE] += 1  # its retry is a second sbatch job
    submitted = submissions(runs["slurm_log"])
    per_rule: dict[str, int] = {}
    for rule, _ in submitted:
        per_rule[rule] = per_rule.get(rule, 0) + 1
    assert per_rule == expected
    assert len({jobid for _, jobid in submitted}) == len(submitted) == sum(expected.values())
    # the cluster's own count agrees: every sbatch it received (a fresh cluster for this module)
    ctld = (runs["state_dir"] / "log" / "slurmctld.log").read_text(errors="replace")
    assert len(re.findall(r"_slurm_rpc_submit_batch_job: JobId=\d+", ctld)) == sum(expected.values())
    # nothing ran on the submit host but the local rules, each as often as the DAG has it
    local = re.findall(r"^localrule (\w+):", main_log(runs["slurm_log"]), re.M)
    assert sorted(local) == sorted(rule for rule in LOCAL_RULES for _ in range(dag[rule]))


def test_job_failing_once_is_retried(runs):
    assert runs["marker"].is_dir(), "the shim never failed a job: the test proves nothing"
    log = runs["slurm_log"]
    assert runs["slurm"].returncode == 0, log[-6000:]
    # the first attempt failed in SLURM, Snakemake submitted the job again, and that one succeeded
    assert re.search(rf"Error in rule {FAIL_ONCE_RULE}:", log), log[-6000:]
    assert "Trying to restart job" in log, log[-6000:]
    rule_jobs = [jobid for rule, jobid in submissions(log) if rule == FAIL_ONCE_RULE]
    assert len(rule_jobs) == runs["dag"][FAIL_ONCE_RULE] + 1  # each of the rule's jobs, and one retry
    ctld = (runs["state_dir"] / "log" / "slurmctld.log").read_text(errors="replace")
    exits = {m.group(1): int(m.group(2)) for m in re.finditer(r"_job_complete: JobId=(\d+) WEXITSTATUS (\d+)", ctld)}
    failed = [j for j, code in exits.items() if code != 0]
    assert len(failed) == 1 and failed[0] in rule_jobs
    assert all(exits[j] == 0 for j in rule_jobs if j != failed[0])
    assert list((runs["slurm_dir"] / "results" / "tiny" / "clip_cache").glob("*/shard_*.npy"))  # the retry's output


def test_metrics_equal_a_local_run(runs):
    """The SLURM run's metrics.csv is, byte for byte, the local tiny run's header and its rows of
    the same (method, fraction, seed) runs: tiny_run ran --cores 2 on this machine."""
    assert runs["slurm"].returncode == 0, runs["slurm_log"][-6000:]
    from svar.config import load_workflow_config

    grid = load_workflow_config(runs["config"])
    local_csv = runs["local_dir"] / "results" / "tiny" / "metrics.csv"
    local = pd.read_csv(local_csv)
    same_runs = local["method"].isin(grid["methods"]) & local["fraction"].isin(grid["fractions"]) & local["seed"].isin(
        grid["seeds"])
    header, *rows = local_csv.read_text().splitlines(keepends=True)
    assert len(rows) == len(local)  # one line a row: the lines can be picked by the rows
    expected = header + "".join(line for line, keep in zip(rows, same_runs) if keep)
    slurm = (runs["slurm_dir"] / "results" / "tiny" / "metrics.csv").read_text()
    assert same_runs.sum() >= 1
    assert slurm == expected
