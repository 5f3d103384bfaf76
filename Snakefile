# svar: semi-supervised video action recognition with a vision-language teacher.
#   snakemake --cores 2                                            the default benchmark
#   snakemake --cores 2 --configfile workflow/config/X.yaml        an overlay over it
# Each stage lives in workflow/rules/<stage>.smk and calls one `svar <stage>` subcommand.

import shlex
from pathlib import Path

from snakemake.utils import min_version

from svar.config_checks import check

min_version("9.0")


# the default config, found from the Snakefile so that --directory elsewhere works too;
# --configfile overlays are merged over it by Snakemake
configfile: Path(workflow.basedir) / "workflow/config/config.yaml"


# the defaults of svar/data/config.schema.yaml under it, then checked (the schema, then what it
# cannot see: the teacher model exists, CUDA is here when asked for and jobs run here): a wrong
# key or value stops here, before any job starts, naming the key
config.update(
    check(
        config,
        "workflow config (workflow/config/config.yaml and any --configfile overlays)",
        local=workflow.local_exec,
    )
)


# rules run `python -m svar <stage>` from this checkout, first on PYTHONPATH whatever else is
# installed, quoted for paths with spaces (braces doubled: Snakemake formats the prefix)
shell.prefix(
    "export PYTHONPATH="
    + shlex.quote(workflow.basedir).replace("{", "{{").replace("}", "}}")
    + "${{PYTHONPATH:+:$PYTHONPATH}}; "
)


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/dataset.smk"
include: "workflow/rules/index.smk"
include: "workflow/rules/splits.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/clip_cache.smk"
include: "workflow/rules/student.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/plan.smk"
include: "workflow/rules/report.smk"


guard_outputs()


# every run's outputs are targets too: Snakemake takes a missing intermediate file for one it
# may do without, so a model.pt or metrics.json deleted by hand is rebuilt only when asked for
rule all:
    default_target: True
    input:
        all_runs("model.pt"),
        all_runs("metrics.json"),
        expand(rules.aggregate.output.metrics, root=ROOTS),
        expand(rules.aggregate.output.summary, root=ROOTS),
        rules.report.output.accuracy,
        rules.report.output.html,
        # made again when a shard is missing or changed (guard.smk's guard_outputs)
        clip_cache_records(),


onsuccess:
    print_summary(expand(rules.aggregate.output.summary, root=ROOTS))
