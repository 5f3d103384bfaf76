"""`svar <stage>`: one subcommand per stage of the benchmark chain, each a thin call into one module.

Stages, in the order the workflow runs them:
  download  fetch an official UCF101 / HMDB51 archive (resumable, verified)
  dataset   generate the synthetic dataset, or lay out UCF101 / HMDB51 from their archives
  pretrain-teacher  train the generated dataset's tiny CLIP teacher on captioned frames
  index     decode every video once; write the manifest and the exclusions
  splits    labeled / unlabeled / test roles for one (fraction, seed)
  teacher-weights  download an open_clip teacher's weights into a cache (where there is internet)
  student-weights  download a student's torchvision weights into student.weights_dir (where there is internet)
  fetch-weights  every weights file a config needs, at once (where there is internet); --list: what to copy by hand
  teacher   open_clip features of every video (or one shard of them) and class-prompt embeddings
  teacher-gather  merge the teacher's shards into the one feature store every run reads
  clip-cache  decode one shard of the frames training or evaluation reads, once, to disk
  clip-cache-gather  check a clip cache's shards; write the receipt train and evaluate read
  train     train one (method, fraction, seed) run, or fit a teacher-only baseline
  evaluate  top-1 / top-5 / mean-class accuracy of runs on the test list (a method's runs at once)
  aggregate metrics.csv and summary.csv from every run's metrics
  report    the paper's tables (CSV, Markdown, LaTeX), plots and an offline HTML report
  verify    check a results folder's files against their records (size, checksum)

and, beside them:
  probe     decode each video; frames, fps, size, codec, decoder used, ok or the error
  config    the workflow's resolved configuration (defaults, config.yaml, overlays)
  bench     throughput of the teacher's and the trainer's data paths

Every default below is the config's (svar/data/config.schema.yaml), so a stage run by hand
does what the workflow does with the default config.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from .config import default, description
from .options_check import check_options, json_object
from .registry import lazy_choices


def schema_help(key: str) -> str:
    """A config key's schema description as argparse help text: argparse %-formats help (for
    %(default)s), so a literal % in a description is doubled."""
    return description(key).replace("%", "%%")


def _download(args):
    from .download import fetch_archive

    fetch_archive(args.archive, args.archives_dir, args.out_dir)


def _dataset(args):
    from .datasets import DATASETS, archive_paths, prepare
    from .datasets.synthetic import SyntheticSpec, generate, spec_classes

    if args.root:
        from .datasets.user import lay_out

        lay_out(args.root, args.out, args.split)
        return
    if args.extracted:
        from .datasets import prepare_extracted

        prepare_extracted(args.name, args.extracted, args.out)
        return
    if not DATASETS[args.name].generated:
        prepare(args.name, args.archives or archive_paths(args.name, args.archives_dir), args.out)
        return

    generate(args.out, SyntheticSpec(size=args.size, groups=args.groups, clips_per_group=args.clips_per_group,
                                     test_groups=args.test_groups, pretrain_videos=args.pretrain_videos,
                                     seed=args.seed, classes=spec_classes(args.classes), width=args.width,
                                     height=args.height, min_frames=args.min_frames, max_frames=args.max_frames),
             workers=args.workers)


def _pretrain_teacher(args):
    from .teacher.pretrain import pretrain

    pretrain(args.pool, args.out, args.model, args.steps, args.batch_size, args.lr, args.weight_decay, args.seed,
             args.device, args.threads, args.curve)


def _index(args):
    from .manifest import write_index

    write_index(f"{args.root}/videos", f"{args.root}/splits", args.manifest, args.exclusions, args.classes,
                args.workers)


def _splits(args):
    from .manifest import load_manifest
    from .splits import write_split

    write_split(load_manifest(args.manifest), args.fraction, args.seed, args.out, args.split, args.convention,
                args.lists_dir, args.pool, args.val_per_class, args.info_out)


def _teacher_weights(args):
    from .teacher.weights import weights_receipt

    weights_receipt(args.model, args.pretrained, args.cache_dir or None, args.out)


def _student_weights(args):
    from .student_weights import weights_receipt

    weights_receipt(args.arch, args.pretrained, args.weights_dir, args.out)


def _fetch_weights(args):
    from .config import load_workflow_config
    from .weights_files import fetch_all, required, table

    config = load_workflow_config(*args.configfile)
    if args.list:
        entries = required(config)
        print(table(entries).rstrip("\n") if entries else "nothing to download: no teacher tag or hf-hub model, no "
                                                           "torchvision student weights in this config")
        return
    receipts = fetch_all(config)
    logging.info("%d receipt(s): %s", len(receipts), " ".join(receipts) or "none (nothing to download)")


def _teacher(args):
    from .input_checks import teacher_job_warnings
    from .manifest import load_manifest
    from .readers import read_csv
    from .teacher.features import extract, extract_shard
    from .teacher.sampling import sampling_from_config

    classes = read_csv(args.classes, "class list", "index")["class_name"].tolist()
    sampling = sampling_from_config({"mode": args.sampling, "frames": args.frames, "fps": args.fps, "clips": args.clips})
    common = dict(frames_per_video=args.frames, sampling=sampling, batch_size=args.batch_size, workers=args.workers,
                  device=args.device, templates=args.templates, cache_dir=args.cache_dir or None,
                  offline=True if args.offline else None,
                  threads=args.threads if args.job_threads is None else max(1, args.job_threads - args.workers))
    if (args.out is None) == (args.shard is None) or (args.shard is not None and args.out_dir is None):
        raise ValueError("give either --out (one store) or --shard with --shards and --out-dir")
    if args.out is not None:
        extract(load_manifest(args.manifest, videos=True), classes, args.out, args.model, args.pretrained, **common)
    else:
        manifest = load_manifest(args.manifest, videos=True)
        teacher_job_warnings(args.shards, manifest)
        extract_shard(manifest, args.shard, args.shards, args.out_dir, args.model, args.pretrained, classes, **common)


def _teacher_gather(args):
    from .teacher.features import gather

    store = gather(args.shards, args.out, record_parts=True)
    logging.info("%s: %d videos from %d shards", args.out, len(store["video_ids"]), len(args.shards))


def _train_reads(args):
    """What `svar train --options` must hold: the keys the method's training reads (the function
    svar.methods.options_for builds them with)."""
    from .methods import METHODS

    from .config import merge

    options = None if args.options is None else merge(args.options, args.run_options)
    return "--options", options, f"method {args.method}'s training", METHODS[args.method].reads


def _clip_cache_reads(args):
    """What `svar clip-cache --options` must hold: the keys that decide a part's cached pixels."""
    from .clips.cache_parts import cache_reads

    return "--options", args.options, f"the clip cache's {args.part} part", lambda c: cache_reads(c, args.part)


