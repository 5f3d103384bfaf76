"""`svar bench scale`: how each stage's time and memory grow with the number of videos.

The config's generated set (workflow/config/scale.yaml: UCF101-shaped, 320×240, ~7 s at 25 fps)
is written at N and at 4N videos (the same classes; groups × 4), and the chain's stages run on
each as the workflow runs them, one `python -m svar <stage>` process each: index, the clip cache
(both parts, one shard each), the teacher (its model with random weights: the speed is the same),
a few training steps of one run reading the cache, and evaluation of that run from the cache.
For each stage: wall time, peak RSS, and peak anonymous RSS (sampled from /proc: the memory the
process allocated, without the pages of memory-mapped files it read), at both sizes, and their
ratios. The last line is `growth <largest time ratio of the stages whose work grows with N>`.

Training runs a fixed number of steps, so its time should not grow with N (its ratio is shown,
not counted in `growth`); evaluation reads every test clip once from the memory-mapped cache, so
its RSS grows by the pages of the cache it read while its anonymous memory should not.

`--rates FILE` writes the measured seconds a unit (svar.plan's units) for the larger size into
FILE (rows with the same stage, model, input and device replaced): `svar plan` reads them.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd

from .clips.cache_parts import cache_reads
from .config import canonical, grid_teachers, load_workflow_config, subset
from .device import resolve_device
from .methods import METHODS
from .trainer import options_for
from .plan import RATE_COLUMNS, clips_per_step

# the stages timed, in order; those whose work grows with the number of videos count in `growth`
STAGES = ("dataset", "index", "clip_cache_train", "clip_cache_test", "teacher", "train", "evaluate")
GROWING = ("index", "clip_cache_train", "clip_cache_test", "teacher", "evaluate")


def _anon_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def timed(cmd: list[str], log: Path) -> dict:
    """Run one stage process; its wall time, peak RSS (the kernel's, from wait4) and peak anonymous
    RSS (sampled every 20 ms)."""
    start = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        peak_anon, done = [0], threading.Event()

        def sample():
            while not done.is_set():
                peak_anon[0] = max(peak_anon[0], _anon_kb(proc.pid))
                done.wait(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed (exit {proc.returncode}); its output: {log}")
    return {"wall_s": wall, "peak_rss_mb": usage.ru_maxrss / 1024, "peak_anon_mb": peak_anon[0] / 1024}


def scaled_spec(config: dict, videos: int) -> dict:
    """dataset.synthetic with groups of one clip chosen for about `videos` videos (2 groups at
    least: a test and a training one), half of the groups the test list: 4× the videos is 4×
    the training and 4× the test videos."""
    s = dict(config["dataset"]["synthetic"])
    groups = max(2, 2 * round(videos / s["classes"] / 2))
    s.update(groups=groups, clips_per_group=1, test_groups=groups // 2, pretrain_videos=0)
    return s


def run_size(config: dict, videos: int, work: Path, threads: int) -> dict:
    """Every stage on about `videos` videos in `work`: {stage: measurements}."""
    from .splits import write_split

    py = [sys.executable, "-m", "svar"]
    spec = scaled_spec(config, videos)
    data, res = work / "data", work / "results"
    res.mkdir(parents=True, exist_ok=True)
    # the generated set as rule dataset writes it: one flag per dataset.synthetic key
    flags = [a for key in sorted(spec) if spec[key] is not None for a in (f"--{key.replace('_', '-')}", str(spec[key]))]
    workers = ["--workers", str(threads)] if "--workers" in subprocess.run(
        py + ["dataset", "--help"], capture_output=True, text=True).stdout else []
    generated = timed(py + ["dataset", "--name", "synthetic", "--out", str(data), *flags, *workers], work / "dataset.log")
    out = {"dataset": generated}
    out["index"] = timed(py + ["index", "--root", str(data), "--manifest", str(res / "manifest.csv"), "--exclusions",
                               str(res / "exclusions.csv"), "--classes", str(res / "classes.csv"), "--workers",
                               str(threads)], work / "index.log")
    manifest = res / "manifest.csv"
    for part in ("train", "test"):
        options = canonical(subset(config, cache_reads(config, part)))
        shard = res / "clip_cache" / part / "shard_000_of_001.npy"
        out[f"clip_cache_{part}"] = timed(py + ["clip-cache", "--manifest", str(manifest), "--part", part, "--options",
                                                options, "--workers", str(threads), "--memory-mb",
                                                str(config["resources"]["clip_cache"]["mem_mb"]), "--out", str(shard)],
                                          work / f"clip_cache_{part}.log")
        subprocess.run(py + ["clip-cache-gather", str(shard), "--out", str(res / "clip_cache" / f"{part}.json")],
                       check=True, capture_output=True)
    t = config["teacher"]
    out["teacher"] = timed(py + ["teacher", "--manifest", str(manifest), "--classes", str(res / "classes.csv"),
                                 "--model", t["model"], "--pretrained", "none", "--out", str(res / "features.pt"),
                                 "--frames", str(t["sampling"]["frames"]), "--batch-size", str(t["batch_size"]),
                                 "--workers", str(max(threads - 1, 0)), "--threads", "1", "--device", t["device"],
                                 "--templates", "a video of {}."], work / "teacher.log")
    from .manifest import load_manifest

    split_path = res / "split.csv"
    fraction = config["fractions"][0]
    # no validation videos: at N a class may have a single training video, and training must do
    # the same work at both sizes (validation's cost is evaluation's, measured below)
    write_split(load_manifest(manifest), fraction, 0, split_path, val_per_class=0)
    method = next(m for m in config["methods"] if METHODS[m].trains_student)
    options = canonical(options_for(method, config))
    model = res / "model.pt"
    out["train"] = timed(py + ["train", "--manifest", str(manifest), "--split", str(split_path), "--teacher",
                               str(res / "features.pt"), "--method", method, "--options", options, "--seed", "0",
                               "--dataset", "synthetic", "--fraction", str(fraction), "--threads", str(threads),
                               "--out", str(model), "--clip-cache", str(res / "clip_cache" / "train.json")],
                         work / "train.log")
    e = config["evaluate"]
    out["evaluate"] = timed(py + ["evaluate", "--model", str(model), "--split", str(split_path), "--out",
                                  str(res / "metrics.json"), "--manifest", str(manifest), "--teacher",
                                  str(res / "features.pt"), "--clips", str(e["clips"]), "--crops", str(e["crops"]),
                                  "--batch-size", str(e["batch_size"]), "--device", e["device"], "--threads",
                                  str(threads), "--clip-cache", str(res / "clip_cache" / "test.json")],
                            work / "evaluate.log")
    m = load_manifest(manifest)
    test = m["split1"] == "test"
    out["_shape"] = {"videos": len(m), "train": int((~test).sum()), "test": int(test.sum()),
                     "frames": int(m["frames"].sum()), "test_frames_mean": float(m.loc[test, "frames"].mean()),
                     "size": f"{int(m['width'].median())}x{int(m['height'].median())}", "method": method}
    return out


def units(config: dict, shape: dict) -> dict:
    """Each stage's work in svar.plan's units, for one measured size."""
    s, e, t = config["student"], config["evaluate"], config["teacher"]
    steps = config["train"]["steps"]
    return {"index": shape["frames"], "clip_cache_train": shape["frames"], "clip_cache_test": shape["frames"],
            "teacher": shape["videos"] * t["sampling"]["frames"],
            "train": steps * clips_per_step(shape["method"], config),
            "evaluate": shape["test"] * e["clips"] * e["crops"]}


def fit(small_s: float, large_s: float, small_units: float, large_units: float, jobs: int = 1) -> tuple[float, float]:
    """(seconds a unit, seconds a job) from a stage's time at two sizes: t = jobs·a + units·b. A
    stage whose work does not change between them (training: a fixed number of steps), or whose
    time did not grow, gets a = 0 and b = t / units at the larger size."""
    if large_units > small_units and large_s > small_s:
        b = (large_s - small_s) / (large_units - small_units)
        a = (large_s - b * large_units) / jobs
        if a >= 0:
            return b, a
    return large_s / max(large_units, 1), 0.0


def rate_rows(config: dict, small: dict, large: dict, threads: int, command: str) -> list[dict]:
    """Rates (svar.plan) from the two sizes' measurements: a stage's start (seconds a job) and
    its cost a unit (core-seconds on the CPU), fitted to both."""
    s = config["student"]
    u_small, u_large = units(config, small["_shape"]), units(config, large["_shape"])
    where = f"{command} on {platform.node() or 'this machine'} ({os.cpu_count()} CPUs), {time.strftime('%Y-%m-%d')}"
    size = large["_shape"]["size"]
    clip = f"{s['frames']}x{s['size']}"

    def wall(result, stage):
        # the clip cache's two parts (two jobs) decode the whole of their videos: one rate for both
        if stage == "clip_cache":
            return result["clip_cache_train"]["wall_s"] + result["clip_cache_test"]["wall_s"]
        return result[stage]["wall_s"]

    def peak(stage):
        parts = ("clip_cache_train", "clip_cache_test") if stage == "clip_cache" else (stage,)
        return round(max(large[p]["peak_rss_mb"] for p in parts))

    specs = [("index", "index", "decode", size, "source frame decoded", 1),
             ("clip_cache_shard", "clip_cache", "decode+resize", f"{size}->{s['cache_size'][0]}x{s['cache_size'][1]}",
              "source frame decoded", 2),
             ("teacher_shard", "teacher", config["teacher"]["model"], "-", "teacher frame encoded", 1),
             ("train", "train", s["arch"], clip, "training clip (forward + backward)", 1),
             ("evaluate", "evaluate", s["arch"], clip, "test view (forward)", 1)]
    # the device each stage's job ran on (the teacher, training and evaluation: their config's
    # device, auto = cuda where there is one); a CPU stage's unit cost is in core-seconds
    ran_on = {stage: resolve_device(config[section]["device"]).type
              for stage, section in (("teacher_shard", "teacher"), ("train", "train"), ("evaluate", "evaluate"))}
    rows = []
    for stage, measured, model, input_, unit, jobs in specs:
        key = "clip_cache_train" if measured == "clip_cache" else measured
        b, a = fit(wall(small, measured), wall(large, measured), u_small[key], u_large[key], jobs)
        device = ran_on.get(stage, "cpu")
        rows.append({"stage": stage, "model": model, "input": input_, "device": device, "unit": unit,
                     "seconds_per_unit": b * threads if device == "cpu" else b, "seconds_per_job": a,
                     "peak_rss_mb": peak(measured),
                     "measured_by": f"{where}, {u_small[key]:,} and {u_large[key]:,} units, {threads} threads"})
    return rows


def write_rates(path, rows: list[dict]) -> None:
    from .atomic import write_csv

    path = Path(path)
    old = pd.read_csv(path) if path.exists() else pd.DataFrame(columns=RATE_COLUMNS)
    new = pd.DataFrame(rows, columns=RATE_COLUMNS)
    keys = ["stage", "model", "input", "device"]
    kept = old.merge(new[keys], on=keys, how="left", indicator=True)
    old = old[(kept["_merge"] == "left_only").to_numpy()]
    write_csv(path, pd.concat([old, new], ignore_index=True))


def main_bench_scale(overlays=("workflow/config/scale.yaml",), videos: int = 400, threads: int = 2, work=None,
                     rates=None, model=None) -> dict:
    """`model`: another teacher than the config's (random weights either way): an open_clip model,
    or another backend's as `<backend>:<model>` (xclip:microsoft/xclip-base-patch32)."""
    import tempfile

    from .teacher.backends import split_model

    config = load_workflow_config(*overlays)
    if model:
        config["teacher"]["model"] = model
    # the teacher by its one name (its backend in it: svar.config.grid_teachers), at the frames a
    # clip its model takes where it fixes them (X-CLIP's num_frames)
    config["teacher"]["model"] = grid_teachers(config)[0][1]["model"]
    backend, bare = split_model(config["teacher"]["model"])
    frames = backend.frames(bare, config["teacher"]["cache_dir"])
    if frames is not None:
        config["teacher"]["sampling"]["frames"] = frames
    if config["dataset"]["name"] != "synthetic":
        raise ValueError(f"{overlays}: svar bench scale writes the generated set; dataset.name is "
                         f"{config['dataset']['name']!r}")
    base = Path(work or tempfile.mkdtemp(prefix="svar-bench-scale-"))
    results = {}
    for n in (videos, 4 * videos):
        print(f"--- {n} videos (in {base / str(n)})", flush=True)
        results[n] = run_size(config, n, base / str(n), threads)
    small, large = results[videos], results[4 * videos]
    print(f"\nsvar bench scale: {' '.join(map(str, overlays))}, teacher {config['teacher']['model']} (random weights), "
          f"{small['_shape']['videos']} and {large['_shape']['videos']} videos "
          f"({large['_shape']['size']}, {large['_shape']['frames'] / large['_shape']['videos']:.0f} frames a video), "
          f"{threads} threads")
    print(f"{'stage':<18}{'time N':>10}{'time 4N':>10}{'ratio':>7}{'RSS N':>9}{'RSS 4N':>9}{'anon N':>9}{'anon 4N':>9}")
    for stage in STAGES:
        a, b = small[stage], large[stage]
        print(f"{stage:<18}{a['wall_s']:>9.1f}s{b['wall_s']:>9.1f}s{b['wall_s'] / a['wall_s']:>7.2f}"
              f"{a['peak_rss_mb']:>8.0f}M{b['peak_rss_mb']:>8.0f}M{a['peak_anon_mb']:>8.0f}M{b['peak_anon_mb']:>8.0f}M")
    if rates:
        command = (f"svar bench scale --configfile {' '.join(map(str, overlays))} --videos {videos} --threads {threads}"
                   + (f" --model {model}" if model else ""))
        write_rates(rates, rate_rows(config, small, large, threads, command))
        print(f"rates written: {rates}")
    growth = max(large[s]["wall_s"] / small[s]["wall_s"] for s in GROWING)
    print(f"growth {growth:.2f}")
    return results
