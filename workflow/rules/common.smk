# Input functions and names shared by the rules: where each stage's output lives, and what
# each job reads of the config. Every config value a job reads reaches it through its params,
# in a canonical written form (flags in a fixed order, JSON with sorted keys), so a job reruns
# exactly when a setting it reads changes, whatever the key order of the config files.

import functools
import json
import os
import re
import shlex
from pathlib import Path

from svar.cli.teacher import sampling_flags
from svar.clips.cache_parts import PARTS as CLIP_CACHE_PARTS, cache_reads
from svar.clips.parts import VIDEOS as CLIP_CACHE_VIDEOS, cache_part
from svar.config import (
    SPLIT_PATTERN,
    canonical,
    budget_flags,
    budget_tags,
    grid_teachers,
    results_dir,
    safe_name,
    split_by_reruns,
    subset,
)
from svar.datasets import DATASETS, archive_names, archive_paths, dataset_folder
from svar.datasets.user import is_csv
from svar.literature import CONVENTIONS as PUBLISHED_CONVENTIONS
from svar.manifest import files_digest, index_inputs
from svar.methods import METHODS
from svar.trainer import options_for
from svar.plan import RATES_PATH, plan_reads
from svar.report.figures import FIGURES as REPORT_FIGURES
from svar.teacher.pretrain import pool_inputs
from svar.teacher.backends import weights_source
from svar.teacher.weights import pretrained_file
from svar.student_weights import NAMED as STUDENT_WEIGHTS_NAMED, pretrained_source
from svar.weights_files import student_receipt, teacher_receipt


# one run per folder (svar.run_lock): a second Snakemake here while one runs names it and stops,
# before it can take the running jobs' files for incomplete ones; a dry run, which changes
# nothing, only says so
def hold_the_folder():
    from snakemake.exceptions import WorkflowError
    from snakemake.logging import logger

    from svar.run_lock import FolderBusy, hold, running_here

    dry_run = workflow.output_settings is not None and workflow.output_settings.dryrun
    if not workflow.is_main_process:  # a job's own Snakemake (SLURM), inside the run that holds it
        return None
    if dry_run:
        busy = running_here()
        if busy:
            logger.warning(busy)
        return None
    try:
        return hold()
    except FolderBusy as err:
        raise WorkflowError(str(err)) from None


RUN_LOCK = hold_the_folder()


DATASET = config["dataset"]["name"]
# `teacher`: the settings every teacher of the grid shares (templates, shards ...) and
# the first teacher's model and weights
TEACHER = config["teacher"]
# the dataset's folder, named by what makes its videos (another generated spec: another folder;
# the user's own videos, dataset.root: data/<dataset.name>)
DATA = f"data/{dataset_folder(config)}"
# the user's own videos: a folder in UCF101's layout or a CSV ("": a built-in dataset)
DATASET_ROOT = config["dataset"]["root"]
# a built-in dataset's archives already extracted on a shared disk ("": built from its archives)
EXTRACTED = config["dataset"]["extracted_dir"]
# everything this config makes: another config's name, another folder
RESULTS = results_dir(config)
# the grid's teachers by the folder their features and runs go to (svar.config.grid_teachers):
# `teacher`'s in RESULTS, each of `teachers` in RESULTS/teachers/<name>; `root` in file patterns
TEACHERS = dict(grid_teachers(config))
ROOTS = list(TEACHERS)
# the first teacher's weights: rule pretrain_teacher's checkpoint for `generated`
TEACHER_PRETRAINED = pretrained_file(TEACHER["pretrained"], RESULTS)


def teacher_of(wildcards):
    """The teacher section of the job's results folder (its `root`)."""
    return TEACHERS[wildcards.root]


def teacher_pretrained(teacher):
    """A teacher's weights as a loadable source (`generated`: rule pretrain_teacher's file)."""
    return pretrained_file(teacher["pretrained"], RESULTS)