def _plan_reads(args):
    """What `svar plan --config-json` (rule plan) must hold: the keys a plan reads."""
    from .plan import plan_reads

    return "--config-json", args.config_json, "svar plan", plan_reads


def _train(args):
    from .config import merge
    from .input_checks import train_job_warnings
    from .manifest import load_manifest
    from .read_tracking import tracked
    from .readers import read_json
    from .splits import load_split
    from .teacher.store import load_store
    from .trainer import train

    # checked by main (_train_reads); the keys that decide how the run goes, not its result
    # (x-reruns: false), come beside them
    options = tracked(merge(args.options, args.run_options), "train")
    run_info = {"dataset": args.dataset, "fraction": args.fraction}
    if args.split_info:  # how the split was made (svar splits --info-out): recorded with every number
        run_info["split"] = read_json(args.split_info, "split info", "splits")
    manifest, split = load_manifest(args.manifest, videos=True), load_split(args.split)
    train_job_warnings(args.options, split, manifest)  # not the run's reads
    train(manifest, split, load_store(args.teacher), args.method, options, args.out, args.seed, run_info, args.threads,
          args.curve, clips=args.clip_cache, pseudo_labels_out=args.pseudo_labels)


def _clip_cache(args):
    from .clips.shards import build_shard
    from .input_checks import clip_cache_job_warnings
    from .manifest import load_manifest
    from .read_tracking import tracked

    manifest = load_manifest(args.manifest, videos=True)
    clip_cache_job_warnings(args.options, args.part, args.shards, manifest)
    build_shard(manifest, args.part, tracked(args.options, "clip-cache"), args.shard, args.shards, args.out,
                args.chunk, args.workers, args.memory_mb)


def _clip_cache_gather(args):
    from .clips.receipt import gather

    receipt = gather(args.shards, args.out)
    logging.info("%s: %d videos, %d frames, %.1f MB in %d shards", args.out, receipt["videos"], receipt["rows"],
                 receipt["bytes"] / 1e6, len(receipt["shards"]))


def _verify(args):
    from .receipts import main_verify

    if args.folder is None:
        from .config import load_workflow_config, results_dir

        args.folder = results_dir(load_workflow_config(*args.configfile))
    sys.exit(main_verify(args.folder))


