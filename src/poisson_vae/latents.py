"""Latent families: how encoder outputs become a posterior, a sample and a KL.

Each family is a small module with the same face, so the VAE never branches on the family:

- ``params_per_latent``: encoder outputs per latent;
- ``forward(encoder_output)``: a :class:`LatentCode` with the posterior mean, variance and KL;
- ``rsample(code, temperature)``: a reparameterised sample (hard at temperature 0);
- ``features(code)``: the deterministic representation used for downstream read-outs.

This version provides the Poisson family; the Gaussian, Laplace and categorical baselines plug in
beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .distributions import RelaxedPoisson, poisson_kl_residual

__all__ = ["LATENT_FAMILIES", "LatentCode", "PoissonLatent", "build_latent"]


def soft_upper_clamp(x: torch.Tensor, cap: float) -> torch.Tensor:
    """Smooth ``min(x, cap)``: ``cap - softplus(cap - x)``."""
    return cap - F.softplus(cap - x)


@dataclass
class LatentCode:
    """A batch of posteriors.

    Attributes:
        params: (B, K) the family's natural parameter (Poisson: log-rate of the posterior).
        mean: (B, K) posterior mean.
        variance: (B, K) posterior variance.
        kl: (B, K) KL(posterior || prior) per latent.
        features: (B, K) deterministic representation (Poisson: the log-rate residual log dr).
    """

    params: torch.Tensor
    mean: torch.Tensor
    variance: torch.Tensor
    kl: torch.Tensor
    features: torch.Tensor


class PoissonLatent(nn.Module):
    """K independent Poisson latents with learnable prior rates and a residual posterior (SPEC 1).

    The encoder output ``u`` is the log of a multiplicative change ``dr`` of the prior rate
    ``r = exp(b)``; ``u`` is softly clamped from above at ``residual_cap`` (or to
    ``[0, residual_cap]`` when ``excitatory_only``), and the posterior rate ``r dr`` is softly capped
    at ``exp(rate_cap)``. The KL is the metabolic cost ``r f(dr)``, ``f(y) = 1 - y + y log y``.

    Args:
        n_latents: K.
        prior_log_rate_range: (low, high) of the uniform initialisation of ``b``.
        excitatory_only: restrict ``dr >= 1``.
        indicator: soft indicator of the relaxed sampler.
        rate_cap: cap ``c`` on the posterior log-rate (rates stay below ~200).
        residual_cap: upper clamp of ``u``.
    """

    params_per_latent = 1

    def __init__(
        self,
        n_latents: int,
        prior_log_rate_range: tuple[float, float] = (-6.0, -4.0),
        excitatory_only: bool = False,
        indicator: str = "sigmoid",
        rate_cap: float = 5.3,
        residual_cap: float = 10.0,
    ) -> None:
        super().__init__()
        low, high = prior_log_rate_range
        self.prior_log_rate = nn.Parameter(torch.empty(n_latents).uniform_(low, high))
        self.excitatory_only = excitatory_only
        self.indicator = indicator
        self.rate_cap = rate_cap
        self.residual_cap = residual_cap

    @property
    def prior_rate(self) -> torch.Tensor:
        """(K,) prior rates ``r``."""
        return self.prior_log_rate.exp()

    def forward(self, encoder_output: torch.Tensor) -> LatentCode:
        """Posterior from the encoder output (B, K)."""
        if self.excitatory_only:
            encoder_output = F.softplus(encoder_output)
        residual = soft_upper_clamp(encoder_output, self.residual_cap)
        log_rate = soft_upper_clamp(self.prior_log_rate + residual, self.rate_cap)
        rate = log_rate.exp()
        kl = poisson_kl_residual(self.prior_log_rate, residual)
        return LatentCode(params=log_rate, mean=rate, variance=rate, kl=kl, features=residual)

    def rsample(
        self,
        code: LatentCode,
        temperature: float,
        straight_through: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B, K) relaxed counts; exact counts (no gradient) at temperature 0."""
        posterior = RelaxedPoisson(
            code.mean,
            temperature,
            indicator=self.indicator,
            straight_through=straight_through,
            validate_args=False,  # the sampler itself refuses non-finite rates
        )
        return posterior.rsample(generator=generator)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K) exact counts from the prior."""
        rate = self.prior_rate.detach().expand(n, -1)
        return torch.poisson(rate, generator=generator)


LATENT_FAMILIES: dict[str, type[nn.Module]] = {"poisson": PoissonLatent}


def build_latent(family: str, n_latents: int, **options) -> nn.Module:
    """The latent family registered under ``family``."""
    try:
        cls = LATENT_FAMILIES[family]
    except KeyError:
        raise ValueError(
            f"unknown latent family {family!r}; choose one of {sorted(LATENT_FAMILIES)}"
        ) from None
    return cls(n_latents, **options)
