"""The report's figures (PNG, seaborn over matplotlib's Agg backend) and the per-class analysis two
of them draw: accuracy against label fraction beside published numbers, per-class accuracy, the
confusion matrix, training curves, pseudo-label diagnostics and per-class gains against the teacher."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..aggregate import several_teachers, with_teacher
from ..atomic import atomic_path
from ..readers import read_csv
from .tables import fraction_label
from ..wording import counted


# --------------------------------------------------------------------------- figures


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, out: Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)


MARKERS = "osD^vP*Xph<>"
# Series with markers at shared x positions (methods at each label fraction, methods over the same
# class's teacher accuracy) are dodged sideways, so that tied ones sit side by side instead of one
# hiding the other: series i of n is drawn (i - (n - 1) / 2) steps off its x, a step being one
# marker's width in points, narrowed so that all of them span at most DODGE_SPREAD points. The
# offset is in points, not data: the same on a log axis and at any zoom.
DODGE_STEP = 6.0
DODGE_SPREAD = 48.0


def dodge(ax, index: int, count: int):
    """The transform that draws series `index` of `count` at its data, shifted sideways. Set it on
    an artist once drawn (set_transform, a scatter's set_offset_transform), not when drawing: the
    axes' limits are computed from data drawn with ax.transData, and from nothing drawn with this."""
    from matplotlib.transforms import ScaledTranslation

    step = min(DODGE_STEP, DODGE_SPREAD / max(count - 1, 1))
    return ax.transData + ScaledTranslation((index - (count - 1) / 2) * step / 72, 0, ax.figure.dpi_scale_trans)


def colours(n: int) -> list:
    """n distinct colours: seaborn's default palette, or evenly spaced hues beyond its 10."""
    import seaborn as sns

    return sns.color_palette(n_colors=n) if n <= 10 else sns.color_palette("husl", n)


def say_why_empty(ax, text: str, fontsize: float = 9) -> None:
    """In place of axes with nothing to draw: the reason, centred, so an empty panel never passes
    for a plot of zeros or a drawing error. Wrapped to the axes' width (matplotlib's own wrap
    fills the figure's width, past the panel's edge)."""
    import textwrap

    width_pt = ax.get_position().width * ax.figure.get_figwidth() * 72
    chars = max(20, int(0.85 * width_pt / (0.55 * fontsize)))  # a character is about 0.55 em wide
    ax.text(0.5, 0.5, textwrap.fill(text, chars, break_on_hyphens=False), ha="center", va="center",
            transform=ax.transAxes, fontsize=fontsize, color="#333",
            bbox={"facecolor": "white", "edgecolor": "#999", "boxstyle": "round"})


def plot_accuracy_vs_fraction(metrics: pd.DataFrame, published: pd.DataFrame, out: Path) -> None:
    """Top-1 against label fraction: ours solid with filled markers and a ± sd band over seeds,
    published numbers for the same dataset hollow and dashed, labelled 'method (venue year)'.
    Zero-shot rows (no labels) cannot sit on a log axis and are drawn as dotted levels. Markers
    are dodged sideways (dodge): the x tick they gather round is their fraction."""
    save_figure(accuracy_figure(metrics, published), out)


def accuracy_figure(metrics: pd.DataFrame, published: pd.DataFrame):
    import seaborn as sns

    plt = _pyplot()
    top1 = with_teacher(metrics[metrics["metric"] == "top1"]).assign(top1=lambda d: 100 * d["value"])
    if several_teachers(top1):  # one line per method and teacher
        top1 = top1.assign(method=top1["method"] + " [" + top1["teacher"] + "]")
    datasets = sorted(top1["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(8.5 * len(datasets), 4.8), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        ours = top1[top1["dataset"] == dataset]
        # mean and sample sd over seeds (a single seed has no band)
        stats = ours.groupby(["method", "fraction"])["top1"].agg(["mean", "std"]).reset_index()
        methods = sorted(stats["method"].unique())
        theirs = published[published["dataset"] == dataset]
        groups = list(theirs.groupby(["method", "venue", "year"], sort=True))
        series = len(methods) + sum((rows["label_fraction"] > 0).any() for _, rows in groups)
        for i, (method, colour) in enumerate(zip(methods, colours(len(methods)))):
            rows = stats[stats["method"] == method].sort_values("fraction")
            shift = dodge(ax, i, series)
            line, = ax.plot(rows["fraction"], rows["mean"], marker=MARKERS[i % len(MARKERS)], color=colour,
                            label=method)
            band = ax.fill_between(rows["fraction"], rows["mean"] - rows["std"], rows["mean"] + rows["std"],
                                   color=colour, alpha=0.2, linewidth=0)
            line.set_transform(shift)
            band.set_transform(shift)
        if stats["mean"].notna().sum() == 0:
            say_why_empty(ax, f"no top-1 accuracy recorded on {dataset}")
        fractions = set(ours["fraction"])
        palette = sns.color_palette("dark", max(1, len(groups)))
        drawn = len(methods)
        for i, ((method, venue, year), rows) in enumerate(groups):
            first = rows.iloc[0]
            label = f"{method} ({venue} {year}; {first['backbone']}, {first['pretraining']}; published)"
            zero_shot = rows[rows["label_fraction"] == 0]
            for value in zero_shot["top1"]:
                ax.axhline(value, color=palette[i], linestyle=":", linewidth=1.5, label=label)
            labelled = rows[rows["label_fraction"] > 0].sort_values("label_fraction")
            if not labelled.empty:
                line, = ax.plot(labelled["label_fraction"], labelled["top1"], linestyle="--",
                                marker=MARKERS[i % len(MARKERS)], markerfacecolor="none", markersize=8,
                                color=palette[i], linewidth=1.2, label=label)
                line.set_transform(dodge(ax, drawn, series))
                drawn += 1
                fractions |= set(labelled["label_fraction"])
        ax.set_xscale("log")
        ax.set_xticks(sorted(fractions), [fraction_label(f) for f in sorted(fractions)])
        ax.minorticks_off()
        ax.set_ylim(0, 100)
        ax.set_xlabel("labeled fraction (log scale)")
        ax.set_ylabel("top-1 accuracy (%)")
        ax.set_title(f"{dataset}: top-1 vs labeled fraction (ours: mean ± sd over seeds)")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        ax.grid(alpha=0.3)
    return fig


def plot_per_class(run: dict, out: Path) -> None:
    """Per-class accuracy of one run, sorted, so the classes a method fails on stand out."""
    plt = _pyplot()
    per_class = pd.Series(run["per_class"], dtype=float).dropna().sort_values() * 100
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.22 * len(per_class) if len(per_class) else 2.5))
    if per_class.empty:
        say_why_empty(ax, "no class has a test video: no per-class accuracy")
    ax.barh(per_class.index, per_class.values, color="#4C72B0")
    ax.axvline(100 * run["top1"], color="black", linestyle="--", linewidth=1, label=f"top-1 {100 * run['top1']:.1f}%")
    ax.set_xlim(0, 100)
    ax.set_xlabel("accuracy (%)")
    ax.set_title(f"per-class accuracy: {run_title(run)}")
    ax.tick_params(axis="y", labelsize=7 if len(per_class) > 30 else 9)
    ax.legend(loc="lower right")
    save_figure(fig, out)


def plot_confusion(run: dict, out: Path) -> None:
    """Row-normalised confusion matrix (each row: how one true class was predicted); class
    names are the per_class keys, whose order is the label index order."""
    import numpy as np

    plt = _pyplot()
    names = list(run["per_class"])
    k = len(names)
    counts = np.zeros((k, k))
    np.add.at(counts, (np.asarray(run["test_labels"]), np.asarray(run["test_predictions"])), 1)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)
    size = min(22, 3 + 0.35 * k)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="fraction of the true class")
    ax.set_xticks(range(k), names, rotation=90, fontsize=6 if k > 30 else 8)
    ax.set_yticks(range(k), names, fontsize=6 if k > 30 else 8)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if k <= 20:
        for (i, j), value in np.ndenumerate(counts):
            if value:
                ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if rates[i, j] > 0.5 else "black")
    ax.set_title(f"confusion matrix (counts; colour = row fraction): {run_title(run)}")
    save_figure(fig, out)


