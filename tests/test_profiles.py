"""The SLURM profile sized to each job, read from a dry run of the UCF101 grid: teacher-only heads
are CPU jobs of resources.head's size, the network jobs ask one GPU each, the seconds-long jobs
run on the login node, and every memory request covers the peak its stage was measured at."""

from __future__ import annotations


import pytest

from conftest import ROOT, dry_run_jobs, snakemake

CONFIGS = ROOT / "workflow" / "config"
SLURM = ROOT / "workflow" / "profiles" / "slurm"
# the rules whose jobs take seconds (or need the internet): under SLURM on the login node
LOCAL = {"splits", "download", "teacher_weights", "student_weights", "teacher", "clip_cache", "aggregate", "plan",
         "report"}


@pytest.fixture(scope="module")
def ucf101_slurm(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slurm-dry")
    result = snakemake(folder, "-n", "--cores", "64", "--profile", str(SLURM), "--configfile",
                       str(CONFIGS / "ucf101.yaml"))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, dry_run_jobs(result.stdout)


def test_teacher_only_jobs_ask_no_gpu_and_little(ucf101_slurm):
    from svar.config import load_workflow_config
    from svar.methods import METHODS

    config = load_workflow_config(CONFIGS / "ucf101.yaml")
    head = config["resources"]["head"]
    _, jobs = ucf101_slurm
    seen = set()
    for job in jobs:
        if job["rule"] not in ("train", "evaluate"):
            continue
        method = job["wildcards"]["method"]
        res = job["resources"]
        if METHODS[method].trains_student:
            assert res["gpu"] == "1", job
        else:
            seen.add(method)
            assert res["gpu"] == "0" and int(res["mem_mb"]) == head["mem_mb"] <= 4000, job
            assert int(res["runtime"]) == head["runtime"] <= 60 and job["threads"] == head["threads"], job
    assert seen == {m for m in config["methods"] if not METHODS[m].trains_student} != set()
    assert all(j["resources"]["gpu"] == "1" for j in jobs if j["rule"] == "teacher_shard")


def test_seconds_long_jobs_run_on_the_login_node(ucf101_slurm):
    """splits, the gathers, download and the weights rules are local rules (Snakemake's dry run
    does not print it, so the workflow's own list is read)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    folder, jobs = ucf101_slurm
    with SnakemakeApi(OutputSettings(dryrun=True)) as api:  # parsing only: no run lock
        workflow = api.workflow(resource_settings=ResourceSettings(cores=64), snakefile=ROOT / "Snakefile",
                                config_settings=ConfigSettings(configfiles=[CONFIGS / "ucf101.yaml"]), workdir=folder)
        local = set(workflow._workflow._localrules)
    assert LOCAL <= local, LOCAL - local
    # and nothing that runs a network or decodes the whole dataset is local
    assert not local & {"teacher_shard", "train", "evaluate", "clip_cache_shard", "index", "pretrain_teacher"}
    assert {"splits", "download", "teacher_weights", "teacher", "clip_cache"} <= {j["rule"] for j in jobs}


def test_every_memory_request_covers_its_stage_measured_peak(ucf101_slurm):
    """The plan's peak-RSS column (svar/data/rates.csv: what svar bench measured a job of the
    stage at, at the config's input sizes) is below every job's request of that stage."""
    from svar.config import load_workflow_config
    from svar.methods import METHODS
    from svar.plan import plan

    config = load_workflow_config(CONFIGS / "ucf101.yaml")
    peaks = plan(config, None, "cpu").set_index("stage")["peak_rss_mb_measured"].dropna().astype(float)
    assert {"index", "clip_cache_shard", "train", "evaluate"} <= set(peaks.index), peaks
    _, jobs = ucf101_slurm
    checked = set()
    for job in jobs:
        stage = job["rule"]
        if stage in peaks.index and (stage not in ("train", "evaluate")
                                     or METHODS[job["wildcards"]["method"]].trains_student):
            assert int(job["resources"]["mem_mb"]) >= peaks[stage], (job, peaks[stage])
            checked.add(stage)
    assert checked == set(peaks.index)


def test_run_time_requests_come_from_the_plan(ucf101_slurm):
    """ucf101.yaml's runtime 0: each planned stage's jobs ask for the plan's estimate of the
    stage's longest job on the device it runs on (the GPU rules on cuda), with the margin."""
    from svar.config import load_workflow_config
    from svar.methods import METHODS
    from svar.plan import RUNTIME_MARGIN, plan, runtime_minutes

    config = load_workflow_config(CONFIGS / "ucf101.yaml")
    on = {"index": "cpu", "clip_cache_shard": "cpu", "teacher_shard": "cuda", "train": "cuda", "evaluate": "cuda"}
    tables = {device: plan(config, None, device, gpu_memory=False) for device in ("cpu", "cuda")}
    _, jobs = ucf101_slurm
    seen = set()
    for job in jobs:
        stage = job["rule"]
        if stage not in on or (stage in ("train", "evaluate") and not METHODS[job["wildcards"]["method"]].trains_student):
            continue
        table = tables[on[stage]].set_index("stage")
        minutes = int(job["resources"]["runtime"])
        assert minutes == runtime_minutes(tables[on[stage]], stage), job
        assert table.loc[stage, "est_wall_s_longest"] * RUNTIME_MARGIN / 60 < minutes < 1440, (job, table.loc[stage])
        seen.add(stage)
    assert seen == set(on)


def test_runtime_minutes_margin_and_unknown():
    import pandas as pd

    from svar.plan import RUNTIME_MARGIN, RUNTIME_SLACK_MIN, RUNTIME_UNKNOWN_MIN, runtime_minutes

    table = pd.DataFrame({"stage": ["train", "evaluate"], "est_wall_s_longest": [600.0, float("nan")]})
    assert runtime_minutes(table, "train") == 10 * RUNTIME_MARGIN + RUNTIME_SLACK_MIN
    assert runtime_minutes(table, "evaluate") == runtime_minutes(table, "index") == RUNTIME_UNKNOWN_MIN