# the label budgets of the grid as file names carry them: fraction<f>, then shots<K>
BUDGETS = budget_tags(config)
SEEDS = [str(s) for s in config["seeds"]]
# every (budget, seed) of the grid, budget by budget: the order of a method's runs
RUNS = [(budget, seed) for budget in BUDGETS for seed in SEEDS]


def one_of(names):
    return "|".join(re.escape(n) for n in names)


# from the registries (svar/registry.py) and the config's grid: nothing else matches
wildcard_constraints:
    archive=one_of(archive_names()),
    budget=one_of(BUDGETS),
    seed=one_of(SEEDS),
    method=one_of(METHODS.names()),
    shard=r"[0-9]{3}",
    shards=r"[0-9]{3}",
    part=one_of(CLIP_CACHE_PARTS),
    root=one_of(ROOTS),


def unrecorded(value):
    """A param Snakemake passes to the job and does not record: `value(wildcards)` behind a
    params function of `threads` too, which Snakemake takes for one derived from the job's
    resources and leaves out of the params it compares. Only for the keys the schema marks
    `x-reruns: false` (decoding workers, checkpoint cadence: how a job runs, not what it
    computes); tests/test_rerun_exactness.py fails any other key that reaches a job this way."""
    return lambda wildcards, threads: value(wildcards)


def flags(values):
    """`--key value` for each item of a dict, keys sorted, values shell-quoted: one written
    form per setting, whatever order the config gives its keys in."""
    return " ".join(f"--{k.replace('_', '-')} {shlex.quote(str(values[k]))}" for k in sorted(values))


def dataset_archives(wildcards):
    """The official archives a dataset is built from: on disk in dataset.archives_dir, or
    downloaded into data/archives by rule download. The generated dataset needs none, nor one
    whose archives are already extracted (dataset.extracted_dir: linked, as a folder root is). A CSV
    root is its own input (edited, it is laid out again); a folder root is none: rule index
    reads its files through data/<name>'s links, and its params digest them."""
    if DATASET_ROOT:
        return [os.path.expanduser(DATASET_ROOT)] if is_csv(DATASET_ROOT) else []
    if DATASETS[DATASET].generated or EXTRACTED:
        return []
    folder = config["dataset"]["archives_dir"] or "data/archives"
    return [str(p) for p in archive_paths(DATASET, folder, config["dataset"]["video_archive"])]


def dataset_args(wildcards, input):
    if DATASET_ROOT:
        return f"--root {shlex.quote(DATASET_ROOT)}"
    if EXTRACTED:
        return f"--name {DATASET} --extracted {shlex.quote(EXTRACTED)}"
    if not DATASETS[DATASET].generated:
        return f"--archives {input[0]} {input[1]}"
    return flags(config["dataset"]["synthetic"])


def read_digest(files_read):
    """A param describing the files of the dataset folder a job reads (svar.manifest.files_digest
    of files_read(DATA)): a video added to a list, or a list edited by hand, reruns the jobs
    that read them, and a file they do not read reruns nothing. Snakemake evaluates it when the
    job is about to run, so after rule dataset has made the folder."""
    return lambda wildcards: files_digest(files_read(DATA))


def splits_args(wildcards):
    dataset = config["dataset"]
    read = {key: dataset[key] for key in ("name", "split", "pool", "val_per_class")}
    read["dataset"] = read.pop("name")
    args = flags(read | {"convention": dataset["split_convention"]})
    # the lists folder is read only by a convention that imports a paper's lists
    if dataset["lists_dir"] and dataset["split_convention"] in PUBLISHED_CONVENTIONS:
        return f"{args} --lists-dir {shlex.quote(dataset['lists_dir'])}"
    return args


# every heavy job's Snakemake benchmark file (wall time, CPU time, peak memory), read by the
# report's cost table (svar.costs)
BENCHMARKS = f"{RESULTS}/benchmarks"


