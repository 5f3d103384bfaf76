"""The runs' subcommands: clip-cache, clip-cache-gather, train, evaluate."""

from __future__ import annotations

import logging

from ..config import default
from ..clips.parts import PARTS
from ..options_check import json_object
from ..registry import lazy_choices
from .common import add_budget_flags, budget_of, schema_help


def _clip_cache_reads(args):
    """What `svar clip-cache --options` must hold: the keys that decide a part's cached pixels."""
    from ..clips.cache_parts import cache_reads

    return "--options", args.options, f"the clip cache's {args.part} part", lambda c: cache_reads(c, args.part)


def _clip_cache(args):
    from ..clips.shards import build_shard
    from ..input_checks import clip_cache_job_warnings
    from ..manifest import load_manifest
    from ..read_tracking import tracked

    manifest = load_manifest(args.manifest, videos=True)
    clip_cache_job_warnings(args.options, args.part, args.shards, manifest)
    build_shard(manifest, args.part, tracked(args.options, "clip-cache"), args.shard, args.shards, args.out,
                args.chunk, args.workers, args.memory_mb)


def _clip_cache_gather(args):
    from ..clips.receipt import gather

    receipt = gather(args.shards, args.out)
    logging.info("%s: %d videos, %d frames, %.1f MB in %d shards", args.out, receipt["videos"], receipt["rows"],
                 receipt["bytes"] / 1e6, len(receipt["shards"]))


def _train_reads(args):
    """What `svar train --options` must hold: the keys the method's training reads (the function
    svar.trainer.options_for builds them with)."""
    from ..trainer import training_reads

    from ..config import merge

    options = None if args.options is None else merge(args.options, args.run_options)
    return "--options", options, f"method {args.method}'s training", lambda config: training_reads(args.method, config)


def _train(args):
    from ..config import merge
    from ..input_checks import train_job_warnings
    from ..manifest import load_manifest
    from ..read_tracking import tracked
    from ..readers import read_json
    from ..splits import load_split
    from ..teacher.store import load_store
    from ..trainer import train

    # checked by main (_train_reads); the keys that decide how the run goes, not its result
    # (x-reruns: false), come beside them
    options = tracked(merge(args.options, args.run_options), "train")
    run_info = {"dataset": args.dataset, **budget_of(args)}
    if args.split_info:  # how the split was made (svar splits --info-out): recorded with every number
        run_info["split"] = read_json(args.split_info, "split info", "splits")
    manifest, split = load_manifest(args.manifest, videos=True), load_split(args.split)
    if args.shots is not None:  # K shots as the labeled fraction they amount to, beside K
        from ..splits import labeled_fraction

        run_info["fraction"] = labeled_fraction(split)
    train_job_warnings(args.options, split, manifest)  # not the run's reads
    train(manifest, split, load_store(args.teacher), args.method, options, args.out, args.seed, run_info, args.threads,
          args.curve, clips=args.clip_cache, pseudo_labels_out=args.pseudo_labels)


def _evaluate(args):
    from ..evaluate import evaluate_runs, evaluate_settings
    from ..manifest import load_manifest
    from ..teacher.store import load_store

    if not len(args.model) == len(args.split) == len(args.out):
        raise ValueError(f"{len(args.model)} --model, {len(args.split)} --split and {len(args.out)} "
                         "--out given; give one of each per run, in the same order")
    runs = list(zip(args.model, args.split, args.out))
    settings = evaluate_settings(args.clips, args.batch_size, args.device, args.crops)
    for result in evaluate_runs(runs, load_manifest(args.manifest, videos=True), load_store(args.teacher), args.threads,
                                settings, args.clip_cache):
        top5 = "missing" if result["top5"] is None else f"{result['top5']:.3f}"
        budget = f"{result['shots']} shots" if "shots" in result else f"fraction {result['fraction']}"
        logging.info("%s %s seed %s: top1 %.3f top5 %s mean-class %.3f", result["method"], budget,
                     result["seed"], result["top1"], top5, result["mean_class"])


