"""What each stage of a run cost: Snakemake's benchmark files, one per heavy job, as a table.

Every heavy rule has a `benchmark:` directive (workflow/rules/common.smk's `job_benchmark`):
`results/<name>/benchmarks/<stage>.tsv` for a stage of one job, `<stage>/<job…>.tsv` for a stage
of many (train: `train/<method>/fraction<f>_seed<s>.tsv`). Snakemake writes the job's wall time
(`s`), peak resident memory (`max_rss`, MB), CPU time (`cpu_time`, s) and MB read and written
(`io_in`, `io_out`); a value it could not measure (a job shorter than its sampling interval) is
written as `-` or `NA` and read here as missing. A job that did not run in this folder (outputs
pulled with DVC or copied) has no file: the table counts the jobs it found.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

# the chain's stages in the order they run (the README's map of the chain); a stage not listed
# here comes after them, by name
STAGE_ORDER = ("download", "dataset", "index", "splits", "pretrain_teacher", "teacher_weights", "teacher_shard",
               "teacher", "clip_cache_shard", "clip_cache", "student_weights", "train", "evaluate", "aggregate",
               "report")
# the benchmark file's columns this module reads, and their names in the tables
COLUMNS = {"s": "wall_s", "cpu_time": "cpu_s", "max_rss": "peak_rss_mb", "io_in": "read_mb", "io_out": "written_mb"}

# the table's columns after stage and jobs: heading, digits shown (seconds to 0.1, memory in MB)
SHOWN = {"est_wall_s_total": ("est. wall s (total, svar plan)", 1), "wall_s_total": ("wall s (total)", 1), "wall_s_mean": ("wall s (mean)", 1),
         "wall_s_max": ("wall s (longest)", 1), "cpu_s_total": ("CPU s (total)", 1),
         "peak_rss_mb_max": ("peak RSS MB (largest)", 0)}


class BenchmarkFileError(ValueError):
    """A benchmark file that is not Snakemake's table; the message names the file."""


def read_benchmarks(folder) -> pd.DataFrame:
    """One row per job: stage, job (the file's path under folder, without .tsv) and COLUMNS'
    values (NaN where Snakemake measured none; a repeated benchmark's rows are averaged)."""
    folder = Path(folder)
    rows = []
    for path in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        rel = path.relative_to(folder).with_suffix("")
        try:
            table = pd.read_csv(path, sep="\t", na_values=["-", "NA"])
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise BenchmarkFileError(f"{path}: not a Snakemake benchmark file ({exc}); delete it, or rerun its job "
                                     "with --forcerun") from None
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing or table.empty:
            raise BenchmarkFileError(f"{path}: not a Snakemake benchmark file (no rows, or no column "
                                     f"{', '.join(missing)}); delete it, or rerun its job with --forcerun")
        values = table[list(COLUMNS)].apply(pd.to_numeric, errors="coerce").mean()
        rows.append({"stage": rel.parts[0] if len(rel.parts) > 1 else rel.name, "job": rel.as_posix(),
                     **{COLUMNS[c]: values[c] for c in COLUMNS}})
    return pd.DataFrame(rows, columns=["stage", "job", *COLUMNS.values()])


def stage_rank(stage: str) -> tuple[int, str]:
    return (STAGE_ORDER.index(stage), "") if stage in STAGE_ORDER else (len(STAGE_ORDER), stage)


def _totals(jobs: pd.DataFrame) -> dict:
    """SHOWN's values over some jobs (NaN where none of them was measured)."""
    return {"jobs": len(jobs), "wall_s_total": jobs["wall_s"].sum(min_count=1), "wall_s_mean": jobs["wall_s"].mean(),
            "wall_s_max": jobs["wall_s"].max(), "cpu_s_total": jobs["cpu_s"].sum(min_count=1),
            "peak_rss_mb_max": jobs["peak_rss_mb"].max()}


def cost_table(jobs: pd.DataFrame, plan: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per stage, in the chain's order: jobs found, wall time (total, mean and longest job),
    CPU time (total) and the largest peak resident memory of one job; a last row `total` (the sum
    of job times: what a cluster bills, not the run's elapsed time, as jobs run side by side).
    With a plan (svar.plan), its estimated wall time of each stage beside them (NaN where it
    estimates none), and their sum in `total`."""
    columns = ["stage", "jobs", *SHOWN]
    if jobs.empty:
        return pd.DataFrame(columns=columns)
    # a plan read back from plan.csv holds a stage without a rate as an empty cell ("" with
    # keep_default_na=False): numbers are read as numbers, anything else as NaN (unknown)
    estimate = {} if plan is None else pd.to_numeric(plan.set_index("stage")["est_wall_s_total"], errors="coerce").to_dict()
    rows = [{"stage": stage, **_totals(group), "est_wall_s_total": estimate.get(stage, float("nan"))}
            for stage, group in sorted(jobs.groupby("stage"), key=lambda item: stage_rank(item[0]))]
    rows.append({"stage": "total", **_totals(jobs),
                 "est_wall_s_total": pd.Series([r["est_wall_s_total"] for r in rows]).sum(min_count=1)})
    return pd.DataFrame(rows, columns=columns)


def _number(value) -> float:
    """A cell as a number: NaN for a blank or anything that is not one (a cost table read back
    from CSV with empty cells kept as "")."""
    number = pd.to_numeric(value, errors="coerce")
    return float("nan") if number is None or pd.isna(number) else float(number)


def cost_cells(row) -> list[str]:
    """A cost table row's shown values, `–` where nothing was measured or estimated."""
    values = {c: _number(row[c]) for c in SHOWN}
    return [str(row["stage"]), str(row["jobs"])] + [
        "–" if pd.isna(values[c]) else f"{values[c]:.{digits}f}" for c, (_, digits) in SHOWN.items()]


def cost_markdown(table: pd.DataFrame) -> str:
    """The cost table as Markdown."""
    lines = ["| " + " | ".join(["stage", "jobs", *(h for h, _ in SHOWN.values())]) + " |",
             "|---|" + "---:|" * (1 + len(SHOWN))]
    lines += ["| " + " | ".join(cost_cells(row)) + " |" for _, row in table.iterrows()]
    return "\n".join(lines) + "\n"
