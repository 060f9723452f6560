"""The machinery of the reports' verdicts: records of finished jobs, paired one-sided tests and
equivalence tests over seeds, a monotonicity check, and the Benjamini-Hochberg decision across a
suite's claims.

Each suite (:mod:`poisson_vae.reproduce.suites`) states its claims with these; the report decides
them together at false-discovery rate :data:`ALPHA`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats as scipy_stats

from .. import stats
from ..latents import LATENT_FAMILIES
from ..results import RunRecord, condition_and_seed
from ..tables import number, published_cell

__all__ = [
    "ALPHA",
    "cell",
    "claim",
    "decide",
    "display_name",
    "equivalence_claim",
    "monotone_claim",
    "records",
    "threshold_claim",
    "values",
]

ALPHA = 0.01


def display_name(family: str) -> str:
    """The paper's name of a latent family (``P-VAE``) or a sparse coder (``LCA``)."""
    return LATENT_FAMILIES[family].display_name if family in LATENT_FAMILIES else family.upper()


def records(results: dict[str, dict], kinds: Sequence[str] = ("vae", "sparse")) -> list[RunRecord]:
    """The finished VAE and sparse-coding jobs as :class:`~poisson_vae.results.RunRecord`."""
    found = []
    for name, result in results.items():
        if result["kind"] in kinds:
            condition, seed = condition_and_seed(result["config"], Path(name))
            found.append(RunRecord(Path(name), condition, seed, result["metrics"]))
    return found


def values(found: Sequence[RunRecord], metric: str, **match) -> dict[int, float]:
    """``{seed: value}`` of ``metric`` over the records whose condition matches ``match``."""
    return {
        record.seed: record.metrics[metric]
        for record in found
        if metric in record.metrics
        and all(getattr(record.condition, key) == value for key, value in match.items())
    }


def cell(found: Sequence[RunRecord], metric: str, published: float | None = None, **match) -> str:
    """A report's table cell: ``metric`` over the seeds of the matching records, beside the
    published number."""
    return published_cell(list(values(found, metric, **match).values()), published)


def _digits(value: float) -> int:
    return 3 if abs(value) < 2 else 1


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    seeds = sorted(set(a) & set(b))
    return np.array([a[s] for s in seeds], dtype=float), np.array([b[s] for s in seeds], dtype=float)


def _one_sided_p(a: np.ndarray, b: np.ndarray) -> float:
    """p of a paired t-test of H1: mean(a - b) > 0 (0 when every difference is the same positive
    number, 1 when a and b are equal)."""
    if len(a) < 2:
        return float("nan")
    difference = a - b
    if np.all(difference == difference[0]):
        return 0.0 if difference[0] > 0 else 1.0
    t, p = stats.paired_t_test(a, b)
    return p / 2 if t > 0 else 1 - p / 2


def claim(text: str, test: str, a: dict, b: dict, kind: str, label_a: str, label_b: str) -> dict:
    """A paired claim ``a > b`` (``greater``) or ``a >= b`` (``at_least``) over seeds."""
    left, right = _paired(a, b)
    found = {"claim": text, "test": test, "kind": kind, "n": len(left)}
    if len(left) == 0:
        return found | {"numbers": "no paired runs", "p": float("nan")}
    found["mean_a"], found["mean_b"] = float(left.mean()), float(right.mean())
    digits = _digits(found["mean_b"])
    found["numbers"] = (
        f"{label_a} {number(found['mean_a'], digits)} vs {label_b} {number(found['mean_b'], digits)} "
        f"(n = {len(left)} seeds)"
    )
    # greater: evidence for a > b; at_least: evidence against it (a < b).
    found["p"] = _one_sided_p(left, right) if kind == "greater" else _one_sided_p(right, left)
    return found


