"""The configuration: one schema with every default, overlays that hold only their differences,
registries as the one source of names, canonical params, and defaults the CLI and the Python
API share with the workflow."""

import importlib
import inspect
import json
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
import svar.methods
from svar import config as cfg
from svar import config_checks
from svar.methods import METHODS
from svar.methods.terms import TeacherPseudoLabels
from svar.registry import REGISTRY_MODULES, names, registry

CONFIGS = ROOT / "workflow" / "config"
# every shipped overlay (workflow/config/ but config.yaml itself)
OVERLAYS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "config.yaml")
# laid over other overlays (ucf101.yaml's 8-thread resources ...), so its values are absolute: a
# value equal to config.yaml's default is still a setting there
ABSOLUTE = ("smoke.yaml",)
GRID = ("name", "fractions", "seeds", "methods")  # set by workflow/config/config.yaml, no default


def leaves(node, root, path=()):
    """(dotted key, schema) of every property that holds a value rather than more keys."""
    node = cfg._resolve_ref(node, root)
    for key, sub in node.get("properties", {}).items():
        sub = cfg._resolve_ref(sub, root)
        if "properties" in sub and "default" not in sub:
            yield from leaves(sub, root, (*path, key))
        else:
            yield ".".join((*path, key)), sub


def test_every_key_is_described_and_every_setting_has_its_default_once():
    schema = cfg.raw_schema()
    found = dict(leaves(schema, schema))
    assert len(found) > 50
    for key, sub in found.items():
        assert sub.get("description") or key.startswith("resources."), f"{key}: no description"
        if key not in GRID:
            assert "default" in sub, f"{key}: no default"
    for section in ("dataset", "teacher", "student", "train", "evaluate", "resources"):
        assert schema["properties"][section].get("description"), section
    # the defaults alone, with the grid, are a valid config
    full = cfg.validate({"name": "t", "fractions": [0.5], "seeds": [0], "methods": ["supervised"]})
    assert full["teacher"]["sampling"]["frames"] == cfg.default("teacher.sampling.frames") == 8
    assert full["resources"]["train"] == {"threads": 1, "mem_mb": 3000, "runtime": 60}


def test_the_base_config_holds_the_grid_and_the_overlays_only_their_differences():
    base = cfg.read_yaml(CONFIGS / "config.yaml")
    assert set(base) == set(GRID)
    # the default grid is a subset in the registry's order; full.yaml runs the whole zoo
    assert base["methods"] == [m for m in names("method") if m in base["methods"]]
    assert cfg.read_yaml(CONFIGS / "full.yaml")["methods"] == list(names("method")), "full.yaml runs every method"
    resolved_base = cfg.load(CONFIGS / "config.yaml")

    def differences(overlay, resolved, path=""):
        for key, value in overlay.items():
            if isinstance(value, dict):
                yield from differences(value, resolved[key], f"{path}{key}.")
            else:
                assert value != resolved[key], f"{path}{key}: set to its default"
                yield key

    from rehearsal import REHEARSALS

    for name in OVERLAYS:
        text = (CONFIGS / name).read_text()
        assert len(text.splitlines()) <= 50, name
        if name not in ABSOLUTE:  # its differences from what it is laid over (ucf101-ltg.yaml: ucf101.yaml)
            under = cfg.load(CONFIGS / "config.yaml", *[CONFIGS / b for b in REHEARSALS[name].before])
            assert list(differences(cfg.read_yaml(CONFIGS / name), under)), name
        cfg.load_workflow_config(CONFIGS / name)  # valid once merged


