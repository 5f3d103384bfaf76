"""The teacher's and the weights' subcommands: pretrain-teacher, teacher-weights, student-weights,
fetch-weights, teacher, teacher-gather."""

from __future__ import annotations

import logging

from ..config import default, schema_properties
from ..registry import lazy_choices
from .common import add_configfile, add_schema_flags, schema_help, schema_type


def sampling_flag(key: str) -> str:
    """The `svar teacher` flag of a teacher.sampling key: its name, but --sampling for the mode."""
    return "sampling" if key == "mode" else key


def sampling_flags(sampling: dict) -> dict:
    """A teacher.sampling section by `svar teacher`'s flags (rule teacher_shard passes it so)."""
    return {sampling_flag(key): value for key, value in sampling.items()}


def add_backend_flag(p) -> None:
    """--backend: teacher.backend; --model then names one of its models (or carries the prefix itself)."""
    p.add_argument("--backend", default=default("teacher.backend"), **lazy_choices("teacher_backend", "BACKEND"),
                   help=f"{schema_help('teacher.backend')} (default %(default)s)")


def teacher_model(args) -> str:
    """The teacher's one name, its backend in it (svar.config.qualified_model)."""
    from ..config import qualified_model

    return qualified_model(args.backend, args.model)


def _pretrain_teacher(args):
    from ..teacher.pretrain import pretrain

    pretrain(args.pool, args.out, args.model, args.steps, args.batch_size, args.lr, args.weight_decay, args.seed,
             args.device, args.threads, args.curve)


def _teacher_weights(args):
    from ..teacher.backends import weights_receipt

    weights_receipt(teacher_model(args), args.pretrained, args.cache_dir or None, args.out)


def _student_weights(args):
    from ..student_weights import weights_receipt

    weights_receipt(args.arch, args.pretrained, args.weights_dir, args.out)


def _fetch_weights(args):
    from ..config import load_workflow_config
    from ..fetch_weights import fetch_all, required, table

    config = load_workflow_config(*args.configfile)
    if args.list:
        entries = required(config)
        print(table(entries).rstrip("\n") if entries else "nothing to download: no teacher tag or hf-hub model, no "
                                                           "torchvision student weights in this config")
        return
    receipts = fetch_all(config)
    logging.info("%d receipt(s): %s", len(receipts), " ".join(receipts) or "none (nothing to download)")


def _teacher(args):
    from ..input_checks import teacher_job_warnings
    from ..manifest import load_manifest
    from ..readers import read_csv
    from ..teacher.features import extract, extract_shard
    from ..teacher.sampling import sampling_from_config

    classes = read_csv(args.classes, "class list", "index")["class_name"].tolist()
    sampling = sampling_from_config({key: getattr(args, sampling_flag(key)) for key in schema_properties("teacher.sampling")})
    common = dict(frames_per_video=args.frames, sampling=sampling, batch_size=args.batch_size, workers=args.workers,
                  device=args.device, templates=args.templates, cache_dir=args.cache_dir or None,
                  offline=True if args.offline else None,
                  threads=args.threads if args.job_threads is None else max(1, args.job_threads - args.workers))
    if (args.out is None) == (args.shard is None) or (args.shard is not None and args.out_dir is None):
        raise ValueError("give either --out (one store) or --shard with --shards and --out-dir")
    if args.out is not None:
        extract(load_manifest(args.manifest, videos=True), classes, args.out, teacher_model(args), args.pretrained,
                **common)
    else:
        manifest = load_manifest(args.manifest, videos=True)
        teacher_job_warnings(args.shards, manifest)
        extract_shard(manifest, args.shard, args.shards, args.out_dir, teacher_model(args), args.pretrained, classes,
                      **common)


def _teacher_gather(args):
    from ..teacher.features import gather

    store = gather(args.shards, args.out, record_parts=True)
    logging.info("%s: %d videos from %d shards", args.out, len(store["video_ids"]), len(args.shards))


def add_pretrain_teacher(sub) -> None:
    p = sub.add_parser("pretrain-teacher", help="train the generated dataset's tiny CLIP teacher",
                       description="Contrastive (CLIP) training of an open_clip model on the (frame, caption) "
                                   "pairs of <pool> (captions.csv + videos, written by `svar dataset`), with "
                                   "open_clip's tokenizer and ClipLoss. Output: a state dict that "
                                   "`svar teacher --pretrained <out>` loads like any open_clip checkpoint file.")
    p.add_argument("--pool", required=True, help="captioned pool folder, e.g. data/synthetic/pretrain")
    p.add_argument("--out", required=True, help="checkpoint file")
    p.add_argument("--model", default=default("teacher.model"), help="open_clip model name (default %(default)s)")
    add_schema_flags(p, "pretrain_teacher")
    p.add_argument("--device", default=default("teacher.device"))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--curve", default=None, help="CSV of the contrastive loss per step")
    p.set_defaults(func=_pretrain_teacher, outputs=('out', 'curve'), output_dirs=())


