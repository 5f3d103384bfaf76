# Input functions and names shared by the rules: where each stage's output lives.

import json
from pathlib import Path

DATASET = config["dataset"]["name"]
SPLIT = config["dataset"]["split"]
# the teacher's input size etc. never change with these sections; the student's runs do
RUN_SECTIONS = ("student", "train", "distill", "pseudo_label", "linear_probe", "evaluate")


def fraction_tag(fraction):
    """0.04 -> '0.04', 1.0 -> '1': the fraction as it appears in file names."""
    return f"{float(fraction):g}"


FRACTIONS = [fraction_tag(f) for f in config["fractions"]]
# every (fraction, seed) of the grid, fraction by fraction: the order of a method's runs
RUNS = [(fraction, seed) for fraction in FRACTIONS for seed in config["seeds"]]


wildcard_constraints:
    dataset=r"synthetic|ucf101|hmdb51",
    archive=r"UCF101\.rar|UCF101_videos\.zip|UCF101TrainTestSplits-RecognitionTask\.zip|hmdb51_org\.rar|test_train_splits\.rar",
    fraction=r"[0-9.e-]+",
    seed=r"[0-9]+",
    method=r"[a-z_0-9]+",
    shard=r"[0-9]{3}",
    shards=r"[0-9]{3}",


def dataset_archives(wildcards):
    """The official archives a real dataset is built from: on disk in dataset.archives_dir, or
    downloaded into data/archives by rule download. The generated dataset needs none."""
    if wildcards.dataset == "synthetic":
        return []
    from svar.datasets import archive_paths

    folder = config["dataset"]["archives_dir"] or "data/archives"
    return [str(p) for p in archive_paths(wildcards.dataset, folder, config["dataset"]["video_archive"])]


def dataset_args(wildcards, input):
    if wildcards.dataset != "synthetic":
        return f"--archives {input[0]} {input[1]}"
    spec = config["dataset"]["synthetic"]
    return (
        f"--seed {spec['seed']} --classes {spec['classes']} --size {spec['size']} --groups {spec['groups']}"
        f" --clips-per-group {spec['clips_per_group']} --test-groups {spec['test_groups']}"
        f" --pretrain-videos {spec['pretrain_videos']}"
    )


def splits_args(wildcards):
    lists_dir = config["dataset"]["lists_dir"]
    args = f"--split {SPLIT} --convention {config['dataset']['split_convention']}"
    return f"{args} --lists-dir {lists_dir}" if lists_dir else args


def run_options():
    """The config sections a training run depends on, as the JSON `svar train` takes."""
    return json.dumps({k: config[k] for k in RUN_SECTIONS}, sort_keys=True)


def run_files(dataset, method, name):
    """One file of every run of a method, in RUNS order; dataset and method may be wildcards
    ("{dataset}")."""
    return [f"results/{dataset}/runs/{method}/fraction{fraction}_seed{seed}/{name}" for fraction, seed in RUNS]


def all_metrics():
    return [path for method in config["methods"] for path in run_files(DATASET, method, "metrics.json")]


def evaluate_inputs(wildcards):
    """A method's checkpoints and the splits they were trained on, run by run."""
    return {
        "models": run_files(wildcards.dataset, wildcards.method, "model.pt"),
        "splits": [f"results/{wildcards.dataset}/splits/fraction{fraction}_seed{seed}.csv" for fraction, seed in RUNS],
    }


def evaluate_args(wildcards, input, output):
    """`--model M --split S --out O` for each run, in the same order as the inputs."""
    return " ".join(
        f"--model {m} --split {s} --out {o}" for m, s, o in zip(input.models, input.splits, output)
    )


def _safe_name(text):
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(text))


TEACHER = config["teacher"]
# what rule teacher_weights writes once the weights are in teacher.cache_dir (a rerun finds them
# there and downloads nothing)
TEACHER_WEIGHTS_RECEIPT = f"results/teacher_weights/{_safe_name(TEACHER['model'])}__{_safe_name(TEACHER['pretrained'])}.json"


def teacher_inputs(wildcards):
    """Manifest and class list, plus the weights: the checkpoint file when `teacher.pretrained`
    names one (rule pretrain_teacher builds the generated set's); the folder of a local-dir
    model; for a pretrained tag or an hf-hub model, the receipt of rule teacher_weights."""
    from svar.teacher import weights_source

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


def teacher_options(wildcards, threads):
    """The teacher's sampling, decoding and offline options as `svar teacher` arguments. On CPU
    the decoding workers and the encoder share the job's cores: the encoder gets what is left."""
    sampling = TEACHER["sampling"]
    workers = TEACHER["workers"]
    args = [
        f"--sampling {sampling['mode']} --frames {sampling['frames']} --fps {sampling['fps']} --clips {sampling['clips']}",
        f"--workers {workers} --threads {max(1, threads - workers)}",
        " ".join(f"--template {json.dumps(t)}" for t in TEACHER["templates"]),
    ]
    if TEACHER["cache_dir"]:
        args.append(f"--cache-dir {TEACHER['cache_dir']}")
    if TEACHER["offline"]:
        args.append("--offline")
    # offline: the Hugging Face client too, in case anything below svar asks it
    return {"args": " ".join(args), "env": "HF_HUB_OFFLINE=1 " if TEACHER["offline"] else ""}


def res(stage, key):
    return config["resources"][stage][key]


def print_summary(path):
    import pandas as pd

    from svar.aggregate import format_summary

    if Path(path).exists():
        print(f"\nsvar summary (mean ± std over seeds, %):\n{format_summary(pd.read_csv(path))}")
