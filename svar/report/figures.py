"""The report's figures (PNG, seaborn over matplotlib's Agg backend), one registry: `FIGURES`.

Each figure is registered once, at the end of this module, with its name, its file in the
report's folder, its caption and the function that draws it. Everything else takes the list from
there: what `make_report` draws and embeds in report.html (in registration order), the outputs of
rule `report` (workflow/rules/report.smk), the report tests' expected files, and the list of
figures in results/README.md (`readme_table`; a test compares the two). To add a figure, write its
drawing function here and register it below; then paste `readme_table()` into results/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..aggregate import several_teachers, with_teacher
from ..atomic import atomic_path
from ..registry import Registry
from ..wording import counted
from .analysis import BASELINE_METHOD
from .plotting import MARKERS, pyplot, colours, dodge, say_why_empty, scatter_by_method
from .tables import fraction_label


# --------------------------------------------------------------------------- figures


def save_figure(fig, out: Path) -> None:
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)


def plot_accuracy_vs_fraction(metrics: pd.DataFrame, published: pd.DataFrame, out: Path) -> None:
    """Top-1 against label fraction: ours solid with filled markers and a ± sd band over seeds,
    published numbers for the same dataset hollow and dashed, labelled 'method (venue year)'.
    Zero-shot rows (no labels) cannot sit on a log axis and are drawn as dotted levels. Markers
    are dodged sideways (dodge): the x tick they gather round is their fraction."""
    save_figure(accuracy_figure(metrics, published), out)


def accuracy_figure(metrics: pd.DataFrame, published: pd.DataFrame):
    import seaborn as sns

    plt = pyplot()
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
    plt = pyplot()
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

    plt = pyplot()
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

    plt = pyplot()
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


def _note_figure(text: str, out: Path) -> None:
    """A figure that is only its reason for having nothing to draw."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 2.0))
    say_why_empty(ax, text)
    ax.set_axis_off()
    save_figure(fig, out)


def plot_pseudo_labels(runs: list[dict], dataset: str, out: Path) -> list[str]:
    """The pseudo-labels' accuracy (of those used: mask 1) and coverage against step, per method
    and labeled fraction, mean ± sd over seeds (each run's curve smoothed over 10 steps). Returns
    the methods drawn."""
    import seaborn as sns

    plt = pyplot()
    frames = []
    for run in [r for r in runs if r["dataset"] == dataset]:
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
    plt = pyplot()
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
    plt = pyplot()
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


# --------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class FigureInputs:
    """What the figures are drawn from: make_report's tables and runs, and the run chosen for the
    per-class accuracy and the confusion matrix (`chosen`: dataset, method, fraction, seed, title;
    its fraction and dataset are also the training curves')."""

    metrics: pd.DataFrame
    published: pd.DataFrame
    runs: list[dict]
    analysis: pd.DataFrame
    chosen: dict
    chosen_run: dict


# The fields a caption may hold, and how results/README.md words them: {run} the chosen run's
# title, {fraction} its labeled fraction, {methods} what the figure's draw function returns.
CAPTION_FIELDS = {"run": "the run shown (`svar report --run`)",
                  "fraction": "that run's labeled fraction",
                  "methods": "the methods drawn"}


@dataclass(frozen=True)
class ReportFigure:
    """One figure of the report: `name` (rule report's output of that name; make_report lists its file
    as `<name>_plot`), `file` (in the report's folder), `caption` (report.html's, a str.format
    template of CAPTION_FIELDS) and `draw(inputs, out)`, which writes the PNG to `out` and returns
    the caption's {methods} (or None when the caption has none)."""

    name: str
    file: str
    caption: str
    draw: Callable[[FigureInputs, Path], str | None]

    @property
    def key(self) -> str:
        return f"{self.name}_plot"

    def make(self, inputs: FigureInputs, out: Path) -> str:
        """Draw the figure into `out`; its caption, filled in."""
        methods = self.draw(inputs, out)
        return self.caption.format(run=inputs.chosen["title"], fraction=fraction_label(inputs.chosen["fraction"]),
                                   methods=methods)


FIGURES = Registry("figure", "the report's figures (svar.report.figures.FIGURES)")


def _accuracy(inputs: FigureInputs, out: Path) -> None:
    plot_accuracy_vs_fraction(inputs.metrics, inputs.published, out)


def _per_class(inputs: FigureInputs, out: Path) -> None:
    plot_per_class(inputs.chosen_run, out)


def _confusion(inputs: FigureInputs, out: Path) -> None:
    plot_confusion(inputs.chosen_run, out)


def _training_curves(inputs: FigureInputs, out: Path) -> str:
    drawn = plot_training_curves(inputs.runs, inputs.chosen["dataset"], inputs.chosen["fraction"], out)
    return ", ".join(drawn) or "none: teacher-only runs have no curve"


def _pseudo_labels(inputs: FigureInputs, out: Path) -> str:
    return ", ".join(plot_pseudo_labels(inputs.runs, inputs.chosen["dataset"], out)) or "no method uses any"


def _pseudo_labels_per_class(inputs: FigureInputs, out: Path) -> None:
    plot_per_class_pseudo_labels(inputs.analysis, inputs.chosen["dataset"], out)


def _gain_vs_teacher(inputs: FigureInputs, out: Path) -> None:
    plot_gain_vs_teacher(inputs.analysis, inputs.chosen["dataset"], out)


# in the order report.html shows them
for _figure in (
    ReportFigure("accuracy", "accuracy_vs_fraction.png",
                 "Top-1 against labeled fraction: ours (solid, ± sd over seeds) and published results for the same "
                 "dataset under a comparable split convention (hollow, dashed; dotted: zero-shot). The markers at one "
                 "fraction stand side by side around its tick, so that tied methods stay visible", _accuracy),
    ReportFigure("per_class", "per_class.png", "Per-class accuracy: {run}", _per_class),
    ReportFigure("confusion", "confusion.png", "Confusion matrix: {run}", _confusion),
    ReportFigure("training_curves", "training_curves.png",
                 "Training curves at {fraction} labels, mean ± sd over seeds ({methods})", _training_curves),
    ReportFigure("pseudo_labels", "pseudo_labels.png",
                 "Pseudo-labels used in training: their accuracy against the unlabeled videos' true labels (which no "
                 "loss reads) and their coverage, per labeled fraction ({methods})", _pseudo_labels),
    ReportFigure("pseudo_labels_per_class", "pseudo_labels_per_class.png",
                 "Per class: accuracy of the pseudo-labels each method trained on against the teacher's zero-shot "
                 "test accuracy of the class (lowest labeled fraction; the methods' markers of one class side by "
                 "side)", _pseudo_labels_per_class),
    ReportFigure("gain_vs_teacher", "gain_vs_teacher.png",
                 f"Per class: test accuracy gain over {BASELINE_METHOD} against the teacher's zero-shot accuracy of "
                 "the class (lowest labeled fraction; per_class_analysis.csv holds every fraction; the methods' "
                 "markers of one class side by side)", _gain_vs_teacher),
):
    FIGURES.register(_figure)


def readme_table() -> str:
    """results/README.md's table of the figures: each file and its caption, the fields the runs fill
    in written ‹as what they are›."""
    fields = {field: f"‹{text}›" for field, text in CAPTION_FIELDS.items()}
    rows = [f"| `{figure.file}` | {figure.caption.format(**fields)} |" for _, figure in FIGURES.items()]
    return "\n".join(["| file | caption in report.html (‹…›: filled in from the runs) |", "|---|---|", *rows]) + "\n"