def test_the_two_teacher_overlay_adds_a_random_xclip_to_the_tiny_grid():
    """Two backends on one grid: the tiny image teacher at tiny.yaml's 2 frames a video, X-CLIP
    base/32 (random weights) at the 8 frames a clip it integrates, every other setting tiny's."""
    config = cfg.load_workflow_config(CONFIGS / "tiny.yaml", CONFIGS / "two-teachers.yaml")
    config_checks.check(config)
    teachers = cfg.grid_teachers(config)
    assert [root for root, _ in teachers] == ["results/two-teachers", "results/two-teachers/teachers/xclip-b-32-random"]
    assert [(t["model"], t["pretrained"]) for _, t in teachers] == [("svar-tiny-clip", "generated"),
                                                                    ("xclip:microsoft/xclip-base-patch32", "none")]
    assert teachers[1][1]["sampling"] == {**config["teacher"]["sampling"], "frames": 8}
    assert {k: v for k, v in teachers[1][1].items() if k not in ("model", "pretrained", "backend", "sampling")} == \
        {k: v for k, v in config["teacher"].items() if k not in ("model", "pretrained", "backend", "sampling")}


def test_prompts_are_stored_once_and_named_from_the_config():
    from svar.teacher.prompts import resolve_templates

    for name in ("ucf101.yaml", "hmdb51.yaml"):
        assert cfg.read_yaml(CONFIGS / name)["teacher"]["templates"] == "clip_ucf101"
    templates = resolve_templates("clip_ucf101")
    assert len(templates) == 48 and len(set(templates)) == 48
    assert all(t.count("{}") == 1 for t in templates)
    assert templates[0] == "a photo of a person {}." and templates[-1] == "a demonstration of the person practicing {}."
    assert not any("a photo of a person" in p.read_text() for p in CONFIGS.glob("*.yaml"))
    assert resolve_templates(["a {}.", "clip_ucf101"])[1:] == templates


@pytest.mark.parametrize("overlay,named", [
    ({"learning_rate": 0.1}, "learning_rate"),
    ({"train": {"stpes": 3}}, "stpes"),
    ({"methods": ["supervised", "mixmatch"]}, "methods.1"),
    ({"student": {"arch": "resnet50"}}, "student.arch"),
    ({"teacher": {"templates": ["a {} of {}."]}}, "teacher.templates"),
    ({"teacher": {"templates": "no_such_set"}}, "teacher.templates"),
    ({"teacher": {"sampling": {"mode": "dense"}}}, "teacher.sampling.mode"),
])
def test_a_bad_setting_is_named(overlay, named):
    with pytest.raises(cfg.ConfigError, match=re.escape(named)):
        cfg.validate(cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), overlay), "my.yaml")


def test_canonical_params_ignore_key_order():
    config = cfg.load_workflow_config(CONFIGS / "tiny.yaml")
    shuffled = json.loads(json.dumps(config, sort_keys=True))
    reversed_ = {k: config[k] for k in reversed(list(config))}
    assert cfg.canonical(config) == cfg.canonical(shuffled) == cfg.canonical(reversed_)
    assert cfg.subset(config, ["student", "pseudo_label.threshold"]) == {
        "student": config["student"], "pseudo_label": {"threshold": config["pseudo_label"]["threshold"]}}
    with pytest.raises(KeyError, match="pseudo_label.treshold"):
        cfg.subset(config, ["pseudo_label.treshold"])


# ---------------------------------------------------------------- registries: the one source of names


def enums(node, path=()):
    """(dotted path, x-names kind, enum) of every registry-named value in the resolved schema."""
    if isinstance(node, dict):
        if "x-names" in node:
            yield ".".join(path), node["x-names"], node["enum"]
        for key, sub in node.items():
            yield from enums(sub, (*path, key) if key not in ("properties", "items", "anyOf") else path)
    elif isinstance(node, list):
        for sub in node:
            yield from enums(sub, path)


def pseudo_label_kind(cls) -> str:
    """The registry kind of a pseudo-label method's sources."""
    return next(kind for kind in ("pseudo_label_source", "teacher_pseudo_label") if registry(kind) is cls.sources)


