"""Choosing a setting on validation videos, never on the test list.

`svar sweep` trains one method at one fraction, for the config's seeds, once with the config as
it stands and once per alternative value of a setting (`--set train.lr=0.01`), on the workflow's
own splits, manifest and teacher features, and prints each variant's validation top-1 (the
split's `val` videos: svar.splits.hold_out_validation) as mean ± std over seeds. It reads no test
label and scores no test video: the checkpoints it trains go to a temporary folder and are
deleted. Run the workflow's first stages before it (it names the files it needs and the rule
that makes them).
"""

from __future__ import annotations

import copy
import json
import logging
import statistics
import tempfile
from pathlib import Path

import yaml

from .config import load_workflow_config, results_dir, split_path, validate

log = logging.getLogger(__name__)


def parse_assignment(text: str) -> tuple[str, object]:
    """'train.lr=0.01' -> ('train.lr', 0.01); the value is read as YAML ([0.35, 1.0], true, ...)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"--set {text!r}: give KEY=VALUE, e.g. --set train.lr=0.01")
    return key.strip(), yaml.safe_load(value)


def with_setting(config: dict, key: str, value) -> dict:
    """The config with one dotted key changed, validated (an unknown key or a bad value is named)."""
    changed = copy.deepcopy(config)
    node = changed
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ValueError(f"--set {key}: {part!r} is not a config section (svar config lists them)")
        node = node[part]
    if parts[-1] not in node:
        raise ValueError(f"--set {key}: no such key (svar config lists them)")
    node[parts[-1]] = value
    return validate(changed, f"--set {key}={value!r}")


def sweep(overlays, method: str, fraction: float, assignments: list[str], seeds=None, threads: int = 1,
          workdir: str | Path = ".") -> list[dict]:
    """[{variant, seed, val_top1}] for the config and each `--set` alternative (see the module)."""
    from .manifest import load_manifest
    from .methods import METHODS
    from .trainer import options_for
    from .splits import load_split
    from .teacher.store import load_store
    from .trainer import train

    config = load_workflow_config(*overlays)
    if method not in METHODS or not METHODS[method].trains_student:
        raise ValueError(f"--method: {method!r} is not a student method of {sorted(METHODS.names())}")
    variants = [("config", config)]
    for text in assignments:
        key, value = parse_assignment(text)
        written = json.dumps(value, separators=(",", ":"))  # one line: [0.35,1.0], 0.01, true
        variants.append((f"{key}={written}", with_setting(config, key, value)))
    root = Path(workdir) / results_dir(config)
    seeds = list(config["seeds"] if seeds is None else seeds)
    needed = {"manifest": root / "manifest.csv", "teacher": root / "teacher" / "features.pt",
              **{f"split {s}": Path(split_path(root, fraction, s)) for s in seeds}}
    missing = [p for p in needed.values() if not p.exists()]
    if missing:
        targets = " ".join(str(p.relative_to(workdir)) for p in missing[:3])
        raise FileNotFoundError(f"{missing[0]}: missing ({len(missing)} files); make them first with: "
                                f"snakemake --cores 2 {targets}"
                                + (" (with the config's overlays as --configfile)" if overlays else ""))
    manifest = load_manifest(needed["manifest"], videos=True)
    store = load_store(needed["teacher"])
    rows = []
    with tempfile.TemporaryDirectory(prefix="svar-sweep-") as tmp:
        for name, variant in variants:
            options = options_for(method, variant)
            for seed in seeds:
                split = load_split(needed[f"split {seed}"])
                if not (split["role"] == "val").any():
                    raise ValueError(f"{needed[f'split {seed}']}: no validation videos (fraction 1, or "
                                     "dataset.val_per_class 0): nothing to choose on")
                ckpt = train(manifest, split, store, method, options, Path(tmp) / "model.pt", seed,
                             {"dataset": config["dataset"]["name"], "fraction": float(fraction)}, threads)
                rows.append({"variant": name, "seed": seed, "val_top1": ckpt["meta"]["val_top1"],
                             "n_val": ckpt["meta"]["n_val"]})
                log.info("%s seed %d: validation top-1 %.3f", name, seed, rows[-1]["val_top1"])
    return rows


def format_sweep(rows: list[dict], method: str, fraction: float) -> str:
    lines = [f"{method} at fraction {fraction:g}: validation top-1 (%), mean ± std over seeds "
             f"({rows[0]['n_val']} validation videos a seed; no test video scored)"]
    for name in dict.fromkeys(r["variant"] for r in rows):
        values = [100 * r["val_top1"] for r in rows if r["variant"] == name]
        std = statistics.stdev(values) if len(values) > 1 else float("nan")
        lines.append(f"  {name:<40} {statistics.mean(values):5.1f} ± {std:4.1f}   "
                     f"(seeds: {', '.join(f'{v:.1f}' for v in values)})")
    return "\n".join(lines)
