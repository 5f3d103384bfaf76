"""`svar plan`: the jobs a config makes and what they will cost, before anything runs.

For each stage: its jobs (as the workflow schedules them), its work in the unit its cost grows
with (frames decoded, teacher frames encoded, training clips, test views), the measured rate for
that work (`svar/data/rates.csv`: seconds a unit on one device, with the command and machine that
measured it; the CPU rows by `svar bench scale`, the cuda rows from a benchmark on one H200, not
svar's pipeline, until svar's own is measured there), and so the estimated wall time, the
device-hours (GPU-hours for the stages on `--device cuda`, CPU core-hours otherwise) and the
disk it writes. The dataset's shape comes from its manifest once `svar index` has run (exact),
else from its settings (the generated set) or its published counts (UCF101, HMDB51). A rate
measured at another input size is scaled by pixels (decoding) or by frames × pixels (the models)
and says so.

A stage with no rate for its model on that device is `unknown`, never 0: it names the rate it
lacks and the command that measures it, and the total names the stages it leaves out. Two rates
are made of others, and say so: a teacher job whose device has a decoding rate (the GPU machine's:
its encoder outruns the CPU decoding its frames) goes at the slower of its decoding workers and
its encoder; an evaluate rate missing where a train rate exists is derived from it (a forward ≈
1/3 of a training step). On cuda the train stage also gets its estimated peak GPU memory
(svar.train_memory), with a warning naming the usual GPU sizes it does not fit.

After a run, the report puts these estimates beside the benchmark files' actual times
(svar.costs): `results/<name>/plan.csv` is written by rule plan.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from .atomic import write_csv
from .clips.cache_parts import cache_reads, kept_frames, part_spec
from .clips.parts import VIDEOS, cache_part, part_of
from .config import subset, teacher_sections
from .datasets import DatasetShape, dataset_shape
from .methods import METHODS
from .trainer import training_reads

RATES_PATH = Path(__file__).resolve().parent / "data" / "rates.csv"
# a stage's job takes seconds_per_job (its start: imports, workers, the model) plus its work ×
# seconds_per_unit (core-seconds on a CPU, seconds on a GPU)
RATE_COLUMNS = ["stage", "model", "input", "device", "unit", "seconds_per_unit", "seconds_per_job", "peak_rss_mb",
                "measured_by"]
# the stages whose jobs ask SLURM for a GPU (workflow/profiles/slurm), which `--device cuda` plans on one
GPU_STAGES = ("teacher_shard", "train", "evaluate")
# a test view's forward against a training step (the backward costs about two forwards): what an
# evaluate rate is derived from where only a train rate was measured
FORWARD_SHARE = 1 / 3


def plan_reads(config: dict) -> tuple[str, ...]:
    """The config keys a plan reads: the grid, the dataset, the teacher, the clip cache, the
    student, training, evaluation, the jobs' resources, and each method's own keys (a method's
    keys can decide the views it trains on). Rule plan's params."""
    keys = ["dataset", "fractions", "seeds", "methods", "teacher", "teachers", "clip_cache", "student", "train",
            "evaluate", "resources"]
    for method in config["methods"]:
        keys += [k for k in training_reads(method, config) if k.split(".")[0] not in keys]
    return tuple(dict.fromkeys(keys))


