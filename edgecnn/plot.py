"""Probability charts: each image beside a horizontal bar chart of its most likely classes.

What the tutorials draw with `plt.bar(range(10), predictions[0])`, made readable at a
glance: the top-k classes, most likely on top, the winning bar blue when it is right
(or the truth is unknown) and red when it is wrong, the true class green with a ✓ when
the image's path names it. Needs matplotlib (`pip install 'edgecnn[plot]'`); text in
scripts DejaVu Sans lacks (Hangul) is drawn with the font file given, through
matplotlib's per-glyph font fallback.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgecnn.errors import EdgecnnError
from edgecnn.fileio import atomic_output

MAX_CHART_IMAGES = 12  # a grid of more is no longer readable at a glance
CHART_SUFFIXES = (".png", ".svg", ".pdf")
WINNER, WRONG, TRUE, OTHER = "tab:blue", "tab:red", "tab:green", "0.75"
MAX_TITLE = 32  # characters of a file name above its image


@dataclass(frozen=True)
class ChartImage:
    """One image of a chart: uint8 pixels (HxW gray or HxWx3 BGR, as decoded), its title,
    its (K,) class probabilities and the index of its true class when known."""

    pixels: np.ndarray
    title: str
    probabilities: np.ndarray
    true_index: int | None = None


def matplotlib_problem() -> str | None:
    """None when matplotlib imports, else what to do about it (one line)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "probability charts need matplotlib: pip install 'edgecnn[plot]'"
    return None


def check_chart_path(path: str | os.PathLike) -> None:
    """EdgecnnError unless `path` ends in a format the chart can be written as."""
    suffix = Path(path).suffix.lower()
    if suffix not in CHART_SUFFIXES:
        raise EdgecnnError(
            f"unsupported chart type {suffix or '(none)'!r} (use one of {', '.join(CHART_SUFFIXES)})",
            parameter="path",
            value=path,
        )


def chart_figure(images: Sequence[ChartImage], labels: Sequence[str], k: int, font: str | os.PathLike | None = None):
    """A matplotlib Figure: each image beside the bars of its `k` most likely classes
    (plus its true class when that is not among them), named by `labels`. `font` is a
    font file for glyphs DejaVu Sans lacks; None uses matplotlib's default font only."""
    from matplotlib import font_manager, rc_context
    from matplotlib.figure import Figure

    families = ["DejaVu Sans"]
    if font is not None:
        font_manager.fontManager.addfont(str(font))
        families.append(font_manager.FontProperties(fname=str(font)).get_name())
    count = len(images)
    columns = 1 if count == 1 else 2 if count <= 4 else 3
    rows = math.ceil(count / columns)
    k = max(1, min(k, len(labels)))
    cell_height = 1.0 + 0.32 * (k + 1)
    with rc_context({"font.family": families, "font.size": 10}):
        figure = Figure(figsize=(6.4 * columns, cell_height * rows), layout="constrained")
        grid = figure.add_gridspec(rows, 2 * columns, width_ratios=[1.0, 1.7] * columns)
        for n, item in enumerate(images):
            row, column = divmod(n, columns)
            _draw_image(figure.add_subplot(grid[row, 2 * column]), item)
            _draw_bars(figure.add_subplot(grid[row, 2 * column + 1]), item, labels, k)
    return figure


def _draw_image(axes: Any, item: ChartImage) -> None:
    pixels = item.pixels
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        axes.imshow(pixels[:, :, ::-1])  # BGR -> RGB
    else:
        axes.imshow(pixels.reshape(pixels.shape[:2]), cmap="gray", vmin=0, vmax=255)
    title = item.title if len(item.title) <= MAX_TITLE else "…" + item.title[-(MAX_TITLE - 1) :]
    axes.set_title(title, fontsize=9)
    axes.set_axis_off()


def _draw_bars(axes: Any, item: ChartImage, labels: Sequence[str], k: int) -> None:
    probabilities = np.asarray(item.probabilities, dtype=np.float64)
    shown = [int(i) for i in np.argsort(-probabilities, kind="stable")[:k]]
    truth = item.true_index
    if truth is not None and truth not in shown:
        shown.append(truth)
    winner = shown[0]
    colours = []
    for index in shown:
        if index == winner:
            colours.append(WINNER if truth is None or truth == winner else WRONG)
        else:
            colours.append(TRUE if index == truth else OTHER)
    values = [float(probabilities[i]) if math.isfinite(probabilities[i]) else 0.0 for i in shown]
    positions = np.arange(len(shown))
    axes.barh(positions, values, color=colours, height=0.7)
    axes.set_yticks(positions, [labels[i] + (" ✓" if i == truth else "") for i in shown])
    for tick, index in zip(axes.get_yticklabels(), shown, strict=True):
        if index == truth:
            tick.set_color(TRUE)
    for position, value in zip(positions, values, strict=True):
        axes.text(min(value, 1.0) + 0.02, position, f"{value:.1%}", va="center", fontsize=8)
    axes.set_xlim(0.0, 1.25)
    axes.set_xticks([0.0, 0.5, 1.0])
    axes.set_ylim(len(shown) - 0.5, -0.5)  # most likely on top
    axes.spines[["top", "right"]].set_visible(False)


def save_chart(
    path: str | os.PathLike,
    images: Sequence[ChartImage],
    labels: Sequence[str],
    k: int,
    font: str | os.PathLike | None = None,
) -> None:
    """Write `chart_figure(images, labels, k, font)` to `path` (PNG, SVG or PDF by suffix), atomically."""
    check_chart_path(path)
    if not images:
        raise EdgecnnError("no images to chart", parameter="images")
    figure = chart_figure(images, labels, k, font)
    with atomic_output(path) as temp:
        figure.savefig(temp, format=Path(path).suffix.lower()[1:], dpi=100)
