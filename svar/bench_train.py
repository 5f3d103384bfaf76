"""`svar bench train`: does the data path keep the model busy?

One student, one run's real batches. Two kinds of training step are timed in alternating
windows on the same student, so that a noisy machine slows both alike:

  model only      the same batch again and again, already on the device: forward, backward and
                  optimiser step, nothing else
  real data path  each step's batch built as training builds it: clips taken from the cached
                  frames (decoded into memory, as with clip_cache.mode memory; a memory-mapped
                  shared cache reads the same rows), sampled, augmented, copied to the device,
                  then the same step

The data path is timed with the next batch cut in a background thread while the step runs
(`prefetch` on: what training does on CUDA, svar.batches), or built in line before each step
(off: what a CPU run does); auto picks what this config's training would. On a CPU, `on` measures
the cut on a core of its own beside the step, as a GPU job's host runs it beside the GPU's step:
the ratio then says how much of the step's speed training keeps when the data path has its own
core, not what a CPU run gets. A prefetched window ends when the batch it started for the next window is cut, so
every window pays for as many batches as it takes steps and no model-only window shares the CPU
with a cut.

The ratio (real / model only, the median of the windows' paired wall-clock ratios) is the share
of the model's speed that training keeps; 1.0 means the data path costs nothing. In line, the same
ratio in the process's CPU time is printed too: on a machine busy with other work it is the
steadier one (prefetched, the cut's CPU time runs beside the step's, and only wall-clock time says
what the overlap saves).
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from .batches import prefetch_pays
from .device import synchronize
from .methods import get_method
from .trainer import options_for
from .trainer import Trainer, seed_everything

PREFETCH = {"on": True, "off": False, "auto": None}


def bench_train(options: dict, manifest, split, store, steps: int = 5, threads: int = 1, windows: int = 20,
                method: str = "distill", warmup: int = 5, seed: int = 0, prefetch: str = "on") -> dict:
    """Clips per second of training steps, model only and with the real data path.

    `windows` pairs of windows of `steps` steps each, alternating (model only first in odd pairs,
    data path first in even ones), after `warmup` steps of each kind. `prefetch` (on, off, auto):
    the data path's next batch cut in a background thread. Returns the medians, the ratio (median
    of the per-pair ratios) and every window's rate.
    """
    if prefetch not in PREFETCH:
        raise ValueError(f"--prefetch: {prefetch!r} is not one of {sorted(PREFETCH)}")
    torch.set_num_threads(threads)
    seed_everything(seed)
    trainer = Trainer(manifest, split, store, get_method(method, options), options, seed, threads,
                      prefetch=PREFETCH[prefetch])
    try:
        return _timed(trainer, steps, windows, method, warmup, options["train"]["steps"], threads)
    finally:
        trainer.close()


def _timed(trainer: Trainer, steps: int, windows: int, method: str, warmup: int, total: int, threads: int) -> dict:
    trainer.student.train()
    device = trainer.device
    # built once: from here on the model-only steps pay nothing for data
    fixed = trainer.next_batch(prefetch_next=False)
    position = [0]

    def model_only():
        trainer.step(fixed, position[0] % total)
        position[0] += 1

    def real():
        trainer.step(trainer.next_batch(), position[0] % total)
        position[0] += 1

    cpu = {"model": 0.0, "real": 0.0}

    def window(fn, n, kind=None):
        synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        if fn is real:  # the batch this window started for the next one is cut within its time
            trainer.batches.settle()
        synchronize(device)
        if kind:
            cpu[kind] += time.process_time() - start_cpu
        return n * trainer.clips_per_step / (time.perf_counter() - start)

    window(model_only, warmup)
    window(real, warmup)
    model_rates, real_rates = [], []
    for w in range(windows):
        if w % 2 == 0:
            model_rates.append(window(model_only, steps, "model"))
            real_rates.append(window(real, steps, "real"))
        else:
            real_rates.append(window(real, steps, "real"))
            model_rates.append(window(model_only, steps, "model"))
    ratios = [r / m for r, m in zip(real_rates, model_rates)]
    return {
        "method": method, "arch": trainer.student.arch, "device": str(device), "threads": threads,
        "frames": trainer.spec.frames, "size": trainer.spec.size, "clips_per_step": trainer.clips_per_step, "labeled_per_step": trainer.b_l,
        "unlabeled_per_step": trainer.b_u, "steps_per_window": steps, "windows": windows,
        "model_clips_per_s": statistics.median(model_rates), "real_clips_per_s": statistics.median(real_rates),
        "ratio": statistics.median(ratios),
        "model_rates": model_rates, "real_rates": real_rates, "ratios": ratios,
        # the same comparison in this process's CPU time: what the steps cost, whatever else runs
        # (in line only: a prefetched cut's CPU time runs beside the step's)
        "cpu_ratio": cpu["model"] / cpu["real"] if device.type == "cpu" and not trainer.prefetch else None,
        "cache": "memory",  # the frames: decoded into memory by the bench's Trainer
        "prefetch": trainer.prefetch,
    }


def main_bench_train(overlays=(), steps: int = 5, windows: int = 20, method: str = "distill",
                     prefetch: str = "on") -> None:
    """The comparison for the workflow's config (workflow/config/config.yaml with `overlays`, as
    `snakemake --configfile` merges them), its student and train settings, on the first fraction
    and seed of its grid; the last line is `ratio <value>`."""
    from .config import load_workflow_config, results_dir, split_path
    from .manifest import load_manifest
    from .splits import load_split
    from .teacher.store import load_store

    from .methods import METHODS

    if not METHODS[method].trains_student:
        raise ValueError(f"--method: {method} fits a head on the teacher's stored features, no training step to time; "
                         "give a method that trains a model")
    config = load_workflow_config(*overlays)
    results = Path(results_dir(config))
    fraction, seed = config["fractions"][0], config["seeds"][0]
    paths = {"manifest": results / "manifest.csv",
             "split": Path(split_path(results, fraction, seed)),
             "teacher": results / "teacher" / "features.pt"}
    missing = [str(p) for p in paths.values() if not p.exists()]
    if missing:
        raise FileNotFoundError(f"missing {', '.join(missing)}: the benchmark has not been run in this folder; "
                                "run `snakemake --cores 2` (with the same --configfile overlays) first")
    options = options_for(method, config)
    threads = config["resources"]["train"]["threads"]
    r = bench_train(options, load_manifest(paths["manifest"]), load_split(paths["split"]),
                    load_store(paths["teacher"]), steps=steps, threads=threads, windows=windows, method=method,
                    prefetch=prefetch)
    # the clips it trains on: the student's, or the method's own (clip_finetune's)
    print(f"bench train: {config['dataset']['name']} fraction {float(fraction):g} seed {seed}, method {r['method']}, "
          f"model {r['arch']} ({r['frames']}x{r['size']}x{r['size']}), {r['labeled_per_step']} labeled + "
          f"{r['unlabeled_per_step']} unlabeled clips a step, device {r['device']}, {r['threads']} thread(s), "
          f"clip cache: {r['cache']}")
    training = "prefetches" if prefetch_pays(torch.device(r["device"])) else "builds its batches in line"
    print("data path: " + ("the next batch cut in a background thread while the step runs" if r["prefetch"] else
                           "each batch built in line before its step")
          + f" (--prefetch {prefetch}; training on {r['device']} {training})")
    print(f"{r['windows']} alternating pairs of windows of {r['steps_per_window']} steps")
    print("model only, clips/s per window:     " + " ".join(f"{v:.0f}" for v in r["model_rates"]))
    print("real data path, clips/s per window: " + " ".join(f"{v:.0f}" for v in r["real_rates"]))
    print("ratio per pair:                     " + " ".join(f"{v:.2f}" for v in r["ratios"]))
    print(f"model only (same batch already on the device): {r['model_clips_per_s']:.1f} clips/s (median)")
    print(f"real data path (cache, sample, augment, copy): {r['real_clips_per_s']:.1f} clips/s (median)")
    if r["cpu_ratio"] is not None:
        print(f"the same in this process's CPU time (steadier when other work shares the machine): "
              f"{r['cpu_ratio']:.3f}")
    print(f"ratio {r['ratio']:.3f}")
