# Input functions and names shared by the rules: where each stage's output lives, and what
# each job reads of the config. Every config value a job reads reaches it through its params,
# in a canonical written form (flags in a fixed order, JSON with sorted keys), so a job reruns
# exactly when a setting it reads changes, whatever the key order of the config files.

import re
import shlex
from pathlib import Path

from svar.config import canonical, subset
from svar.datasets import DATASETS, archive_names, archive_paths
from svar.methods import METHODS, options_for
from svar.teacher.weights import weights_source

DATASET = config["dataset"]["name"]
TEACHER = config["teacher"]


def fraction_tag(fraction):
    """0.04 -> '0.04', 1.0 -> '1': the fraction as it appears in file names."""
    return f"{float(fraction):g}"


FRACTIONS = [fraction_tag(f) for f in config["fractions"]]
SEEDS = [str(s) for s in config["seeds"]]
# every (fraction, seed) of the grid, fraction by fraction: the order of a method's runs
RUNS = [(fraction, seed) for fraction in FRACTIONS for seed in SEEDS]


def one_of(names):
    return "|".join(re.escape(n) for n in names)


# from the registries (svar/registry.py) and the config's grid: nothing else matches
wildcard_constraints:
    dataset=one_of(DATASETS.names()),
    archive=one_of(archive_names()),
    fraction=one_of(FRACTIONS),
    seed=one_of(SEEDS),
    method=one_of(METHODS.names()),
    shard=r"[0-9]{3}",
    shards=r"[0-9]{3}",


def flags(values):
    """`--key value` for each item of a dict, keys sorted, values shell-quoted: one written
    form per setting, whatever order the config gives its keys in."""
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(values[k]))}" for k in sorted(values))


def dataset_archives(wildcards):
    """The official archives a dataset is built from: on disk in dataset.archives_dir, or
    downloaded into data/archives by rule download. The generated dataset needs none."""
    if DATASETS[wildcards.dataset].generated:
        return []
    folder = config["dataset"]["archives_dir"] or "data/archives"
    return [str(p) for p in archive_paths(wildcards.dataset, folder, config["dataset"]["video_archive"])]


def dataset_args(wildcards, input):
    if not DATASETS[wildcards.dataset].generated:
        return f"--archives {input[0]} {input[1]}"
    return flags(config["dataset"]["synthetic"])


def splits_args(wildcards):
    dataset = config["dataset"]
    args = flags({"split": dataset["split"], "convention": dataset["split_convention"]})
    return f"{args} --lists-dir {shlex.quote(dataset['lists_dir'])}" if dataset["lists_dir"] else args


def run_file(dataset, method, fraction, seed, name):
    """One file of one run; any argument may be a wildcard ("{dataset}")."""
    return f"results/{dataset}/runs/{method}/fraction{fraction}_seed{seed}/{name}"


def split_file(dataset, fraction, seed):
    return f"results/{dataset}/splits/fraction{fraction}_seed{seed}.csv"


def run_files(dataset, method, name):
    """One file of every run of a method, in RUNS order."""
    return [run_file(dataset, method, fraction, seed, name) for fraction, seed in RUNS]


def all_metrics():
    return [path for method in config["methods"] for path in run_files(DATASET, method, "metrics.json")]


def train_options(wildcards):
    """The config keys the method's training reads (svar.methods), as canonical JSON."""
    return canonical(options_for(wildcards.method, config))


def evaluate_inputs(wildcards):
    """A method's checkpoints and the splits they were trained on, run by run."""
    return {
        "models": run_files(wildcards.dataset, wildcards.method, "model.pt"),
        "splits": [split_file(wildcards.dataset, fraction, seed) for fraction, seed in RUNS],
    }


def evaluate_args(wildcards, input, output):
    """`--model M --split S --out O` for each run, in the same order as the inputs."""
    return " ".join(f"--model {m} --split {s} --out {o}" for m, s, o in zip(input.models, input.splits, output))


def evaluate_settings(wildcards):
    """The `evaluate` keys scoring this method reads (none for a teacher-only head), as flags."""
    return flags(subset(config, METHODS[wildcards.method].evaluate_reads()).get("evaluate", {}))


def _safe_name(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


# what rule teacher_weights writes once the weights are in teacher.cache_dir (a rerun finds them
# there and downloads nothing)
TEACHER_WEIGHTS_RECEIPT = (
    f"results/teacher_weights/{_safe_name(TEACHER['model'])}__{_safe_name(TEACHER['pretrained'])}.json"
)


def teacher_inputs(wildcards):
    """Manifest and class list, plus the weights: the checkpoint file when `teacher.pretrained`
    names one (rule pretrain_teacher builds the generated set's); the folder of a local-dir
    model; for a pretrained tag or an hf-hub model, the receipt of rule teacher_weights."""
    inputs = {
        "manifest": f"results/{wildcards.dataset}/manifest.csv",
        "classes": f"results/{wildcards.dataset}/classes.csv",
    }
    model, pretrained = TEACHER["model"], TEACHER["pretrained"]
    source = weights_source(model, pretrained)
    if source in ("tag", "hf-hub"):
        inputs["weights"] = TEACHER_WEIGHTS_RECEIPT
    elif source == "local-dir":
        inputs["weights"] = model.split(":", 1)[1]
    elif source == "file":
        inputs["weights"] = pretrained
    return inputs


def teacher_shards(wildcards):
    n = TEACHER["shards"]
    return [f"results/{wildcards.dataset}/teacher/shards/shard_{i:03d}_of_{n:03d}.pt" for i in range(n)]


def teacher_args(wildcards, threads):
    """Every teacher setting a shard job reads, as `svar teacher` flags in a fixed order. On CPU
    the decoding workers and the encoder share the job's cores: the encoder gets what is left."""
    sampling = TEACHER["sampling"]
    templates = TEACHER["templates"]
    templates = [templates] if isinstance(templates, str) else templates
    args = [
        flags({k: TEACHER[k] for k in ("model", "pretrained", "batch_size", "device", "workers")}),
        flags(
            {
                "sampling": sampling["mode"],
                "frames": sampling["frames"],
                "fps": sampling["fps"],
                "clips": sampling["clips"],
            }
        ),
        f"--threads {max(1, threads - TEACHER['workers'])}",
        "--templates " + " ".join(shlex.quote(t) for t in templates),
        f"--cache-dir {shlex.quote(TEACHER['cache_dir'])}",
    ]
    if TEACHER["offline"]:
        args.append("--offline")
    return " ".join(args)


def teacher_env(wildcards):
    """Offline: the Hugging Face client too, in case anything below svar asks it."""
    return "HF_HUB_OFFLINE=1 " if TEACHER["offline"] else ""


def res(stage, key):
    return config["resources"][stage][key]


def print_summary(path):
    import pandas as pd

    from svar.aggregate import format_summary

    if Path(path).exists():
        print(f"\nsvar summary (mean ± std over seeds, %):\n{format_summary(pd.read_csv(path))}")
