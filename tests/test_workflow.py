"""The Snakemake workflow: lint- and snakefmt-clean, the teacher scheduled once per dataset, the
real datasets' DAGs, a tiny config run end to end, a changed setting rerunning exactly the jobs
that read it, and a bad config stopped before any job starts."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from dry_runs import dry_runs
from conftest import (ROOT, TINY, copy_outputs, job_counts, scheduled, snakemake, snakemake_side_by_side, tiny_outputs,
                      write_config)

def test_lint_reports_nothing(tmp_path):
    result = snakemake(tmp_path, "--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Lints for" not in result.stdout + result.stderr


def test_snakefmt_finds_nothing_to_change():
    files = [ROOT / "Snakefile", *sorted((ROOT / "workflow" / "rules").glob("*.smk"))]
    result = subprocess.run([sys.executable, "-m", "snakefmt", "--check", *map(str, files)], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


# The next tests' Snakemake runs come from module fixtures that start those of all of a test's
# parameters at once: the dry runs in one process (tests/dry_runs.py), the bad configs two at a
# time (conftest.snakemake_side_by_side: each stops at the config check, ~8 s of one core).

SHARD_COUNTS = [1, 3]


@pytest.fixture(scope="module")
def teacher_dags(tmp_path_factory):
    """The teacher's and the clip cache's dry runs, each in an empty folder of its own, all in one
    process (tests/dry_runs.py), printing the shell commands: a shard count of SHARD_COUNTS (for
    both) on a 3 fractions × 3 seeds × 4 methods grid, "tag", tiny.yaml with a pretrained tag
    and 3 shards, and "teachers", a grid of three teachers."""
    runs = {}
    for shards in SHARD_COUNTS:
        folder = tmp_path_factory.mktemp(f"shards{shards}")
        teacher = {**yaml.safe_load(TINY.read_text())["teacher"], "shards": shards}
        config = write_config(folder / "grid.yaml", fractions=[0.1, 0.25, 1.0], seeds=[0, 1, 2],
                              methods=["supervised", "distill", "distill_pl", "clip_zeroshot"], teacher=teacher,
                              clip_cache={"shards": shards})
        runs[shards] = (folder, [config], 1)
    folder = tmp_path_factory.mktemp("tag")
    teacher = {**yaml.safe_load(TINY.read_text())["teacher"], "model": "ViT-B-32", "pretrained": "openai", "shards": 3}
    runs["tag"] = (folder, [write_config(folder / "tag.yaml", teacher=teacher)], 1)
    folder = tmp_path_factory.mktemp("teachers")
    teachers = [{"name": "vitb", "model": "ViT-B-32", "pretrained": "openai"},
                {"model": "svar-tiny-clip", "pretrained": "none"}]
    runs["teachers"] = (folder, [write_config(folder / "teachers.yaml", teachers=teachers,
                                              methods=["supervised", "clip_finetune", "clip_zeroshot"])], 1)
    return dry_runs(runs, printshellcmds=True)


@pytest.mark.parametrize("shards", SHARD_COUNTS)
def test_teacher_runs_once_per_shard_for_a_whole_grid(teacher_dags, shards):
    """3 fractions × 3 seeds × 4 methods: the teacher is one job per shard and one gather."""
    result = teacher_dags[shards]
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["teacher_shard"] == shards and counts["teacher"] == 1
    assert counts["pretrain_teacher"] == 1 and counts["index"] == 1
    assert counts["train"] == 3 * 3 * 4 and counts["evaluate"] == 4  # one per method, all its runs
    assert counts["splits"] == 3 * 3
    assert "teacher_weights" not in counts  # a checkpoint file: nothing to download


@pytest.mark.parametrize("shards", SHARD_COUNTS)
def test_clip_cache_runs_once_per_shard_and_every_student_job_reads_it(teacher_dags, shards):
    """The same grid: the clip cache is one job per shard and part (train, test) and one gather a
    part; every train job of a student method takes the train part's receipt as input, every
    evaluate job of one the test part's; the teacher-only method reads neither."""
    result = teacher_dags[shards]
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["clip_cache_shard"] == 2 * shards and counts["clip_cache"] == 2
    blocks = {}
    for block in re.split(r"\n(?=\[|(?:local)?rule \w+:)", result.stdout):
        rule = re.match(r"(?:local)?rule (\w+):", block.strip())
        if rule:
            blocks.setdefault(rule.group(1), []).append(block)
    shard_outputs = [re.search(r"output: (\S+?),", b).group(1) for b in blocks["clip_cache_shard"]]
    assert sorted(shard_outputs) == sorted(f"results/tiny/clip_cache/{part}/shard_{i:03d}_of_{shards:03d}.npy"
                                           for part in ("train", "test") for i in range(shards))
    for rule, part in (("train", "train"), ("evaluate", "test")):
        assert len(blocks[rule]) == (3 * 3 * 4 if rule == "train" else 4)
        for block in blocks[rule]:
            reads = f"results/tiny/clip_cache/{part}.json" in re.search(r"input: (.*)$", block, re.M).group(1)
            assert reads == ("clip_zeroshot" not in block), block


