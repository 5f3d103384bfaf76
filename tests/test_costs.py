"""The report's cost table: Snakemake's benchmark files, one per job, summed per stage."""

from __future__ import annotations

import pytest

from svar.costs import BenchmarkFileError, cost_markdown, cost_table, read_benchmarks
from svar.report import make_report

from test_report import write_results_tree

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def write_benchmark(path, s, rss, cpu, io_in=1.0, io_out=2.0):
    """A file as Snakemake's `benchmark:` directive writes it (`-` where it measured nothing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(HEADER + f"{s}\t0:00:{int(float(s)):02d}\t{rss}\t900.0\t{rss}\t{rss}\t{io_in}\t{io_out}\t50.0\t{cpu}\n")


@pytest.fixture
def benchmarks(tmp_path):
    folder = tmp_path / "benchmarks"
    write_benchmark(folder / "index.tsv", 6.0, 300.0, 5.0)
    write_benchmark(folder / "train" / "distill" / "fraction0.1_seed0.tsv", 10.0, 500.0, 9.0)
    write_benchmark(folder / "train" / "distill" / "fraction0.1_seed1.tsv", 14.0, 700.0, 13.0)
    write_benchmark(folder / "train" / "supervised" / "fraction1_seed0.tsv", 12.0, "-", "-")
    write_benchmark(folder / "evaluate" / "distill.tsv", 4.0, 800.0, 3.5)
    return folder


def test_cost_table_sums_each_stage_in_the_chains_order(benchmarks):
    jobs = read_benchmarks(benchmarks)
    assert sorted(jobs["job"]) == ["evaluate/distill", "index", "train/distill/fraction0.1_seed0",
                                   "train/distill/fraction0.1_seed1", "train/supervised/fraction1_seed0"]
    table = cost_table(jobs).set_index("stage")
    assert list(table.index) == ["index", "train", "evaluate", "total"]
    train = table.loc["train"]
    assert train["jobs"] == 3 and train["wall_s_total"] == 36.0 and train["wall_s_mean"] == 12.0
    assert train["wall_s_max"] == 14.0
    # an unmeasured value ("-") is missing, not zero: the CPU sum and the memory peak skip it
    assert train["cpu_s_total"] == 22.0 and train["peak_rss_mb_max"] == 700.0
    total = table.loc["total"]
    assert total["jobs"] == 5 and total["wall_s_total"] == 46.0 and total["peak_rss_mb_max"] == 800.0
    text = cost_markdown(cost_table(jobs))
    assert "| train | 3 | – | 36.0 | 12.0 | 14.0 | 22.0 | 700 |" in text  # no plan: no estimate


def test_a_file_that_is_not_a_benchmark_is_named(benchmarks):
    (benchmarks / "train" / "broken.tsv").write_text("not\ta benchmark\n")
    with pytest.raises(BenchmarkFileError, match=r"broken\.tsv.*max_rss"):
        read_benchmarks(benchmarks)


def test_no_folder_gives_an_empty_table(tmp_path):
    assert cost_table(read_benchmarks(tmp_path / "absent")).empty


def test_the_report_writes_the_cost_table(benchmarks, tmp_path):
    import pandas as pd

    metrics_csv, run_files = write_results_tree(tmp_path / "results")
    plan = tmp_path / "plan.csv"
    pd.DataFrame([{"stage": "train", "est_wall_s_total": 30.0}]).to_csv(plan, index=False)
    paths = make_report(metrics_csv, run_files, tmp_path / "report", benchmarks_dir=benchmarks, plan_csv=plan)
    assert paths["cost_md"].read_text() == cost_markdown(cost_table(read_benchmarks(benchmarks), pd.read_csv(plan)))
    html = paths["html"].read_text()
    # the plan's estimate beside the actual time
    assert 'id="costs"' in html and "<td>train</td><td>3</td><td>30.0</td><td>36.0</td>" in html


def test_a_plan_with_an_unknown_stage_reads_back_into_the_cost_table(benchmarks, tmp_path):
    """plan.csv as rule plan writes it, with a stage that has no rate (its estimate an empty cell),
    read back as the report reads it: the number stays a number, the blank is `–`, never 0."""
    import pandas as pd

    from svar.atomic import write_csv
    from svar.config import load_workflow_config
    from svar.plan import RATE_COLUMNS, plan
    from svar.readers import read_csv

    rates = pd.DataFrame([("index", "decode", "64x64", "cpu", "frame", 0.001, 2.0, 300, "hand"),
                          ("evaluate", "tiny3d", "4x24", "cpu", "view", 0.01, 1.0, 300, "hand")], columns=RATE_COLUMNS)
    written = plan(load_workflow_config(), rates=rates)
    assert written.set_index("stage")["est_wall_s_total"].isna().to_dict() == {
        "index": False, "teacher_shard": True, "clip_cache_shard": True, "train": True, "evaluate": False}
    write_csv(tmp_path / "plan.csv", written)
    back = read_csv(tmp_path / "plan.csv", "plan", "plan")  # the report's reader: empty cells stay ""
    assert (back.set_index("stage").loc["train", "est_wall_s_total"]) == ""
    table = cost_table(read_benchmarks(benchmarks), back).set_index("stage")
    estimate = written.set_index("stage")["est_wall_s_total"]
    assert table.loc["evaluate", "est_wall_s_total"] == pytest.approx(estimate["evaluate"])
    assert pd.isna(table.loc["train", "est_wall_s_total"])
    assert table.loc["total", "est_wall_s_total"] == pytest.approx(estimate["index"] + estimate["evaluate"])
    text = cost_markdown(table.reset_index())
    assert "| train | 3 | – | 36.0 |" in text and f"| evaluate | 1 | {estimate['evaluate']:.1f} | 4.0 |" in text
    metrics_csv, run_files = write_results_tree(tmp_path / "results")
    paths = make_report(metrics_csv, run_files, tmp_path / "report", benchmarks_dir=benchmarks,
                        plan_csv=tmp_path / "plan.csv")
    assert paths["cost_md"].read_text() == text
    assert "<td>train</td><td>3</td><td>–</td><td>36.0</td>" in paths["html"].read_text()
