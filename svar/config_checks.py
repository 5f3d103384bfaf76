"""The config check before any job: what the schema cannot see (svar.config validates the schema).

A complete config (svar.config.validate) goes in; each check names its key and what to do. The
checks reach into the modules that know the members a config names (datasets, teachers' weights,
students' weights, methods, published lists, devices), so they live here, above those modules,
while svar.config stays a leaf every module can import.
"""

from __future__ import annotations

from pathlib import Path

from .clips.sampling import clip_problems
from .config import ConfigError, default, fraction_tag, grid_teachers, results_dir, validate


def _dataset_problems(config: dict) -> list[str]:
    """dataset.name is a built-in dataset, or with dataset.root the user's own (any other name,
    a root that can be laid out: svar.datasets.user)."""
    from .datasets import DATASETS

    name, root = config["dataset"]["name"], config["dataset"]["root"]
    extracted = config["dataset"]["extracted_dir"]
    if extracted:
        if root or name not in DATASETS or DATASETS[name].generated:
            return [f"dataset.extracted_dir: {extracted} is set, but {name} is not a dataset svar builds from "
                    f"official archives ({', '.join(n for n in DATASETS if not DATASETS[n].generated)}); your own "
                    "videos go in dataset.root"]
        if not Path(extracted).expanduser().is_dir():
            return [f"dataset.extracted_dir: {extracted} is not a folder; point it at the folder holding {name}'s "
                    "extracted archives, or set it to \"\" to build the dataset from its archives"]
    if not root:
        if name == "synthetic":
            s = config["dataset"]["synthetic"]
            if s["min_frames"] > s["max_frames"]:
                return [f"dataset.synthetic.min_frames: {s['min_frames']} is above max_frames ({s['max_frames']}); "
                        "give min_frames <= max_frames"]
            if config["dataset"]["split"] != 1:  # trainlist01/testlist01 only (svar.datasets.synthetic)
                return [f"dataset.split: {config['dataset']['split']}, but the generated dataset has one split, 1"]
        if name in DATASETS:
            return []
        return [f"dataset.name: {name!r} is not a built-in dataset ({', '.join(DATASETS)}); to run your own "
                "videos, set dataset.root to their folder (UCF101's layout) or to a CSV (path,label,split)"]
    if name in DATASETS:
        return [f"dataset.root: {root} is set, but dataset.name {name} is a built-in dataset, which svar lays "
                "out itself; give your videos a name of their own (dataset.name: mydata), or set root to \"\""]
    from .datasets.user import config_problems

    return config_problems(config)


def problems(config: dict, local: bool = True) -> list[str]:
    """What the schema cannot see, as `key: what is wrong` lines (none when all is well): the
    dataset is a built-in one or the user's own with a root that can be laid out, the
    teacher model and its weights tag exist, a clip takes no more frames than are cached, and a
    CUDA device asked for is here — checked only when the jobs run on this machine (`local`), as
    a cluster's login node has no GPU. A complete config (`validate`) goes in."""
    out = []
    from .datasets import DATASETS
    from .teacher.weights import GENERATED

    out += _dataset_problems(config)
    name = config["dataset"]["name"]
    if config["teacher"]["pretrained"] == GENERATED and not (name in DATASETS and DATASETS[name].generated):
        out.append(f"teacher.pretrained: {GENERATED} is the generated dataset's own teacher, trained on its "
                   f"captioned pool; {name} needs open_clip weights (a pretrained tag: teacher.model ViT-B-32, "
                   "teacher.pretrained openai ...) or a checkpoint file")
    from .teacher.backends import split_model, teacher_problems
    from .teacher.sampling import sampling_from_config

    teachers = grid_teachers(config)

    def sampling_of(key: str, section: dict):
        # each teacher's own sampling (a `teachers` entry's over `teacher`'s): the frames its model takes
        try:
            return sampling_from_config(section["sampling"])
        except ValueError as exc:
            out.append(f"{key}.sampling: {exc}" if key != "teacher" else str(exc))
            return None

    out += teacher_problems(teachers[0][1]["model"], config["teacher"]["pretrained"], "teacher",
                            sampling_of("teacher", teachers[0][1]), config["teacher"]["cache_dir"])
    folders = [folder for folder, _ in teachers]
    from .methods import METHODS

    # a method that trains the teacher's own weights (clip_finetune: ViFi-CLIP) builds them with open_clip
    tuners = [m for m in config["methods"] if METHODS[m].needs_teacher_weights]
    for key, (_, teacher) in zip(["teacher", *(f"teachers[{i}]" for i in range(len(config["teachers"])))], teachers):
        backend = split_model(teacher["model"])[0].name
        if tuners and backend != default("teacher.backend"):
            out.append(f"{key}: {', '.join(tuners)} fine-tunes an open_clip image encoder, but {teacher['model']} is "
                       f"a teacher of backend {backend}; give it an open_clip teacher, or leave {', '.join(tuners)} "
                       "out of methods")
    for i, extra in enumerate(config["teachers"]):
        key = f"teachers[{i}]"
        if extra["pretrained"] == GENERATED:
            out.append(f"{key}.pretrained: {GENERATED} is `teacher`'s (rule pretrain_teacher trains one per "
                       "benchmark); give another teacher a pretrained tag, a checkpoint file or none")
        elif folders.count(folders[i + 1]) > 1:
            out.append(f"{key}: its folder {folders[i + 1]} is another teacher's too; give it a `name` of its own")
        else:
            out += teacher_problems(teachers[i + 1][1]["model"], extra["pretrained"], key,
                                    sampling_of(key, teachers[i + 1][1]), config["teacher"]["cache_dir"])
    from .literature import CONVENTIONS as PUBLISHED

    convention = config["dataset"]["split_convention"]
    if convention in PUBLISHED and not config["dataset"]["lists_dir"]:
        out.append(f"dataset.lists_dir: the {convention} convention imports the lists that paper published; "
                   "point lists_dir at the folder holding them")
    tags = [fraction_tag(f) for f in config["fractions"]]
    for tag in dict.fromkeys(t for t in tags if tags.count(t) > 1):
        same = [f for f, t in zip(config["fractions"], tags) if t == tag]
        out.append(f"fractions: {same} are one fraction in file names (fraction{tag}_seed<s>): give fractions that "
                   "differ in their first six significant digits")
    from .input_checks import budget_problems, lists_dir_problems

    out += budget_problems(config)
    out += lists_dir_problems(config)  # a list for each budget, before rule splits runs
    out += clip_problems(config["student"])
    from .student_weights import student_problems

    out += student_problems(config)  # student.pretrained fits student.arch
    from .methods import frame_level_problems

    out += frame_level_problems(config)
    if local:
        from .device import resolve_device

        for key in ("teacher.device", "train.device", "evaluate.device"):
            section, name = key.split(".")
            try:
                resolve_device(config[section][name], key)
            except ValueError as exc:
                out.append(str(exc))
    return out


def check(config: dict, source: str = "config", local: bool = True) -> dict:
    """`validate`, then `problems`: the config every job may trust, or a ConfigError naming
    `source` and each bad key."""
    full = validate(config, source)
    found = problems(full, local)
    if found:
        lines = "\n".join(f"  {line}" for line in found)
        raise ConfigError(f"{source}: invalid configuration:\n{lines}")
    from .input_checks import data_warnings, warn

    # settings beyond the data run, but waste or repeat: said, not refused
    warn(data_warnings(full, Path(results_dir(full)) / "manifest.csv"))
    return full