def test_teacher_weights_are_fetched_once_before_the_shards(teacher_dags):
    """A pretrained tag: one teacher_weights job (a local rule: the login node, with internet),
    which every shard job waits for; the shard jobs themselves run offline."""
    result = teacher_dags["tag"]
    assert result.returncode == 0, result.stderr
    counts = job_counts(result.stdout)
    assert counts["teacher_weights"] == 1 and counts["teacher_shard"] == 3 and "pretrain_teacher" not in counts
    shard_cmds = re.findall(r"HF_HUB_OFFLINE=1 python -m svar teacher --.*$", result.stdout, re.M)
    assert len(shard_cmds) == 3 and all("--offline" in c and "--cache-dir data/weights" in c for c in shard_cmds)
    assert all("results/teacher_weights/ViT-B-32__openai.json" in block
               for block in re.findall(r"rule teacher_shard:\n(.*?)\n\n", result.stdout, re.S))


def test_each_teacher_of_the_grid_runs_it_again_in_its_own_folder(teacher_dags):
    """`teachers`: two more beside `teacher` (a tag, random weights): each its own feature store,
    runs, evaluation and tables under results/<name>/teachers/<its name>/; one report; the tag's
    weights fetched once; clip_finetune reads its own teacher's weights."""
    result = teacher_dags["teachers"]
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    grid = 2 * 2 * 3  # tiny's fractions × seeds × 3 methods
    assert counts["teacher"] == 3 and counts["teacher_shard"] == 3 * 2  # tiny: 2 shards
    assert counts["train"] == 3 * grid and counts["evaluate"] == 3 * 3 and counts["aggregate"] == 3
    assert counts["report"] == 1 and counts["teacher_weights"] == 1 and counts["pretrain_teacher"] == 1
    # the students' parts and clip_finetune's own (its frames at the teacher's size, cropped in
    # training): each shared by every teacher
    assert counts["splits"] == 4 and counts["clip_cache"] == 4
    jobs = scheduled(result.stdout)
    roots = sorted({w["root"] for rule, w in jobs if rule == "teacher"})
    assert roots == ["results/tiny", "results/tiny/teachers/svar-tiny-clip__none", "results/tiny/teachers/vitb"]
    finetune = [b for b in re.split(r"\n(?=\[|(?:local)?rule \w+:)", result.stdout)
                if b.strip().startswith("rule train:") and "clip_finetune" in b]
    inputs = [re.search(r"input: (.*)$", b, re.M).group(1) for b in finetune]
    assert sum("results/tiny/teacher/pretrained.pt" in i for i in inputs) == 4
    assert sum("results/teacher_weights/ViT-B-32__openai.json" in i for i in inputs) == 4
    assert sum("teacher_weights" not in i and "pretrained.pt" not in i for i in inputs) == 4  # random: no file
    assert all("clip_cache/clip_finetune_train.json" in i and "clip_cache/train.json" not in i for i in inputs)


BAD_CONFIGS = [
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"methods": ["supervised", "mixmatch"]}, "mixmatch"),
    ({"fractions": [0.1, 1.5]}, "fractions"),
]


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory):
    """named: (the folder, the run there of tiny.yaml with BAD_CONFIGS' override naming it)."""
    folders = {named: tmp_path_factory.mktemp("bad") for _, named in BAD_CONFIGS}
    results = snakemake_side_by_side({named: (folders[named], "--cores", "1", "--configfile",
                                              str(write_config(folders[named] / "bad.yaml", **override)))
                                      for override, named in BAD_CONFIGS})
    return {named: (folders[named], results[named]) for named in folders}


