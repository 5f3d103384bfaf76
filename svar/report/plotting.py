"""What the report's figures share: matplotlib's Agg backend, markers and colours, series dodged
sideways so that tied ones stay visible, and the note an empty panel shows instead of a plot."""

from __future__ import annotations

import pandas as pd


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


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
