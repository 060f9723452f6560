"""Compare evaluated runs: aggregate metrics by condition over seeds, as in the paper's tables.

A run directory holds ``config.json`` and, after ``pvae evaluate``, ``eval/metrics.json``. Runs that
differ only in their seed share a *condition* (data set, latent family, networks, method and beta);
each metric is reported as its mean over seeds with a 99% t confidence interval, and conditions on the
same data set are compared by paired t-tests over seeds with the Benjamini-Hochberg correction
(:mod:`poisson_vae.stats`).

Sparse-coding runs (``config.json`` with a ``sparse_coding`` section) take part too: their family is
the algorithm (``lca``, ``ista``, ...) and their sparsity penalty ``lam`` stands in for beta.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from . import stats
from .errors import ConfigError, braces
from .runs import Run

__all__ = [
    "TESTED_METRICS",
    "Condition",
    "RunRecord",
    "aggregate",
    "check_seeds",
    "compare",
    "condition_and_seed",
    "flat_metrics",
    "load_runs",
    "paired_tests",
    "render_markdown",
    "save_rate_distortion_figure",
]

# Top-level numbers of eval/metrics.json.
_PLAIN_METRICS = (
    "nelbo",
    "sse",
    "kl",
    "mse_map",
    "r2",
    "portion_zeros",
    "lifetime_sparsity",
    "population_sparsity",
    "n_active",
    "active_fraction",
)
# Scalar metrics in the order tables and summaries list them; KNN accuracies follow as knn_<N>.
_SCALAR_METRICS = (*_PLAIN_METRICS, "gabor_fraction", "shattering")
TESTED_METRICS = ("nelbo", "mse_map", "lifetime_sparsity", "active_fraction")
_ALPHA = 0.01
_MISSING = "—"


@dataclass(frozen=True)
class Condition:
    """What a run trained, apart from its seed; runs of one condition are averaged over seeds."""

    data: str
    family: str
    arch: str
    method: str
    beta: float
    beta_name: str = "beta"
    #: latents (or atoms) and training epochs, when known: runs that differ in them never pool
    n_latents: int | None = None
    epochs: int | None = None

    @property
    def label(self) -> str:
        """Short name without the data set, e.g. ``poisson lin|lin mc K=512 beta=1 (100 epochs)``
        or ``lca lam=0.5``."""
        parts = [part for part in (self.family, self.arch, self.method) if part != "-"]
        parts += [f"K={self.n_latents}"] if self.n_latents is not None else []
        parts += [f"{self.beta_name}={self.beta:g}"]
        if self.epochs is not None:
            parts += [f"({self.epochs} epoch{'s' * (self.epochs != 1)})"]
        return " ".join(parts)


@dataclass(frozen=True)
class RunRecord:
    """One evaluated run: its directory, condition, seed and flat ``{metric: value}``."""

    directory: Path
    condition: Condition
    seed: int
    metrics: dict[str, float] = field(default_factory=dict)


def condition_and_seed(config: dict, path: Path) -> tuple[Condition, int]:
    """Condition and seed of a run from its ``config.json`` (a VAE run or a sparse-coding run)."""
    try:
        data = str(config.get("data", {}).get("data", "?"))
        if "model" in config:
            model, train = config["model"], config.get("train", {})
            condition = Condition(
                data,
                str(model["latent"]),
                str(model["arch"]),
                str(model.get("method", "-")),
                float(train.get("beta", 1.0)),
                n_latents=_optional_int(model.get("n_latents")),
                epochs=_optional_int(train.get("epochs")),
            )
            return condition, int(train.get("seed", 0))
        if "sparse_coding" in config:
            coder = config["sparse_coding"]
            condition = Condition(
                data,
                str(coder["algorithm"]),
                "-",
                # hard-threshold LCA is another method (not the Lasso); runs before it existed are soft
                "hard" if coder.get("threshold", "soft") == "hard" else "-",
                float(coder["lam"]),
                "lam",
                n_latents=_optional_int(coder.get("n_atoms")),
                epochs=_optional_int(coder.get("epochs")),
            )
            return condition, int(coder.get("seed", 0))
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} lacks or garbles a field of the run's condition: {error!r}") from None
    raise ValueError(f"{path} has neither a 'model' nor a 'sparse_coding' section; is it a run?")


def _optional_int(value: object) -> int | None:
    return None if value is None else int(value)


def _number(value: object) -> float | None:
    """``value`` as a finite float, or None for anything else (bools, strings, NaN, dicts)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def flat_metrics(document: dict) -> dict[str, float]:
    """Flat ``{metric: value}`` of ``eval/metrics.json``: numbers, gabor, shattering, knn_<N>."""
    flat = {name: _number(document.get(name)) for name in _PLAIN_METRICS}
    gabor = document.get("gabor")
    flat["gabor_fraction"] = _number(gabor.get("fraction_gabor")) if isinstance(gabor, dict) else None
    shattering = document.get("shattering")
    flat["shattering"] = _number(shattering.get("mean") if isinstance(shattering, dict) else shattering)
    knn = document.get("knn")
    for n, result in knn.items() if isinstance(knn, dict) else []:
        flat[f"knn_{n}"] = _number(result.get("mean") if isinstance(result, dict) else result)
    return {name: value for name, value in flat.items() if value is not None}


