"""Measuring gradient estimators against the exact gradient: the metrics of the gradient-quality
study (bias, variance, SNR, cosine similarity, Hessian-weighted bias and noise energies) and the
1-Wasserstein distance of relaxed samples to the exact Poisson law.

Everything is computed in float64 from float32 samples. Hand-written: the metrics are the study's
own definitions (docs/sampler.md), which no library provides.
"""

from __future__ import annotations

import math

import torch
from scipy import stats

from .gradients import PoissonEstimator, SquaredError

__all__ = [
    "GRADIENT_METRICS",
    "gradient_statistics",
    "sample_gradients",
    "summarise",
    "wasserstein_to_poisson",
]

#: The per-row metrics of :func:`gradient_statistics`.
GRADIENT_METRICS = (
    "bias",
    "variance",
    "snr",
    "cos",
    "cos_sample",
    "signal_energy",
    "bias_energy",
    "noise_energy",
)


def sample_gradients(
    estimator: PoissonEstimator,
    objective: SquaredError,
    rate: torch.Tensor,
    n_samples: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n_samples`` independent gradients of each row's expected loss with respect to its
    log-rates, from one call of the estimator on the rows repeated ``n_samples`` times.

    Args:
        estimator: any estimator of :mod:`poisson_vae.gradients`.
        objective: the rows' loss (x of B rows).
        rate: (B, K) rates.
        n_samples: N.
        temperature: for the estimators that use one.
        generator: optional random generator.

    Returns:
        (N, B, K) float64 gradients.
    """
    batch, latents = rate.shape
    log_rate = rate.detach().log().repeat(n_samples, 1).requires_grad_()
    repeated = SquaredError(objective.x.repeat(n_samples, 1), objective.dictionary)
    loss, _ = estimator.loss(log_rate.exp(), repeated, temperature, generator)
    (gradient,) = torch.autograd.grad(loss.sum(), log_rate)
    return gradient.detach().double().view(n_samples, batch, latents)


def gradient_statistics(
    gradients: torch.Tensor, exact: torch.Tensor, hessian: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The study's metrics of sampled gradients against the exact gradient, per row.

    With ``gbar`` the mean gradient over samples, ``Sigma`` their covariance (N - 1 denominator)
    and ``g*`` the exact gradient: ``bias`` = ||gbar - g*|| / ||g*||, ``variance`` =
    tr(Sigma) / ||g*||^2, ``snr`` = 1 / variance, ``cos`` = cos(gbar, g*), ``cos_sample`` = the
    mean over samples of cos(g_n, g*); with the Hessian H, ``signal_energy`` S = g*^T H g*,
    ``bias_energy`` = (gbar - g*)^T H (gbar - g*) / S and ``noise_energy`` = tr(H Sigma) / S. H can
    be indefinite: where S <= 0 the two energies are NaN (``signal_energy`` says why).

    Args:
        gradients: (N, B, K) sampled gradients, N >= 2.
        exact: (B, K) exact gradients.
        hessian: (B, K, K) Hessians, or None (the energies are then left out).

    Returns:
        Metric name -> (B,) float64 tensor.
    """
    gradients, exact = gradients.double(), exact.double()
    n = gradients.shape[0]
    if n < 2:
        raise ValueError(f"gradient statistics need at least 2 samples per row, got {n}")
    mean = gradients.mean(0)
    centred = gradients - mean
    bias = mean - exact
    norm2 = exact.pow(2).sum(-1)
    tiny = torch.finfo(torch.float32).eps
    trace = centred.pow(2).sum((0, 2)) / (n - 1)
    result = {
        "bias": bias.norm(dim=-1) / norm2.sqrt().clamp_min(tiny),
        "variance": trace / norm2.clamp_min(tiny),
        "snr": norm2 / trace.clamp_min(tiny),
        "cos": torch.nn.functional.cosine_similarity(mean, exact, dim=-1),
        "cos_sample": torch.nn.functional.cosine_similarity(gradients, exact, dim=-1).mean(0),
    }
    if hessian is not None:
        hessian = hessian.double()
        signal = torch.einsum("bk,bkl,bl->b", exact, hessian, exact)
        usable = signal > tiny
        bias_energy = torch.einsum("bk,bkl,bl->b", bias, hessian, bias)
        noise = torch.einsum("nbk,bkl,nbl->b", centred, hessian, centred) / (n - 1)
        result["signal_energy"] = signal
        result["bias_energy"] = torch.where(usable, bias_energy / signal, torch.nan)
        result["noise_energy"] = torch.where(usable, noise / signal, torch.nan)
    return result


def summarise(statistics: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Each metric's mean and standard deviation over rows (NaN rows left out)."""
    summary = {}
    for name, values in statistics.items():
        finite = values[torch.isfinite(values)]
        if finite.numel() == 0:
            summary[name] = (math.nan, math.nan)
        else:
            spread = float(finite.std()) if finite.numel() > 1 else 0.0
            summary[name] = (float(finite.mean()), spread)
    return summary


def wasserstein_to_poisson(samples: torch.Tensor, rate: float) -> float:
    """The 1-Wasserstein distance of the empirical law of ``samples`` to Poisson(``rate``):
    ``mean_i |x_(i) - Q((i - 1/2) / n)|`` with Q the Poisson quantile function (no second
    sample, so no two-sample noise floor), divided by ``sqrt(rate)``.

    Args:
        samples: (n,) relaxed or exact counts.
        rate: > 0.
    """
    ordered = torch.sort(samples.detach().double().flatten()).values.numpy()
    n = ordered.size
    levels = (torch.arange(n, dtype=torch.float64).numpy() + 0.5) / n
    quantiles = stats.poisson.ppf(levels, rate)
    return float(abs(ordered - quantiles).mean() / math.sqrt(rate))