def test_schema_enums_are_the_registries():
    found = {path: (kind, enum) for path, kind, enum in enums(cfg.schema())}
    expected = {"dataset.name": "dataset", "dataset.split_convention": "split_convention", "dataset.pool": "pool",
                "dataset.video_archive": "video_archive", "methods": "method",
                # one definition, the shape of teacher.sampling and of each teachers entry's sampling
                "definitions.teacher_sampling.mode": "sampling_mode",
                "teacher.backend": "teacher_backend", "teachers.backend": "teacher_backend",
                "teacher.templates": "prompt_set", "clip_finetune.templates": "prompt_set", "student.arch": "student", "student.sampling": "clip_sampling",
                "distill.loss": "distill_loss",
                # each pseudo-label method's source names its registry's members
                **{f"{name}.source": pseudo_label_kind(cls) for name, cls in METHODS.items()
                   if issubclass(cls, TeacherPseudoLabels)},
                # one definition, the shape of each pseudo-label method's own <method>.threshold_mode
                "definitions.threshold_mode": "threshold_mode"}
    assert {path: kind for path, (kind, _) in found.items()} == expected
    for path, (kind, enum) in found.items():
        assert enum == list(names(kind)), path
    leaves = dict(cfg.schema_leaves())  # every leaf key, its definition resolved
    for kind in REGISTRY_MODULES:  # every registry names its config key
        key = registry(kind).config_key
        assert key in {*expected, "methods"} or key.replace("<method>", "definitions") in expected \
            or leaves.get(key, {}).get("x-names") == kind, kind


def test_registries_hold_what_the_code_defines():
    # every method class the package defines (a name of its own) is registered, in the order its
    # module is imported: the config's and the tables' order
    defined = [cls for module in sorted(pkgutil.iter_modules(svar.methods.__path__), key=lambda m: m.name)
               for cls in vars(importlib.import_module(f"svar.methods.{module.name}")).values()
               if isinstance(cls, type) and getattr(cls, "name", "") and cls.__module__.startswith("svar.methods.")]
    assert set(names("method")) == {cls.name for cls in defined}
    assert names("method")[:3] == ("supervised", "distill", "distill_pl")
    assert names("method")[-3:] == ("temporal_probe", "clip_zeroshot", "clip_linear_probe")
    assert names("threshold_mode") == ("fixed", "flexmatch")
    assert names("student") == ("tiny3d", "r3d_18", "r2plus1d_18", "mc3_18", "s3d", "mvit_v2_s", "swin3d_t", "vit_b16_divided")
    assert names("dataset") == ("hmdb51", "synthetic", "ucf101")
    assert names("split_convention") == ("balanced", "random", "videossl", "svformer", "sefar", "vifi")
    assert names("sampling_mode") == ("uniform", "fps", "clips")
    assert names("teacher_backend") == ("open_clip", "xclip")
    assert names("video_archive") == ("", "hmdb51_org.rar", "UCF101.rar", "UCF101_videos.zip")
    with pytest.raises(ValueError, match=r"student.arch: unknown student 'resnet50'; choose from tiny3d, r3d_18"):
        registry("student")["resnet50"]


def cli_actions(*argv):
    """{dest: action} of a `svar` subcommand's parser."""
    from svar.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest: a for a in sub.choices[argv[0]]._actions}


def test_cli_choices_are_the_registries():
    pairs = [(("dataset", "name"), "dataset"), (("splits", "convention"), "split_convention"), (("splits", "pool"), "pool"),
             (("teacher", "sampling"), "sampling_mode"), (("teacher", "backend"), "teacher_backend"),
             (("train", "method"), "method"),
             (("download", "archive"), "archive")]
    for (command, dest), kind in pairs:
        assert list(cli_actions(command)[dest].choices) == list(names(kind)), (command, dest)
    from svar.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--manifest", "m", "--split", "s", "--teacher", "t", "--method", "mixmatch",
              "--options", "{}", "--seed", "0", "--dataset", "d", "--fraction", "1", "--out", "o"])


