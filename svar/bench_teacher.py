"""`svar bench teacher`: does teacher extraction run at the speed of its slowest stage?

On the default run's videos (results/<name>/manifest.csv), with the configured teacher, three
rates are measured in interleaved rounds (the order rotates each round, so a machine busy with
other work slows every kind alike):

  decode only     the extraction's own DataLoader (spawned worker processes, prefetching),
                  iterated without encoding: videos/s the decoders deliver
  encode only     the same batches, already in memory: preprocessing on the device and the
                  teacher's encoder (open_clip's image encoder, X-CLIP's video encoder and its
                  prompt-conditioned zero-shot against the dataset's classes), nothing else
  pipeline        decoding and encoding overlapped, as `svar teacher` runs them

ratio = pipeline / min(decode, encode), the median of the rounds' ratios: the real data path
over the model alone (or the decoders alone, where they are the slower): 1.0 means the pipeline
runs at the speed of its bottleneck, overlap costs nothing. Any backend (`--backend`): with
another backend or model than the config's the weights are random (the same speed), its frames
a clip the model's own (X-CLIP's num_frames). The worker processes are
started once (persistent) before timing; their start-up, paid once per job, is printed apart.
The last line printed is `ratio <value>`.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

import torch

from .config import grid_teachers, load_workflow_config, qualified_model, results_dir
from .device import resolve_device, synchronize
from .manifest import load_manifest
from .teacher.backends import TEACHER_BACKENDS, load_teacher, split_model
from .teacher.features import encode_batches, make_loader
from .teacher.prompts import resolve_templates
from .teacher.sampling import sampling_from_config, sampling_spec
from .teacher.weights import is_random, pretrained_file


def bench_teacher(manifest, model_name: str, pretrained, frames: int = 8, batch_size: int = 32, workers: int = 1,
                  threads: int = 1, device: str = "auto", rounds: int = 5, sampling=None, prefetch: int = 4,
                  resize_on: str = "auto", templates=("a {}.",)) -> dict:
    torch.set_num_threads(threads)
    device = resolve_device(device)
    spec = sampling_spec(sampling, frames)
    teacher = load_teacher(model_name, pretrained, device)
    # the dataset's classes: X-CLIP conditions its zero-shot on each of them, video by video
    classes = sorted(set(manifest["class_name"]))
    text = teacher.encode_text(classes, resolve_templates(templates))
    t0 = time.perf_counter()
    loader, resized = make_loader(manifest, spec, teacher.preprocess, device, workers, batch_size, prefetch=prefetch,
                                  resize_on=resize_on)
    it = iter(loader)  # starts the workers
    first = next(it)
    startup = time.perf_counter() - t0
    in_memory = [first, *it]  # a first, warm-up pass over the decoders, kept for encode-only
    n = len(manifest)
    for _ in encode_batches(teacher, spec, text, in_memory[:2], resized):  # warm the encoder
        pass

    def decode_only():
        for _ in loader:
            pass

    def encode_only():
        for _ in encode_batches(teacher, spec, text, in_memory, resized):
            pass

    def pipeline():
        for _ in encode_batches(teacher, spec, text, loader, resized):
            pass

    kinds = {"decode": decode_only, "encode": encode_only, "pipeline": pipeline}
    rates = {k: [] for k in kinds}
    names = list(kinds)
    for r in range(rounds):
        order = names[r % 3:] + names[:r % 3]
        for name in order:
            synchronize(device)
            t = time.perf_counter()
            kinds[name]()
            synchronize(device)
            rates[name].append(n / (time.perf_counter() - t))
    ratios = [p / min(d, e) for d, e, p in zip(rates["decode"], rates["encode"], rates["pipeline"])]
    result = {k: statistics.median(v) for k, v in rates.items()}
    result.update(ratio=statistics.median(ratios), rates=rates, ratios=ratios, startup_s=startup)
    del loader
    return result


def main_bench_teacher(overlays=(), rounds: int = 7, workers: int | None = None, threads: int | None = None,
                       batch_size: int | None = None, model: str | None = None, backend: str | None = None,
                       out=None) -> dict:
    """The comparison for the workflow's config (workflow/config/config.yaml with `overlays`, as
    `snakemake --configfile` merges them), on its dataset's indexed videos; `model` and `backend`:
    another teacher than the config's (random weights; the backend's small model when only the
    backend is given)."""
    config = load_workflow_config(*overlays)
    manifest_path = Path(results_dir(config)) / "manifest.csv"
    if not manifest_path.exists():
        raise FileNotFoundError(f"{manifest_path} does not exist: the teacher bench runs on the default run's videos; "
                                "run `snakemake --cores 2` (or at least its index stage) first")
    manifest = load_manifest(manifest_path)
    tcfg = grid_teachers(config)[0][1]  # `teacher`, its model named with its backend
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    device = resolve_device(tcfg["device"])
    # as rule teacher_shard runs it: the config's decoding workers, the encoder on the other cores
    workers = workers if workers is not None else tcfg["workers"]
    threads = threads if threads is not None else max(1, cpus - workers)
    batch_size = batch_size or tcfg["batch_size"]
    spec = sampling_from_config(tcfg["sampling"])
    pretrained = pretrained_file(tcfg["pretrained"], results_dir(config))
    note = ""
    member = TEACHER_BACKENDS[backend] if backend is not None else split_model(tcfg["model"])[0]
    if backend is not None or (model is not None and model != tcfg["model"]):
        tcfg = {**tcfg, "model": qualified_model(member.name, model or member.small_model)}
        pretrained, note = "none", " (random weights: the same speed as trained ones)"
    frames = member.frames(split_model(tcfg["model"])[1], tcfg["cache_dir"])
    if frames is not None:  # a model that integrates a fixed number of frames (X-CLIP) takes its own
        spec = sampling_spec({**spec, "frames": frames})
    if not is_random(pretrained) and not Path(str(pretrained)).exists() and ("/" in str(pretrained)):
        note = f" (weights {pretrained} not built yet: random weights, the same speed)"
        pretrained = "none"
    r = bench_teacher(manifest, tcfg["model"], pretrained, spec["frames"], batch_size, workers, threads,
                      str(device), rounds, spec, templates=tcfg["templates"])
    out = out or sys.stdout  # looked up now: a default bound at import keeps a stream that may be closed since
    p = lambda *a: print(*a, file=out, flush=True)  # noqa: E731
    p(f"teacher bench: {tcfg['model']}{note}, {len(manifest)} videos of {manifest_path}, "
      f"{spec},"
      f" batch {batch_size}, device {device}, {workers} decoding worker(s), "
      f"{threads} encoder thread(s), {cpus} CPUs, {rounds} interleaved rounds")
    p(f"worker start-up (once per job, not timed below): {r['startup_s']:.1f} s")
    p(f"{'round':>5} {'decode v/s':>11} {'encode v/s':>11} {'pipeline v/s':>13} {'ratio':>6}")
    for i, ratio in enumerate(r["ratios"]):
        p(f"{i:>5} {r['rates']['decode'][i]:>11.1f} {r['rates']['encode'][i]:>11.1f} "
          f"{r['rates']['pipeline'][i]:>13.1f} {ratio:>6.3f}")
    p(f"{'median':>5} {r['decode']:>11.1f} {r['encode']:>11.1f} {r['pipeline']:>13.1f}")
    p(f"bottleneck: {'decode' if r['decode'] < r['encode'] else 'encode'}")
    p(f"ratio {r['ratio']:.3f}")
    return r