def equivalence_claim(
    text: str, test: str, a: dict, b: dict, margin: float, label_a: str, label_b: str
) -> dict:
    """A paired claim ``|a - b| / b < margin`` over seeds: two one-sided t-tests of the relative
    differences against ``-margin`` and ``+margin``; its p is the larger of the two."""
    left, right = _paired(a, b)
    found = {"claim": text, "test": test, "kind": "within", "n": len(left)}
    if len(left) == 0:
        return found | {"numbers": "no paired runs", "p": float("nan")}
    relative = (left - right) / right
    found["difference"], found["margin"] = float(relative.mean()), margin
    digits = _digits(float(right.mean()))
    found["numbers"] = (
        f"{label_a} {number(float(left.mean()), digits)} vs {label_b} "
        f"{number(float(right.mean()), digits)}: {100 * relative.mean():+.2f} % (n = {len(left)} seeds)"
    )
    if len(left) < 2 or np.all(relative == relative[0]):
        found["p"] = float("nan") if len(left) < 2 else float(abs(relative[0]) >= margin)
        return found
    above = scipy_stats.ttest_1samp(relative, -margin, alternative="greater").pvalue
    below = scipy_stats.ttest_1samp(relative, margin, alternative="less").pvalue
    found["p"] = float(max(above, below))
    return found


def monotone_claim(text: str, metric: str, found: Sequence[RunRecord]) -> dict:
    """The claim that the mean over seeds of ``metric`` rises at every step of beta."""
    by_beta: dict[float, list[float]] = {}
    for record in found:
        if record.condition.family == "poisson" and metric in record.metrics:
            by_beta.setdefault(record.condition.beta, []).append(record.metrics[metric])
    betas = sorted(by_beta)
    means = [float(np.mean(by_beta[beta])) for beta in betas]
    rising = len(means) >= 2 and all(b > a for a, b in itertools.pairwise(means))
    numbers = ", ".join(f"beta {beta:g}: {number(m, _digits(m))}" for beta, m in zip(betas, means))
    return {
        "claim": text,
        "test": "the mean over seeds rises at every step of beta",
        "kind": "monotone",
        "numbers": numbers or "no runs",
        "verdict": "reproduced" if rising else "not reproduced",
    }


def threshold_claim(text: str, test: str, value: float, holds: bool, numbers: str) -> dict:
    """A claim decided by a stated threshold on ``value`` (``holds``: it is met; NaN ``value``:
    not testable)."""
    if not math.isfinite(value):
        verdict = "not testable (too few results)"
    else:
        verdict = "reproduced" if holds else "not reproduced"
    return {"claim": text, "test": test, "kind": "threshold", "numbers": numbers, "verdict": verdict}


def decide(claim_list: list[dict]) -> list[dict]:
    """Benjamini-Hochberg across the paired claims at :data:`ALPHA`; a verdict for each claim."""
    tested = [
        c for c in claim_list if c["kind"] in ("greater", "at_least", "within") and math.isfinite(c["p"])
    ]
    if tested:
        _, adjusted = stats.benjamini_hochberg([c["p"] for c in tested], ALPHA)
        for found, p_adjusted in zip(tested, adjusted):
            found["p_adjusted"] = float(p_adjusted)
    for found in claim_list:
        if "verdict" in found:
            continue
        p = found.get("p_adjusted")
        if p is None:
            found["verdict"] = "not testable (too few paired seeds)"
        elif found["kind"] == "greater":
            found["verdict"] = "reproduced" if p <= ALPHA else "not reproduced"
        elif found["kind"] == "within":  # not shown inside the margin: is it even outside?
            if p <= ALPHA:
                found["verdict"] = "reproduced"
            elif abs(found["difference"]) < found["margin"]:
                found["verdict"] = "not significantly within"
            else:
                found["verdict"] = "not reproduced"
        elif found["mean_a"] >= found["mean_b"]:
            found["verdict"] = "reproduced"
        else:
            found["verdict"] = "not reproduced" if p <= ALPHA else "not significantly below"
    return claim_list