def add_teacher_weights(sub) -> None:
    p = sub.add_parser("teacher-weights", help="download a teacher's weights into a cache folder",
                       description="Fetch a teacher's weights (open_clip: a pretrained tag, or an hf-hub: model; "
                                   "xclip: the Hugging Face repo's snapshot, pretrained hub) into --cache-dir, where "
                                   "`svar teacher --offline --cache-dir` then finds them without the network. Run "
                                   "where there is internet (a login node). Writes a JSON receipt: model, "
                                   "pretrained, path, and the size and sha256 of the file (of each file of a "
                                   "snapshot). Checkpoint files, local-dir: and save_pretrained folders and random "
                                   "weights need no download.")
    add_backend_flag(p)
    p.add_argument("--model", required=True)
    p.add_argument("--pretrained", default="none")
    p.add_argument("--cache-dir", default=default("teacher.cache_dir"),
                   help="where the weights go (default %(default)s; '' = open_clip's default cache)")
    p.add_argument("--out", required=True, help="the receipt (JSON)")
    p.set_defaults(func=_teacher_weights, outputs=('out',), output_dirs=())


def add_student_weights(sub) -> None:
    p = sub.add_parser("student-weights", help="download a student's torchvision or timm weights into a folder",
                       description="Fetch the weights student.pretrained names for the arch (kinetics400: "
                                   "torchvision's Kinetics-400 weights; imagenet: ResNet-18's ImageNet weights, which "
                                   "training inflates, or for vit_b16_divided timm's ImageNet ViT-B/16) into "
                                   "--weights-dir: torchvision's under their file name, verified against the sha256 "
                                   "prefix that name carries; timm's from the Hugging Face hub under <hub repo>/. A "
                                   "file already there is kept. Run where there is internet (a login node): training "
                                   "reads the folder offline. Writes a JSON receipt: weights, url, file, bytes, sha256.")
    p.add_argument("--arch", required=True, **lazy_choices("student", "ARCH"),
                   help="student.arch: %(choices)s")
    p.add_argument("--pretrained", required=True,
                   help="student.pretrained, naming published weights (kinetics400 or imagenet)")
    p.add_argument("--weights-dir", default=default("student.weights_dir"),
                   help=f"{schema_help('student.weights_dir')} (default %(default)s)")
    p.add_argument("--out", required=True, help="the receipt (JSON)")
    p.set_defaults(func=_student_weights, outputs=('out',), output_dirs=('weights_dir',))


def add_fetch_weights(sub) -> None:
    p = sub.add_parser("fetch-weights", help="fetch every weights file a config needs (where there is internet)",
                       description="Download each teacher's weights (`teacher`, `teachers:`; open_clip's files, "
                                   "X-CLIP's snapshots) into "
                                   "teacher.cache_dir and the student's torchvision or timm weights (student.pretrained "
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


def add_teacher(sub) -> None:
    p = sub.add_parser("teacher", help="teacher features of every video (or of one shard), once per dataset",
                       description="Encode each decodable video with the teacher (--backend open_clip: sampled "
                                   "frames through an image encoder; xclip: X-CLIP's video encoder), and the "
                                   "class-name prompts with its text encoder. Decoding runs in --workers "
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
    add_backend_flag(p)
    p.add_argument("--model", required=True, help=schema_help("teacher.model"))
    p.add_argument("--pretrained", default="none", help=schema_help("teacher.pretrained"))
    p.add_argument("--cache-dir", default=default("teacher.cache_dir"),
                   help="where tag / hf-hub weights are cached (`svar teacher-weights`; default %(default)s)")
    p.add_argument("--offline", action="store_true",
                   help="never touch the network: weights come from the cache or a file, else a clear error")
    for key, node in schema_properties("teacher.sampling").items():
        dotted = f"teacher.sampling.{key}"
        if "x-names" in node:  # the mode: one of the sampling-mode registry's names
            p.add_argument(f"--{sampling_flag(key)}", default=default(dotted), **lazy_choices(node["x-names"], "MODE"),
                           help=schema_help(dotted))
        else:
            p.add_argument(f"--{sampling_flag(key)}", type=schema_type(dotted), default=default(dotted),
                           help=f"{schema_help(dotted)} (default %(default)s)")
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


def add_teacher_gather(sub) -> None:
    p = sub.add_parser("teacher-gather", help="merge the teacher's shards into one feature store",
                       description="Check that the shards come from one manifest and one teacher configuration "
                                   "and cover every video once; write the store `svar teacher --out` would.")
    p.add_argument("shards", nargs="+", help="shard files from `svar teacher --shard`")
    p.add_argument("--out", required=True)
    # its record carries each shard's (features.gather)
    p.set_defaults(func=_teacher_gather, outputs=('out',), output_dirs=(), records_itself=True)
