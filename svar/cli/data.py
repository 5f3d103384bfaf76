"""The dataset stages' subcommands: download, dataset, index, splits, and probe beside them."""

from __future__ import annotations

import sys

from ..config import default, schema_properties
from ..registry import lazy_choices
from .common import add_budget_flags, add_schema_flags, schema_help


def _download(args):
    from ..datasets import fetch_archive

    fetch_archive(args.archive, args.archives_dir, args.out_dir)


def _dataset(args):
    from ..datasets import DATASETS, archive_paths, prepare
    from ..datasets.synthetic import SyntheticSpec, generate, spec_classes

    if args.root:
        from ..datasets.user import lay_out

        lay_out(args.root, args.out, args.split)
        return
    if args.extracted:
        from ..datasets import prepare_extracted

        prepare_extracted(args.name, args.extracted, args.out)
        return
    if not DATASETS[args.name].generated:
        prepare(args.name, args.archives or archive_paths(args.name, args.archives_dir), args.out)
        return

    # one --flag a dataset.synthetic key: the spec's fields, the classes a count of them
    settings = {key: getattr(args, key) for key in schema_properties("dataset.synthetic")}
    generate(args.out, SyntheticSpec(**{**settings, "classes": spec_classes(settings["classes"])}), workers=args.workers)


def _index(args):
    from ..manifest import write_index

    write_index(f"{args.root}/videos", f"{args.root}/splits", args.manifest, args.exclusions, args.classes,
                args.workers)


def _splits(args):
    from ..manifest import load_manifest
    from ..splits import write_split

    write_split(load_manifest(args.manifest), args.fraction, args.seed, args.out, args.split, args.convention,
                args.lists_dir, args.pool, args.val_per_class, args.info_out, args.dataset, shots=args.shots)


def _probe(args):
    from ..probe import main_probe

    sys.exit(main_probe(args.paths, args.csv, args.workers))


def add_download(sub) -> None:
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


def add_dataset(sub) -> None:
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
                                                      "path,label,split (docs/datasets.md, \"Your own videos\")")
    p.add_argument("--split", type=int, default=None,
                   help="--root folder: it must hold this split's lists (default: any split's)")
    p.add_argument("--archives", nargs=2, default=None, metavar=("VIDEOS", "SPLITS"),
                   help="ucf101/hmdb51: the video archive and the split archive")
    p.add_argument("--archives-dir", default="data/archives",
                   help="ucf101/hmdb51: folder holding the official archives (when --archives is not given)")
    p.add_argument("--extracted", default=None, metavar="FOLDER",
                   help=f"ucf101/hmdb51: {schema_help('dataset.extracted_dir')}")
    p.add_argument("--out", required=True, help="output folder, e.g. data/synthetic")
    add_schema_flags(p, "dataset.synthetic", "synthetic: ")
    p.add_argument("--workers", type=int, default=1,
                   help="synthetic: processes writing videos (the same bytes with any number)")
    p.set_defaults(func=_dataset, outputs=(), output_dirs=('out',))


def add_index(sub) -> None:
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


def add_splits(sub) -> None:
    p = sub.add_parser("splits", help="labeled / unlabeled / val / test roles for one fraction and seed",
                       description="The labeled videos of one fraction under a split convention (drawn from "
                                   "the pool with the seed, or a paper's published lists), validation videos "
                                   "held out of the rest, the rest unlabeled; test = the official test list. "
                                   "Output CSV: video_id, label, role.")
    p.add_argument("--manifest", required=True)
    add_budget_flags(p, "")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dataset", default="", help="dataset.name: which published results the split is comparable with")
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


def add_probe(sub) -> None:
    p = sub.add_parser("probe", help="check videos: frames, fps, size, codec, decoder, ok or the error",
                       description="Decode each video (files, or folders searched for video files) the way "
                                   "`svar index` does and print one row per video, then 'N videos, K "
                                   "decodable'. Exit status 0 even when some videos fail.")
    p.add_argument("paths", nargs="+", help="video files or folders")
    p.add_argument("--csv", action="store_true", help="CSV on stdout (the summary line goes to stderr)")
    p.add_argument("--workers", type=int, default=1, help="decoding processes")
    p.set_defaults(func=_probe)