def _load_run(directory: Path) -> RunRecord:
    """One evaluated run folder as a :class:`RunRecord`."""
    run = Run(directory)
    document = run.config_document()
    metrics = run.eval_metrics()
    condition, seed = condition_and_seed(document, run.config_path)
    return RunRecord(directory, condition, seed, flat_metrics(metrics))


def _by_condition(runs: Iterable[RunRecord]) -> dict[Condition, dict[int, RunRecord]]:
    """``{condition: {seed: run}}`` in order of first appearance; ValueError on a repeated seed."""
    grouped: dict[Condition, dict[int, RunRecord]] = {}
    for run in runs:
        seeds = grouped.setdefault(run.condition, {})
        if run.seed in seeds:
            raise ValueError(
                f"{seeds[run.seed].directory} and {run.directory} are both "
                f"'{run.condition.label}' on {run.condition.data} with seed {run.seed}; drop one"
            )
        seeds[run.seed] = run
    return grouped


def load_runs(directories: Iterable[str | Path]) -> list[RunRecord]:
    """Read ``config.json`` and ``eval/metrics.json`` of each run directory.

    Raises:
        ValueError: no directories, a missing or corrupt file, or two runs of one condition and seed.
    """
    runs = [_load_run(Path(directory)) for directory in directories]
    if not runs:
        raise ValueError("no run directories given; pass at least one evaluated run")
    _by_condition(runs)
    return runs


def _metric_order(runs: Sequence[RunRecord]) -> list[str]:
    """Every metric some run has, scalars first, then knn_<N> by increasing N."""
    present = {name for run in runs for name in run.metrics}
    knn = sorted((name for name in present if name.startswith("knn_")), key=_knn_size)
    return [name for name in _SCALAR_METRICS if name in present] + knn


def _knn_size(name: str) -> float:
    """N of a ``knn_<N>`` metric, for sorting (non-numeric N last)."""
    suffix = name.removeprefix("knn_")
    return float(suffix) if suffix.isdigit() else math.inf


def aggregate(runs: Sequence[RunRecord], metrics: Sequence[str] | None = None) -> dict[Condition, dict]:
    """Summaries over seeds: ``{condition: {metric: summary}}``.

    Each summary is :func:`poisson_vae.stats.summarise` (``mean``, ``ci99_half_width``, ``n``, ``std``)
    plus ``seeds``, the sorted seeds with that metric. Metrics a condition's runs lack are left out.

    Args:
        runs: evaluated runs from :func:`load_runs`.
        metrics: names to summarise; default every metric some run has.
    """
    names = _metric_order(runs) if metrics is None else list(metrics)
    summaries: dict[Condition, dict] = {}
    for condition, by_seed in _by_condition(runs).items():
        summaries[condition] = {}
        for name in names:
            seeds = sorted(seed for seed, run in by_seed.items() if name in run.metrics)
            if seeds:
                summary = stats.summarise([by_seed[seed].metrics[name] for seed in seeds])
                summaries[condition][name] = {**summary, "seeds": seeds}
    return summaries


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
    grouped = _by_condition(runs)
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
    grouped = _by_condition(run for run in runs if metric in run.metrics)
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


