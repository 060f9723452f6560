"""Markdown tables and the numbers in them: the one helper every report, comparison and
evaluation writes its tables with."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from . import stats

__all__ = ["MISSING", "mean_ci", "number", "published_cell", "summary_cell", "table"]

#: The cell of a value that is missing or undefined.
MISSING = "—"


def table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> list[str]:
    """The lines of a Markdown table (pipes in cells, as in ``lin|lin``, escaped)."""

    def line(cells: Sequence[object]) -> str:
        return "| " + " | ".join(str(cell).replace("|", "\\|") for cell in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(row) for row in rows)]


def number(value: float | None, digits: int | None = None) -> str:
    """``value`` with ``digits`` decimals (default: 4 significant figures); :data:`MISSING` when
    it is None or not finite."""
    if value is None or not math.isfinite(value):
        return MISSING
    return f"{value:.4g}" if digits is None else f"{value:.{digits}f}"


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and 99 % t confidence half-width of ``values`` (NaN half-width with one value, NaNs
    with none)."""
    if not values:
        return math.nan, math.nan
    if len(values) == 1:
        return float(values[0]), math.nan
    mean, half = stats.confidence_interval(list(values))
    return float(mean), float(half)


def summary_cell(summary: dict | None) -> str:
    """``mean ± half-width`` of a :func:`poisson_vae.results.aggregate` summary (the mean alone
    with one seed; :data:`MISSING` without a summary)."""
    if summary is None:
        return MISSING
    if math.isnan(summary["ci99_half_width"]):
        return number(summary["mean"])
    return f"{summary['mean']:.4g} ± {summary['ci99_half_width']:.2g}"


def published_cell(values: Sequence[float], published: float | None = None) -> str:
    """``mean ± ci`` over seeds, then ``(published; ours - published)`` when a published number
    is given; 3 decimals below 2, else 1."""
    if not values:
        return MISSING
    mean, half = mean_ci(values)
    digits = 3 if abs(mean if published is None else published) < 2 else 1
    text = number(mean, digits) + (f" ± {number(half, digits)}" if math.isfinite(half) else "")
    if published is not None:
        text += f" ({number(published, digits)}; {mean - published:+.{digits}f})"
    return text
