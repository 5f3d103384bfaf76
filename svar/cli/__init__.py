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

from ..options_check import check_options
from . import data, results, runs, teacher

# each stage's subcommand, in the order the workflow runs them (the order --help lists them in);
# each adds its parser to the subparsers and sets its handler (args.func) and what it writes
SUBCOMMANDS = (
    data.add_download,
    data.add_dataset,
    teacher.add_pretrain_teacher,
    data.add_index,
    data.add_splits,
    teacher.add_teacher_weights,
    teacher.add_student_weights,
    teacher.add_fetch_weights,
    teacher.add_teacher,
    teacher.add_teacher_gather,
    runs.add_clip_cache,
    runs.add_clip_cache_gather,
    runs.add_train,
    runs.add_evaluate,
    results.add_aggregate,
    results.add_report,
    results.add_sweep,
    results.add_plan,
    results.add_bench,
    results.add_config,
    data.add_probe,
    results.add_verify,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="svar", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="debug logging, and a traceback behind any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="STAGE")
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def expected_errors() -> tuple[type, ...]:
    """What bad input, a missing or corrupt file, a full disk or the network raise: said in one
    line. Anything else is a bug, shown with its traceback."""
    from ..archives import ExtractionError
    from ..download import DownloadError
    from ..video import VideoDecodeError

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
    from ..receipts import record

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