def test_cli_and_python_defaults_are_the_configs():
    from svar.datasets.synthetic import DEFAULT_CLASSES, SyntheticSpec
    from svar.evaluate import evaluate_settings
    from svar.splits import build_split
    from svar.teacher.features import extract
    from svar.teacher.pretrain import pretrain

    expected = {
        ("pretrain-teacher", "steps"): "pretrain_teacher.steps", ("pretrain-teacher", "lr"): "pretrain_teacher.lr",
        ("pretrain-teacher", "batch_size"): "pretrain_teacher.batch_size",
        ("pretrain-teacher", "model"): "teacher.model", ("teacher", "frames"): "teacher.sampling.frames",
        ("teacher", "sampling"): "teacher.sampling.mode", ("teacher", "batch_size"): "teacher.batch_size",
        ("teacher", "workers"): "teacher.workers", ("teacher", "templates"): "teacher.templates",
        ("teacher", "cache_dir"): "teacher.cache_dir", ("teacher-weights", "cache_dir"): "teacher.cache_dir",
        ("splits", "convention"): "dataset.split_convention", ("splits", "split"): "dataset.split",
        ("splits", "pool"): "dataset.pool",
        ("evaluate", "clips"): "evaluate.clips", ("evaluate", "device"): "evaluate.device",
        ("dataset", "classes"): "dataset.synthetic.classes", ("dataset", "size"): "dataset.synthetic.size",
        ("dataset", "pretrain_videos"): "dataset.synthetic.pretrain_videos",
    }
    for (command, dest), key in expected.items():
        assert cli_actions(command)[dest].default == cfg.default(key), (command, dest)
    signature = lambda f: {k: p.default for k, p in inspect.signature(f).parameters.items()}  # noqa: E731
    assert signature(pretrain)["steps"] == 200 == cfg.default("pretrain_teacher.steps")
    assert signature(extract)["templates"] == ["a {}."] == cfg.default("teacher.templates")
    assert signature(build_split)["convention"] == cfg.default("dataset.split_convention")
    assert evaluate_settings() == cfg.default("evaluate")
    spec = SyntheticSpec()
    assert (spec.size, spec.groups, spec.seed) == (cfg.default("dataset.synthetic.size"),
                                                  cfg.default("dataset.synthetic.groups"), 0)
    assert spec.classes == DEFAULT_CLASSES[:cfg.default("dataset.synthetic.classes")]


def test_wildcard_constraints_are_the_registries(tmp_path):
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet=True, dryrun=True)) as api:  # parsing only: no run lock
        workflow = api.workflow(resource_settings=ResourceSettings(), config_settings=ConfigSettings(),
                                snakefile=ROOT / "Snakefile", workdir=tmp_path)._workflow
        constraints = workflow.wildcard_constraints
    alternatives = lambda key: [re.sub(r"\\(.)", r"\1", a) for a in constraints[key].split("|")]  # noqa: E731
    assert alternatives("method") == list(names("method"))
    assert "dataset" not in constraints  # one dataset a config: its folder is data/<dataset_folder(config)>
    assert alternatives("archive") == list(names("archive"))
    grid = cfg.load_workflow_config()
    assert alternatives("budget") == [f"fraction{f:g}" for f in grid["fractions"]] + [f"shots{k}" for k in grid["shots"]]
    assert alternatives("seed") == [str(s) for s in grid["seeds"]]


def test_dvc_plot_columns_are_the_default_grids_methods():
    from dvc.dvcfile import load_file
    from dvc.repo import Repo

    plots = load_file(Repo(str(ROOT)), "dvc.yaml").resolver.resolve_plots()
    (definition,) = [p["top1_by_fraction"] for p in plots]
    methods = cfg.read_yaml(CONFIGS / "config.yaml")["methods"]
    assert definition["y"] == {"results/default/top1_by_fraction.csv": methods}
    assert set(methods) < set(names("method"))


def test_svar_config_prints_the_resolved_config():
    out = subprocess.run([sys.executable, "-m", "svar", "config", str(CONFIGS / "ucf101.yaml")], capture_output=True,
                         text=True, check=True, cwd=ROOT).stdout
    resolved = yaml.safe_load(out)
    assert resolved == cfg.load_workflow_config(CONFIGS / "ucf101.yaml")
    assert resolved["dataset"]["name"] == "ucf101" and resolved["seeds"] == [0, 1, 2]
    assert Path(cfg.SCHEMA_PATH).is_file()


