"""Heatmaps of a robustness matrix (train user x test user), drawn with matplotlib's Agg renderer."""

from __future__ import annotations

import math
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["matrix_heatmap"]


def matrix_heatmap(
    values: Sequence[Sequence[float | None]],
    intervals: Sequence[Sequence[tuple[float, float] | None]],
    *,
    rows: Sequence[str],
    columns: Sequence[str],
    title: str,
    xlabel: str = "test user",
    ylabel: str = "trained on",
    fmt: str = "{:.2f}",
    cmap: str = "viridis",
) -> Figure:
    """A heatmap with one cell per (row, column), annotated with the mean and its interval.

    Missing cells (None/NaN) are left blank and marked "n/a"; in-distribution cells (row label ==
    column label) are outlined.

    Raises:
        ValueError: ``values`` / ``intervals`` do not match ``rows`` x ``columns``.
    """
    if len(values) != len(rows) or any(len(r) != len(columns) for r in values):
        raise ValueError(f"values must be {len(rows)} x {len(columns)}")
    if len(intervals) != len(rows) or any(len(r) != len(columns) for r in intervals):
        raise ValueError(f"intervals must be {len(rows)} x {len(columns)}")
    grid = [[math.nan if v is None else float(v) for v in row] for row in values]
    fig = Figure(figsize=(1.9 + 1.9 * len(columns), 1.3 + 0.95 * len(rows)), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = [v for row in grid for v in row if not math.isnan(v)]
    vmin, vmax = (min(finite), max(finite)) if finite else (0.0, 1.0)
    if vmax - vmin < 1e-9:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    fig.colorbar(image, ax=ax, shrink=0.85)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if math.isnan(value):
                ax.text(j, i, "n/a", ha="center", va="center", fontsize=9, color="0.4")
                continue
            interval = intervals[i][j]
            text = fmt.format(value)
            if interval is not None and not any(math.isnan(x) for x in interval):
                text += "\n[" + fmt.format(interval[0]) + ", " + fmt.format(interval[1]) + "]"
            light = (value - vmin) / (vmax - vmin) < 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=8.5, color="white" if light else "black")
            if rows[i] == columns[j]:
                ax.add_patch(
                    _rectangle(j - 0.48, i - 0.48, 0.96, 0.96)  # the in-distribution cell
                )
    ax.set_xticks(range(len(columns)), list(columns), rotation=20, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return fig


def _rectangle(x: float, y: float, w: float, h: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x, y), w, h, fill=False, edgecolor="red", linewidth=2)