@pytest.mark.parametrize("named", [named for _, named in BAD_CONFIGS])
def test_bad_config_stops_before_any_job(bad_runs, named):
    folder, result = bad_runs[named]
    assert result.returncode != 0
    assert named in result.stderr
    assert not (folder / "results").exists() and not (folder / "data").exists()


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tiny_run):
    from svar.config import load_workflow_config

    tmp_path, result = tiny_run
    config = load_workflow_config(TINY)
    results = tmp_path / "results" / "tiny"
    metrics = pd.read_csv(results / "metrics.csv")
    expected = {("synthetic", m, float(f), s, metric) for m in config["methods"] for f in config["fractions"]
                for s in config["seeds"] for metric in ("top1", "top5", "mean_class")}
    rows = list(metrics[["dataset", "method", "fraction", "seed", "metric"]].itertuples(index=False, name=None))
    assert len(rows) == len(expected) and set(rows) == expected
    # the tiny set has 4 classes: top-5 is missing (every class is in the top 5), the rest in [0, 1]
    top5 = metrics["metric"] == "top5"
    assert metrics.loc[top5, "value"].isna().all() and metrics.loc[~top5, "value"].between(0, 1).all()
    # every row says how its split was made; each run's metrics.json too, with its views
    assert (metrics["convention"] == "balanced").all() and (metrics["seed_varies"] == "split and initialisation").all()
    assert set(metrics["list_source"]) == {f"drawn with seed {s}" for s in config["seeds"]}
    run = json.loads((results / "runs" / "distill" / "fraction0.25_seed1" / "metrics.json").read_text())
    assert run["split"]["convention"] == "balanced" and run["split"]["counts"]["val"] == 2 * 4
    assert run["provenance"]["views"] == "1 clip × 1 crop" and run["provenance"]["clips"]["sampling"] == "segments"
    assert 0 <= run["val_top1"] <= 1 and run["n_val"] == 8
    curve = pd.read_csv(results / "runs" / "distill" / "fraction0.25_seed1" / "train_curve.csv")
    assert curve["val_top1"].notna().sum() >= 1  # validation accuracy logged during training
    summary = pd.read_csv(results / "summary.csv")
    assert len(summary) == len(config["methods"]) * len(config["fractions"]) * 3
    scored = summary[summary["metric"] != "top5"]
    assert (scored["n_seeds"] == len(config["seeds"])).all() and (summary.loc[summary.metric == "top5", "n_seeds"] == 0).all()
    assert (results / "report" / "accuracy_vs_fraction.png").stat().st_size > 1000
    assert "svar summary" in result.stdout
    logs = list((results / "logs").rglob("*.log"))
    assert {p.relative_to(results / "logs").parts[0].removesuffix(".log") for p in logs} >= {
        "dataset", "index", "splits", "pretrain_teacher", "teacher", "clip_cache", "train", "evaluate", "aggregate",
        "report"}
    assert len(list((results / "logs" / "teacher").glob("shard_*_of_002.log"))) == 2
    # the clip cache decoded the frames once, in 2 shards a part; no training or evaluation job
    # decoded a video (a decoding progress bar says "decode"), each read the cache
    assert len(list((results / "logs" / "clip_cache").glob("*/shard_*_of_002.log"))) == 4
    from svar.methods import METHODS

    for method in config["methods"]:
        for path in [*(results / "logs" / "train" / method).glob("*.log"), results / "logs" / "evaluate" / f"{method}.log"]:
            text = path.read_text()
            assert "decod" not in text.lower(), path
            assert ("clips from the clip cache results/tiny/clip_cache/" in text) == METHODS[method].trains_student, path
    # every heavy job's benchmark file, summed per stage in the report's cost table
    costs = pd.read_csv(results / "report" / "cost.csv").set_index("stage")
    runs = len(config["methods"]) * len(config["fractions"]) * len(config["seeds"])
    assert costs["jobs"].to_dict() == {"dataset": 1, "index": 1, "pretrain_teacher": 1, "teacher_shard": 2,
                                       "teacher": 1, "clip_cache_shard": 4, "train": runs,
                                       "evaluate": len(config["methods"]), "total": 10 + runs + len(config["methods"])}
    assert (costs["wall_s_total"] > 0).all() and costs.loc["total", "peak_rss_mb_max"] > 50
    # svar plan's estimate beside the actual, for the stages svar/data/rates.csv has a rate for
    plan = pd.read_csv(results / "plan.csv").set_index("stage")
    assert set(plan.index) == {"index", "teacher_shard", "clip_cache_shard", "train", "evaluate"}
    for stage in plan.index:
        assert costs.loc[stage, "est_wall_s_total"] == pytest.approx(plan.loc[stage, "est_wall_s_total"], nan_ok=True)
    assert plan["est_wall_s_total"].notna().all(), plan["rate_source"]
    # the config's name, and nothing outside it (other tests may add other configs' folders here)
    assert (tmp_path / "results" / "tiny").is_dir() and not (tmp_path / "results" / "default").exists()
    assert not (tmp_path / "results" / "metrics.csv").exists() and not (tmp_path / "results" / "synthetic").exists()
    # a second run has nothing to do
    again = snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(TINY))
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_report_holds_the_plot_and_tables(tiny_run):
    workdir, _ = tiny_run
    result = snakemake(workdir, "--configfile", str(TINY), "--report", "results/report.html")
    assert result.returncode == 0, result.stderr[-2000:]
    html = (workdir / "results" / "report.html").read_text()
    assert "accuracy_vs_fraction.png" in html and "summary.csv" in html and "metrics.csv" in html


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_gives_the_same_metrics(tiny_run, tmp_path):
    """Part of the tiny grid (one seed, two methods: four runs), killed with -9 after two models,
    then finished: its metrics equal the uninterrupted tiny run's for the same runs. It starts
    from tiny_run's stages before training (copied: the kill lands in training either way)."""
    methods = ["supervised", "fixmatch"]
    grid = write_config(tmp_path / "grid.yaml", methods=methods, seeds=[0])
    workdir = copy_outputs(tiny_run[0], tmp_path / "work", tiny_outputs("dataset", "index", "pretrain_teacher", "teacher",
                                                                        "clip_cache",
                                                                        "splits:0.25_0", "splits:1_0"))
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--directory", str(workdir),
           "--cores", "2", "--configfile", str(grid)]
    run = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    runs = workdir / "results" / "tiny" / "runs"
    deadline = time.time() + 300
    while time.time() < deadline and len(list(runs.rglob("model.pt"))) < 2 and run.poll() is None:
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGKILL)  # Snakemake and every job it started, mid-way
    run.wait()
    assert not (workdir / "results" / "tiny" / "metrics.csv").exists(), "the run finished before it was killed"
    # what a user does after a crash: release Snakemake's lock, rerun what was left incomplete
    assert snakemake(workdir, "--unlock", "--configfile", str(grid)).returncode == 0
    again = snakemake(workdir, "--cores", "2", "--configfile", str(grid), "--rerun-incomplete")
    assert again.returncode == 0, again.stderr[-3000:]
    # the copied stages were up to date, and the kill left them so: the rerun went on from training
    assert set(job_counts(again.stdout + again.stderr)) <= {"train", "evaluate", "plan", "aggregate", "report", "all",
                                                            "total"}
    clean = pd.read_csv(tiny_run[0] / "results" / "tiny" / "metrics.csv")
    clean = clean[clean["method"].isin(methods) & (clean["seed"] == 0)].reset_index(drop=True)
    pd.testing.assert_frame_equal(pd.read_csv(workdir / "results" / "tiny" / "metrics.csv"), clean)