def job_benchmark(stage, job="", root=RESULTS):
    """<stage>.tsv for a stage of one job, <stage>/<job>.tsv for a stage of many, in the results
    folder `root` (a teacher's, "{root}", for the stages run once per teacher)."""
    folder = f"{root}/benchmarks"
    return f"{folder}/{stage}/{job}.tsv" if job else f"{folder}/{stage}.tsv"


def plan_rates(wildcards):
    """The content of the rates file svar plan reads (svar/data/rates.csv of the checkout that
    runs, `svar plan`'s default), as a digest: new rates remake the plan; the same file in another
    checkout does not."""
    import hashlib

    return hashlib.sha256(RATES_PATH.read_bytes()).hexdigest()[:16]


def plan_config(wildcards):
    """The config keys the plan reads (svar.plan.plan_reads), as canonical JSON."""
    return canonical(subset(config, plan_reads(config)))


def plan_device(wildcards):
    """Where the plan puts the GPU rules: cuda when training is told to, else cpu ("auto" here
    plans the CPU: the machine the workflow starts on may not be the one the jobs run on)."""
    return "cuda" if config["train"]["device"].startswith("cuda") else "cpu"


def run_file(root, method, budget, seed, name):
    """One file of one run of the teacher whose results folder is `root`; any argument may be a
    wildcard ("{method}")."""
    return f"{root}/runs/{method}/{budget}_seed{seed}/{name}"


def split_file(budget, seed, ext="csv"):
    """The split table (csv) or how it was made (json) of one (budget tag, seed); either may be
    a wildcard ("{budget}")."""
    return SPLIT_PATTERN.format(results=RESULTS, budget=budget, seed=seed, ext=ext)


def budget_args(wildcards):
    """--fraction f or --shots K: the run's label budget, from its {budget} wildcard."""
    return budget_flags(wildcards.budget)


def run_files(root, method, name):
    """One file of every run of a method with one teacher, in RUNS order."""
    return [run_file(root, method, budget, seed, name) for budget, seed in RUNS]


def teacher_runs(root, name):
    """One file of every run with the teacher of results folder `root`, method by method."""
    return [path for method in config["methods"] for path in run_files(root, method, name)]


def all_runs(name):
    """One file of every run of the grid, teacher by teacher."""
    return [path for root in ROOTS for path in teacher_runs(root, name)]


def train_options(wildcards):
    """The config keys the method's training reads (svar.methods) that its result depends on, as
    canonical JSON (Snakemake records them: a change reruns the run)."""
    return canonical(split_by_reruns(options_for(wildcards.method, config))[0])


def train_run_options(wildcards):
    """The keys it reads that decide only how it runs (`x-reruns: false`: the checkpoint cadence),
    as canonical JSON, passed unrecorded."""
    return canonical(split_by_reruns(options_for(wildcards.method, config))[1])


def evaluate_inputs(wildcards):
    """A method's checkpoints and the splits they were trained on, run by run."""
    return {
        "models": run_files(wildcards.root, wildcards.method, "model.pt"),
        "splits": [split_file(budget, seed) for budget, seed in RUNS],
    }


def evaluate_args(wildcards, input, output):
    """`--model M --split S --out O` for each run, in the same order as the inputs."""
    return " ".join(f"--model {m} --split {s} --out {o}" for m, s, o in zip(input.models, input.splits, output))


def evaluate_settings(wildcards):
    """The `evaluate` keys scoring this method reads (none for a teacher-only head), as flags."""
    return flags(subset(config, METHODS[wildcards.method].evaluate_reads()).get("evaluate", {}))


def weights_receipt_name(teacher):
    """<model>__<pretrained>, folder-safe: the name of a teacher's download receipt."""
    return Path(teacher_receipt(teacher)).stem


# what rule teacher_weights writes once a teacher's weights are in teacher.cache_dir (a rerun
# finds them there and downloads nothing), by receipt name
WEIGHTS_RECEIPTS = {weights_receipt_name(teacher): teacher for teacher in TEACHERS.values()}


def teacher_weights_receipt(teacher):
    return teacher_receipt(teacher)