def _cell(text: object) -> str:
    """A Markdown table cell: pipes (as in ``lin|lin``) escaped."""
    return str(text).replace("|", "\\|")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """Lines of a Markdown table."""
    lines = ["| " + " | ".join(_cell(name) for name in header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]


def _mean_ci(summary: dict | None) -> str:
    """``mean ± half-width`` (just the mean with one seed), or a dash when the metric is missing."""
    if summary is None:
        return _MISSING
    if math.isnan(summary["ci99_half_width"]):
        return f"{summary['mean']:.4g}"
    return f"{summary['mean']:.4g} ± {summary['ci99_half_width']:.2g}"


def _summary_table(
    summaries: dict[Condition, dict], columns: Sequence[tuple[str, str]], n_seeds: bool = False
) -> list[str]:
    """Table of conditions (rows) by ``(metric, heading)`` columns, each cell ``mean ± ci``."""
    header = ["data", "condition", *(["n seeds"] if n_seeds else []), *(h for _, h in columns)]
    rows = []
    for condition, by_metric in summaries.items():
        seeds = max((len(summary["seeds"]) for summary in by_metric.values()), default=0)
        cells = [_mean_ci(by_metric.get(metric)) for metric, _ in columns]
        rows.append([condition.data, condition.label, *([seeds] if n_seeds else []), *cells])
    return _table(header, rows)


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
    return [*lines, *_table(header, rows), ""]


def render_markdown(runs: Sequence[RunRecord], alpha: float = _ALPHA) -> str:
    """The comparison as Markdown: NELBO, sparsity, KNN and shattering tables, then paired tests.

    Cells are ``mean ± half-width of the 99% t confidence interval`` over seeds; the KNN and shattering
    tables appear only when some run has those metrics.
    """
    summaries = aggregate(runs)
    present = set(_metric_order(runs))
    knn = [name for name in _metric_order(runs) if name.startswith("knn_")]
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
    ]
    if knn:
        columns = [(name, f"N={name.removeprefix('knn_')}") for name in knn]
        lines += ["## KNN classification accuracy", "", *_summary_table(summaries, columns), ""]
    if "shattering" in present:
        columns = [("shattering", "shattering")]
        lines += ["## Shattering dimensionality", "", *_summary_table(summaries, columns), ""]
    lines += [f"## Paired t-tests (by seed, Benjamini-Hochberg at {alpha:g})", ""]
    for metric in TESTED_METRICS:
        lines += _tests_section(runs, metric, alpha)
    return "\n".join(lines)


def _error_bar(summary: dict) -> float:
    """The 99% half-width, or 0 when it is undefined (one seed)."""
    half_width = summary["ci99_half_width"]
    return 0.0 if math.isnan(half_width) else half_width


def save_rate_distortion_figure(runs: Sequence[RunRecord], path: str | Path) -> Path:
    """Scatter of MSE (MAP, y) against lifetime sparsity (x): per-seed points and condition means.

    Each condition has its own colour and marker; its mean carries 99% confidence error bars in both
    directions. Runs lacking either metric are left out.

    Returns:
        ``path`` as a Path.
    """
    from matplotlib.figure import Figure  # pyplot-free: no global backend or open-figure state

    path = Path(path)
    figure = Figure(figsize=(6, 4.5), layout="constrained")
    axes = figure.add_subplot()
    summaries = aggregate(runs, ["lifetime_sparsity", "mse_map"])
    several_data = len({condition.data for condition in summaries}) > 1
    markers = "osD^vPX*<>"
    for index, (condition, by_metric) in enumerate(summaries.items()):
        if set(by_metric) != {"lifetime_sparsity", "mse_map"}:
            continue
        colour, marker = f"C{index % 10}", markers[index % len(markers)]
        points = np.array(
            [
                [run.metrics["lifetime_sparsity"], run.metrics["mse_map"]]
                for run in runs
                if run.condition == condition and {"lifetime_sparsity", "mse_map"} <= set(run.metrics)
            ]
        )
        axes.scatter(points[:, 0], points[:, 1], color=colour, marker=marker, alpha=0.35, s=18)
        x, y = by_metric["lifetime_sparsity"], by_metric["mse_map"]
        label = f"{condition.data}: {condition.label}" if several_data else condition.label
        axes.errorbar(
            x["mean"],
            y["mean"],
            xerr=_error_bar(x),
            yerr=_error_bar(y),
            color=colour,
            marker=marker,
            markersize=8,
            capsize=3,
            label=label,
        )
    if axes.has_data():
        axes.legend(fontsize="small")
    else:
        axes.text(
            0.5,
            0.5,
            "no run has both mse_map and lifetime_sparsity",
            ha="center",
            transform=axes.transAxes,
        )
    axes.set_xlabel("lifetime sparsity")
    axes.set_ylabel("MSE (MAP)")
    axes.set_title("Rate-distortion: mean ± 99% CI over seeds, dots are seeds")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path


def compare(
    directories: Iterable[str | Path], out: str | Path | None = None, unpaired: bool = False
) -> Path:
    """Load evaluated runs and write ``COMPARE.md`` and ``rate_distortion.png`` into ``out``.

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
    save_rate_distortion_figure(runs, out / "rate_distortion.png")
    return markdown