def plot_training_curves(runs: list[dict], dataset: str, fraction: float, out: Path) -> list[str]:
    """Loss against step, mean ± sd over seeds per method, at one dataset and fraction.

    Teacher-only baselines write a header-only curve and are skipped; beside the total loss
    (whose terms differ between methods) the cross-entropy on labeled clips is drawn when
    present, since that term is common to every student. Returns the methods drawn.
    """
    import seaborn as sns

    plt = _pyplot()
    frames = []
    for run in runs:
        if run["dataset"] != dataset or not math.isclose(float(run["fraction"]), fraction):
            continue
        curve_path = run["dir"] / "train_curve.csv"
        curve = pd.read_csv(curve_path) if curve_path.exists() else pd.DataFrame()
        if curve.empty:
            continue
        frames.append(curve.assign(method=run_label(run, runs), seed=run["seed"]))
    if not frames:
        fig, ax = plt.subplots(figsize=(6.5, 2.5))
        ax.text(0.5, 0.5, f"no training curves: every run at {dataset}, {fraction_label(fraction)} labels "
                "is teacher-only", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        save_figure(fig, out)
        return []
    curves = pd.concat(frames, ignore_index=True)
    columns = [c for c in ("loss", "ce") if c in curves.columns]
    fig, axes = plt.subplots(1, len(columns), figsize=(6.5 * len(columns), 4.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        sns.lineplot(data=curves, x="step", y=column, hue="method", errorbar="sd", ax=ax)
        what = "total loss" if column == "loss" else "labeled cross-entropy"
        if curves[column].notna().sum() == 0:
            say_why_empty(ax, f"no run logged a {what} value")
        ax.set_title(f"{dataset}, {fraction_label(fraction)} labels: {what} (mean ± sd over seeds)", fontsize=10)
        ax.grid(alpha=0.3)
    save_figure(fig, out)
    return sorted(curves["method"].unique().tolist())


# --------------------------------------------------------------------------- pseudo-labels and per-class gains

# the teacher-only baseline whose per-class accuracy is "the teacher's" in the analyses
TEACHER_METHOD = "clip_zeroshot"
BASELINE_METHOD = "supervised"


def _runs_at(runs: list[dict], dataset: str):
    return [r for r in runs if r["dataset"] == dataset]


def _per_class_mean(runs: list[dict], method: str, fraction: float | None) -> pd.Series:
    """A method's test accuracy per class (index: class name), mean over seeds; at `fraction`, or
    over every fraction when None (the zero-shot teacher uses no label: the same at each)."""
    rows = [r["per_class"] for r in runs if r["method"] == method
            and (fraction is None or math.isclose(float(r["fraction"]), fraction))]
    return pd.DataFrame(rows).mean() if rows else pd.Series(dtype=float)


def per_class_analysis(runs: list[dict]) -> pd.DataFrame:
    """One row per dataset, teacher, fraction, method and class: the teacher's zero-shot test accuracy of
    the class (clip_zeroshot, mean over seeds), the method's and `supervised`'s (mean over seeds),
    the gain (method − supervised, points), and the accuracy and coverage of the pseudo-labels the
    method trained on for the class's unlabeled videos (each run's pseudo_labels.csv, pooled over
    seeds; empty for a method that uses none). In %. Empty without clip_zeroshot or supervised."""
    rows = []
    for dataset, teacher_name in sorted({(r["dataset"], r["teacher"]) for r in runs}):
        at = [r for r in _runs_at(runs, dataset) if r["teacher"] == teacher_name]
        teacher = _per_class_mean(at, TEACHER_METHOD, None)
        if teacher.empty:
            continue
        for fraction in sorted({float(r["fraction"]) for r in at}):
            base = _per_class_mean(at, BASELINE_METHOD, fraction)
            for method in sorted({r["method"] for r in at} - {TEACHER_METHOD, BASELINE_METHOD}):
                acc = _per_class_mean(at, method, fraction)
                if acc.empty or base.empty:
                    continue
                pseudo = _pooled_pseudo_labels([r for r in at if r["method"] == method
                                                and math.isclose(float(r["fraction"]), fraction)])
                for name in acc.index:
                    row = pseudo.loc[name] if name in pseudo.index else None
                    rows.append({"dataset": dataset, "teacher": teacher_name, "fraction": fraction, "method": method,
                                 "class": name,
                                 "teacher_zeroshot": 100 * teacher.get(name, float("nan")),
                                 "accuracy": 100 * acc[name], "supervised": 100 * base.get(name, float("nan")),
                                 "gain": 100 * (acc[name] - base.get(name, float("nan"))),
                                 "pseudo_label_accuracy": 100 * row["accuracy"] if row is not None else float("nan"),
                                 "pseudo_label_coverage": 100 * row["coverage"] if row is not None else float("nan")})
    return pd.DataFrame(rows, columns=["dataset", "teacher", "fraction", "method", "class", "teacher_zeroshot",
                                       "accuracy",
                                       "supervised", "gain", "pseudo_label_accuracy", "pseudo_label_coverage"])


def _pooled_pseudo_labels(runs: list[dict]) -> pd.DataFrame:
    """Seen, used and correct pseudo-labels per true class summed over runs (their
    pseudo_labels.csv beside metrics.json), with coverage and accuracy; empty when none used any."""
    tables = []
    for run in runs:
        path = run["dir"] / "pseudo_labels.csv"
        if path.exists():
            table = read_csv(path, "pseudo-label diagnostics", "train")
            if not table.empty:
                tables.append(table)
    if not tables:
        return pd.DataFrame(columns=["seen", "used", "correct", "coverage", "accuracy"])
    pooled = pd.concat(tables).groupby("class")[["seen", "used", "correct"]].sum()
    pooled["coverage"] = pooled["used"] / pooled["seen"].where(pooled["seen"] > 0)
    pooled["accuracy"] = pooled["correct"] / pooled["used"].where(pooled["used"] > 0)
    return pooled


def _note_figure(text: str, out: Path) -> None:
    """A figure that is only its reason for having nothing to draw."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 2.0))
    say_why_empty(ax, text)
    ax.set_axis_off()
    save_figure(fig, out)


def plot_pseudo_labels(runs: list[dict], dataset: str, out: Path) -> list[str]:
    """The pseudo-labels' accuracy (of those used: mask 1) and coverage against step, per method
    and labeled fraction, mean ± sd over seeds (each run's curve smoothed over 10 steps). Returns
    the methods drawn."""
    import seaborn as sns

    plt = _pyplot()
    frames = []
    for run in _runs_at(runs, dataset):
        path = run["dir"] / "train_curve.csv"
        curve = pd.read_csv(path) if path.exists() else pd.DataFrame()
        if "pl_accuracy" not in curve.columns:
            continue
        smooth = curve[["pl_accuracy", "pl_mask"]].rolling(10, min_periods=1).mean()
        frames.append(pd.DataFrame({"step": curve["step"], "accuracy": 100 * smooth["pl_accuracy"],
                                    "coverage": 100 * smooth["pl_mask"], "method": run_label(run, runs),
                                    "fraction": fraction_label(float(run["fraction"])), "seed": run["seed"]}))
    if not frames:
        _note_figure(f"no pseudo-label diagnostics on {dataset}: no run used unlabeled videos with pseudo-labels", out)
        return []
    data = pd.concat(frames, ignore_index=True)
    fractions = sorted(data["fraction"].unique(), key=lambda f: float(f.rstrip("%")))
    fig, axes = plt.subplots(2, len(fractions), figsize=(5.5 * len(fractions), 7), squeeze=False, sharex=True)
    legend = True  # on the first panel with a line: the methods are named once
    for col, fraction in enumerate(fractions):
        part = data[data["fraction"] == fraction]
        for row, what in enumerate(("accuracy", "coverage")):
            ax = axes[row][col]
            drawn = part[what].notna().any()
            sns.lineplot(data=part, x="step", y=what, hue="method", errorbar="sd", ax=ax, legend=legend and drawn)
            legend &= not drawn
            if not drawn:
                say_why_empty(ax, f"no pseudo-label was used at any step at {fraction} labels (coverage 0%: none "
                              "passed the method's threshold, or its unlabeled term never ran): nothing to score"
                              if what == "accuracy" else f"no pseudo-label coverage logged at {fraction} labels")
            ax.set_ylim(-2, 102)  # a method whose soft targets reach every clip sits at 100% coverage: on view
            ax.set_ylabel(f"pseudo-label {what} (%)")
            ax.set_title(f"{dataset}, {fraction} labels", fontsize=10)
            ax.grid(alpha=0.3)
    fig.suptitle("Pseudo-labels used in training, scored against the unlabeled videos' true labels "
                 "(never read by a loss)", fontsize=10)
    save_figure(fig, out)
    return sorted(data["method"].unique().tolist())


def scatter_by_method(ax, rows: pd.DataFrame, x: str, y: str) -> dict:
    """One marker series per method (and teacher, when rows hold several: a colour per method, a
    marker per teacher), dodged sideways (dodge) so that methods tied on a class stay visible.
    Returns each series' transform by (method, teacher), for labels placed at its points."""
    methods, teachers = sorted(rows["method"].unique()), sorted(rows["teacher"].unique())
    several = len(teachers) > 1
    palette = colours(len(methods))
    groups = list(rows.groupby(["method", "teacher"], sort=True))
    shifts = {}
    for i, ((method, teacher), part) in enumerate(groups):
        shifts[(method, teacher)] = dodge(ax, i, len(groups))
        marker = MARKERS[(teachers.index(teacher) if several else methods.index(method)) % len(MARKERS)]
        ax.scatter(part[x], part[y], color=palette[methods.index(method)], marker=marker, s=30,
                   label=f"{method} [{teacher}]" if several else method).set_offset_transform(shifts[(method, teacher)])
    return shifts


def plot_per_class_pseudo_labels(analysis: pd.DataFrame, dataset: str, out: Path) -> None:
    """Per class: the accuracy of the pseudo-labels each method trained on against the teacher's
    zero-shot test accuracy of the class, at the lowest labeled fraction, one marker per method."""
    at = analysis[analysis["dataset"] == dataset]
    rows = at[at["pseudo_label_accuracy"].notna()]
    if rows.empty:
        why = ("no method trains on pseudo-labels" if at["pseudo_label_coverage"].isna().all()
               else "no pseudo-label was used (coverage 0% in every class: none passed the method's threshold, or its "
                    "unlabeled term never ran): nothing to score")
        if at.empty:
            why = "it needs clip_zeroshot, supervised and a method that trains on pseudo-labels in the grid"
        _note_figure(f"no per-class pseudo-label accuracy on {dataset}: {why}", out)
        return
    fraction = rows["fraction"].min()
    rows = rows[rows["fraction"] == fraction]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    scatter_by_method(ax, rows, "teacher_zeroshot", "pseudo_label_accuracy")
    ax.plot([0, 100], [0, 100], color="grey", lw=0.8, ls=":")
    ax.set(xlim=(-3, 103), ylim=(-3, 103), xlabel="teacher zero-shot test accuracy of the class (%)",
           ylabel="accuracy of the pseudo-labels used (%)")
    ax.set_title(f"{dataset}, {fraction_label(fraction)} labels: pseudo-labels per class", fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False)
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def plot_gain_vs_teacher(analysis: pd.DataFrame, dataset: str, out: Path) -> None:
    """Per class: each method's gain over `supervised` (test accuracy, points, mean over seeds)
    against the teacher's zero-shot accuracy of the class, at the lowest labeled fraction; the
    classes with the largest gain and loss named."""
    rows = analysis[analysis["dataset"] == dataset]
    if rows.empty:
        _note_figure(f"no per-class gains on {dataset}: they need clip_zeroshot and supervised in the grid", out)
        return
    fraction = rows["fraction"].min()
    rows = rows[rows["fraction"] == fraction]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    several = rows["teacher"].nunique() > 1  # then one marker per teacher, one colour per method
    shifts = scatter_by_method(ax, rows, "teacher_zeroshot", "gain")
    if rows["gain"].notna().sum() == 0:
        say_why_empty(ax, f"no class has both a {BASELINE_METHOD} and another method's accuracy: no gain to draw")
    ax.axhline(0, color="grey", lw=0.8)
    placed = []  # points already labelled: a label near one of them steps down a line, not over it
    for _, row in pd.concat([rows.nlargest(2, "gain"), rows.nsmallest(2, "gain")]).drop_duplicates().iterrows():
        x, y = row["teacher_zeroshot"], row["gain"]
        line = sum(abs(x - px) < 30 and abs(y - py) < 8 for px, py in placed)  # a label spans ~25 points of x
        placed.append((x, y))
        right = x > 70  # near the right edge the label runs leftwards, inside the axes
        # at its point as drawn: dodged
        ax.annotate(f"{row['class']} ({row['method']})", (x, y), xycoords=shifts[(row["method"], row["teacher"])],
                    fontsize=7, ha="right" if right else "left", xytext=(-4 if right else 4, 3 - 9 * line),
                    textcoords="offset points")
    ax.set(xlabel="teacher zero-shot test accuracy of the class (%)",
           ylabel=f"test accuracy gain over {BASELINE_METHOD} (points)")
    ax.set_title(f"{dataset}, {fraction_label(fraction)} labels: per-class gain against the teacher"
                 + (f" ({counted(rows['teacher'].nunique(), 'teacher')})" if several else ""), fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, frameon=False)  # clear of the points
    ax.grid(alpha=0.3)
    save_figure(fig, out)


def run_label(run: dict, runs: list[dict]) -> str:
    """A run's method as a figure's legend names it: with its teacher when `runs` have several."""
    several = len({r["teacher"] for r in runs}) > 1
    return f"{run['method']} [{run['teacher']}]" if several else run["method"]


def run_title(run: dict) -> str:
    return f"{run['dataset']} / {run['method']} / {fraction_label(float(run['fraction']))} labels / seed {run['seed']}"