def read_rates(path=RATES_PATH) -> pd.DataFrame:
    frame = pd.read_csv(path)
    missing = [c for c in RATE_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: not a rates file (missing columns {missing}); `svar bench scale --rates` writes one")
    return frame


def _size(stage: str, text: str) -> float:
    """What a unit's cost grows with, from its input: decoding, the source frame's pixels
    ('320x240', '320x240->128x171'), times the frames a video where given ('8x320x240': the
    teacher's decoding of 8 frames a video); the student, frames × crop² ('16x112'); the teacher's
    encoder rate is per model (its own image size), input '-'."""
    if text == "-":
        return 1.0
    numbers = [float(v) for v in text.split("->")[0].split("x")]
    if stage in ("train", "evaluate") and len(numbers) == 2:
        return numbers[0] * numbers[1] ** 2
    return math.prod(numbers)


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
    needs = cls.needs_of(config)
    return b + (b * mu if "unlabeled" in needs else 0) + (b * mu if "strong_view" in needs else 0)


def cache_parts_of(methods) -> list[str]:
    """The clip cache parts the runs of `methods` that train a model on clips read: the student's
    (train, test) and a method's own (clip_finetune's)."""
    return list(dict.fromkeys(cache_part(METHODS[m].clip_section, videos) for m in methods
                              if METHODS[m].trains_student for videos in VIDEOS))


def cache_bytes(config: dict, shape: DatasetShape, parts=("train", "test")) -> dict:
    """Bytes of each part of the clip cache: every kept frame at its cache size."""
    out = {}
    for part in parts:
        options = subset(config, cache_reads(config, part))
        h, w = part_spec(options, part).cache_size
        i = VIDEOS.index(part_of(part)[1])
        counts = (shape.frame_counts[i] if shape.frame_counts is not None
                  else np.full(shape.train_videos if i == 0 else shape.test_videos, round(shape.frames)))
        kept = sum(len(kept_frames(options, part, int(n))) for n in counts)
        out[part] = kept * h * w * 3
    return out


def missing_rate(stage: str, model: str, input_: str, device: str) -> str:
    """What a stage without a rate says: the rate it lacks, and the command that measures it
    (svar bench scale, on a machine with that device: it labels each row with the device its
    stage ran on)."""
    command, overlay = "svar bench scale --configfile workflow/config/scale.yaml", ""
    if stage == "teacher_shard":
        command += f" --model {model}"
    elif stage in ("train", "evaluate"):
        frames, size = input_.split("x")
        command += " OVERLAY"
        overlay = f" (OVERLAY: a YAML file holding `student: {{arch: {model}, frames: {frames}, size: {size}}}`)"
    where = "" if device == "cpu" else f", on a machine with the {device} device"
    return (f"unknown: no rate for stage {stage}, model {model}, input {input_}, device {device}; measure it: "
            f"`{command} --rates svar/data/rates.csv`{overlay}{where}")


def stage_rate(rates: pd.DataFrame, stage: str, model: str, input_: str, device: str):
    """lookup's rate; for evaluate without one, a rate derived from the train rate, and said."""
    found = lookup(rates, stage, model, input_, device)
    if found is None and stage == "evaluate":
        train = lookup(rates, "train", model, input_, device)
        if train is not None:
            return (train[0] * FORWARD_SHARE, float("nan"), None,
                    f"derived, not measured: a test view's forward ≈ 1/3 of a training step's FLOPs (the backward "
                    f"≈ 2 forwards), from the train rate ({train[3]})")
    return found


def teacher_rate(rates: pd.DataFrame, model: str, frames: int, size: str, device: str, workers: int):
    """(seconds a teacher frame, seconds a job, peak RSS MB, source, which bound applies) of a
    teacher job, or None. Where the rates have a decoding rate for the device (stage
    teacher_shard, model decode, input '<frames a video>x<source size>': seconds a video decoded
    by one worker), the job goes at the pace of the slower of its `workers` decoding processes
    and the encoder (with no workers it decodes, then encodes: their sum); else the encoder's
    rate is the job's (svar bench scale's rate times the whole job, decoding included)."""
    encoder = lookup(rates, "teacher_shard", model, "-", device)
    if encoder is None:
        return None
    decoder = lookup(rates, "teacher_shard", "decode", f"{frames}x{size}", device)
    if decoder is None:
        return (*encoder, "")
    encode_s, job_s, peak, source = encoder
    video_s = decoder[0]
    encoder_videos = f"the encoder {1 / (encode_s * frames):,.0f} videos/s ({frames} frames a video)"
    if workers == 0:
        unit_s = encode_s + video_s / frames
        bound = (f"serial (teacher.workers 0): decoding in the job's process, {1 / video_s:,.0f} videos/s, then "
                 f"{encoder_videos}")
    else:
        decode_s = video_s / workers / frames
        unit_s = max(encode_s, decode_s)
        bound = (f"{'decode' if decode_s > encode_s else 'encoder'}-bound: {workers} decoding workers × "
                 f"{1 / video_s:,.0f} videos/s = {workers / video_s:,.0f} videos/s, {encoder_videos}; the slower sets "
                 "the job's pace")
    return unit_s, job_s, peak, f"encoder: {source}; decoding: {decoder[3]}", bound


def mean_rate(models: list[str], rates: list[tuple], frames: list[int]) -> tuple:
    """The rate of several teachers encoding the videos, each its own frames a video at its own
    rate: their seconds a frame weighted by their frames, the mean of their seconds a job, the
    largest peak RSS (unknown where one is), each source named."""
    peaks = [r[2] for r in rates]
    return (sum(r[0] * f for r, f in zip(rates, frames)) / sum(frames), sum(r[1] for r in rates) / len(rates),
            None if any(p is None or p != p for p in peaks) else max(peaks),
            "; ".join(f"{m}: {r[3]}" for m, r in zip(models, rates)), "; ".join(r[4] for r in rates if r[4]))


def train_memory(config: dict, students: list[str]) -> tuple[float, str] | None:
    """(bytes, how it is made up) of the largest peak GPU memory of a train job of these student
    methods (svar.train_memory), or None where none trains the student (clip_finetune trains the
    teacher's encoder)."""
    from .train_memory import step_memory

    own = [m for m in students if METHODS[m].trains_video_student]  # the model is the student
    if not own:
        return None
    method = max(own, key=lambda m: clips_per_step(m, config))
    s, t = config["student"], config["train"]
    m = step_memory(s["arch"], s["frames"], s["size"], clips_per_step(method, config), t["optimizer"], t["ema"] > 0)
    return m.total, (f"{method}: {m.clips} clips of {s['frames']}×{s['size']}² a step; saved activations "
                     f"{_bytes(m.activations)} (bf16 autocast), weights, gradients, {t['optimizer']} state"
                     f"{', EMA' if t['ema'] > 0 else ''} and bf16 weight copies {_bytes(m.parameters)}, margin "
                     f"{_bytes(m.margin)} (svar/train_memory.py)")


def _bytes(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _device_hours(v: float) -> str:
    """Device-hours to 0.01, or to two digits under that: a short stage is not shown as 0."""
    return f"{v:.2f}" if v >= 0.01 or v == 0 else f"{v:.2g}"


def plan(config: dict, manifest_path=None, device: str = "cpu", rates: pd.DataFrame | None = None,
         gpu_memory: bool = True) -> pd.DataFrame:
    """One row per stage: jobs, work, rate, estimated wall seconds (all jobs, and the longest job),
    device-hours and disk written (NaN where unknown: a stage without a rate); on cuda, the train
    stage's estimated peak GPU memory (`gpu_memory`: seconds of building the student on the meta
    device, which the workflow's run-time requests do without)."""
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
    s = config["student"]
    clip_input = f"{s['frames']}x{s['size']}"
    shared = config["clip_cache"]["mode"] == "shared" and students
    rows = []

    def add(stage, jobs, work, unit, model, input_, on, threads, rate, disk=None, per_job=None, note=""):
        cores = 1 if on == "cuda" else threads
        unit_s = job_s = peak = total = longest = None
        if rate is None:
            source = missing_rate(stage, model, input_, on)
        else:
            unit_s, job_s, peak, source = rate[:4]
            if len(rate) > 4 and rate[4]:
                note = f"{note}; {rate[4]}" if note else rate[4]
            start = job_s
            if job_s != job_s:  # NaN: not measured
                start, source = 0.0, f"{source}; a job's start not measured, not counted"
            # a job's threads share its work (CPU stages); a GPU job is one device
            total = jobs * start + work * unit_s / cores
            longest = start + work * unit_s / cores * (per_job or 1 / max(jobs, 1))
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
    add("index", 1, source_frames, "source frames decoded", "decode", size, "cpu", res["index"]["threads"],
        lookup(rates, "index", "decode", size, "cpu"))
    n, on = t["shards"], gpu("teacher_shard")
    # each teacher of the grid at its own model's rate (by its one name, backend included:
    # xclip:microsoft/xclip-base-patch32); one without a measured rate leaves the stage unknown
    # and its own frames a video (a `teachers` entry's sampling over `teacher`'s)
    sections = teacher_sections(config)
    models = [teacher["model"] for teacher in sections]
    frames = [sp["frames"] * (sp["clips"] if sp["mode"] == "clips" else 1) for sp in (x["sampling"] for x in sections)]
    each = [teacher_rate(rates, m, f, size, on, t["workers"]) for m, f in zip(models, frames)]
    unmeasured = [m for m, r in zip(models, each) if r is None]
    add("teacher_shard", n * teachers, shape.videos * sum(frames), "teacher frames encoded",
        unmeasured[0] if unmeasured else models[0], "-", on, res["teacher"]["threads"],
        None if unmeasured else each[0] if teachers == 1 else mean_rate(models, each, frames),
        note=(f"{frames[0]} frames a video" if len(set(frames)) == 1 else
              "frames a video: " + ", ".join(f"{m} {f}" for m, f in zip(models, frames)))
        + (f", {teachers} teachers, each at its own model's rate" if teachers > 1 else ""))
    if shared:
        parts = cache_bytes(config, shape, cache_parts_of(methods))
        k = config["clip_cache"]["shards"]
        cache_input = f"{size}->{s['cache_size'][0]}x{s['cache_size'][1]}"
        # each pair of parts (train, test) decodes every video once; clip_finetune's at its own size
        add("clip_cache_shard", len(parts) * k, source_frames * len(parts) // len(VIDEOS), "source frames decoded",
            "decode+resize", cache_input, "cpu", res["clip_cache"]["threads"],
            lookup(rates, "clip_cache_shard", "decode+resize", cache_input, "cpu"), disk=sum(parts.values()),
            note=", ".join(f"{part} part {size_ / 1e9:.2f} GB" for part, size_ in parts.items()))
    if students:
        steps = config["train"]["steps"]
        clips = sum(clips_per_step(m, config) for m in students) * steps * runs
        longest = max(clips_per_step(m, config) for m in students) * steps / max(clips, 1)
        on = gpu("train")
        add("train", len(methods) * runs, clips, "training clips (forward + backward)", s["arch"], clip_input, on,
            res["train"]["threads"], stage_rate(rates, "train", s["arch"], clip_input, on), per_job=longest,
            note=f"{len(students)} student methods × {runs} runs × {steps} steps"
                 + (f" ({teachers} teachers)" if teachers > 1 else "")
                 + ("; clip_finetune's clips at the student's rate (none for the teacher's encoder)"
                    if "clip_finetune" in students else ""))
        memory = train_memory(config, students) if on == "cuda" and gpu_memory else None
        if memory is not None:
            rows[-1].update(est_peak_gpu_mb=memory[0] / 1e6, memory_note=memory[1])
        e = config["evaluate"]
        views = len(students) * runs * shape.test_videos * e["clips"] * e["crops"]
        on = gpu("evaluate")
        add("evaluate", len(methods) * teachers, views, "test views (forward)", s["arch"], clip_input, on,
            res["evaluate"]["threads"], stage_rate(rates, "evaluate", s["arch"], clip_input, on),
            per_job=1 / (len(students) * teachers),
            note=f"{shape.test_videos} test videos × {e['clips']} clips × {e['crops']} crops × {runs} runs a method")
    table = pd.DataFrame(rows)
    table.attrs["dataset"] = shape.source
    return table


def _known(v) -> bool:
    return v is not None and v == v


def memory_lines(row) -> list[str]:
    """The train stage's estimated peak GPU memory, and a warning naming the usual GPU sizes it
    does not fit and the keys that make it smaller."""
    from .train_memory import GPU_SIZES_GB

    if not _known(getattr(row, "est_peak_gpu_mb", None)):
        return []
    gb = row.est_peak_gpu_mb / 1e3
    lines = [f"est. peak GPU memory of a train job: {gb:.1f} GB ({row.memory_note})"]
    small = [size for size in GPU_SIZES_GB if gb > size]
    if small:
        fits = [size for size in GPU_SIZES_GB if size not in small]
        lines.append(f"warning: a train job needs about {gb:.1f} GB of GPU memory: it does not fit a "
                     f"{', '.join(map(str, small))} GB GPU" + (f" (it fits {fits[0]} GB)" if fits else "")
                     + "; to need less, lower train.batch_size or train.unlabeled_ratio (the clips of a step), or "
                       "student.frames / student.size (the memory of a clip)")
    return lines


def plan_markdown(table: pd.DataFrame) -> str:
    """The plan as a Markdown table, with its total and where the dataset's shape came from. A
    stage without a rate is `unknown` in its estimates, never 0; the total names the stages it
    leaves out."""
    def hours(v, known):
        if not known:
            return "unknown"
        if not _known(v):
            return "—"
        return f"{v / 3600:.2f} h" if v >= 360 else f"{v:.0f} s" if v >= 10 else f"{v:.2g} s"

    lines = ["| stage | jobs | work | est. wall (all jobs) | est. longest job | device-hours | disk | peak RSS (the bench's job) |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in table.itertuples():
        known = _known(r.est_wall_s_total)
        device_h = f"{_device_hours(r.est_device_h)} {r.device_h_kind}" if known else f"unknown {r.device_h_kind}"
        disk = "—" if not _known(r.est_disk_mb) else (
            f"{r.est_disk_mb / 1000:.1f} GB" if r.est_disk_mb >= 1000 else f"{r.est_disk_mb:.0f} MB")
        # the peak RSS the rate's measurement saw (at its own input size: a guide, not a bound)
        peak = "—" if not _known(r.peak_rss_mb_measured) else f"{float(r.peak_rss_mb_measured) / 1000:.1f} GB"
        lines.append(f"| {r.stage} | {r.jobs} | {r.work:,.0f} {r.unit} on {r.device} | "
                     f"{hours(r.est_wall_s_total, known)} | {hours(r.est_wall_s_longest, known)} | {device_h} | {disk} | "
                     f"{peak} |")
    lines.append("")
    lines.append(f"dataset shape: {table.attrs.get('dataset', '?')}")
    for r in table.itertuples():
        lines.append(f"- {r.stage}: {r.note + '; ' if r.note else ''}rate: {r.rate_source}")
    for r in table.itertuples():
        lines += memory_lines(r)
    totals = []
    for kind in ("GPU-h", "CPU core-h"):
        stages = table[table["device_h_kind"] == kind]
        if stages.empty:
            continue
        known = stages["est_device_h"].notna()
        left = ", ".join(stages.loc[~known, "stage"])
        if not known.any():
            totals.append(f"unknown {kind} (no rate for {left})")
        else:
            left = f" without {left} (no rate: unknown)" if left else ""
            totals.append(f"{_device_hours(stages['est_device_h'].sum())} {kind}{left}")
    lines.append("total: " + ", ".join(totals))
    return "\n".join(lines)


# a job's run time request when its resources.<stage>.runtime is 0 (svar.plan.runtime_minutes):
# the plan's estimate of the stage's longest job × RUNTIME_MARGIN + RUNTIME_SLACK_MIN (a queue
# start, imports, a GPU slower than the rate's, a busy file system), or RUNTIME_UNKNOWN_MIN, a
# day, where the plan has no rate for the stage
RUNTIME_MARGIN = 4
RUNTIME_SLACK_MIN = 15
RUNTIME_UNKNOWN_MIN = 1440


def runtime_minutes(table: pd.DataFrame, stage: str) -> int:
    """Minutes a job of `stage` asks for, from a plan (svar.plan.plan) of the device it runs on."""
    rows = table[table["stage"] == stage]
    longest = float(rows["est_wall_s_longest"].iloc[0]) if len(rows) else float("nan")
    if not _known(longest):
        return RUNTIME_UNKNOWN_MIN
    return math.ceil(longest * RUNTIME_MARGIN / 60) + RUNTIME_SLACK_MIN


def main_plan(overlays=(), device: str = "cpu", rates_path=RATES_PATH, out=None, config_json=None,
              manifest=None) -> pd.DataFrame:
    """Print the plan of the workflow's config (config.yaml with `overlays`, checked as the
    workflow checks it before any job: a config it refuses has no plan), or of `config_json` (what
    rule plan passes: the keys of `plan_reads`); write it as CSV to `out`."""
    import json

    from .config import load_workflow_config, results_dir
    from .config_checks import check

    if config_json:
        config = json.loads(config_json) if isinstance(config_json, str) else config_json
    else:
        # local=False: the plan is made where the jobs may not run (a login node has no GPU)
        config = check(load_workflow_config(*overlays), ", ".join(map(str, overlays)) or "config.yaml", local=False)
        manifest = manifest or Path(results_dir(config)) / "manifest.csv"
    table = plan(config, manifest, device, read_rates(rates_path))
    if out:
        write_csv(out, table)
    print(plan_markdown(table))
    return table