def teacher_inputs(wildcards):
    """Manifest and class list, plus the job's teacher's weights: the checkpoint file when its
    `pretrained` names one (rule pretrain_teacher builds the generated set's); the folder of a
    local-dir model; for a pretrained tag or an hf-hub model, the receipt of rule teacher_weights."""
    inputs = {"manifest": f"{RESULTS}/manifest.csv", "classes": f"{RESULTS}/classes.csv"}
    teacher = teacher_of(wildcards)
    model, pretrained = teacher["model"], teacher_pretrained(teacher)
    source = weights_source(model, pretrained)
    if source in ("tag", "hf-hub"):
        inputs["weights"] = teacher_weights_receipt(teacher)
    elif source == "local-dir":
        inputs["weights"] = model.split(":", 1)[1]
    elif source == "file":
        inputs["weights"] = pretrained
    return inputs


def teacher_weights_input(wildcards):
    """The teacher's weights for a method that trains the teacher's own image encoder
    (clip_finetune): what rule teacher reads of them (checkpoint file, folder or download
    receipt); nothing for the other methods, which read its features only."""
    if not METHODS[wildcards.method].needs_teacher_weights:
        return {}
    weights = teacher_inputs(wildcards).get("weights")
    return {"teacher_weights": weights} if weights else {}


# what rule student_weights writes once torchvision's weights for the student are in
# student.weights_dir (student.pretrained kinetics400 or imagenet)
STUDENT_WEIGHTS_RECEIPT = student_receipt(config["student"])


def student_weights_inputs(wildcards):
    """The student's initial weights, for the methods that train one: the receipt of rule
    student_weights for torchvision's weights, the file when `student.pretrained` names one;
    nothing from scratch."""
    pretrained = config["student"]["pretrained"]
    source = pretrained_source(pretrained)
    if not METHODS[wildcards.method].trains_student or source == "scratch":
        return {}
    return {"student_weights": STUDENT_WEIGHTS_RECEIPT if source in STUDENT_WEIGHTS_NAMED else pretrained}


CLIP_CACHE = config["clip_cache"]


def clip_cache_shard_file(part, shard, shards, ext="npy"):
    """One shard of a part of the clip cache (frames .npy, or its index.npz); any argument may be
    a wildcard."""
    return f"{RESULTS}/clip_cache/{part}/shard_{shard}_of_{shards}.{ext}"


def clip_cache_receipt(part):
    return f"{RESULTS}/clip_cache/{part}.json"


def clip_cache_shard_count(part):
    """How many shards the part's cache is cut into: as its receipt says when that cache is built
    and holds the pixels this config asks for, else clip_cache.shards. How many files hold the
    pixels changes none of them, so a complete cache is kept as it was cut (x-reruns: false: no
    shard, gather, training or evaluation reruns) and the setting applies to its next build. (The
    other way, an `ancient` receipt, hides from Snakemake the param changes of every job it feeds
    whenever the gather reruns: Snakemake does not evaluate jobs downstream of one it reruns.)"""
    from svar.clips.cache_parts import FORMAT

    try:
        built = json.loads(Path(clip_cache_receipt(part)).read_text())
        if built["format"] == FORMAT and built["options"] == subset(config, cache_reads(config, part)):
            return len(built["shards"]) or CLIP_CACHE["shards"]
    except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: the gather remakes it
        pass
    return CLIP_CACHE["shards"]


def clip_cache_shards(wildcards):
    n = clip_cache_shard_count(wildcards.part)
    return [clip_cache_shard_file(wildcards.part, f"{i:03d}", f"{n:03d}") for i in range(n)]


def clip_cache_options(wildcards):
    """The config keys that decide a part's cached pixels (svar.clips.cache_parts.cache_reads), as
    canonical JSON: the crop, the method or the trainer's settings rebuild nothing."""
    return canonical(subset(config, cache_reads(config, wildcards.part)))


def reads_shared_cache(wildcards):
    return CLIP_CACHE["mode"] == "shared" and METHODS[wildcards.method].trains_student


