"""The paper's Algorithm 1 as released: a dense (arrivals x elements) tensor, for comparison only.

This is the estimator :class:`~poisson_vae.distributions.RelaxedPoisson` reproduces without the dense
tensor. It is kept as plain as possible, so that tests and benchmarks can check the fast sampler
against it. Its memory grows with ``n_arrivals x rate.numel()``: do not train with it.
"""

from __future__ import annotations

import torch
from scipy import stats

from .distributions import INDICATORS, TRUNCATION_TAIL

__all__ = ["algorithm_1_dense", "release_arrival_count"]


def release_arrival_count(rate: torch.Tensor, tail: float = TRUNCATION_TAIL) -> int:
    """The release's batch-wide arrival count: the Poisson ``1 - tail`` quantile of the largest rate."""
    return int(stats.poisson.ppf(1 - tail, float(rate.detach().max())))


def algorithm_1_dense(
    rate: torch.Tensor,
    temperature: float,
    n_arrivals: int | None = None,
    indicator: str = "sigmoid",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Relaxed Poisson counts by the release's dense Algorithm 1, differentiable through autograd.

    Args:
        rate: (...) rates.
        temperature: > 0.
        n_arrivals: arrivals summed for every element (default: the release's batch-wide count).
        indicator: soft indicator, a key of ``INDICATORS``.
        generator: optional random generator.

    Returns:
        (...) relaxed counts.
    """
    if n_arrivals is None:
        n_arrivals = release_arrival_count(rate)
    gaps = torch.empty((n_arrivals, *rate.shape), dtype=rate.dtype, device=rate.device)
    gaps.exponential_(generator=generator)
    times = gaps.cumsum(0) / rate
    soft, _ = INDICATORS[indicator]((1 - times) / temperature)
    return soft.sum(0)
