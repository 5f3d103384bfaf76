# Input functions and names shared by the rules: where each stage's output lives.

import json
from pathlib import Path

DATASET = config["dataset"]["name"]
SPLIT = config["dataset"]["split"]
RESULTS = f"results/{DATASET}"
# the teacher's input size etc. never change with these sections; the student's runs do
RUN_SECTIONS = ("student", "train", "distill", "pseudo_label", "linear_probe", "evaluate")


def fraction_tag(fraction):
    """0.04 -> '0.04', 1.0 -> '1': the fraction as it appears in file names."""
    return f"{float(fraction):g}"


FRACTIONS = [fraction_tag(f) for f in config["fractions"]]


wildcard_constraints:
    dataset=r"synthetic|ucf101|hmdb51",
    archive=r"UCF101\.rar|UCF101_videos\.zip|UCF101TrainTestSplits-RecognitionTask\.zip|hmdb51_org\.rar|test_train_splits\.rar",
    fraction=r"[0-9.e-]+",
    seed=r"[0-9]+",
    method=r"[a-z_0-9]+",


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


def all_metrics():
    return expand(
        f"{RESULTS}/runs/{{method}}/fraction{{fraction}}_seed{{seed}}/metrics.json",
        method=config["methods"],
        fraction=FRACTIONS,
        seed=config["seeds"],
    )


def teacher_inputs(wildcards):
    """Manifest and class list, plus the weights file when `teacher.pretrained` names one."""
    inputs = {
        "manifest": f"results/{wildcards.dataset}/manifest.csv",
        "classes": f"results/{wildcards.dataset}/classes.csv",
    }
    pretrained = config["teacher"]["pretrained"]
    if len(Path(pretrained).parts) > 1 or Path(pretrained).suffix in (".pt", ".pth", ".bin", ".safetensors"):
        # a checkpoint file: a dependency, built by rule pretrain_teacher when it is that rule's output
        inputs["weights"] = pretrained
    return inputs


def res(stage, key):
    return config["resources"][stage][key]


def print_summary(path):
    import pandas as pd

    from svar.aggregate import format_summary

    if Path(path).exists():
        print(f"\nsvar summary (mean ± std over seeds, %):\n{format_summary(pd.read_csv(path))}")
