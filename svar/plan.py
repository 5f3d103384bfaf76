"""`svar plan`: the jobs a config makes and what they will cost, before anything runs.

For each stage: its jobs (as the workflow schedules them), its work in the unit its cost grows
with (frames decoded, teacher frames encoded, training clips, test views), the measured rate for
that work (`svar/data/rates.csv`, written by `svar bench scale`: seconds a unit on one device,
with the command and machine that measured it), and so the estimated wall time, the device-hours
(GPU-hours for the stages on `--device cuda`, CPU core-hours otherwise) and the disk it writes.
The dataset's shape comes from its manifest once `svar index` has run (exact), else from its
settings (the generated set) or its published counts (UCF101, HMDB51). A rate measured at another
input size is scaled by pixels (decoding) or by frames × pixels (the models) and says so; a stage
with no rate for its model on that device says what to run.

After a run, the report puts these estimates beside the benchmark files' actual times
(svar.costs): `results/<name>/plan.csv` is written by rule plan.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_csv
from .clip_cache import kept_frames, cache_reads
from .config import subset
from .methods import METHODS

RATES_PATH = Path(__file__).resolve().parent / "data" / "rates.csv"
# a stage's job takes seconds_per_job (its start: imports, workers, the model) plus its work ×
# seconds_per_unit (core-seconds on a CPU, seconds on a GPU)
RATE_COLUMNS = ["stage", "model", "input", "device", "unit", "seconds_per_unit", "seconds_per_job", "peak_rss_mb",
                "measured_by"]
# the stages whose jobs ask SLURM for a GPU (workflow/profiles/slurm), which `--device cuda` plans on one
GPU_STAGES = ("teacher_shard", "train", "evaluate")


@dataclass
class DatasetShape:
    """What a plan needs of a dataset: its train-part and test-part videos, frames a video, frame size."""

    train_videos: int
    test_videos: int
    frames: float
    width: int
    height: int
    source: str
    frame_counts: tuple | None = None  # (train part, test part) arrays of frame counts, from a manifest

    @property
    def videos(self) -> int:
        return self.train_videos + self.test_videos


# published shapes of the real datasets, split 1 (README "Pools, split conventions and their
# counts"): UCF101's paper gives 13,320 clips, mean length 7.21 s at 25 fps, 320×240; HMDB51's
# gives no mean length: 90 frames (3 s at 30 fps) is an assumption, said as such in the plan
PUBLISHED = {
    "ucf101": DatasetShape(9537, 3783, 7.21 * 25, 320, 240, "UCF101's published counts (split 1; mean 7.21 s at 25 fps)"),
    "hmdb51": DatasetShape(5236, 1530, 90, 320, 240,
                           "HMDB51's published counts (split 1); 90 frames a video assumed (no published mean)"),
}


def dataset_shape(config: dict, manifest_path=None) -> DatasetShape:
    """The dataset's shape: from its manifest when one exists, else from the config."""
    split = int(config["dataset"]["split"])
    if manifest_path is not None and Path(manifest_path).exists():
        from .manifest import load_manifest

        m = load_manifest(manifest_path)
        test = m[f"split{split}"] == "test"
        return DatasetShape(int((~test).sum()), int(test.sum()), float(m["frames"].mean()), int(m["width"].median()),
                            int(m["height"].median()), f"its manifest ({manifest_path})",
                            (m.loc[~test, "frames"].to_numpy(), m.loc[test, "frames"].to_numpy()))
    name = config["dataset"]["name"]
    if config["dataset"]["root"]:
        raise ValueError(f"dataset.root: your own videos have no known shape before `svar index` has run; run "
                         f"`snakemake {manifest_path or 'results/<name>/manifest.csv'}` first, then plan")
    if name == "synthetic":
        s = config["dataset"]["synthetic"]
        width, height = s.get("width") or s["size"], s.get("height") or s["size"]
        lo, hi = s.get("min_frames", 24), s.get("max_frames", 40)
        per_class = s["groups"] * s["clips_per_group"]
        test = s["classes"] * s["test_groups"] * s["clips_per_group"]
        return DatasetShape(s["classes"] * per_class - test, test, (lo + hi) / 2, width, height,
                            "the generated set's settings (dataset.synthetic)")
    if name in PUBLISHED:
        return PUBLISHED[name]
    raise ValueError(f"dataset.name: {name!r} has no published shape here; run `svar index` first, then plan")


def plan_reads(config: dict) -> tuple[str, ...]:
    """The config keys a plan reads: the grid, the dataset, the teacher, the clip cache, the
    student, training, evaluation, the jobs' resources, and each method's own keys (a method's
    keys can decide the views it trains on). Rule plan's params."""
    keys = ["dataset", "fractions", "seeds", "methods", "teacher", "teachers", "clip_cache", "student", "train",
            "evaluate", "resources"]
    for method in config["methods"]:
        keys += [k for k in METHODS[method].reads(config) if k.split(".")[0] not in keys]
    return tuple(dict.fromkeys(keys))


