"""The results model: evaluated runs, the conditions they belong to, and summaries over seeds.

A run's *condition* is what it trained apart from its seed (data set, family, networks, method,
the weight of its sparsity term, size and length); runs of one condition are summarised over seeds
(mean and 99 % t confidence interval, :mod:`poisson_vae.stats`). VAE runs and sparse-coding runs
both take part: a sparse coder's family is its algorithm (``lca``, ``ista``, ...) and its sparsity
weight is ``lam`` where a VAE has ``beta``. :mod:`poisson_vae.compare` and the reproduction reports
render these; this module only reads and summarises.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import stats
from .runs import Run

__all__ = [
    "CONVERGENCE_STEPS",
    "METRICS",
    "Condition",
    "RunRecord",
    "aggregate",
    "by_condition",
    "condition_and_seed",
    "flat_metrics",
    "knn_accuracies",
    "load_runs",
    "metric_order",
]

# Top-level numbers of eval/metrics.json.
_PLAIN_METRICS = (
    "nelbo",
    "sse",
    "kl",
    "mse_map",
    "r2",
    "r2_mean",
    "r2_map",
    "portion_zeros",
    "distance",
    "distance_map",
    "lifetime_sparsity",
    "population_sparsity",
    "n_active",
    "active_fraction",
)
#: Scalar metrics in the order tables list them; KNN accuracies follow as ``knn_<N>``.
METRICS = (*_PLAIN_METRICS, "gabor_fraction", "shattering", "probe_accuracy")
#: The inference steps at which an iterative VAE's convergence record is kept flat, as
#: ``<record>_t<step>`` (the published convergence table's steps and 250, where it plateaus).
CONVERGENCE_STEPS = (1, 2, 4, 8, 16, 32, 64, 128, 250, 256, 512, 1000)
_CONVERGENCE_RECORDS = ("r2", "r2_pooled", "portion_zeros", "step_norm", "distance")


@dataclass(frozen=True)
class Condition:
    """What a run trained, apart from its seed; runs of one condition are averaged over seeds.

    Attributes:
        data: the data set.
        family: the latent family, or the sparse coder's algorithm.
        arch: the networks (``-`` for a sparse coder).
        method: the VAE's loss method (with a P-VAE's soft indicator unless the sigmoid:
            ``mc-cubic``; ``iterative-T16`` for an iterative VAE), or ``hard`` for
            hard-threshold LCA (``-`` otherwise).
        beta: a VAE's KL weight (None for a sparse coder).
        lam: a sparse coder's sparsity weight (None for a VAE).
        n_latents: latents (or atoms), when known: runs that differ in it never pool.
        epochs: training epochs, when known: runs that differ in it never pool.
    """

    data: str
    family: str
    arch: str
    method: str
    beta: float | None = None
    lam: float | None = None
    n_latents: int | None = None
    epochs: int | None = None

    @property
    def weight(self) -> tuple[str, float]:
        """The sparsity weight by name: ``("beta", 1.0)`` or ``("lam", 0.5)``."""
        return (
            ("lam", self.lam)
            if self.lam is not None
            else ("beta", self.beta if self.beta is not None else 1.0)
        )

    @property
    def label(self) -> str:
        """Short name without the data set, e.g. ``poisson lin|lin mc K=512 beta=1 (100 epochs)``
        or ``lca lam=0.5``."""
        name, value = self.weight
        return self._describe(f"{name}={value:g}")

    @property
    def weight_label(self) -> str:
        """The sparsity weight as a figure labels a point of a sweep: ``β=1`` or ``λ=0.3``."""
        name, value = self.weight
        return f"{'λ' if name == 'lam' else 'β'}={value:g}"

    @property
    def sweep_label(self) -> str:
        """:attr:`label` without the sparsity weight: the name of a sweep over beta or lambda,
        e.g. ``poisson lin|lin mc K=512 (100 epochs)``."""
        return self._describe(None)

    def _describe(self, weight: str | None) -> str:
        parts = [part for part in (self.family, self.arch, self.method) if part != "-"]
        parts += [f"K={self.n_latents}"] if self.n_latents is not None else []
        parts += [weight] if weight else []
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


def _method(model: dict) -> str:
    """A VAE's method, with its soft indicator when it samples through one that is not the
    default sigmoid (``mc-cubic``), or ``iterative-T16`` for an iterative VAE trained over 16
    steps: runs that differ in it never pool."""
    method = str(model.get("method", "-"))
    if model.get("inference", "amortized") == "iterative":
        return f"iterative-T{model.get('n_steps', 16)}"
    indicator = str(model.get("indicator", "sigmoid"))
    relaxed = method in ("mc", "straight-through") and model.get("latent") == "poisson"
    return f"{method}-{indicator}" if relaxed and indicator != "sigmoid" else method


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
                _method(model),
                beta=float(train.get("beta", 1.0)),
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
                lam=float(coder["lam"]),
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
    """Flat ``{metric: value}`` of ``eval/metrics.json``: numbers, gabor, shattering, knn_<N>, an
    iterative VAE's linear-probe accuracy at its last step (``probe_accuracy``), and
    an iterative VAE's convergence at :data:`CONVERGENCE_STEPS` (``r2_t16``: the mean per-sample
    R^2 of the spikes at step 16; likewise ``portion_zeros``, ``step_norm`` and ``distance``), and
    the 5-NN accuracies recorded during training (``knn_200_e5``: with 200 labels after epoch 5)."""
    flat = {name: _number(document.get(name)) for name in _PLAIN_METRICS}
    probe = document.get("linear_probe")
    if isinstance(probe, dict) and probe.get("accuracy"):
        flat["probe_accuracy"] = _number(probe["accuracy"][-1])
    record = document.get("convergence")
    if isinstance(record, dict) and isinstance(record.get("step"), list):
        index = {step: i for i, step in enumerate(record["step"])}
        for name in _CONVERGENCE_RECORDS:
            values = record.get(name) or []
            for step in CONVERGENCE_STEPS:
                if step in index and index[step] < len(values):
                    flat[f"{name}_t{step}"] = _number(values[index[step]])
    gabor = document.get("gabor")
    flat["gabor_fraction"] = _number(gabor.get("fraction_gabor")) if isinstance(gabor, dict) else None
    shattering = document.get("shattering")
    flat["shattering"] = _number(shattering.get("mean") if isinstance(shattering, dict) else shattering)
    knn = document.get("knn")
    for n, result in knn.items() if isinstance(knn, dict) else []:
        flat[f"knn_{n}"] = _number(result.get("mean") if isinstance(result, dict) else result)
    curve = document.get("knn_curve")
    for n, accuracies in curve.items() if isinstance(curve, dict) else []:
        if n != "epoch":
            for epoch, accuracy in zip(curve["epoch"], accuracies):
                flat[f"knn_{n}_e{epoch}"] = _number(accuracy)
    return {name: value for name, value in flat.items() if value is not None}


def _load_run(directory: Path) -> RunRecord:
    """One evaluated run folder as a :class:`RunRecord`."""
    run = Run(directory)
    condition, seed = condition_and_seed(run.config_document(), run.config_path)
    return RunRecord(directory, condition, seed, flat_metrics(run.eval_metrics()))


def by_condition(runs: Iterable[RunRecord]) -> dict[Condition, dict[int, RunRecord]]:
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
    by_condition(runs)
    return runs


def metric_order(runs: Sequence[RunRecord]) -> list[str]:
    """Every metric some run has, scalars first, then knn_<N> by increasing N (the accuracies
    recorded during training, ``knn_<N>_e<epoch>``, are left to the reports' curves)."""
    present = {name for run in runs for name in run.metrics}
    knn = sorted(
        (name for name in present if name.startswith("knn_") and name[4:].isdigit()), key=_knn_size
    )
    return [name for name in METRICS if name in present] + knn


def knn_accuracies(runs: Iterable[RunRecord]) -> dict[int, list[float]]:
    """``{N: each run's KNN accuracy with N labels}`` from the runs' ``knn_<N>`` metrics, by
    increasing N (runs without one are left out of its list)."""
    found: dict[int, list[float]] = {}
    for run in runs:
        for name, value in run.metrics.items():
            if name.startswith("knn_") and name.removeprefix("knn_").isdigit():
                found.setdefault(int(name.removeprefix("knn_")), []).append(value)
    return dict(sorted(found.items()))


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
    names = metric_order(runs) if metrics is None else list(metrics)
    summaries: dict[Condition, dict] = {}
    for condition, by_seed in by_condition(runs).items():
        summaries[condition] = {}
        for name in names:
            seeds = sorted(seed for seed, run in by_seed.items() if name in run.metrics)
            if seeds:
                summary = stats.summarise([by_seed[seed].metrics[name] for seed in seeds])
                summaries[condition][name] = {**summary, "seeds": seeds}
    return summaries