def _evaluate(args):
    from .evaluate import evaluate_runs, evaluate_settings
    from .manifest import load_manifest
    from .teacher.store import load_store

    if not len(args.model) == len(args.split) == len(args.out):
        raise ValueError(f"{len(args.model)} --model, {len(args.split)} --split and {len(args.out)} "
                         "--out given; give one of each per run, in the same order")
    runs = list(zip(args.model, args.split, args.out))
    settings = evaluate_settings(args.clips, args.batch_size, args.device, args.crops)
    for result in evaluate_runs(runs, load_manifest(args.manifest, videos=True), load_store(args.teacher), args.threads,
                                settings, args.clip_cache):
        top5 = "missing" if result["top5"] is None else f"{result['top5']:.3f}"
        logging.info("%s fraction %s seed %s: top1 %.3f top5 %s mean-class %.3f", result["method"],
                     result["fraction"], result["seed"], result["top1"], top5, result["mean_class"])


def _sweep(args):
    from .sweep import format_sweep, sweep

    rows = sweep(args.config, args.method, args.fraction, args.set, args.seeds, args.threads)
    print(format_sweep(rows, args.method, args.fraction))


def _report(args):
    from .report import main_report

    sys.exit(main_report(args.metrics, args.runs, args.out_dir, args.published, args.run, args.benchmarks, args.plan))


def _plan(args):
    from .plan import RATES_PATH, main_plan

    main_plan(args.configfile, args.device, args.rates or RATES_PATH, args.out, args.config_json, args.manifest)


def _bench(args):
    if args.what == "teacher":
        from .bench_teacher import main_bench_teacher

        main_bench_teacher(args.configfile, rounds=args.rounds, workers=args.workers, batch_size=args.batch_size,
                           model=args.model)
    elif args.what == "train":
        from .bench_train import main_bench_train

        main_bench_train(args.configfile, method=args.method, prefetch=args.prefetch)
    else:
        from .bench_scale import main_bench_scale

        main_bench_scale(args.configfile or ["workflow/config/scale.yaml"], args.videos, args.threads, args.work,
                         args.rates, args.model)


def _config(args):
    from .config import load_workflow_config, schema, show

    print(show(schema() if args.schema else load_workflow_config(*args.configfile)), end="")


def _probe(args):
    from .probe import main_probe

    sys.exit(main_probe(args.paths, args.csv, args.workers))


def _aggregate(args):
    from .aggregate import aggregate

    aggregate(args.metrics, args.metrics_out, args.summary_out, args.summary_json_out, args.top1_csv_out)