def read_rates(path=RATES_PATH) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in RATE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a rates file (missing columns {missing}); `svar bench scale --rates` writes one")
    return frame


def _size(stage: str, text: str) -> float:
    """What a unit's cost grows with, from its input: decoding, the source frame's pixels
    ('320x240', '320x240->128x171'); the student, frames × crop² ('16x112'); the teacher's rate
    is per model (its own image size), input '-'."""
    if text == "-":
        return 1.0
    a, b = (float(v) for v in text.split("->")[0].split("x"))
    return a * b * b if stage in ("train", "evaluate") else a * b


def lookup(rates: pd.DataFrame, stage: str, model: str, input_: str, device: str):
    """(seconds a unit, seconds a job, peak RSS MB, where it comes from) for the work, or None:
    the exact input, else the same model's nearest input, its unit cost scaled by its pixels
    (and frames)."""
    rows = rates[(rates["stage"] == stage) & (rates["model"] == model) & (rates["device"] == device)]
    if rows.empty:
        return None
    exact = rows[rows["input"] == input_]
    if len(exact):
        row = exact.iloc[-1]
        return float(row["seconds_per_unit"]), float(row["seconds_per_job"]), row["peak_rss_mb"], f"{row['measured_by']}"
    want = _size(stage, input_)
    row = rows.iloc[int(np.argmin([abs(math.log(_size(stage, i) / want)) for i in rows["input"]]))]
    scale = want / _size(stage, row["input"])
    return (float(row["seconds_per_unit"]) * scale, float(row["seconds_per_job"]), None,
            f"{row['measured_by']} at {row['input']}, scaled ×{scale:.2f} to {input_}")


def clips_per_step(method: str, config: dict) -> int:
    """Clips through the student in one training step: the labeled batch, μ× it unlabeled (weak),
    and μ× again for a strong view."""
    cls = METHODS[method]
    b, mu = config["train"]["batch_size"], config["train"]["unlabeled_ratio"]
    return b + (b * mu if cls.uses_unlabeled else 0) + (b * mu if cls.uses_strong_view(config) else 0)


def cache_bytes(config: dict, shape: DatasetShape) -> dict:
    """Bytes of each part of the clip cache: every kept frame at the cache size."""
    h, w = config["student"]["cache_size"]
    out = {}
    for i, part in enumerate(("train", "test")):
        options = subset(config, cache_reads(config, part))
        counts = (shape.frame_counts[i] if shape.frame_counts is not None
                  else np.full(shape.train_videos if part == "train" else shape.test_videos, round(shape.frames)))
        kept = sum(len(kept_frames(options, part, int(n))) for n in counts)
        out[part] = kept * h * w * 3
    return out


