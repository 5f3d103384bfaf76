"""Every shipped config, rehearsed: each file of workflow/config/ resolves, validates, builds its
DAG and plans (fast tier), and runs end to end at toy size, report included (slow tier), on
toy videos in its dataset's own layout (tests/rehearsal.py). A new config without a rehearsal
fails here."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT, TINY, job_counts, snakemake
from dry_runs import dry_runs
from rehearsal import REHEARSALS, config_files, make_layouts, shipped_configs, site_overlay

CONFIGS = shipped_configs()


def test_every_shipped_config_has_a_rehearsal():
    """A config added to workflow/config/ without an entry in tests/rehearsal.py's REHEARSALS (or
    an entry whose file is gone) fails here: every shipped config is rehearsed."""
    assert set(CONFIGS) == set(REHEARSALS), (
        f"without a rehearsal: {sorted(set(CONFIGS) - set(REHEARSALS))}; "
        f"rehearsals without a config: {sorted(set(REHEARSALS) - set(CONFIGS))}")


@pytest.fixture(scope="session")
def layouts(tmp_path_factory) -> dict:
    """The toy videos in every layout (UCF101's and HMDB51's extracted archives, a user's folder
    and CSV), made once a session."""
    return make_layouts(tmp_path_factory.mktemp("layouts"))


@pytest.fixture(scope="session")
def sites(layouts, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("sites")
    return {name: site_overlay(name, layouts, folder) for name in REHEARSALS}


def shipped_files(name: str, sites: dict) -> list[str]:
    """A shipped config as a user runs it (no smoke.yaml): with the site overlay only where it
    cannot resolve without one (a user's dataset.root must exist, a published convention's lists_dir)."""
    needs_site = REHEARSALS[name].layout.startswith("user") or REHEARSALS[name].lists is not None
    return list(config_files(name, sites[name] if needs_site else None, smoke=False))


# --------------------------------------------------------------------------- fast tier


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_config_resolves_and_validates(name, sites):
    from svar.config import load_workflow_config
    from svar.config_checks import check

    config = check(load_workflow_config(*shipped_files(name, sites)), name, local=True)
    assert config["methods"] and (config["fractions"] or config["shots"]) and config["seeds"]


@pytest.fixture(scope="module")
def shipped_dags(sites, tmp_path_factory) -> dict:
    """name: the dry run of each shipped config as a user runs it, each in an empty folder of its
    own, all in one process (tests/dry_runs.py)."""
    return dry_runs({name: (tmp_path_factory.mktemp(Path(name).stem), shipped_files(name, sites), 64)
                     for name in CONFIGS})


@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_config_builds_its_dag(name, shipped_dags, sites):
    """The whole grid: every (teacher, method, fraction, seed) a train job, one evaluate job per
    teacher and method; a built-in dataset's archives downloaded once and its weights fetched
    once; the generated set's teacher pretrained once."""
    from svar.config import load_workflow_config
    from svar.datasets import DATASETS

    result = shipped_dags[name]
    assert result.returncode == 0, result.stderr[-3000:]
    config = load_workflow_config(*shipped_files(name, sites))
    counts = job_counts(result.stdout)
    teachers = 1 + len(config["teachers"])
    methods = config["methods"]
    budgets = len(config["fractions"]) + len(config["shots"])
    assert counts["train"] == budgets * len(config["seeds"]) * len(methods) * teachers
    assert counts["evaluate"] == len(methods) * teachers and counts["report"] == 1
    dataset = config["dataset"]["name"]
    generated = dataset in DATASETS and DATASETS[dataset].generated
    assert ("pretrain_teacher" in counts) == generated
    if dataset in DATASETS and not generated and not config["dataset"]["extracted_dir"]:  # none: a download
        assert counts["download"] == 2 and counts["dataset"] == 1 and counts["teacher_weights"] == teachers
    assert f"results/{config['name']}/runs/" in result.stdout


@pytest.fixture(scope="session")
def user_manifests(layouts, tmp_path_factory) -> dict:
    """layout: the manifest of a user's toy dataset (a user's dataset has no shape before index)."""
    from svar.datasets.user import lay_out
    from svar.manifest import write_index

    out = {}
    for layout in ("user_folder", "user_csv"):
        folder = tmp_path_factory.mktemp(layout)
        data = lay_out(layouts[layout], folder / "data")
        write_index(data / "videos", data / "splits", folder / "manifest.csv", folder / "exclusions.csv",
                    folder / "classes.csv")
        out[layout] = folder / "manifest.csv"
    return out