def add_clip_cache(sub) -> None:
    p = sub.add_parser("clip-cache", help="decode one shard of a clip cache to disk, resumably",
                       description="Decode the frames a part's jobs read (train: the videos outside the test list, "
                                   "the frames training clips and the validation view are drawn from; test: the "
                                   "test list's test clips) of every --shards-th video from the --shard-th, into "
                                   "one .npy file (uint8 [frames, H, W, 3]) and its .index.npz, chunk by chunk "
                                   "(resumed after a kill at the first unfinished chunk; peak memory one chunk).")
    p.add_argument("--manifest", required=True)
    p.add_argument("--part", required=True, choices=PARTS,
                   help="train, test: the student's clips; clip_finetune_train, clip_finetune_test: clip_finetune's "
                        "(svar.clips.parts)")
    p.add_argument("--options", required=True, type=json_object,
                   help="JSON: the config keys that decide the cached pixels (svar.clips.cache_parts.cache_reads)")
    p.add_argument("--shard", type=int, default=0)
    p.add_argument("--shards", type=int, default=default("clip_cache.shards"))
    p.add_argument("--chunk", type=int, default=0,
                   help="videos decoded and written at a time (default 0: as many as --memory-mb holds beside "
                        "what the job measures it holds once its decoders are loaded)")
    p.add_argument("--memory-mb", type=float, default=default("resources.clip_cache.mem_mb"),
                   help="the job's memory, MB, its decoding workers included: the workers and the chunk are fitted "
                        "to it (default %(default)s)")
    p.add_argument("--workers", type=int, default=1,
                   help="decoding processes at most (fewer when --memory-mb does not hold them)")
    p.add_argument("--out", required=True, help="the shard's .npy file")
    # the shard and its index are recorded as they are written (clip_cache.build_shard)
    p.set_defaults(func=_clip_cache, outputs=('out',), output_dirs=(), options_reads=_clip_cache_reads,
                   records_itself=True)


def add_clip_cache_gather(sub) -> None:
    p = sub.add_parser("clip-cache-gather", help="check a clip cache's shards; write its receipt",
                       description="Check that the shards are complete and of one part and one set of options; "
                                   "write the receipt (JSON: shard files, videos, frames, bytes) that `svar train "
                                   "--clip-cache` and `svar evaluate --clip-cache` read.")
    p.add_argument("shards", nargs="+", help="shard files from `svar clip-cache`")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_clip_cache_gather, outputs=('out',), output_dirs=())


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train one (method, fraction, seed) run",
                       description="Train a student with the method's loss, or fit a teacher-only baseline "
                                   "(clip_zeroshot, clip_linear_probe, temporal_probe). Output: a checkpoint, the "
                                   "training curve (step, lr, loss, each loss term and the pseudo-labels' coverage "
                                   "and accuracy) and the pseudo-label diagnostics per class, as CSV.")
    p.add_argument("--manifest", required=True)
    p.add_argument("--split", required=True, help="split table from `svar splits`")
    p.add_argument("--split-info", default=None, help="how that split was made (`svar splits --info-out`)")
    p.add_argument("--teacher", required=True, help="feature store from `svar teacher`")
    p.add_argument("--method", required=True, **lazy_choices("method", "METHOD"))
    p.add_argument("--options", required=True, type=json_object,
                   help="JSON: the config keys the method reads (svar.trainer.options_for; the workflow passes them)")
    p.add_argument("--run-options", default={}, type=json_object,
                   help="JSON: the keys of those marked `x-reruns: false` in the schema (train.checkpoint_every), "
                        "which the workflow passes apart as no result depends on them")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dataset", required=True, help="dataset name, recorded in the results")
    add_budget_flags(p, ", recorded in the results")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="checkpoint file")
    p.add_argument("--curve", default=None, help="training-curve CSV (default: <out>.curve.csv)")
    p.add_argument("--pseudo-labels", default=None,
                   help="CSV of the pseudo-labels trained on, per true class of the unlabeled videos: seen, used, "
                        "correct (default: <out>.pseudo_labels.csv)")
    p.add_argument("--clip-cache", default=None,
                   help="receipt of the shared clip cache's train part (`svar clip-cache-gather`); without it the "
                        "run decodes its frames into memory")
    p.set_defaults(func=_train, outputs=('out', 'curve', 'pseudo_labels'), output_dirs=(), options_reads=_train_reads)


def add_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy of runs on the test list",
                       description="Top-1, top-5 and mean-class accuracy of each run's final model on its split's "
                                   "test videos, with per-class accuracy, predictions and provenance, as JSON. "
                                   "Several runs (--model, --split, --out repeated, in order) share the test "
                                   "clips: read from the shared clip cache (--clip-cache) or decoded once.")
    p.add_argument("--model", required=True, action="append", help="checkpoint from `svar train` (repeatable)")
    p.add_argument("--split", required=True, action="append", help="that run's split (repeatable)")
    p.add_argument("--out", required=True, action="append", help="that run's metrics JSON (repeatable)")
    p.add_argument("--manifest", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--clips", type=int, default=default("evaluate.clips"), help=schema_help("evaluate.clips"))
    p.add_argument("--crops", type=int, default=default("evaluate.crops"), help=schema_help("evaluate.crops"))
    p.add_argument("--batch-size", type=int, default=default("evaluate.batch_size"),
                   help=schema_help("evaluate.batch_size"))
    p.add_argument("--device", default=default("evaluate.device"), help=schema_help("evaluate.device"))
    p.add_argument("--clip-cache", default=None,
                   help="receipt of the shared clip cache's test part (`svar clip-cache-gather`); without it the "
                        "test clips are decoded into memory")
    p.set_defaults(func=_evaluate, outputs=('out',), output_dirs=())