def plan(config: dict, manifest_path=None, device: str = "cpu", rates: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per stage: jobs, work, rate, estimated wall seconds (all jobs, and the longest job),
    device-hours and disk written."""
    rates = read_rates() if rates is None else rates
    shape = dataset_shape(config, manifest_path)
    methods = config["methods"]
    students = [m for m in methods if METHODS[m].trains_student]
    # every teacher of the grid (config `teachers`) encodes the videos and trains every run again
    teachers = 1 + len(config.get("teachers", []))
    runs = len(config["fractions"]) * len(config["seeds"]) * teachers
    res = config["resources"]
    source_frames = shape.videos * shape.frames
    size = f"{shape.width}x{shape.height}"
    t = config["teacher"]
    teacher_frames = t["sampling"]["frames"] * (t["sampling"]["clips"] if t["sampling"]["mode"] == "clips" else 1)
    s = config["student"]
    clip_input = f"{s['frames']}x{s['size']}"
    shared = config["clip_cache"]["mode"] == "shared" and students
    rows = []

    def add(stage, jobs, work, unit, model, input_, on, threads, disk=None, per_job=None, note=""):
        found = lookup(rates, stage, model, input_, on)
        cores = 1 if on == "cuda" else threads
        if found:
            unit_s, job_s, peak, source = found
            # a job's threads share its work (CPU stages); a GPU job is one device
            total = jobs * job_s + work * unit_s / cores
            longest = job_s + work * unit_s / cores * (per_job or 1 / max(jobs, 1))
        else:
            unit_s = job_s = peak = total = longest = None
            source = f"no rate for {model} ({input_}) on {on}: run `svar bench scale` there"
        rows.append({
            "stage": stage, "jobs": jobs, "work": work, "unit": unit, "model": model, "input": input_, "device": on,
            "seconds_per_unit": unit_s, "seconds_per_job": job_s, "rate_source": source,
            "est_wall_s_total": total, "est_wall_s_longest": longest,
            "est_device_h": total * cores / 3600 if total is not None else None,
            "device_h_kind": "GPU-h" if on == "cuda" else "CPU core-h",
            "est_disk_mb": disk / 1e6 if disk is not None else None,
            "peak_rss_mb_measured": peak, "note": note,
        })

    gpu = lambda stage: device if stage in GPU_STAGES else "cpu"  # noqa: E731
    add("index", 1, source_frames, "source frames decoded", "decode", size, "cpu", res["index"]["threads"])
    n = t["shards"]
    add("teacher_shard", n * teachers, shape.videos * teacher_frames * teachers, "teacher frames encoded", t["model"],
        "-", gpu("teacher_shard"), res["teacher"]["threads"],
        note=f"{teacher_frames} frames a video" + (f", {teachers} teachers (rates of {t['model']})" if teachers > 1
                                                   else ""))
    if shared:
        parts = cache_bytes(config, shape)
        k = config["clip_cache"]["shards"]
        add("clip_cache_shard", 2 * k, source_frames, "source frames decoded", "decode+resize",
            f"{size}->{s['cache_size'][0]}x{s['cache_size'][1]}", "cpu", res["clip_cache"]["threads"],
            disk=sum(parts.values()), note=f"train part {parts['train'] / 1e9:.2f} GB, test part "
                                           f"{parts['test'] / 1e9:.2f} GB")
    if students:
        steps = config["train"]["steps"]
        clips = sum(clips_per_step(m, config) for m in students) * steps * runs
        longest = max(clips_per_step(m, config) for m in students) * steps / max(clips, 1)
        add("train", len(methods) * runs, clips, "training clips (forward + backward)", s["arch"], clip_input,
            gpu("train"), res["train"]["threads"], per_job=longest,
            note=f"{len(students)} student methods × {runs} runs × {steps} steps"
                 + (f" ({teachers} teachers)" if teachers > 1 else ""))
        e = config["evaluate"]
        views = len(students) * runs * shape.test_videos * e["clips"] * e["crops"]
        add("evaluate", len(methods) * teachers, views, "test views (forward)", s["arch"], clip_input, gpu("evaluate"),
            res["evaluate"]["threads"], per_job=1 / (len(students) * teachers),
            note=f"{shape.test_videos} test videos × {e['clips']} clips × {e['crops']} crops × {runs} runs a method")
    table = pd.DataFrame(rows)
    table.attrs["dataset"] = shape.source
    return table


def plan_markdown(table: pd.DataFrame) -> str:
    """The plan as a Markdown table, with its total and where the dataset's shape came from."""
    def hours(v):
        return "—" if v is None or v != v else (f"{v / 3600:.2f} h" if v >= 360 else f"{v:.0f} s")

    lines = ["| stage | jobs | work | est. wall (all jobs) | est. longest job | device-hours | disk | peak RSS (the bench's job) |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        device_h = "—" if r.est_device_h is None or r.est_device_h != r.est_device_h else \
            f"{r.est_device_h:.2f} {r.device_h_kind}"
        disk = "—" if r.est_disk_mb is None or r.est_disk_mb != r.est_disk_mb else (
            f"{r.est_disk_mb / 1000:.1f} GB" if r.est_disk_mb >= 1000 else f"{r.est_disk_mb:.0f} MB")
        # the peak RSS the rate's measurement saw (at its own input size: a guide, not a bound)
        peak = "—" if r.peak_rss_mb_measured is None or r.peak_rss_mb_measured != r.peak_rss_mb_measured else \
            f"{float(r.peak_rss_mb_measured) / 1000:.1f} GB"
        lines.append(f"| {r.stage} | {r.jobs} | {r.work:,.0f} {r.unit} on {r.device} | {hours(r.est_wall_s_total)} | "
                     f"{hours(r.est_wall_s_longest)} | {device_h} | {disk} | {peak} |")
    known = table["est_device_h"].dropna()
    lines.append("")
    lines.append(f"dataset shape: {table.attrs.get('dataset', '?')}")
    for r in table.itertuples():
        lines.append(f"- {r.stage}: {r.note + '; ' if r.note else ''}rate: {r.rate_source}")
    gpu = table[(table["device_h_kind"] == "GPU-h")]["est_device_h"].dropna().sum()
    cpu = table[(table["device_h_kind"] != "GPU-h")]["est_device_h"].dropna().sum()
    lines.append(f"total: {gpu:.2f} GPU-h, {cpu:.2f} CPU core-h"
                 + ("" if len(known) == len(table) else " (stages without a rate not counted)"))
    return "\n".join(lines)


def main_plan(overlays=(), device: str = "cpu", rates_path=RATES_PATH, out=None, config_json=None,
              manifest=None) -> pd.DataFrame:
    """Print the plan of the workflow's config (config.yaml with `overlays`), or of `config_json`
    (what rule plan passes: the keys of `plan_reads`); write it as CSV to `out`."""
    import json

    from .config import load_workflow_config, results_dir

    if config_json:
        config = json.loads(config_json)
    else:
        config = load_workflow_config(*overlays)
        manifest = manifest or Path(results_dir(config)) / "manifest.csv"
    table = plan(config, manifest, device, read_rates(rates_path))
    if out:
        write_csv(out, table)
    print(plan_markdown(table))
    return table
