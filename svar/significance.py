"""Paired significance tests between methods, over seeds.

At one label fraction, the same seed draws the same labeled split for every method, so two
methods' accuracies at one seed are a pair: the split's luck (an easy or a hard labeled set) is
common to both and cancels in their difference. A paired t-test on the per-seed differences
therefore asks whether one method beats another beyond seed-to-seed noise, with far fewer
seeds than an unpaired comparison of the two means would need.

`significance_table` compares every method with `supervised` (the labeled-only baseline every
semi-supervised method must beat) and with the best other method at the same fraction (the one
it must beat to be the best); `significance_cell` prints one comparison as a table shows it.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats

BASELINE = "supervised"
AGAINST_BASELINE = "supervised"
AGAINST_BEST = "best other"
COLUMNS = ["dataset", "teacher", "fraction", "method", "against", "other", "n_pairs", "diff", "ci_low", "ci_high",
           "p_value"]

# differences closer than this are taken as equal: accuracies are ratios of counts, and the same
# count difference over the same test set can come out of floating point a few ulps apart, which a
# t-test would read as an almost-zero variance and so an almost-zero p
EQUAL_DIFFERENCES = 1e-12


class PairedTest(NamedTuple):
    """A paired comparison of a against b: the mean difference a − b (in the inputs' units), its
    confidence interval, the two-sided p-value and the number of pairs it rests on."""

    diff: float
    ci_low: float
    ci_high: float
    p_value: float
    n: int


def paired_test(a: Sequence[float], b: Sequence[float], confidence: float = 0.95) -> PairedTest:
    """Paired t-test of a against b, two sequences of per-seed values in the same seed order.

    Returns the mean of the differences a − b, its t-interval (mean ± t_{n−1} · sd / √n, scipy's
    t quantile at `confidence`), the two-sided p-value of scipy.stats.ttest_rel, and n, the number
    of pairs. A pair with a missing value (NaN) on either side is left out, since a metric that was
    not scored says nothing about the difference.

    Untestable cases, chosen so that no number claims more than the data show:

    - no pair: every field NaN, n = 0;
    - one pair: diff is that pair's difference, interval and p NaN (one difference has no spread
      to judge it by);
    - every difference the same (zero variance, e.g. two methods that use no seed-dependent split,
      such as two zero-shot teachers): the difference is exact as observed, so the interval is the
      point [diff, diff], and p is NaN. A t-test is undefined there: scipy gives NaN when the
      differences are all zero and p = 0 otherwise, and p = 0 from two seeds would claim a
      certainty that the design (the same split noise in every seed is not sampled) cannot give.
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired_test needs two sequences of equal length, got shapes {a.shape} and {b.shape}")
    both = ~(np.isnan(a) | np.isnan(b))
    a, b = a[both], b[both]
    n = len(a)
    if n == 0:
        return PairedTest(math.nan, math.nan, math.nan, math.nan, 0)
    differences = a - b
    diff = float(differences.mean())
    if n == 1:
        return PairedTest(diff, math.nan, math.nan, math.nan, 1)
    if np.ptp(differences) <= EQUAL_DIFFERENCES:
        return PairedTest(diff, diff, diff, math.nan, n)
    half_width = stats.t.ppf(0.5 + confidence / 2, n - 1) * differences.std(ddof=1) / math.sqrt(n)
    p_value = float(stats.ttest_rel(a, b).pvalue)
    return PairedTest(diff, diff - half_width, diff + half_width, p_value, n)


def significance_table(metrics: pd.DataFrame, metric: str = "top1") -> pd.DataFrame:
    """Paired tests of each method against `supervised` and against the best other method.

    metrics is `svar aggregate`'s long table (dataset, method, fraction, seed, metric, value).
    For every dataset, teacher, fraction and method other than `supervised`, up to two rows:

    - against "supervised", when supervised ran at that fraction;
    - against "best other": the other method (supervised included) with the highest mean of the
      metric over its seeds at that fraction, ties broken by name; `other` names it.

    Each test pairs the two methods on the seeds both have a value for (same seed, same labeled
    split), whatever order the rows come in. A method whose value does not depend on the seed
    (a zero-shot teacher) is tested like any other: the test is on the per-seed differences.
    diff, ci_low and ci_high are in percentage points (×100), the interval 95%; see
    `paired_test` for the NaN cases. Columns: COLUMNS.
    """
    from .aggregate import with_teacher

    metrics = with_teacher(metrics)
    scored = metrics[(metrics["metric"] == metric) & metrics["value"].notna()]
    duplicated = scored.duplicated(["dataset", "teacher", "method", "fraction", "seed"])
    if duplicated.any():
        first = scored[duplicated].iloc[0]
        raise ValueError(f"{metric} of {first['dataset']} / {first['method']} / {first['fraction']:g} / seed "
                         f"{first['seed']} appears more than once: the seeds cannot be paired")
    rows = []
    for (dataset, teacher, fraction), at_fraction in scored.groupby(["dataset", "teacher", "fraction"], sort=True):
        by_method = {method: group.set_index("seed")["value"]
                     for method, group in at_fraction.groupby("method", sort=True)}
        means = {method: values.mean() for method, values in by_method.items()}
        for method, values in by_method.items():
            if method == BASELINE:
                continue
            others = [m for m in by_method if m != method]  # sorted by name, so max keeps the first of a tie
            comparisons = []
            if BASELINE in by_method:
                comparisons.append((AGAINST_BASELINE, BASELINE))
            if others:
                comparisons.append((AGAINST_BEST, max(others, key=means.get)))
            for against, other in comparisons:
                seeds = values.index.intersection(by_method[other].index).sort_values()
                test = paired_test(values.loc[seeds].to_numpy(), by_method[other].loc[seeds].to_numpy())
                rows.append({"dataset": dataset, "teacher": teacher, "fraction": fraction, "method": method, "against": against,
                             "other": other, "n_pairs": test.n, "diff": 100 * test.diff,
                             "ci_low": 100 * test.ci_low, "ci_high": 100 * test.ci_high,
                             "p_value": test.p_value})
    table = pd.DataFrame(rows, columns=COLUMNS)
    return table.astype({"n_pairs": int}).round({"diff": 4, "ci_low": 4, "ci_high": 4})


def p_text(p_value: float) -> str:
    """A p-value as a table prints it: two decimals, three below 0.01, "<0.001" below that."""
    if p_value < 0.001:
        return "<0.001"
    return f"={p_value:.3f}" if p_value < 0.01 else f"={p_value:.2f}"


def significance_cell(diff: float, p_value: float, n_pairs: int, latex: bool = False) -> str:
    """One comparison as a table cell: "+3.1 (p=0.02)" (diff in percentage points, signed).

    "–" ("--" in LaTeX) when there is no pair to compare; "+3.1 (p n/a)" when the difference is
    known but has no p (one shared seed, or the same difference at every seed: `paired_test`).
    latex=True writes the numbers in math mode, so that the sign is a minus and "<" is not a
    text-mode glyph.
    """
    if n_pairs == 0 or diff != diff:
        return "--" if latex else "–"
    if latex:
        p = "$p$ n/a" if p_value != p_value else f"$p{p_text(p_value)}$"
        return f"${diff:+.1f}$ ({p})"
    p = "p n/a" if p_value != p_value else f"p{p_text(p_value)}"
    return f"{diff:+.1f} ({p})"