def sorted_keys(node):
    if isinstance(node, dict):
        return {k: sorted_keys(node[k]) for k in sorted(node)}
    return [sorted_keys(v) for v in node] if isinstance(node, list) else node


@pytest.mark.slow
@pytest.mark.parametrize("which", ["overlay", "resolved"])
def test_the_same_config_with_its_keys_sorted_schedules_nothing(tiny_run, tmp_path, which):
    """What a YAML tool writes back, or an overlay holding every key: the same settings in
    another order are the same params."""
    from svar.config import load_workflow_config

    config = yaml.safe_load(TINY.read_text()) if which == "overlay" else load_workflow_config(TINY)
    assert list(sorted_keys(config)) != list(config)
    path = tmp_path / "sorted.yaml"
    path.write_text(yaml.safe_dump(sorted_keys(config), sort_keys=True))
    result = snakemake(tiny_run[0], "-n", "--cores", "1", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Nothing to be done" in result.stdout + result.stderr, job_counts(result.stdout)


def _student_methods() -> list[str]:
    from svar.methods import METHODS

    methods = yaml.safe_load((ROOT / "workflow" / "config" / "config.yaml").read_text())["methods"]
    return [m for m in methods if METHODS[m].trains_student]


STUDENT_METHODS = _student_methods()


@pytest.mark.slow
@pytest.mark.parametrize("section,key,value,trained,evaluated,cached", [
    # the test clips: the clip cache's test part is decoded again, the models are not retrained
    ("evaluate", "clips", 2, [], STUDENT_METHODS, ["test"]),
    ("linear_probe", "l2", 0.01, ["clip_linear_probe"], ["clip_linear_probe"], []),
    ("distill", "weight", 0.5, ["distill", "distill_pl"], ["distill", "distill_pl"], []),
    # each method's own section: the same key of two methods is two settings
    ("distill_pl", "threshold", 0.7, ["distill_pl"], ["distill_pl"], []),
    ("fixmatch", "threshold", 0.9, ["fixmatch"], ["fixmatch"], []),
    # the cached pixels: both parts of the clip cache, then every student
    ("student", "cache_size", [20, 20], STUDENT_METHODS, STUDENT_METHODS, ["test", "train"]),
])
def test_a_changed_setting_reruns_only_the_jobs_that_read_it(tiny_run, tmp_path, section, key, value, trained,
                                                              evaluated, cached):
    config = yaml.safe_load(TINY.read_text())
    config.setdefault(section, {})[key] = value
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(config))
    result = snakemake(tiny_run[0], "-n", "--cores", "1", "--configfile", str(path))
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = scheduled(result.stdout)
    runs = len(config["fractions"]) * len(config["seeds"])
    assert sorted(w["method"] for rule, w in jobs if rule == "train") == sorted(trained * runs)
    assert sorted(w["method"] for rule, w in jobs if rule == "evaluate") == sorted(evaluated)
    shards = config["clip_cache"]["shards"]
    assert sorted(w["part"] for rule, w in jobs if rule == "clip_cache_shard") == sorted(cached * shards)
    assert sorted(w["part"] for rule, w in jobs if rule == "clip_cache") == sorted(cached)
    # the plan reads every setting that sizes the work (svar.plan.plan_reads): it and the report follow
    assert {rule for rule, _ in jobs} == {"all", "aggregate", "plan", "report", "evaluate",
                                          *(["train"] if trained else []),
                                          *(["clip_cache_shard", "clip_cache"] if cached else [])}


