"""Statistics over training seeds: confidence intervals, paired t-tests and the Benjamini-Hochberg FDR.

The paper reports each metric as a mean over seeds with a 99% confidence interval, and compares models
with paired t-tests over the same seeds, corrected for multiple comparisons by Benjamini-Hochberg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import combinations

import numpy as np
from scipy import stats

__all__ = [
    "benjamini_hochberg",
    "compare_conditions",
    "confidence_interval",
    "paired_t_test",
    "summarise",
]


def _as_sample(name: str, values: Sequence[float] | np.ndarray) -> np.ndarray:
    """(n,) float64 sample; one-line ValueError when it is empty, not 1-D or not finite."""
    sample = np.asarray(values, dtype=np.float64)
    if sample.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one value per seed), got shape {sample.shape}")
    if len(sample) == 0:
        raise ValueError(f"{name} is empty; pass at least one value")
    if not np.isfinite(sample).all():
        raise ValueError(f"{name} contains NaN/inf: {sample.tolist()}; drop failed runs first")
    return sample


def confidence_interval(
    values: Sequence[float] | np.ndarray, level: float = 0.99
) -> tuple[float, float]:
    """Mean and half-width of the t-distribution confidence interval of the mean.

    The half-width is ``t_{(1 + level) / 2, n - 1} * s / sqrt(n)`` with ``s`` the sample standard
    deviation (ddof = 1), so ``mean +- half_width`` equals ``scipy.stats.t.interval``. With one value
    there is no spread to estimate and the half-width is NaN.

    Args:
        values: (n,) one value per seed.
        level: coverage of the interval, in (0, 1).

    Returns:
        ``(mean, half_width)``.
    """
    sample = _as_sample("values", values)
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    mean = float(sample.mean())
    if len(sample) == 1:
        return mean, float("nan")
    standard_error = sample.std(ddof=1) / np.sqrt(len(sample))
    return mean, float(stats.t.ppf((1 + level) / 2, len(sample) - 1) * standard_error)


def paired_t_test(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray
) -> tuple[float, float]:
    """Two-sided paired t-test of ``a`` against ``b``, paired by position (``scipy.stats.ttest_rel``).

    When every difference is zero, scipy returns NaN; this returns ``(0.0, 1.0)`` instead (no evidence
    of a difference) so that a NaN cannot reach the multiple-comparison correction.

    Args:
        a: (n,) values of one condition, n >= 2.
        b: (n,) values of the other, in the same seed order.

    Returns:
        ``(t, p)``; t > 0 when ``a`` is larger on average.
    """
    a, b = _as_sample("a", a), _as_sample("b", b)
    if len(a) != len(b):
        raise ValueError(f"a paired test needs equal lengths, got {len(a)} and {len(b)} values")
    if len(a) < 2:
        raise ValueError("a paired t-test needs at least 2 pairs")
    if np.all(a == b):
        return 0.0, 1.0
    result = stats.ttest_rel(a, b)
    return float(result.statistic), float(result.pvalue)


def _bh_adjust(p_values: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: min over j >= i of p_(j) m / j, capped at 1, by hand."""
    m = len(p_values)
    order = np.argsort(p_values)
    scaled = p_values[order] * m / np.arange(1, m + 1)
    # The running minimum from the largest p-value down makes the adjusted values monotone.
    adjusted_sorted = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    return adjusted


