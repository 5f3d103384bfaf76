"""The results' subcommands: aggregate, report, sweep, plan, bench, config, verify."""

from __future__ import annotations

import sys

from ..options_check import json_object
from ..registry import lazy_choices
from .common import add_configfile


def _aggregate(args):
    from ..aggregate import aggregate

    aggregate(args.metrics, args.metrics_out, args.summary_out, args.summary_json_out, args.top1_csv_out)


def _report(args):
    from ..report import main_report

    sys.exit(main_report(args.metrics, args.runs, args.out_dir, args.published, args.run, args.benchmarks, args.plan))


def _sweep(args):
    from ..sweep import format_sweep, sweep

    rows = sweep(args.config, args.method, args.fraction, args.set, args.seeds, args.threads)
    print(format_sweep(rows, args.method, args.fraction))


def _plan_reads(args):
    """What `svar plan --config-json` (rule plan) must hold: the keys a plan reads."""
    from ..plan import plan_reads

    return "--config-json", args.config_json, "svar plan", plan_reads


def _plan(args):
    from ..plan import RATES_PATH, main_plan

    main_plan(args.configfile, args.device, args.rates or RATES_PATH, args.out, args.config_json, args.manifest)


def _bench(args):
    if args.what == "teacher":
        from ..bench_teacher import main_bench_teacher

        main_bench_teacher(args.configfile, rounds=args.rounds, workers=args.workers, batch_size=args.batch_size,
                           model=args.model, backend=args.backend)
    elif args.what == "train":
        from ..bench_train import main_bench_train

        main_bench_train(args.configfile, method=args.method, prefetch=args.prefetch)
    else:
        from ..bench_scale import main_bench_scale

        main_bench_scale(args.configfile or ["workflow/config/scale.yaml"], args.videos, args.threads, args.work,
                         args.rates, args.model)


def _config(args):
    from ..config import load_workflow_config, schema, show

    print(show(schema() if args.schema else load_workflow_config(*args.configfile)), end="")


def _verify(args):
    from ..receipts import main_verify

    if args.folder is None:
        from ..config import load_workflow_config, results_dir

        args.folder = results_dir(load_workflow_config(*args.configfile))
    sys.exit(main_verify(args.folder))


def add_aggregate(sub) -> None:
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


def add_report(sub) -> None:
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


def add_sweep(sub) -> None:
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


def add_plan(sub) -> None:
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


def add_bench(sub) -> None:
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
                   help="teacher, scale: another teacher model than the config's (of --backend), with random weights "
                        "(the same speed)")
    p.add_argument("--backend", default=None, **lazy_choices("teacher_backend", "BACKEND"),
                   help="teacher: another teacher backend than the config's (xclip ...), random weights; its model "
                        "is --model, else the backend's own small config")
    p.add_argument("--batch-size", type=int, default=None, help="teacher: videos per batch (default: the config's)")
    p.add_argument("--workers", type=int, default=None, help="teacher: decoding processes (default: the config's)")
    p.add_argument("--rounds", type=int, default=7, help="teacher: interleaved measurement rounds")
    p.add_argument("--method", default="distill", **lazy_choices("method", "METHOD"),
                   help="train: the method whose steps are timed (default %(default)s; clip_finetune times the "
                        "teacher's CLIP on its own clips)")
    p.add_argument("--prefetch", choices=["on", "off", "auto"], default="on",
                   help="train: cut the next batch in a background thread while the step runs (on: the path "
                        "training takes on CUDA), build each in line (off: a CPU run's), or as this config's "
                        "training would (auto); default %(default)s")
    p.add_argument("--videos", type=int, default=400, help="scale: N, the smaller size (default %(default)s)")
    p.add_argument("--threads", type=int, default=2, help="scale: each stage's threads (default %(default)s)")
    p.add_argument("--work", default=None, help="scale: folder for the videos and outputs (default: a temporary one)")
    p.add_argument("--rates", default=None, help="scale: write the measured rates into this rates file (svar plan)")
    p.set_defaults(func=_bench)


def add_config(sub) -> None:
    p = sub.add_parser("config", help="the workflow's resolved configuration",
                       description="Print the configuration a workflow run with these overlays uses: the schema's "
                                   "defaults, then workflow/config/config.yaml, then each --configfile overlay "
                                   "(run from the checkout's root), validated. --schema prints the schema with the "
                                   "registries' names filled in.")
    p.add_argument("configfile", nargs="*", help="config overlays, as given to snakemake --configfile")
    p.add_argument("--schema", action="store_true", help="print the schema instead")
    p.set_defaults(func=_config)


def add_verify(sub) -> None:
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
