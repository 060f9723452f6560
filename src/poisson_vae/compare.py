"""``pvae compare``: evaluated runs as the paper's tables, paired tests, a rate-distortion plot and
KNN accuracy against the number of labels.

Runs are read and summarised over seeds by :mod:`poisson_vae.results`; this module renders them
(``COMPARE.md``) and compares conditions on the same data set by paired t-tests over seeds with
the Benjamini-Hochberg correction (:mod:`poisson_vae.stats`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import combinations
from pathlib import Path

from . import stats
from .errors import ConfigError, braces
from .figures import RatePoint, save_knn_figure, save_rate_distortion
from .results import (
    Condition,
    RunRecord,
    aggregate,
    by_condition,
    knn_accuracies,
    load_runs,
    metric_order,
)
from .tables import summary_cell, table

__all__ = ["TESTED_METRICS", "check_seeds", "compare", "paired_tests", "render_markdown"]

#: The figures :func:`compare` writes beside ``COMPARE.md``.
RATE_DISTORTION, KNN = "rate_distortion.png", "knn.png"

TESTED_METRICS = ("nelbo", "mse_map", "lifetime_sparsity", "active_fraction")
_ALPHA = 0.01


def _by_data(conditions: Iterable[Condition]) -> dict[str, list[Condition]]:
    """Conditions grouped by data set, in order of first appearance."""
    grouped: dict[str, list[Condition]] = {}
    for condition in conditions:
        grouped.setdefault(condition.data, []).append(condition)
    return grouped


def _seed_mismatch(seeds: dict[Condition, list[int]]) -> str | None:
    """The refusal message for the first pair of conditions with different seeds, else None."""
    for a, b in combinations(seeds, 2):
        if seeds[a] != seeds[b]:
            return (
                f"conditions '{a.label}' and '{b.label}' on {a.data} were run with different seeds: "
                f"{seeds[a]} vs {seeds[b]}; paired tests need the same seeds"
            )
    return None


def check_seeds(runs: Sequence[RunRecord]) -> None:
    """Raise a one-line ValueError when two conditions on one data set were run with different seeds."""
    grouped = by_condition(runs)
    for conditions in _by_data(grouped).values():
        message = _seed_mismatch({condition: sorted(grouped[condition]) for condition in conditions})
        if message:
            raise ConfigError(braces(message) + " — train the missing seeds or set {0}", "unpaired")


def paired_tests(runs: Sequence[RunRecord], metric: str, alpha: float = _ALPHA) -> list[dict]:
    """Paired t-tests of ``metric`` between the conditions of each data set, paired by seed.

    Benjamini-Hochberg runs across all pairs of one data set (one family of tests per data set); runs
    without ``metric`` are left out, and data sets with fewer than 2 such conditions give no tests.

    Returns:
        The dicts of :func:`poisson_vae.stats.compare_conditions` (``a`` and ``b`` are condition
        labels), each with ``data`` and ``metric`` added.

    Raises:
        ValueError: naming the metric, when two conditions have different seeds or fewer than 2 seeds.
    """
    grouped = by_condition(run for run in runs if metric in run.metrics)
    tests: list[dict] = []
    for data, conditions in _by_data(grouped).items():
        if len(conditions) < 2:
            continue
        message = _seed_mismatch({condition: sorted(grouped[condition]) for condition in conditions})
        if message:
            raise ValueError(f"paired tests of {metric}: {message}")
        results = {
            c.label: {s: run.metrics[metric] for s, run in grouped[c].items()} for c in conditions
        }
        try:
            rows = stats.compare_conditions(results, alpha=alpha)
        except ValueError as error:
            raise ValueError(f"paired tests of {metric} on {data}: {error}") from None
        tests += [{**row, "data": data, "metric": metric} for row in rows]
    return tests


def _summary_table(
    summaries: dict[Condition, dict], columns: Sequence[tuple[str, str]], n_seeds: bool = False
) -> list[str]:
    """Table of conditions (rows) by ``(metric, heading)`` columns, each cell ``mean ± ci``."""
    header = ["data", "condition", *(["n seeds"] if n_seeds else []), *(h for _, h in columns)]
    rows = []
    for condition, by_metric in summaries.items():
        seeds = max((len(summary["seeds"]) for summary in by_metric.values()), default=0)
        cells = [summary_cell(by_metric.get(metric)) for metric, _ in columns]
        rows.append([condition.data, condition.label, *([seeds] if n_seeds else []), *cells])
    return table(header, rows)


def _tests_section(runs: Sequence[RunRecord], metric: str, alpha: float) -> list[str]:
    """The paired tests of one metric as a table, or one line saying why there is none."""
    lines = [f"### {metric}", ""]
    try:
        tests = paired_tests(runs, metric, alpha)
    except ValueError as error:
        return [*lines, f"Not tested: {error}", ""]
    if not tests:
        return [*lines, f"Not tested: no data set has 2 or more conditions with {metric}.", ""]
    header = [
        "data",
        "a",
        "b",
        "mean difference (a − b)",
        "t",
        "p",
        "BH-adjusted p",
        f"significant at {alpha:g}",
    ]
    rows = [
        [
            row["data"],
            row["a"],
            row["b"],
            f"{row['mean_difference']:.4g}",
            f"{row['t']:.3g}",
            f"{row['p']:.3g}",
            f"{row['p_adjusted']:.3g}",
            "yes" if row["significant"] else "no",
        ]
        for row in tests
    ]
    return [*lines, *table(header, rows), ""]


def render_markdown(runs: Sequence[RunRecord], alpha: float = _ALPHA) -> str:
    """The comparison as Markdown: NELBO, sparsity, KNN and shattering tables, then paired tests.

    Cells are ``mean ± half-width of the 99% t confidence interval`` over seeds; the KNN and shattering
    tables appear only when some run has those metrics.
    """
    summaries = aggregate(runs)
    present = set(metric_order(runs))
    knn = [name for name in metric_order(runs) if name.startswith("knn_")]
    sparsity = [("portion_zeros", "portion zeros"), ("lifetime_sparsity", "lifetime sparsity")]
    sparsity += [("population_sparsity", "population sparsity"), ("active_fraction", "active fraction")]
    sparsity += [("gabor_fraction", "Gabor fraction")] if "gabor_fraction" in present else []
    lines = [
        "# Comparison of runs",
        "",
        f"{len(runs)} runs in {len(summaries)} conditions. Each cell is the mean over seeds ± the "
        "half-width of its 99% t confidence interval.",
        "",
        "## NELBO",
        "",
        *_summary_table(
            summaries,
            [("nelbo", "NELBO"), ("sse", "SSE"), ("kl", "KL"), ("mse_map", "MSE (MAP)")],
            n_seeds=True,
        ),
        "",
        "## Sparsity and active latents",
        "",
        *_summary_table(summaries, sparsity),
        "",
        f"![Rate-distortion: mse_map against lifetime sparsity]({RATE_DISTORTION})",
        "",
    ]
    if knn:
        columns = [(name, f"N={name.removeprefix('knn_')}") for name in knn]
        lines += ["## KNN classification accuracy", "", *_summary_table(summaries, columns), ""]
        lines += [f"![KNN accuracy against the number of labels]({KNN})", ""]
    if "shattering" in present:
        columns = [("shattering", "shattering")]
        lines += ["## Shattering dimensionality", "", *_summary_table(summaries, columns), ""]
    lines += [f"## Paired t-tests (by seed, Benjamini-Hochberg at {alpha:g})", ""]
    for metric in TESTED_METRICS:
        lines += _tests_section(runs, metric, alpha)
    return "\n".join(lines)


def save_rate_distortion_figure(runs: Sequence[RunRecord], path: str | Path) -> Path:
    """MSE (MAP) against lifetime sparsity (:func:`~poisson_vae.figures.save_rate_distortion`): a
    curve per sweep (conditions that differ only in beta or lambda), each point a condition's mean
    over seeds with 99 % confidence bars both ways and its seeds as dots, labelled with its beta or
    lambda. Runs lacking either metric are left out."""
    measured = [run for run in runs if {"lifetime_sparsity", "mse_map"} <= set(run.metrics)]
    several_data = len({condition.data for condition in by_condition(runs)}) > 1
    curves: dict[str, list[RatePoint]] = {}
    # by beta or lambda: each sweep's line runs through its points in that order
    for condition, by_seed in sorted(by_condition(measured).items(), key=lambda item: item[0].weight[1]):
        name = f"{condition.data}: {condition.sweep_label}" if several_data else condition.sweep_label
        seeds = [(run.metrics["lifetime_sparsity"], run.metrics["mse_map"]) for run in by_seed.values()]
        curves.setdefault(name, []).append(RatePoint.over_seeds(seeds, condition.weight_label))
    title = "Rate-distortion: mean ± 99% CI over seeds, dots are seeds"
    return save_rate_distortion(curves, path, title)


def save_knn_curves(runs: Sequence[RunRecord], path: str | Path) -> Path | None:
    """KNN accuracy against the number of labels (:func:`~poisson_vae.figures.save_knn_figure`): a
    panel per data set, a line per condition with its 99 % confidence band over seeds; None (and no
    file) when no run has KNN results."""
    panels: dict[str, dict[str, dict[int, list[float]]]] = {}
    for condition, by_seed in by_condition(runs).items():
        accuracies = knn_accuracies(by_seed.values())
        if accuracies:
            panels.setdefault(condition.data, {})[condition.label] = accuracies
    if not panels:
        return None
    return save_knn_figure(panels, path, "KNN accuracy against the number of labels")


def compare(
    directories: Iterable[str | Path], out: str | Path | None = None, unpaired: bool = False
) -> Path:
    """Load evaluated runs and write ``COMPARE.md``, ``rate_distortion.png`` and (when runs have
    KNN results) ``knn.png`` into ``out``.

    Args:
        directories: run directories, each evaluated by ``pvae evaluate``.
        out: output folder, created if needed; default ``compare`` in the working directory.
        unpaired: write the tables even when conditions on one data set were run with different
            seeds (the tests section then says why it is missing); otherwise refuse.

    Returns:
        The path of ``COMPARE.md``.
    """
    runs = load_runs(directories)
    if not unpaired:
        check_seeds(runs)
    out = Path("compare") if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    markdown = out / "COMPARE.md"
    markdown.write_text(render_markdown(runs))
    save_rate_distortion_figure(runs, out / RATE_DISTORTION)
    if save_knn_curves(runs, out / KNN) is None:
        (out / KNN).unlink(missing_ok=True)  # an earlier comparison's
    return markdown