def benjamini_hochberg(
    p_values: Sequence[float] | np.ndarray, alpha: float = 0.01
) -> tuple[np.ndarray, np.ndarray]:
    """Benjamini-Hochberg step-up procedure controlling the false discovery rate at ``alpha``.

    Adjusted p-values come from ``scipy.stats.false_discovery_control`` (scipy >= 1.11), or from the
    same formula by hand on older scipy; a hypothesis is rejected when its adjusted p <= ``alpha``.

    Args:
        p_values: (m,) p-values in [0, 1].
        alpha: false discovery rate.

    Returns:
        ``(rejected, adjusted)``: (m,) bool and (m,) float arrays, in the order of ``p_values``.
    """
    p_values = np.asarray(p_values, dtype=np.float64)
    if p_values.ndim != 1:
        raise ValueError(f"p_values must be 1-D, got shape {p_values.shape}")
    if not (np.isfinite(p_values).all() and np.all((p_values >= 0) & (p_values <= 1))):
        raise ValueError(f"p_values must lie in [0, 1], got {p_values.tolist()}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if len(p_values) == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    if hasattr(stats, "false_discovery_control"):
        adjusted = np.asarray(stats.false_discovery_control(p_values, method="bh"), dtype=np.float64)
    else:
        adjusted = _bh_adjust(p_values)
    return adjusted <= alpha, adjusted


def _sorted_seeds(seeds: object) -> list:
    """Seeds in sorted order where they compare, else as given (for messages)."""
    try:
        return sorted(seeds)
    except TypeError:
        return list(seeds)


def _paired_values(results: Mapping[str, Mapping[object, float]]) -> dict[str, np.ndarray]:
    """{condition: (n_seeds,) values} in one shared seed order; ValueError on mismatched or bad seeds."""
    names = list(results)
    seeds = list(results[names[0]])
    for name in names[1:]:
        if set(results[name]) != set(seeds):
            raise ValueError(
                f"conditions {names[0]!r} and {name!r} have different seeds: "
                f"{_sorted_seeds(seeds)} vs {_sorted_seeds(results[name])}; "
                "a paired comparison needs every condition run on the same seeds"
            )
    if len(seeds) < 2:
        raise ValueError(f"a paired comparison needs at least 2 seeds, got {_sorted_seeds(seeds)}")
    return {
        name: _as_sample(f"condition {name!r}", [runs[seed] for seed in seeds])
        for name, runs in results.items()
    }


def compare_conditions(results: Mapping[str, Mapping[object, float]], alpha: float = 0.01) -> list[dict]:
    """All pairwise paired t-tests between conditions, paired by seed, BH-corrected across the pairs.

    Args:
        results: ``{condition: {seed: value}}``; every condition must have the same seeds (>= 2).
        alpha: false discovery rate of :func:`benjamini_hochberg`.

    Returns:
        One dict per pair of conditions (in the order of ``results``), with ``a``, ``b``, ``n_seeds``,
        ``mean_a``, ``mean_b``, ``mean_difference`` (a - b), ``t``, ``p``, ``p_adjusted`` and
        ``significant`` (adjusted p <= alpha).
    """
    if len(results) < 2:
        raise ValueError(f"compare_conditions needs at least 2 conditions, got {list(results)}")
    values = _paired_values(results)
    pairs = list(combinations(values, 2))
    tests = [paired_t_test(values[a], values[b]) for a, b in pairs]
    significant, adjusted = benjamini_hochberg([p for _, p in tests], alpha)
    return [
        {
            "a": a,
            "b": b,
            "n_seeds": len(values[a]),
            "mean_a": float(values[a].mean()),
            "mean_b": float(values[b].mean()),
            "mean_difference": float((values[a] - values[b]).mean()),
            "t": t,
            "p": p,
            "p_adjusted": float(p_adjusted),
            "significant": bool(rejected),
        }
        for (a, b), (t, p), p_adjusted, rejected in zip(pairs, tests, adjusted, significant)
    ]


def summarise(values: Sequence[float] | np.ndarray) -> dict:
    """Mean, 99% confidence half-width, count and sample standard deviation (ddof = 1) of (n,) values.

    With one value, ``ci99_half_width`` and ``std`` are NaN.
    """
    sample = _as_sample("values", values)
    mean, half_width = confidence_interval(sample, level=0.99)
    std = float(sample.std(ddof=1)) if len(sample) > 1 else float("nan")
    return {"mean": mean, "ci99_half_width": half_width, "n": len(sample), "std": std}