def method_cache_part(method, videos):
    """The clip cache part holding a method's `videos` (train, test) clips: the student's, or its
    own (clip_finetune's: svar.clips.parts)."""
    return cache_part(METHODS[method].clip_section, videos)


def clip_cache_input(videos):
    """An input function: the receipt of the clip cache part of the method's `videos` (train,
    test) for a method that trains a model on clips under clip_cache.mode shared; nothing
    otherwise (teacher-only heads read no frames). A part rebuilt (other pixels, a damaged shard
    remade) reruns the jobs that read it, as the teacher's features do. DVC versions the cache
    with the results, so a pulled run finds it."""

    def inputs(wildcards):
        if not reads_shared_cache(wildcards):
            return {}
        return {"clip_cache": clip_cache_receipt(method_cache_part(wildcards.method, videos))}

    return inputs


def clip_cache_reads(videos):
    """A params function: what decides the pixels of the cache part a job reads (the settings
    svar.clips.cache_parts.cache_reads names and the cache's format), as canonical JSON; "" for a job
    that reads no shared cache: recorded with the job's outputs, as the pixels it trained or was
    scored on (the receipt, an input, reruns it when the cache is rebuilt)."""
    from svar.clips.cache_parts import FORMAT

    def params(wildcards):
        if not reads_shared_cache(wildcards):
            return ""
        part = method_cache_part(wildcards.method, videos)
        return canonical({"format": FORMAT, "options": subset(config, cache_reads(config, part))})

    return params


def clip_cache_arg(wildcards, input):
    """`--clip-cache RECEIPT` when the job reads the shared cache."""
    return f"--clip-cache {input.clip_cache}" if "clip_cache" in input.keys() else ""


def teacher_shards(wildcards, root=None):
    """The shard files of a teacher's feature store (its results folder: the job's, or `root`)."""
    n = TEACHER["shards"]
    root = root or wildcards.root
    return [f"{root}/teacher/shards/shard_{i:03d}_of_{n:03d}.pt" for i in range(n)]


def teacher_args(wildcards):
    """Every setting of the job's teacher a shard job reads, as `svar teacher` flags in a fixed
    order: a function of the wildcards alone, so that Snakemake records it with the job's outputs
    and reruns the job when it changes (a params function that takes `threads` is evaluated only
    when the job runs, and its value was never compared: a changed teacher setting reran
    nothing). The job's cores go to the shell as --job-threads; svar teacher gives the encoder
    what its decoding workers leave."""
    teacher = teacher_of(wildcards)
    sampling = teacher["sampling"]
    templates = TEACHER["templates"]
    templates = [templates] if isinstance(templates, str) else templates
    args = [
        flags(
            {
                **{k: teacher[k] for k in ("model", "batch_size", "device")},
                "pretrained": teacher_pretrained(teacher),
            }
        ),
        flags(sampling_flags(sampling)),
        "--templates " + " ".join(shlex.quote(t) for t in templates),
    ]
    # the download cache holds the weights of a pretrained tag or hub model; a checkpoint file,
    # a local folder or random weights are read from where they are
    if weights_source(teacher["model"], teacher_pretrained(teacher)) in ("tag", "hf-hub"):
        args.append(f"--cache-dir {shlex.quote(TEACHER['cache_dir'])}")
    if TEACHER["offline"]:
        args.append("--offline")
    return " ".join(args)


def teacher_env(wildcards):
    """Offline: the Hugging Face client too, in case anything below svar asks it."""
    return "HF_HUB_OFFLINE=1 " if TEACHER["offline"] else ""


def res(stage, key):
    return config["resources"][stage][key]


def method_res(stage, key):
    """resources.<stage>.<key> of a train or evaluate job (a callable of its wildcards): the
    stage's own for a method that runs a network on clips (a GPU job under SLURM); resources.head's
    for a teacher-only head (clip_zeroshot, clip_linear_probe, temporal_probe), which fits or
    scores a head on the stored teacher features in seconds to minutes of CPU."""
    if key == "runtime":
        return lambda wildcards: (
            runtime_request(stage) if METHODS[wildcards.method].trains_student else res("head", key)
        )
    return lambda wildcards: res(stage if METHODS[wildcards.method].trains_student else "head", key)


