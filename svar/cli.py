"""`svar <stage>`: one subcommand per stage of the benchmark chain, each a thin call into one module.

Stages, in the order the workflow runs them:
  download  fetch an official UCF101 / HMDB51 archive (resumable, verified)
  dataset   generate the synthetic dataset, or lay out UCF101 / HMDB51 from their archives
  pretrain-teacher  train the generated dataset's tiny CLIP teacher on captioned frames
  index     decode every video once; write the manifest and the exclusions
  splits    labeled / unlabeled / test roles for one (fraction, seed)
  teacher   open_clip features of every video and class-prompt embeddings, once per dataset
  train     train one (method, fraction, seed) run, or fit a teacher-only baseline
  evaluate  top-1 / top-5 / mean-class accuracy of a run on the test list
  aggregate metrics.csv, summary.csv and the top-1 plot from every run's metrics
  report    the paper's tables (CSV, Markdown, LaTeX), plots and an offline HTML report

and, for checking your own videos before indexing them:
  probe     decode each video; frames, fps, size, codec, decoder used, ok or the error
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _download(args):
    from .download import fetch_archive

    fetch_archive(args.archive, args.archives_dir, args.out_dir)


def _dataset(args):
    from .synthetic import DEFAULT_CLASSES, SyntheticSpec, generate

    if args.name != "synthetic":
        from .datasets import archive_paths, prepare

        prepare(args.name, args.archives or archive_paths(args.name, args.archives_dir), args.out)
        return

    if not 2 <= args.classes <= len(DEFAULT_CLASSES):
        sys.exit(f"svar dataset: --classes must be 2..{len(DEFAULT_CLASSES)}, got {args.classes}")
    generate(args.out, SyntheticSpec(size=args.size, groups=args.groups, clips_per_group=args.clips_per_group,
                                     test_groups=args.test_groups, pretrain_videos=args.pretrain_videos,
                                     seed=args.seed, classes=DEFAULT_CLASSES[:args.classes]))


def _pretrain_teacher(args):
    from .pretrain import pretrain

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
                args.lists_dir)


def _teacher(args):
    import pandas as pd

    from .manifest import load_manifest
    from .teacher import extract

    classes = pd.read_csv(args.classes)["class_name"].tolist()
    extract(load_manifest(args.manifest), classes, args.out, args.model, args.pretrained, args.frames,
            args.batch_size, args.workers, args.device, tuple(args.template))


def _train(args):
    from .manifest import load_manifest
    from .splits import load_split
    from .teacher import load_store
    from .trainer import train

    run_info = {"dataset": args.dataset, "fraction": args.fraction}
    train(load_manifest(args.manifest), load_split(args.split), load_store(args.teacher), args.method,
          json.loads(args.options), args.out, args.seed, run_info, args.threads, args.curve)


def _evaluate(args):
    from .evaluate import evaluate
    from .manifest import load_manifest
    from .splits import load_split
    from .teacher import load_store

    result = evaluate(args.model, load_manifest(args.manifest), load_split(args.split), load_store(args.teacher),
                      args.out, args.threads)
    logging.info("%s fraction %s seed %s: top1 %.3f top5 %.3f mean-class %.3f", result["method"],
                 result["fraction"], result["seed"], result["top1"], result["top5"], result["mean_class"])


def _report(args):
    from .report import main_report

    sys.exit(main_report(args.metrics, args.runs_dir, args.out_dir, args.published, args.run))


def _bench(args):
    if args.what == "teacher":
        from .teacher_bench import main_bench_teacher

        main_bench_teacher(args.config)
    else:
        from .bench import main_bench_train

        main_bench_train(args.config)


def _probe(args):
    from .probe import main_probe

    sys.exit(main_probe(args.paths, args.csv, args.workers))


def _aggregate(args):
    from .aggregate import aggregate

    aggregate(args.metrics, args.metrics_out, args.summary_out, args.plot_out, args.summary_json_out,
              args.top1_csv_out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svar", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")

    p = sub.add_parser("download", help="fetch one official dataset archive, verified",
                       description="Download a known archive (UCF101.rar, UCF101TrainTestSplits-RecognitionTask.zip, "
                                   "UCF101_videos.zip, hmdb51_org.rar, test_train_splits.rar) into --out-dir: "
                                   "resumable (HTTP Range), retried with back-off, checksum-verified, written "
                                   "atomically. With --archives-dir holding the file, it is verified and used "
                                   "without touching the network.")
    p.add_argument("--archive", required=True, help="archive file name")
    p.add_argument("--out-dir", default="data/archives")
    p.add_argument("--archives-dir", default=None, help="folder of archives already on disk")
    p.set_defaults(func=_download)

    p = sub.add_parser("dataset", help="generate the synthetic dataset, or lay out UCF101 / HMDB51",
                       description="Write <out>/videos/<Class>/<video>.avi and <out>/splits/{classInd,trainlist0k,"
                                   "testlist0k}.txt in UCF101's format. synthetic: generated (MPEG-4 in AVI, 25 "
                                   "fps, plus <out>/pretrain/, captioned videos for the teacher; same seed, same "
                                   "bytes). ucf101, hmdb51: extracted from the official archives (checksums "
                                   "verified; HMDB51's split files converted).")
    p.add_argument("--name", default="synthetic", choices=["synthetic", "ucf101", "hmdb51"])
    p.add_argument("--archives", nargs=2, default=None, metavar=("VIDEOS", "SPLITS"),
                   help="ucf101/hmdb51: the video archive and the split archive")
    p.add_argument("--archives-dir", default="data/archives",
                   help="ucf101/hmdb51: folder holding the official archives (when --archives is not given)")
    p.add_argument("--out", required=True, help="output folder, e.g. data/synthetic")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--classes", type=int, default=10, help="how many of the built-in classes (first N)")
    p.add_argument("--size", type=int, default=64, help="frame width and height in pixels")
    p.add_argument("--groups", type=int, default=10, help="groups per class (gXX)")
    p.add_argument("--clips-per-group", type=int, default=4, help="clips per group (cYY)")
    p.add_argument("--test-groups", type=int, default=3, help="groups 1..N form the test list")
    p.add_argument("--pretrain-videos", type=int, default=240, help="captioned videos for teacher pretraining")
    p.set_defaults(func=_dataset)

    p = sub.add_parser("pretrain-teacher", help="train the generated dataset's tiny CLIP teacher",
                       description="Contrastive (CLIP) training of an open_clip model on the (frame, caption) "
                                   "pairs of <pool> (captions.csv + videos, written by `svar dataset`), with "
                                   "open_clip's tokenizer and ClipLoss. Output: a state dict that "
                                   "`svar teacher --pretrained <out>` loads like any open_clip checkpoint file.")
    p.add_argument("--pool", required=True, help="captioned pool folder, e.g. data/synthetic/pretrain")
    p.add_argument("--out", required=True, help="checkpoint file")
    p.add_argument("--model", default="svar-tiny-clip", help="open_clip model name")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64, help="(frame, caption) pairs per step")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--curve", default=None, help="CSV of the contrastive loss per step")
    p.set_defaults(func=_pretrain_teacher)

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
    p.set_defaults(func=_index)

    p = sub.add_parser("splits", help="labeled / unlabeled / test roles for one fraction and seed",
                       description="Class-balanced labeled subset of the official train split: "
                                   "ceil(fraction × N_train / C) per class, at least one; the rest unlabeled; "
                                   "test = the official test list. Output CSV: video_id, label, role.")
    p.add_argument("--manifest", required=True)
    p.add_argument("--fraction", type=float, required=True, help="labeled fraction in (0, 1]")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--split", type=int, default=1, help="official split number (1..3)")
    p.add_argument("--convention", default="balanced", choices=["balanced", "random", "videossl", "svformer"],
                   help="balanced: k per class (SVFormer's); random: a seeded random draw (VideoSSL's); "
                        "videossl / svformer: import the lists those papers published (--lists-dir)")
    p.add_argument("--lists-dir", default=None, help="folder of published lists, for videossl / svformer")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_splits)

    p = sub.add_parser("teacher", help="teacher features of every video, once per dataset",
                       description="Encode k uniform frames per decodable video with an open_clip image encoder, "
                                   "and the class-name prompts with its text encoder. Output (torch file, loaded "
                                   "with weights_only): video_ids, frame_features float16 [N, k, D], "
                                   "text_embeddings [C, D], logit_scale, meta. bf16 on CUDA, fp32 on CPU.")
    p.add_argument("--manifest", required=True)
    p.add_argument("--classes", required=True, help="class list written by `svar index`")
    p.add_argument("--out", required=True)
    p.add_argument("--model", required=True, help="open_clip model name, e.g. ViT-B-32 or svar-tiny-clip")
    p.add_argument("--pretrained", default="none",
                   help="open_clip pretrained tag, checkpoint file, or 'none' for random weights")
    p.add_argument("--frames", type=int, default=8, help="frames per video (uniform)")
    p.add_argument("--batch-size", type=int, default=32, help="videos per batch")
    p.add_argument("--workers", type=int, default=0, help="decoding worker processes")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--template", action="append", default=None,
                   help="prompt template with {} for the class words (repeatable)")
    p.set_defaults(func=_teacher)

    p = sub.add_parser("train", help="train one (method, fraction, seed) run",
                       description="Train a student with the method's loss, or fit a teacher-only baseline "
                                   "(clip_zeroshot, clip_linear_probe). Output: a checkpoint, and the training "
                                   "curve (step, lr, loss and each loss term) as CSV.")
    p.add_argument("--manifest", required=True)
    p.add_argument("--split", required=True, help="split table from `svar splits`")
    p.add_argument("--teacher", required=True, help="feature store from `svar teacher`")
    p.add_argument("--method", required=True)
    p.add_argument("--options", required=True,
                   help="JSON with the config sections student, train, distill, pseudo_label, linear_probe, evaluate")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dataset", required=True, help="dataset name, recorded in the results")
    p.add_argument("--fraction", type=float, required=True, help="labeled fraction, recorded in the results")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True, help="checkpoint file")
    p.add_argument("--curve", default=None, help="training-curve CSV (default: <out>.curve.csv)")
    p.set_defaults(func=_train)

    p = sub.add_parser("evaluate", help="accuracy of one run on the test list",
                       description="Top-1, top-5 and mean-class accuracy of the final model on the split's test "
                                   "videos, with per-class accuracy, predictions and provenance, as JSON.")
    p.add_argument("--model", required=True, help="checkpoint from `svar train`")
    p.add_argument("--manifest", required=True)
    p.add_argument("--split", required=True)
    p.add_argument("--teacher", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", required=True)
    p.set_defaults(func=_evaluate)

    p = sub.add_parser("aggregate", help="metrics.csv, summary.csv and the top-1 plot",
                       description="Long table (dataset, method, fraction, seed, metric, value), summary (mean, "
                                   "std, n_seeds over seeds) and a seaborn plot of top-1 against fraction.")
    p.add_argument("metrics", nargs="+", help="metrics JSON files from `svar evaluate`")
    p.add_argument("--metrics-out", required=True)
    p.add_argument("--summary-out", required=True)
    p.add_argument("--plot-out", required=True)
    p.add_argument("--summary-json-out", default=None, help="the summary as nested JSON (dvc metrics)")
    p.add_argument("--top1-csv-out", default=None, help="mean top-1 per fraction, a column per method (dvc plots)")
    p.set_defaults(func=_aggregate)
    p = sub.add_parser("report", help="tables, plots and an offline HTML report from metrics.csv",
                       description="Summary table (mean ± std over seeds; top-1, top-5, mean-class) as CSV, "
                                   "Markdown and LaTeX (booktabs); accuracy against fraction with a band for "
                                   "seeds and published results beside ours; per-class accuracy and confusion "
                                   "matrix of one run; training curves; provenance; report.html (self-contained).")
    p.add_argument("--metrics", default="results/metrics.csv")
    p.add_argument("--runs-dir", default="results", help="folder searched for the runs' metrics.json")
    p.add_argument("--out-dir", default="results/report")
    p.add_argument("--published", default=None, help="published-results CSV (default: the one svar ships)")
    p.add_argument("--run", default=None, help="the run for per-class and confusion plots: method/fraction/seed")
    p.set_defaults(func=_report)

    p = sub.add_parser("bench", help="throughput: the data path against the compute it feeds",
                       description="teacher: decode-only, encode-only and extraction-pipeline videos/s on the "
                                   "default run's videos; train: model-only and real-data-path training clips/s. "
                                   "Both measured side by side in one run; the last line reads `ratio <value>`.")
    p.add_argument("what", choices=["teacher", "train"])
    p.add_argument("--config", default="workflow/config/config.yaml")
    p.set_defaults(func=_bench)

    p = sub.add_parser("probe", help="check videos: frames, fps, size, codec, decoder, ok or the error",
                       description="Decode each video (files, or folders searched for video files) the way "
                                   "`svar index` does and print one row per video, then 'N videos, K "
                                   "decodable'. Exit status 0 even when some videos fail.")
    p.add_argument("paths", nargs="+", help="video files or folders")
    p.add_argument("--csv", action="store_true", help="CSV on stdout (the summary line goes to stderr)")
    p.add_argument("--workers", type=int, default=1, help="decoding processes")
    p.set_defaults(func=_probe)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "template", "unset") is None:
        from .teacher import DEFAULT_TEMPLATES

        args.template = list(DEFAULT_TEMPLATES)
    args.func(args)


if __name__ == "__main__":
    main()