@pytest.mark.parametrize("overlay,named", [
    ({"teacher": {"model": "ViT-B-99"}}, "teacher.model: unknown open_clip model 'ViT-B-99'"),
    ({"teacher": {"model": "local-dir:/nonexistent/teacher"}}, "teacher.model: local-dir:/nonexistent/teacher"),
    ({"teacher": {"model": "hf-hub:not a repo"}}, "teacher.model: 'hf-hub:not a repo' is not hf-hub:ORG/REPO"),
    ({"teacher": {"model": "ViT-B-32", "pretrained": "no_such_tag"}}, "teacher.pretrained: 'no_such_tag'"),
    ({"student": {"frames": 10}}, "student.frames: 10 frames a clip, but only student.cache_frames = 8"),
    ({"dataset": {"name": "ucf101"}}, "teacher.pretrained: generated is the generated dataset's own teacher"),
    ({"train": {"device": "cuda:3"}}, "train.device: cuda:3 asked for, but torch sees"),
    ({"evaluate": {"device": "cuda:3"}}, "evaluate.device: cuda:3 asked for"),
    ({"dataset": {"split_convention": "svformer"}}, "dataset.lists_dir: the svformer convention imports"),
    ({"dataset": {"split_convention": "sefar"}}, "dataset.lists_dir: the sefar convention imports"),
    # tiny3d keeps 1 temporal position of a 4-frame clip (the default): nothing to align in time
    ({"distill": {"frame_level": True}}, "distill.frame_level: student.arch tiny3d keeps 1 temporal position"),
])
def test_what_the_schema_cannot_see_is_named(overlay, named):
    import torch

    if "cuda" in named and torch.cuda.device_count() > 3:
        pytest.skip("this machine has the CUDA device the test asks for")
    with pytest.raises(cfg.ConfigError, match=re.escape(named)):
        config_checks.check(cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), overlay), "my.yaml")


def test_frame_level_distillation_of_enough_frames_passes_the_check():
    config = cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"),
                       {"distill": {"frame_level": True}, "student": {"frames": 8, "cache_frames": 8}})
    assert config_checks.check(config)["distill"]["frame_level"] is True
    # without a distilling method in the grid, frame_level is read by nobody: no check
    config_checks.check(cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), {"distill": {"frame_level": True},
                                                                 "methods": ["supervised"]}))


def test_a_cuda_device_is_not_checked_where_the_jobs_do_not_run():
    """On a cluster's login node (no GPU) the jobs run elsewhere: `local=False` skips the check."""
    config = cfg.merge(cfg.read_yaml(CONFIGS / "config.yaml"), {"train": {"device": "cuda"}})
    assert config_checks.check(config, local=False)["train"]["device"] == "cuda"
    # every shipped config passes the check here: tests/test_rehearsal.py


def test_the_check_leaves_open_clip_unimported_for_svars_own_teacher():
    """Every Snakemake start runs the check (SLURM job steps too): for svar's own model with a
    checkpoint it must not pay for importing open_clip; an open_clip model still gets looked up."""
    code = ("import sys, svar.config as c, svar.config_checks as k; k.check(c.load_workflow_config()); "
            "print('open_clip' in sys.modules); "
            "x = c.merge(c.read_yaml(c.WORKFLOW_CONFIG), {'teacher': {'model': 'ViT-B-32', 'pretrained': 'openai'}})"
            "; k.check(x); print('open_clip' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.split() == ["False", "True"]


def test_a_generated_set_whose_shortest_video_is_longer_than_its_longest_is_named_before_any_job():
    from svar.config import load_workflow_config
    from svar.config_checks import problems

    config = load_workflow_config()
    config["dataset"]["synthetic"].update(min_frames=50, max_frames=40)
    assert any("dataset.synthetic.min_frames: 50 is above max_frames (40)" in p for p in problems(config))
    config["dataset"]["synthetic"].update(min_frames=40)
    assert not any("min_frames" in p for p in problems(config))