TEACHER_CHANGES = {"sampling.frames": ("sampling", {"frames": 3}), "templates": ("templates", ["a video of {}."]),
                   "batch_size": ("batch_size", 4)}


@pytest.fixture(scope="module")
def teacher_changed(tiny_run, tmp_path_factory):
    """Dry runs in the complete tiny run's folder, each with one teacher setting changed, in one
    process (tests/dry_runs.py)."""
    runs = {}
    folder = tmp_path_factory.mktemp("teacher-changed")
    for name, (key, value) in TEACHER_CHANGES.items():
        config = yaml.safe_load(TINY.read_text())
        config["teacher"][key] = value
        path = folder / f"{name}.yaml"
        path.write_text(yaml.safe_dump(config))
        runs[name] = (tiny_run[0], [path], 1)
    return dry_runs(runs)


@pytest.mark.slow
@pytest.mark.parametrize("name", TEACHER_CHANGES)
def test_a_changed_teacher_setting_reruns_the_teacher_and_what_reads_it(teacher_changed, name):
    """The teacher's settings reach its shard jobs through params Snakemake records: changing one
    reruns every shard, the gather and every run (each reads the features), and no split, clip
    cache or index job. (On main before this test, rule teacher_shard's settings were a params
    function of the job's threads, which Snakemake evaluates only when the job runs and never
    compared: the dry run scheduled only plan and report.)"""
    result = teacher_changed[name]
    assert result.returncode == 0, result.stderr[-3000:]
    counts = job_counts(result.stdout)
    config = yaml.safe_load(TINY.read_text())
    runs = len(config["fractions"]) * len(config["seeds"])
    methods = yaml.safe_load((ROOT / "workflow" / "config" / "config.yaml").read_text())["methods"]
    assert counts["teacher_shard"] == config["teacher"]["shards"] and counts["teacher"] == 1, counts
    assert counts["train"] == runs * len(methods) and counts["evaluate"] == len(methods), counts
    assert not {"index", "splits", "clip_cache_shard", "clip_cache", "pretrain_teacher", "dataset"} & set(counts)


@pytest.mark.parametrize("shards", [*SHARD_COUNTS, "teachers"])
def test_the_plan_counts_the_jobs_the_workflow_schedules(teacher_dags, shards):
    """svar plan's jobs per stage are the dry run's (the same grid, the same shard counts; with
    three teachers, each teacher's)."""
    from svar.config import load_workflow_config
    from svar.plan import plan

    result = teacher_dags[shards]
    counts = job_counts(result.stdout)
    config = load_workflow_config(result.args[result.args.index("--configfile") + 1])
    planned = plan(config).set_index("stage")["jobs"].to_dict()
    assert planned == {stage: counts[stage] for stage in planned}
    assert set(planned) == {"index", "teacher_shard", "clip_cache_shard", "train", "evaluate"}