# by the config's `resources` section of each stage svar plan estimates, (the device key of its
# jobs when they ask for a GPU (none: CPU jobs; `cpu` there keeps them on CPUs), the plan's stage)
PLANNED = {
    "index": (None, "index"),
    "clip_cache": (None, "clip_cache_shard"),
    "teacher": ("teacher", "teacher_shard"),
    "train": ("train", "train"),
    "evaluate": ("evaluate", "evaluate"),
}


@functools.cache
def stage_plan(device):
    """svar plan's table for this config on `device`, once a Snakemake process (None for a
    user's dataset before its manifest is written, by rule index, as its shape is unknown)."""
    from svar.plan import plan

    manifest = f"{RESULTS}/manifest.csv"
    try:
        return plan(config, manifest if os.path.exists(manifest) else None, device, gpu_memory=False)
    except ValueError:
        return None


def runtime_request(section):
    """Minutes a job of resources.<section> asks for: its `runtime`, or with 0 the plan's estimate
    with a margin (svar.plan.runtime_minutes) on the device its jobs run on."""
    from svar.plan import RUNTIME_UNKNOWN_MIN, runtime_minutes

    minutes = res(section, "runtime")
    if minutes or section not in PLANNED:
        return minutes or RUNTIME_UNKNOWN_MIN
    device_key, stage = PLANNED[section]
    device = "cuda" if device_key and config[device_key]["device"] != "cpu" else "cpu"
    table = stage_plan(device)
    return RUNTIME_UNKNOWN_MIN if table is None else runtime_minutes(table, stage)


# the device setting each rule's jobs compute on (svar.device.job_device); pretrain_teacher's
# command passes none, so it runs on teacher.device's default, auto
GPU_DEVICE_SETTING = {"teacher_shard": "teacher", "pretrain_teacher": None, "train": "train", "evaluate": "evaluate"}
# the rules with a job per method (wildcard `method`)
METHOD_RULES = ("train", "evaluate")


def gpu_jobs(rule_name):
    """Resource `gpu` of a rule's jobs, as a function of the job's wildcards: 1 for a job that
    may compute on CUDA (its device setting is not cpu; not a teacher-only head), else 0.
    `snakemake --resources gpu=N` then runs at most N at once (each takes a free GPU: svar.gpu_slots), and the SLURM profile
    asks SLURM for a GPU for those jobs only."""
    section = GPU_DEVICE_SETTING[rule_name]
    uses_gpu = int(section is None or config[section]["device"] != "cpu")
    if rule_name in METHOD_RULES:  # a teacher-only head fits or scores on the CPU
        return lambda wildcards: uses_gpu if METHODS[wildcards.method].trains_student else 0
    return lambda wildcards: uses_gpu


def report_figures():
    """Rule report's figures: svar.report.figures.FIGURES, each as an output of its name; the
    accuracy plot also in Snakemake's own report (`snakemake --report`)."""
    outputs = {name: f"{RESULTS}/report/{figure.file}" for name, figure in REPORT_FIGURES.items()}
    outputs["accuracy"] = report(outputs["accuracy"], caption="../report/top1.rst", category="Plots")
    return outputs


def print_summary(paths):
    """The summary of each teacher's runs (its aggregate's summary.csv)."""
    import pandas as pd

    from svar.aggregate import format_summary

    for root, path in zip(ROOTS, paths):
        if Path(path).exists():
            whose = f", teacher {TEACHERS[root]['model']} / {TEACHERS[root]['pretrained']}" if len(ROOTS) > 1 else ""
            print(f"\nsvar summary (mean ± std over seeds, %{whose}):\n{format_summary(pd.read_csv(path))}")


# the check before any job is scheduled (guard_outputs) and the clip cache receipts' records
include: "guard.smk"