@pytest.mark.parametrize("device", ["cpu", "cuda"])
@pytest.mark.parametrize("name", CONFIGS)
def test_shipped_config_plans(name, device, sites, user_manifests, capsys):
    """svar plan prints a plan for every shipped config on either device: every stage a row, every
    estimate a number or 'unknown' (never a blank counted as 0)."""
    from svar.config import load_workflow_config
    from svar.plan import plan, plan_markdown

    config = load_workflow_config(*shipped_files(name, sites))
    table = plan(config, user_manifests.get(REHEARSALS[name].layout), device)
    text = plan_markdown(table)
    assert {"teacher_shard", "train"} <= set(table["stage"]) and "total:" in text


# --------------------------------------------------------------------------- slow tier

# the distinct runs: configs whose rehearsals are the same files share one (config.yaml is
# implied by every --configfile, so `config.yaml + smoke.yaml` is smoke.yaml's rehearsal too)
TIMES = ROOT / "test-artifacts" / "rehearsals.tsv"


def rehearsal_files(name: str, sites: dict) -> tuple[str, ...]:
    return config_files(name, sites[name])


def rehearsal_weight(name: str) -> tuple[int, bool]:
    """How long a rehearsal runs, to start them longest first: its train and evaluate jobs (each
    a few seconds of process start), then whether it runs a ViT-B-sized model with random weights
    (seconds more a job on a CPU). Read from the config files without the site overlay, which
    sets only where the data is and, under smoke.yaml, one budget."""
    from svar.config import load_workflow_config

    r = REHEARSALS[name]
    config = load_workflow_config(*config_files(name, None))
    # smoke.yaml rehearses one budget: its fraction, or one shot where the config imports K-shot lists
    budgets = 1 if r.smoke else len(config["fractions"]) + len(config["shots"])
    runs = len(config["methods"]) * budgets * len(config["seeds"])
    return 2 * runs * (1 + len(config["teachers"])), r.random_teacher or r.random_student


@pytest.fixture(scope="session")
def rehearsal_runs(sites, tmp_path_factory, request):
    """name -> (folder, result, seconds): each distinct rehearsal run once a session, when a test
    first asks for it, as a Snakemake of one core (under xdist the slow tier's other worker runs
    the tests that share the tiny run beside it; on this 2-core machine two small-job runs fill
    the cores better than one of two). The tiny config's is conftest's tiny_run."""
    done: dict = {}

    def run(name):
        files = rehearsal_files(name, sites)
        if files in done:
            return done[files]
        start = time.monotonic()
        if files == (str(TINY),):
            done[files] = (*request.getfixturevalue("tiny_run"), time.monotonic() - start)
            return done[files]
        folder = tmp_path_factory.mktemp("rehearse")
        result = snakemake(folder, "--cores", "1", "--configfile", *files, timeout=1200)
        done[files] = (folder, result, time.monotonic() - start)
        workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")
        TIMES.parent.mkdir(exist_ok=True)
        with open(TIMES, "a") as f:  # one line a write: workers append beside each other
            f.write(f"{name}\t{done[files][2]:.0f}\t{' '.join(Path(p).name for p in files)}\t"
                    f"one core, {workers} pytest-xdist workers\n")
        return done[files]

    return run


@pytest.mark.slow
# longest first, so that the workers finish together (conftest.SlowTierScheduling)
@pytest.mark.parametrize("name", sorted(CONFIGS, key=rehearsal_weight, reverse=True))
def test_rehearsal_runs_end_to_end(name, rehearsal_runs, sites):
    """The shipped config at toy size, every stage to the report: a metrics row for every
    (teacher, method, fraction, seed, metric), the report's page and tables, and nothing left to
    do after it."""
    from svar.config import grid_teachers, load_workflow_config

    folder, result, seconds = rehearsal_runs(name)
    print(f"rehearsal of {name}: {seconds:.0f} s")
    assert result.returncode == 0, (result.stdout[-2000:], result.stderr[-4000:])
    config = load_workflow_config(*rehearsal_files(name, sites))
    results = folder / "results" / config["name"]
    runs = len(config["methods"]) * (len(config["fractions"]) + len(config["shots"])) * len(config["seeds"])
    for root, _ in grid_teachers(config):  # each teacher's tables in its own folder
        metrics = pd.read_csv(folder / root / "metrics.csv")
        assert len(metrics) == 3 * runs and set(metrics["method"]) == set(config["methods"]), root
        assert set(metrics["dataset"]) == {config["dataset"]["name"]}
    for page in ("report.html", "summary.md", "cost.md", "accuracy_vs_fraction.png"):
        assert (results / "report" / page).stat().st_size > 0, page
    again = snakemake(folder, "-n", "--cores", "1", "--configfile", *rehearsal_files(name, sites))
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
