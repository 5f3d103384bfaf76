"""Paired significance tests over seeds: numbers with a known answer, the table's pairing and
choice of the best other method, and the report's significance table.

The t-distribution with 2 degrees of freedom has a closed form, F(t) = 1/2 + t / (2 sqrt(t² + 2)),
so with three pairs both the p-value and the interval can be checked without scipy:
two-sided p = 1 − |t| / sqrt(t² + 2), and the 97.5% quantile q solves q / sqrt(q² + 2) = 0.95.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest
from scipy import stats

from test_report import write_results_tree

from svar.aggregate import summarise
from svar.report import make_report
from svar.report.published import load_published
from svar.report.tables import paper_tables, to_latex, to_markdown
from svar.significance import COLUMNS, paired_test, significance_cell, significance_table

# differences [0.01, 0.02, 0.03]: mean 0.02, sample sd 0.01
A = [0.51, 0.62, 0.73]
B = [0.50, 0.60, 0.70]
T = 0.02 / (0.01 / math.sqrt(3))  # 3.4641
Q_975_DF2 = math.sqrt(2 * 0.95 ** 2 / (1 - 0.95 ** 2))  # 4.3027


# --------------------------------------------------------------------------- paired_test


def test_paired_test_matches_the_closed_form_for_two_degrees_of_freedom():
    test = paired_test(A, B)
    assert test.n == 3
    assert test.diff == pytest.approx(0.02)
    assert T == pytest.approx(3.4641, abs=1e-4)
    assert test.p_value == pytest.approx(1 - T / math.sqrt(T ** 2 + 2), rel=1e-9)
    assert test.p_value == pytest.approx(0.0742, abs=1e-4)
    assert test.p_value == pytest.approx(stats.ttest_rel(A, B).pvalue, rel=1e-12)


def test_paired_test_interval_is_the_t_interval_of_the_differences():
    test = paired_test(A, B)
    assert Q_975_DF2 == pytest.approx(stats.t.ppf(0.975, 2), rel=1e-12)
    half_width = Q_975_DF2 * 0.01 / math.sqrt(3)  # 0.024841
    assert test.ci_low == pytest.approx(0.02 - half_width) and test.ci_high == pytest.approx(0.02 + half_width)
    assert test.ci_low == pytest.approx(-0.004841, abs=1e-6) and test.ci_high == pytest.approx(0.044841, abs=1e-6)


def test_paired_test_is_on_the_differences_not_the_two_means():
    # a large seed-to-seed spread common to both methods cancels: an edge of 1 point at every seed
    # (1.1 at one) is clearly significant, though an unpaired test sees nothing
    a = [0.30, 0.61, 0.90, 0.45]
    b = [0.29, 0.60, 0.889, 0.44]
    test = paired_test(a, b)
    assert test.p_value < 0.001
    assert stats.ttest_ind(a, b).pvalue > 0.9


def test_one_pair_has_a_difference_but_no_p_or_interval():
    test = paired_test([0.7], [0.5])
    assert test.n == 1 and test.diff == pytest.approx(0.2)
    assert math.isnan(test.p_value) and math.isnan(test.ci_low) and math.isnan(test.ci_high)


def test_no_pair_is_all_nan():
    test = paired_test([], [])
    assert test.n == 0 and all(math.isnan(v) for v in test[:4])


def test_the_same_difference_at_every_seed_has_the_point_as_interval_and_no_p():
    # 0.5 − 0.4 and 0.6 − 0.5 differ by a few ulps in floating point; scipy would give p = 0
    test = paired_test([0.5, 0.6, 0.7], [0.4, 0.5, 0.6])
    assert test.n == 3 and test.diff == pytest.approx(0.1)
    assert test.ci_low == test.ci_high == test.diff
    assert math.isnan(test.p_value)
    identical = paired_test([0.5, 0.5], [0.5, 0.5])
    assert identical.diff == 0 and identical.ci_low == identical.ci_high == 0 and math.isnan(identical.p_value)


def test_a_pair_with_a_missing_value_is_left_out():
    test = paired_test([*A, float("nan"), 0.9], [*B, 0.5, float("nan")])
    assert test.n == 3 and test.p_value == pytest.approx(paired_test(A, B).p_value)


def test_sequences_of_different_length_are_refused():
    with pytest.raises(ValueError, match="equal length"):
        paired_test([0.1, 0.2], [0.1])


# --------------------------------------------------------------------------- cell text


@pytest.mark.parametrize("diff, p, n, plain, latex", [
    (3.14, 0.0213, 3, "+3.1 (p=0.02)", "$+3.1$ ($p=0.02$)"),
    (-12.06, 0.0042, 5, "-12.1 (p=0.004)", "$-12.1$ ($p=0.004$)"),
    (0.0, 0.00001, 5, "+0.0 (p<0.001)", "$+0.0$ ($p<0.001$)"),
    (2.0, float("nan"), 1, "+2.0 (p n/a)", "$+2.0$ ($p$ n/a)"),
    (float("nan"), float("nan"), 0, "–", "--"),
])
def test_significance_cell(diff, p, n, plain, latex):
    assert significance_cell(diff, p, n) == plain
    assert significance_cell(diff, p, n, latex=True) == latex


# --------------------------------------------------------------------------- the table


def metrics_frame(values: dict) -> pd.DataFrame:
    """A long metrics table as `svar aggregate` writes it, from {(method, fraction): {seed: top-1}};
    rows are written in the order given, so a test can scramble the seeds."""
    rows = [{"dataset": "d", "method": method, "fraction": fraction, "seed": seed, "metric": metric,
             "value": value if metric == "top1" else 0.99, "convention": "balanced",
             "list_source": f"drawn with seed {seed}", "seed_varies": "split and initialisation"}
            for (method, fraction), by_seed in values.items() for seed, value in by_seed.items()
            for metric in ("top1", "top5", "mean_class")]
    return pd.DataFrame(rows)


# fraction 0.1: distill_pl best (mean 0.6), supervised 0.3, clip_zeroshot 0.5 at every seed
# (a zero-shot teacher: no split, the same number whatever the seed).
# fraction 0.5: seeds written out of order; supervised lacks seed 2, so pairs with it are seeds 0, 1;
# clip_zeroshot is best there (0.5 against distill_pl's 0.45)
VALUES = {
    ("supervised", 0.1): {0: 0.30, 1: 0.28, 2: 0.32},
    ("distill_pl", 0.1): {0: 0.61, 1: 0.58, 2: 0.61},
    ("clip_zeroshot", 0.1): {0: 0.50, 1: 0.50, 2: 0.50},
    ("supervised", 0.5): {1: 0.41, 0: 0.40},
    ("distill_pl", 0.5): {2: 0.48, 0: 0.43, 1: 0.44},
    ("clip_zeroshot", 0.5): {1: 0.50, 2: 0.50, 0: 0.50},
}


def row_of(table, fraction, method, against):
    match = table[(table["fraction"] == fraction) & (table["method"] == method) & (table["against"] == against)]
    assert len(match) == 1, (fraction, method, against)
    return match.iloc[0]


def test_table_has_two_rows_per_method_and_fraction_and_none_for_supervised():
    table = significance_table(metrics_frame(VALUES))
    assert list(table.columns) == COLUMNS
    assert len(table) == 2 * 2 * 2
    assert "supervised" not in set(table["method"])
    assert set(table["against"]) == {"supervised", "best other"}


def test_best_other_is_the_highest_mean_other_than_the_method_itself():
    table = significance_table(metrics_frame(VALUES))
    # at 0.1 distill_pl (0.6) leads: it is everyone's best other but its own, which is clip_zeroshot (0.5)
    assert row_of(table, 0.1, "clip_zeroshot", "best other")["other"] == "distill_pl"
    assert row_of(table, 0.1, "distill_pl", "best other")["other"] == "clip_zeroshot"
    # at 0.5 clip_zeroshot (0.5) leads distill_pl (0.45) and supervised (0.405)
    assert row_of(table, 0.5, "distill_pl", "best other")["other"] == "clip_zeroshot"
    assert row_of(table, 0.5, "clip_zeroshot", "best other")["other"] == "distill_pl"
    assert (table.loc[table["against"] == "supervised", "other"] == "supervised").all()


def test_a_zero_shot_method_is_tested_on_its_per_seed_differences():
    table = significance_table(metrics_frame(VALUES))
    row = row_of(table, 0.1, "clip_zeroshot", "supervised")
    # differences 0.20, 0.22, 0.18 → mean 20 points, sd 2 points
    expected = paired_test([0.5, 0.5, 0.5], [0.30, 0.28, 0.32])
    assert row["n_pairs"] == 3 and row["diff"] == pytest.approx(20.0)
    assert row["p_value"] == pytest.approx(expected.p_value)
    assert row["ci_low"] == pytest.approx(100 * expected.ci_low, abs=1e-4)
    assert row["ci_high"] == pytest.approx(100 * expected.ci_high, abs=1e-4)


def test_pairs_are_matched_by_seed_whatever_the_row_order_and_only_on_shared_seeds():
    table = significance_table(metrics_frame(VALUES))
    row = row_of(table, 0.5, "distill_pl", "supervised")
    # seed 2 is distill_pl's only: seeds 0, 1 pair 0.43−0.40 and 0.44−0.41, the same 3 points
    assert row["n_pairs"] == 2 and row["diff"] == pytest.approx(3.0)
    assert row["ci_low"] == pytest.approx(3.0) and row["ci_high"] == pytest.approx(3.0)
    assert math.isnan(row["p_value"])
    # against clip_zeroshot all three seeds pair: 0.43, 0.44, 0.48 against 0.5
    best = row_of(table, 0.5, "distill_pl", "best other")
    expected = paired_test([0.43, 0.44, 0.48], [0.5, 0.5, 0.5])
    assert best["n_pairs"] == 3 and best["p_value"] == pytest.approx(expected.p_value)
    assert best["diff"] == pytest.approx(100 * expected.diff)


def test_one_seed_gives_no_p():
    table = significance_table(metrics_frame({("supervised", 0.1): {0: 0.3}, ("distill_pl", 0.1): {0: 0.6}}))
    assert len(table) == 2  # against supervised, and supervised as the best (only) other
    assert (table["n_pairs"] == 1).all() and table["diff"].eq(30.0).all()
    assert table["p_value"].isna().all() and table["ci_low"].isna().all()


def test_no_supervised_run_leaves_only_the_best_other_comparison():
    table = significance_table(metrics_frame({("distill_pl", 0.1): {0: 0.6, 1: 0.7},
                                              ("clip_zeroshot", 0.1): {0: 0.5, 1: 0.5}}))
    assert set(table["against"]) == {"best other"} and len(table) == 2


def test_a_missing_metric_is_not_paired():
    metrics = metrics_frame(VALUES)
    metrics.loc[(metrics["method"] == "distill_pl") & (metrics["fraction"] == 0.1) & (metrics["seed"] == 1)
                & (metrics["metric"] == "top1"), "value"] = float("nan")
    row = row_of(significance_table(metrics), 0.1, "distill_pl", "supervised")
    assert row["n_pairs"] == 2


def test_a_run_listed_twice_cannot_be_paired():
    metrics = metrics_frame(VALUES)
    with pytest.raises(ValueError, match="more than once"):
        significance_table(pd.concat([metrics, metrics.iloc[:1]]))


# --------------------------------------------------------------------------- in the report


def test_markdown_and_latex_show_the_tests_under_the_summary():
    metrics = metrics_frame(VALUES)
    table = significance_table(metrics)
    markdown = to_markdown(paper_tables(summarise(metrics), metrics), load_published(), None, table)
    summary, tests = markdown.split("### Paired tests on d")
    assert "| supervised |" in summary
    assert "Paired t-test over seeds on top-1" in tests and "same labeled split" in tests
    assert "| Method | 10% Δ vs supervised (p) | 10% Δ vs best other (p) | 50% Δ vs supervised (p) |" in tests
    zero_shot = next(line for line in tests.splitlines() if line.startswith("| clip_zeroshot |"))
    p = paired_test([0.5, 0.5, 0.5], [0.30, 0.28, 0.32]).p_value
    assert zero_shot.startswith(f"| clip_zeroshot | {significance_cell(20.0, p, 3)} | distill_pl: -10.0 (p=")
    tex = to_latex(paper_tables(summarise(metrics), metrics), None, table)
    assert tex.count("\\begin{tabular}") == 2 and "\\label{tab:d-significance}" in tex
    # distill_pl against supervised at 0.5: 3 points at both shared seeds; its best other is named
    distill = [line for line in tex.split("tab:d-significance")[1].splitlines() if line.startswith("distill\\_pl &")]
    assert len(distill) == 1 and "& $+3.0$ ($p$ n/a) & clip\\_zeroshot: $-5.0$ ($p" in distill[0]


def test_make_report_writes_significance_csv_and_the_table(tmp_path):
    metrics_csv, run_files = write_results_tree(tmp_path / "results")
    paths = make_report(metrics_csv, run_files, tmp_path / "report")
    table = pd.read_csv(paths["significance_csv"])
    assert paths["significance_csv"].name == "significance.csv"
    assert list(table.columns) == COLUMNS
    # the results tree: clip_zeroshot, distill_pl, supervised at fractions 0.1 and 1.0, seeds 0 and 1
    assert len(table) == 2 * 2 * 2 and (table["n_pairs"] == 2).all()
    pd.testing.assert_frame_equal(table, significance_table(pd.read_csv(metrics_csv)), check_dtype=False)
    markdown = paths["summary_md"].read_text()
    assert "### Paired tests on synthetic" in markdown
    tests = markdown.split("### Paired tests on synthetic")[1]
    assert "| clip_zeroshot |" in tests and "| distill_pl |" in tests
    assert "| supervised |" not in tests
    assert 'id="significance-synthetic"' in paths["html"].read_text()
    assert "Paired tests on synthetic" in paths["summary_tex"].read_text()
