# svar: semi-supervised video action recognition with a vision-language teacher.
#   snakemake --cores 2                                  the default benchmark
#   snakemake --cores 2 --configfile workflow/config/X.yaml   another config
# Each stage lives in workflow/rules/<stage>.smk and calls one `svar <stage>` subcommand.

from pathlib import Path

from snakemake.utils import min_version, validate

min_version("9.0")


# the default config, found from the Snakefile so that --directory elsewhere works too
configfile: Path(workflow.basedir) / "workflow/config/config.yaml"


# rules run `python -m svar <stage>` with this checkout importable, in any environment
shell.prefix(f"export PYTHONPATH={workflow.basedir}:$PYTHONPATH; ")


# a wrong key or value stops here, before any job starts, naming the key
validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        "results/metrics.csv",
        "results/summary.csv",
        "results/plots/top1_vs_fraction.png",
        "results/report/report.html",
    default_target: True


onsuccess:
    print_summary("results/summary.csv")