def add_configfile(p: argparse.ArgumentParser) -> None:
    """--configfile: the workflow's config with overlays, as the subcommands that read a whole
    config take it (plan, fetch-weights, bench)."""
    p.add_argument("--configfile", nargs="*", default=[],
                   help="config overlays over workflow/config/config.yaml, as given to snakemake --configfile")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svar", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="debug logging, and a traceback behind any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = sub.add_parser("download", help="fetch one official dataset archive, verified",
                       description="Download a known archive (UCF101.rar, UCF101TrainTestSplits-RecognitionTask.zip, "
                                   "UCF101_videos.zip, hmdb51_org.rar, test_train_splits.rar) into --out-dir: "
                                   "resumable (HTTP Range), retried with back-off, checksum-verified, written "
                                   "atomically. With --archives-dir holding the file, it is verified and used "
                                   "without touching the network.")
    p.add_argument("--archive", required=True, **lazy_choices("archive", "ARCHIVE"),
                   help="archive file name, one a registered dataset is built from: %(choices)s")
    p.add_argument("--out-dir", default="data/archives")
    p.add_argument("--archives-dir", default=None, help="folder of archives already on disk")
    p.set_defaults(func=_download, outputs=(), output_dirs=('out_dir',))

    p = sub.add_parser("dataset", help="generate the synthetic dataset, lay out UCF101 / HMDB51 or your own videos",
                       description="Write <out>/videos/<Class>/<video>.avi and <out>/splits/{classInd,trainlist0k,"
                                   "testlist0k}.txt in UCF101's format. synthetic: generated (MPEG-4 in AVI, 25 "
                                   "fps, plus <out>/pretrain/, captioned videos for the teacher; same seed, same "
                                   "bytes). ucf101, hmdb51: extracted from the official archives (checksums "
                                   "verified; HMDB51's split files converted). --root: your own videos, a folder "
                                   "in that layout (<out>/videos and <out>/splits become symlinks to its own) or a "
                                   "CSV with the header path,label,split (a symlink per video, split 1's lists "
                                   "written); the videos stay where they are.")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--name", default=default("dataset.name"), **lazy_choices("dataset", "DATASET"))
    source.add_argument("--root", default=None, help="your own videos: a folder in UCF101's layout, or a CSV "
                                                      "path,label,split (README, \"Your own videos\")")
    p.add_argument("--split", type=int, default=None,
                   help="--root folder: it must hold this split's lists (default: any split's)")
    p.add_argument("--archives", nargs=2, default=None, metavar=("VIDEOS", "SPLITS"),
                   help="ucf101/hmdb51: the video archive and the split archive")
    p.add_argument("--archives-dir", default="data/archives",
                   help="ucf101/hmdb51: folder holding the official archives (when --archives is not given)")
    p.add_argument("--extracted", default=None, metavar="FOLDER",
                   help=f"ucf101/hmdb51: {schema_help('dataset.extracted_dir')}")
    p.add_argument("--out", required=True, help="output folder, e.g. data/synthetic")
    for key in ("seed", "classes", "size", "width", "height", "min_frames", "max_frames", "groups", "clips_per_group",
                "test_groups", "pretrain_videos"):
        p.add_argument(f"--{key.replace('_', '-')}", type=int, default=default(f"dataset.synthetic.{key}"),
                       help=f"synthetic: {schema_help(f'dataset.synthetic.{key}')} (default %(default)s)")
    p.add_argument("--workers", type=int, default=1,
                   help="synthetic: processes writing videos (the same bytes with any number)")
    p.set_defaults(func=_dataset, outputs=(), output_dirs=('out',))

    p = sub.add_parser("pretrain-teacher", help="train the generated dataset's tiny CLIP teacher",
                       description="Contrastive (CLIP) training of an open_clip model on the (frame, caption) "
                                   "pairs of <pool> (captions.csv + videos, written by `svar dataset`), with "
                                   "open_clip's tokenizer and ClipLoss. Output: a state dict that "
                                   "`svar teacher --pretrained <out>` loads like any open_clip checkpoint file.")
    p.add_argument("--pool", required=True, help="captioned pool folder, e.g. data/synthetic/pretrain")
    p.add_argument("--out", required=True, help="checkpoint file")
    p.add_argument("--model", default=default("teacher.model"), help="open_clip model name (default %(default)s)")
    for key, kind in (("steps", int), ("batch_size", int), ("lr", float), ("weight_decay", float), ("seed", int)):
        p.add_argument(f"--{key.replace('_', '-')}", type=kind, default=default(f"pretrain_teacher.{key}"),
                       help=f"{schema_help(f'pretrain_teacher.{key}')} (default %(default)s)")
    p.add_argument("--device", default=default("teacher.device"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--curve", default=None, help="CSV of the contrastive loss per step")
    p.set_defaults(func=_pretrain_teacher, outputs=('out', 'curve'), output_dirs=())

    p = sub.add_parser("index", help="decode every video; write manifest and exclusions",
                       description="Read <root>/splits (UCF101 format) and decode every video under <root>/videos "
                                   "once. Writes the manifest (path, class, label, splitK membership, frames "
                                   "decoded, fps, size, codec, decoder, decodes, error), the exclusions (videos "
                                   "no decoder reads, with the reason) and the class list.")
    p.add_argument("--root", required=True, help="dataset folder holding videos/ and splits/")
    p.add_argument("--manifest", required=True, help="output CSV")
    p.add_argument("--exclusions", required=True, help="output CSV of undecodable videos")
    p.add_argument("--classes", required=True, help="output CSV: label, class_name")
    p.add_argument("--workers", type=int, default=1, help="decoding processes")
    p.set_defaults(func=_index, outputs=('manifest', 'exclusions', 'classes'), output_dirs=())

    p = sub.add_parser("splits", help="labeled / unlabeled / val / test roles for one fraction and seed",
                       description="The labeled videos of one fraction under a split convention (drawn from "
                                   "the pool with the seed, or a paper's published lists), validation videos "
                                   "held out of the rest, the rest unlabeled; test = the official test list. "
                                   "Output CSV: video_id, label, role.")
    p.add_argument("--manifest", required=True)
    p.add_argument("--fraction", type=float, required=True, help="labeled fraction in (0, 1]")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--split", type=int, default=default("dataset.split"), help="official split number (1..3)")
    p.add_argument("--convention", default=default("dataset.split_convention"),
                   **lazy_choices("split_convention", "CONVENTION"), help=schema_help("dataset.split_convention"))
    p.add_argument("--lists-dir", default=None, help="folder of published lists, for the conventions that import them")
    p.add_argument("--pool", default=default("dataset.pool"), **lazy_choices("pool", "POOL"),
                   help=schema_help("dataset.pool"))
    p.add_argument("--val-per-class", type=int, default=default("dataset.val_per_class"),
                   help=schema_help("dataset.val_per_class"))
    p.add_argument("--out", required=True)
    p.add_argument("--info-out", default=None,
                   help="output JSON: how the split was made (convention, list source and sha256, counts)")
    p.set_defaults(func=_splits, outputs=('out', 'info_out'), output_dirs=())

    p = sub.add_parser("teacher-weights", help="download a teacher's weights into a cache folder",
                       description="Fetch the weights of an open_clip model (a pretrained tag, or an hf-hub: "
                                   "model) into --cache-dir, where `svar teacher --offline --cache-dir` then finds "
                                   "them without the network. Run where there is internet (a login node). Writes "
                                   "a JSON receipt: model, pretrained, file, size, sha256. Checkpoint files, "
                                   "local-dir: folders and random weights need no download.")
    p.add_argument("--model", required=True)
    p.add_argument("--pretrained", default="none")
    p.add_argument("--cache-dir", default=default("teacher.cache_dir"),
                   help="where the weights go (default %(default)s; '' = open_clip's default cache)")
    p.add_argument("--out", required=True, help="the receipt (JSON)")
    p.set_defaults(func=_teacher_weights, outputs=('out',), output_dirs=())

    p = sub.add_parser("student-weights", help="download a student's torchvision weights into a folder",
                       description="Fetch the torchvision weights student.pretrained names for the arch "
                                   "(kinetics400: its Kinetics-400 weights; imagenet: ResNet-18's ImageNet weights, "
                                   "which training inflates) into --weights-dir under torchvision's file name, "
                                   "verified against the sha256 prefix that name carries; a file already there is "
                                   "verified and kept. Run where there is internet (a login node): training reads "
                                   "the folder offline. Writes a JSON receipt: weights, url, file, bytes, sha256.")
    p.add_argument("--arch", required=True, **lazy_choices("student", "ARCH"),
                   help="student.arch: %(choices)s")
    p.add_argument("--pretrained", required=True,
                   help="student.pretrained, naming torchvision's weights (kinetics400 or imagenet)")
    p.add_argument("--weights-dir", default=default("student.weights_dir"),
                   help=f"{schema_help('student.weights_dir')} (default %(default)s)")
    p.add_argument("--out", required=True, help="the receipt (JSON)")
    p.set_defaults(func=_student_weights, outputs=('out',), output_dirs=('weights_dir',))

    p = sub.add_parser("fetch-weights", help="fetch every weights file a config needs (where there is internet)",
                       description="Download each teacher's open_clip weights (`teacher`, `teachers:`) into "
                                   "teacher.cache_dir and the student's torchvision weights (student.pretrained "
                                   "kinetics400, imagenet) into student.weights_dir, as rules teacher_weights and "
                                   "student_weights do, writing their receipts (results/teacher_weights/, "
                                   "results/student_weights/: Snakemake then finds them done). Run it on a login "
                                   "node with internet from the checkout's root; compute nodes read the folders "
                                   "offline. --list prints, for each file, its place, the URL to copy it from and "
                                   "its published checksum, without the network: for a machine that has none.")
    add_configfile(p)
    p.add_argument("--list", action="store_true",
                   help="print the files as a Markdown table (file, folder, URL, sha256) instead of fetching them")
    p.set_defaults(func=_fetch_weights, outputs=(), output_dirs=())

    p = sub.add_parser("teacher", help="teacher features of every video (or of one shard), once per dataset",
                       description="Encode sampled frames of each decodable video with an open_clip image encoder, "
                                   "and the class-name prompts with its text encoder. Decoding runs in --workers "
                                   "processes overlapped with encoding; bf16 on CUDA, fp32 on CPU. With --out: one "
                                   "store (torch file, loaded with weights_only): video_ids, frame_features "
                                   "float16 [N, k, D], text_embeddings [C, D], logit_scale, meta (model, weights, "
                                   "sampling, templates). With --shard I --shards N --out-dir D: the I-th of N "
                                   "shards as D/shard_III_of_NNN.pt, resumable (finished chunks are kept in "
                                   "D/shard_III_of_NNN.parts/ and skipped on a rerun); `svar teacher-gather` "
                                   "merges the shards.")
    p.add_argument("--manifest", required=True)
    p.add_argument("--classes", required=True, help="class list written by `svar index`")
    p.add_argument("--out", default=None, help="the feature store (all videos, one job)")
    p.add_argument("--shard", type=int, default=None, help="this job's shard, 0..N-1")
    p.add_argument("--shards", type=int, default=1, help="N: the videos are split over N shard jobs")
    p.add_argument("--out-dir", default=None, help="folder of the shard files")
    p.add_argument("--model", required=True,
                   help="open_clip model name (ViT-B-32, svar-tiny-clip ...), local-dir:PATH or hf-hub:ORG/REPO")
    p.add_argument("--pretrained", default="none",
                   help="open_clip pretrained tag, checkpoint file, or 'none' for random weights")
    p.add_argument("--cache-dir", default=default("teacher.cache_dir"),
                   help="where tag / hf-hub weights are cached (`svar teacher-weights`; default %(default)s)")
    p.add_argument("--offline", action="store_true",
                   help="never touch the network: weights come from the cache or a file, else a clear error")
    p.add_argument("--sampling", default=default("teacher.sampling.mode"), **lazy_choices("sampling_mode", "MODE"),
                   help=schema_help("teacher.sampling.mode"))
    for key, kind in (("frames", int), ("fps", float), ("clips", int)):
        p.add_argument(f"--{key}", type=kind, default=default(f"teacher.sampling.{key}"),
                       help=f"{schema_help(f'teacher.sampling.{key}')} (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=default("teacher.batch_size"), help="videos per batch")
    p.add_argument("--workers", type=int, default=default("teacher.workers"), help=schema_help("teacher.workers"))
    threads = p.add_mutually_exclusive_group()
    threads.add_argument("--threads", type=int, default=None, help="torch threads for the encoder (default: torch's)")
    threads.add_argument("--job-threads", type=int, default=None,
                         help="the job's cores, its decoding workers included: the encoder gets what --workers "
                              "leave, at least one (what rule teacher_shard passes)")
    p.add_argument("--device", default=default("teacher.device"), help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--templates", nargs="+", default=default("teacher.templates"),
                   help="prompt templates, each with one {} for the class words, or the name of a stored prompt "
                        "set (svar/data/prompts/: clip_ucf101 ...); default %(default)s")
    p.set_defaults(func=_teacher, outputs=('out',), output_dirs=('out_dir',))

    p = sub.add_parser("teacher-gather", help="merge the teacher's shards into one feature store",
                       description="Check that the shards come from one manifest and one teacher configuration "
                                   "and cover every video once; write the store `svar teacher --out` would.")
    p.add_argument("shards", nargs="+", help="shard files from `svar teacher --shard`")
    p.add_argument("--out", required=True)
    # its record carries each shard's (features.gather)
    p.set_defaults(func=_teacher_gather, outputs=('out',), output_dirs=(), records_itself=True)

    p = sub.add_parser("clip-cache", help="decode one shard of a clip cache to disk, resumably",
                       description="Decode the frames a part's jobs read (train: the videos outside the test list, "
                                   "the frames training clips and the validation view are drawn from; test: the "
                                   "test list's test clips) of every --shards-th video from the --shard-th, into "
                                   "one .npy file (uint8 [frames, H, W, 3]) and its .index.npz, chunk by chunk "
                                   "(resumed after a kill at the first unfinished chunk; peak memory one chunk).")
    p.add_argument("--manifest", required=True)
    p.add_argument("--part", required=True, choices=["train", "test"])
    p.add_argument("--options", required=True, type=json_object,
                   help="JSON: the config keys that decide the cached pixels (svar.clip_cache.cache_reads)")
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

    p = sub.add_parser("clip-cache-gather", help="check a clip cache's shards; write its receipt",
                       description="Check that the shards are complete and of one part and one set of options; "
                                   "write the receipt (JSON: shard files, videos, frames, bytes) that `svar train "
                                   "--clip-cache` and `svar evaluate --clip-cache` read.")
    p.add_argument("shards", nargs="+", help="shard files from `svar clip-cache`")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_clip_cache_gather, outputs=('out',), output_dirs=())

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
                   help="JSON: the config keys the method reads (svar.methods.options_for; the workflow passes them)")
    p.add_argument("--run-options", default={}, type=json_object,
                   help="JSON: the keys of those marked `x-reruns: false` in the schema (train.checkpoint_every), "
                        "which the workflow passes apart as no result depends on them")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dataset", required=True, help="dataset name, recorded in the results")
    p.add_argument("--fraction", type=float, required=True, help="labeled fraction, recorded in the results")
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

    p = sub.add_parser("aggregate", help="metrics.csv and summary.csv",
                       description="Long table (dataset, method, fraction, seed, metric, value) and summary (mean, "
                                   "std, n_seeds over seeds), with the summary's forms for DVC. Each run is checked "
                                   "first: its top1 and mean_class against those its own test predictions give, and "
                                   "given once (by path, and by dataset, teacher, method, fraction and seed).")
    p.add_argument("metrics", nargs="+", help="metrics JSON files from `svar evaluate`")
    p.add_argument("--metrics-out", required=True)
    p.add_argument("--summary-out", required=True)
    p.add_argument("--summary-json-out", default=None, help="the summary as nested JSON (dvc metrics)")
    p.add_argument("--top1-csv-out", default=None, help="mean top-1 per fraction, a column per method (dvc plots)")
    p.set_defaults(func=_aggregate, outputs=('metrics_out', 'summary_out', 'summary_json_out', 'top1_csv_out'), output_dirs=())
    p = sub.add_parser("report", help="tables, plots and an offline HTML report from metrics.csv",
                       description="Summary table (mean ± std over seeds; top-1, top-5, mean-class) as CSV, "
                                   "Markdown and LaTeX (booktabs); accuracy against fraction with a band for "
                                   "seeds and published results beside ours; per-class accuracy and confusion "
                                   "matrix of one run; training curves; provenance; report.html (self-contained).")
    p.add_argument("--metrics", required=True, nargs="+",
                   help="the long table from `svar aggregate` (results/<name>/metrics.csv), one per teacher of the "
                        "grid (results/<name>/teachers/<teacher>/metrics.csv): set side by side")
    p.add_argument("--runs", nargs="+", required=True,
                   help="every run's metrics.json from `svar evaluate` (its train_curve.csv beside it)")
    p.add_argument("--out-dir", required=True, help="the report's folder (results/<name>/report)")
    p.add_argument("--published", default=None, help="published-results CSV (default: the one svar ships)")
    p.add_argument("--run", default=None, help="the run for per-class and confusion plots: method/fraction/seed")
    p.add_argument("--benchmarks", default=None,
                   help="the folder of the jobs' Snakemake benchmark files (results/<name>/benchmarks): adds the "
                        "cost table per stage (cost.csv, cost.md)")
    p.add_argument("--plan", default=None,
                   help="the plan (`svar plan --out`, rule plan): its estimates beside the cost table's actual times")
    p.set_defaults(func=_report, outputs=(), output_dirs=('out_dir',))

    p = sub.add_parser("sweep", help="choose a setting on validation videos (never the test list)",
                       description="Train one method at one fraction for the config's seeds, as configured and "
                                   "with each --set alternative, on the workflow's splits, manifest and teacher "
                                   "features (run the workflow first), and print each variant's validation top-1, "
                                   "mean ± std over seeds. No test video is scored; the checkpoints are deleted.")
    p.add_argument("--config", nargs="*", default=[], help="the config's overlays (config.yaml is always read)")
    p.add_argument("--method", required=True, **lazy_choices("method", "METHOD"))
    p.add_argument("--fraction", type=float, required=True, help="a fraction of the config's grid")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="an alternative value of one setting (YAML), e.g. train.strong_area=[0.35,1.0]; repeatable")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="default: the config's seeds")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=_sweep, outputs=(), output_dirs=())

    p = sub.add_parser("plan", help="the jobs a config makes and their estimated cost, before anything runs",
                       description="For each stage: its jobs, its work (frames decoded, teacher frames, training "
                                   "clips, test views), the measured rate (svar/data/rates.csv, written by `svar "
                                   "bench scale`) and the estimated wall time, GPU- or CPU-hours and disk; a stage "
                                   "without a rate is unknown and names the command that measures it. With "
                                   "--device cuda, the estimated peak GPU memory of a train job. The dataset's "
                                   "shape: its manifest when `svar index` has run, else its settings or published "
                                   "counts.")
    add_configfile(p)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the GPU rules (teacher_shard, train, evaluate) run (default %(default)s)")
    p.add_argument("--rates", default=None, help="the rates file (default: svar's own, svar/data/rates.csv)")
    p.add_argument("--manifest", default=None, help="the dataset's manifest (default results/<name>/manifest.csv)")
    p.add_argument("--config-json", default=None, type=json_object,
                   help="the resolved config's keys as JSON (rule plan passes them)")
    p.add_argument("--out", default=None, help="the plan as CSV")
    p.set_defaults(func=_plan, outputs=('out',), output_dirs=(), options_reads=_plan_reads)

    p = sub.add_parser("bench", help="throughput: the data path against the compute it feeds",
                       description="teacher: decode-only, encode-only and extraction-pipeline videos/s on the "
                                   "default run's videos; train: model-only and real-data-path training clips/s. "
                                   "Both measured side by side in one run; the last line reads `ratio <value>`. "
                                   "scale: every stage's time and peak memory on N and 4N generated videos "
                                   "(default workflow/config/scale.yaml, UCF101-shaped) and their ratios; the last "
                                   "line reads `growth <value>`.")
    p.add_argument("what", choices=["teacher", "train", "scale"])
    add_configfile(p)
    p.add_argument("--model", default=None,
                   help="teacher, scale: another open_clip model than the config's, with random weights (the same "
                        "speed)")
    p.add_argument("--batch-size", type=int, default=None, help="teacher: videos per batch (default: the config's)")
    p.add_argument("--workers", type=int, default=None, help="teacher: decoding processes (default: the config's)")
    p.add_argument("--rounds", type=int, default=7, help="teacher: interleaved measurement rounds")
    p.add_argument("--method", default="distill", **lazy_choices("method", "METHOD"),
                   help="train: the method whose steps are timed (default %(default)s; clip_finetune times the "
                        "teacher's image encoder)")
    p.add_argument("--prefetch", choices=["on", "off", "auto"], default="on",
                   help="train: cut the next batch in a background thread while the step runs (on: the path "
                        "training takes on CUDA), build each in line (off: a CPU run's), or as this config's "
                        "training would (auto); default %(default)s")
    p.add_argument("--videos", type=int, default=400, help="scale: N, the smaller size (default %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="scale: each stage's threads (default %(default)s)")
    p.add_argument("--work", default=None, help="scale: folder for the videos and outputs (default: a temporary one)")
    p.add_argument("--rates", default=None, help="scale: write the measured rates into this rates file (svar plan)")
    p.set_defaults(func=_bench)

    p = sub.add_parser("config", help="the workflow's resolved configuration",
                       description="Print the configuration a workflow run with these overlays uses: the schema's "
                                   "defaults, then workflow/config/config.yaml, then each --configfile overlay "
                                   "(run from the checkout's root), validated. --schema prints the schema with the "
                                   "registries' names filled in.")
    p.add_argument("configfile", nargs="*", help="config overlays, as given to snakemake --configfile")
    p.add_argument("--schema", action="store_true", help="print the schema instead")
    p.set_defaults(func=_config)

    p = sub.add_parser("probe", help="check videos: frames, fps, size, codec, decoder, ok or the error",
                       description="Decode each video (files, or folders searched for video files) the way "
                                   "`svar index` does and print one row per video, then 'N videos, K "
                                   "decodable'. Exit status 0 even when some videos fail.")
    p.add_argument("paths", nargs="+", help="video files or folders")
    p.add_argument("--csv", action="store_true", help="CSV on stdout (the summary line goes to stderr)")
    p.add_argument("--workers", type=int, default=1, help="decoding processes")
    p.set_defaults(func=_probe)

    p = sub.add_parser("verify", help="check a results folder's files against their records",
                       description="Every file svar writes into a results folder has a record beside it "
                                   "(.<name>.record.json: size, SHA-256), written as the file is written. Check each "
                                   "against its file, as `dvc status` checks a cache, and name each file that is "
                                   "missing or differs (size, checksum): exit status 1 if any does, else 0 with "
                                   "'N files verified'.")
    p.add_argument("folder", nargs="?", default=None,
                   help="a results folder (default: results/<name> of the workflow config with --configfile's overlays)")
    p.add_argument("--configfile", nargs="*", default=[], help="config overlays, as given to snakemake --configfile")
    p.set_defaults(func=_verify)
    return parser


def expected_errors() -> tuple[type, ...]:
    """What bad input, a missing or corrupt file, a full disk or the network raise: said in one
    line. Anything else is a bug, shown with its traceback."""
    from .archives import ExtractionError
    from .download import DownloadError
    from .video import VideoDecodeError

    return OSError, ValueError, LookupError, ExtractionError, DownloadError, VideoDecodeError


def describe(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        text = str(exc.args[0])
        if text.isidentifier():  # a bare key, as a dict lookup raises it: say what it is
            return (f"{text!r} is missing from an input this command read (a file of another svar version, or "
                    "edited?); --debug shows where")
        return text
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        # a full disk, a missing folder, a permission: the OS's words and the path, not errno
        return f"{exc.strerror}: {exc.filename}"
    return str(exc) or type(exc).__name__


def check_outputs(files, folders=()) -> None:
    """Stop before any work when an output cannot be written: a file output is a folder, a
    folder output is a file, or a file stands where one of their folders would be."""
    for path, is_folder in [*((Path(f), False) for f in files), *((Path(d), True) for d in folders)]:
        if path.exists() and path.is_dir() != is_folder:
            kind = "file" if is_folder else "folder"
            raise ValueError(f"{path} is a {kind}; give a {'folder' if is_folder else 'file'} name for the output")
        for parent in path.parents:
            if parent.exists():
                if not parent.is_dir():
                    raise ValueError(f"cannot write {path}: {parent} is a file, not a folder")
                break


def record_outputs(files) -> None:
    """Each output file's record (svar.receipts), written once the stage has written it: what
    `svar verify` and the workflow's check before a run compare the file with."""
    from .receipts import record

    for path in files:
        if Path(path).is_file():
            record(path)


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose or args.debug else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    def paths(dests):
        values = [getattr(args, dest) for dest in dests]
        return [p for value in values if value for p in ([value] if isinstance(value, (str, Path)) else value)]

    try:
        check_outputs(paths(getattr(args, "outputs", ())), paths(getattr(args, "output_dirs", ())))
        if getattr(args, "options_reads", None):
            flag, options, what, reads = args.options_reads(args)
            if options is not None:
                check_options(options, reads, flag, what)
        args.func(args)
        if not getattr(args, "records_itself", False):
            record_outputs(paths(getattr(args, "outputs", ())))
    except expected_errors() as exc:
        if args.debug:
            raise
        # one line, as argparse says a bad option (exit status 2); --debug shows the traceback
        print(f"svar {args.command}: error: {describe(exc)}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
