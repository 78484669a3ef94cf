"""Figures for evaluation reports, drawn with matplotlib's Agg renderer.

The figures are built as plain ``matplotlib.figure.Figure`` objects (no pyplot, no global backend
change, no display needed); turn them into PNG bytes for the report with
:func:`userlm_env.evaluation.report.figure_to_png`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["bar_chart_with_ci", "turn_curve"]


def _new_figure(width: float, height: float = 4.0) -> tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _as_float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _error(upper: float, lower: float) -> float:
    """Length of one arm of an error bar (0 when a bound is missing)."""
    return 0.0 if math.isnan(upper) or math.isnan(lower) else max(0.0, upper - lower)


def bar_chart_with_ci(
    categories: list[str],
    series: dict[str, list[tuple[float, float, float]]],
    *,
    ylabel: str,
    title: str,
) -> Figure:
    """Grouped bar chart with confidence-interval error bars.

    One group of bars per category (e.g. setting), one bar per series (e.g. user simulator) in each
    group; bar height is the mean and the error bar spans ``[lo, hi]``. A missing value (a None or
    NaN mean) leaves a gap; a None/NaN bound drops that error bar.

    Args:
        categories: group labels on the x axis.
        series: series name -> one ``(mean, lo, hi)`` per category.
        ylabel: y-axis label.
        title: figure title.

    Returns:
        The figure (render it with ``figure_to_png``).

    Raises:
        ValueError: a series does not have one triple per category.
    """
    for name, values in series.items():
        if len(values) != len(categories):
            raise ValueError(f"series {name!r} has {len(values)} values for {len(categories)} categories")
    fig, ax = _new_figure(max(5.0, 1.1 + 0.45 * len(categories) * max(1, len(series))))
    n = max(1, len(series))
    width = 0.8 / n
    for i, (name, values) in enumerate(series.items()):
        triples = [tuple(_as_float(x) for x in v) for v in values]
        present = [c for c, (mean, _, _) in enumerate(triples) if not math.isnan(mean)]
        xs = [c - 0.4 + width * (i + 0.5) for c in present]
        means = [triples[c][0] for c in present]
        below = [_error(triples[c][0], triples[c][1]) for c in present]
        above = [_error(triples[c][2], triples[c][0]) for c in present]
        color = f"C{i % 10}"
        ax.bar(xs, means, width * 0.92, label=name, color=color, yerr=[below, above], capsize=3, error_kw={"lw": 1})
    ax.set_xticks(range(len(categories)), categories)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if series:
        ax.legend(frameon=False, fontsize="small", ncols=min(4, len(series)), loc="best")
    return fig


def turn_curve(
    series: dict[str, Sequence[float]],
    *,
    xlabel: str,
    ylabel: str,
    title: str,
) -> Figure:
    """Line chart of a per-turn quantity, one line per series.

    The k-th value of a series is plotted at x = k + 1 (turns count from 1); None/NaN values leave
    gaps. Example: the share of shards revealed after each turn, one line per user simulator.

    Args:
        series: series name -> one value per turn.
        xlabel: x-axis label.
        ylabel: y-axis label.
        title: figure title.

    Returns:
        The figure (render it with ``figure_to_png``).
    """
    fig, ax = _new_figure(6.0)
    for name, values in series.items():
        ys = [_as_float(v) for v in values]
        ax.plot(range(1, len(ys) + 1), ys, marker="o", markersize=4, linewidth=1.6, label=name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if series:
        ax.legend(frameon=False, fontsize="small", loc="best")
    return fig
