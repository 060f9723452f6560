"""Latent families: how encoder outputs become a posterior, a sample and a KL.

Each family is a small module with the same face, so the VAE never branches on the family:

- class attributes that declare what it is and can do (:class:`LatentFamily`);
- ``forward(encoder_output)``: a :class:`LatentCode` with the posterior mean, variance, KL and
  ``features``, the deterministic representation used for downstream read-outs;
- ``rsample(code, temperature)``: a reparameterised sample (hard at temperature 0);
- ``prior_sample(n)``: draws from the prior.

Families: ``poisson`` (the P-VAE), ``gaussian`` with ``gaussian-relu`` and ``gaussian-exp``,
``laplace`` and ``categorical`` (the paper's baselines).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Distribution, Laplace, Normal

from .distributions import RelaxedOneHot, RelaxedPoisson, poisson_kl_residual
from .gradients import SquaredError

__all__ = [
    "LATENT_FAMILIES",
    "CategoricalLatent",
    "GaussianExpLatent",
    "GaussianLatent",
    "GaussianReluLatent",
    "LaplaceLatent",
    "LatentCode",
    "LatentFamily",
    "PoissonLatent",
    "build_latent",
]


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


class LatentFamily(nn.Module):
    """What every latent family provides; subclasses set the class attributes and override.

    Attributes:
        name: the family's registry name (``--latent``).
        display_name: its name in tables and figures (the paper's model names).
        params_per_latent: encoder outputs per latent.
        supports_exact: the posterior has closed-form first and second moments (``exact`` method).
        supports_straight_through: a hard sample exists to forward (``straight-through`` method).
        final_temperature: where the recipe anneals the sampler temperature to.
        continuous: the code is continuous, so the model can spread a few signal directions thinly
            over many latents (a Gaussian prior is rotation-invariant); the active-latent count is
            then bounded by the directions the reconstructions use (``metrics.active_latents``).
        non_negative: every code is >= 0 (sparse inference on its dictionary is kept non-negative).
        init_std_scale: factor on the networks' initial weight scale.
        model_options: family-specific fields of :class:`~poisson_vae.config.ModelConfig` it reads.
    """

    name: ClassVar[str] = ""
    display_name: ClassVar[str] = ""
    params_per_latent: ClassVar[int] = 1
    supports_exact: ClassVar[bool] = True
    supports_straight_through: ClassVar[bool] = False
    final_temperature: ClassVar[float] = 1.0
    continuous: ClassVar[bool] = False
    non_negative: ClassVar[bool] = False
    init_std_scale: ClassVar[float] = 1.0
    model_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, n_latents: int) -> None:
        super().__init__()
        self.n_latents = n_latents

    @classmethod
    def from_config(cls, n_latents: int, options: dict[str, Any], linear_decoder: bool) -> LatentFamily:
        """The family for a model: ``options`` are the model's fields named in ``model_options``;
        ``linear_decoder`` tells whether the decoder is one linear map."""
        return cls(n_latents)

    def forward(self, encoder_output: torch.Tensor) -> LatentCode:
        """The posteriors from the encoder output (B, params_per_latent * K)."""
        raise NotImplementedError

    def rsample(
        self,
        code: LatentCode,
        temperature: float,
        straight_through: bool = False,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B, K) a reparameterised sample of the posteriors (hard at temperature 0)."""
        raise NotImplementedError

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K) draws from the prior."""
        raise NotImplementedError

    def distribution(self, code: LatentCode, temperature: float) -> Distribution:
        """The posteriors as a ``torch.distributions.Distribution`` (batch shape (B, K), or (B,)
        with event shape (K,) for a one-hot code)."""
        raise NotImplementedError

    def prior(self, temperature: float) -> Distribution:
        """The prior as a ``torch.distributions.Distribution`` (batch shape (K,), or event
        shape (K,) for a one-hot code)."""
        raise NotImplementedError

    def point(self, code: LatentCode) -> torch.Tensor:
        """(B, K) the deterministic code decoded for ``mse_map``: the posterior mean."""
        return code.mean

    def expected_sse(self, x: torch.Tensor, dictionary: torch.Tensor, code: LatentCode) -> torch.Tensor:
        """E ||x - Phi z||^2 over independent latents: ||x - Phi m||^2 + sum_k v_k ||phi_k||^2.

        Args:
            x: (B, D) flat inputs.
            dictionary: (D, K) the linear decoder's atoms.
            code: posteriors with (B, K) ``mean`` and ``variance``.

        Returns:
            (B,) expected squared error.
        """
        return SquaredError(x, dictionary).expected(code.mean, code.variance)


class PoissonLatent(LatentFamily):
    """K independent Poisson latents with learnable prior rates and a residual posterior (docs/model.md).

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

    name = "poisson"
    display_name = "P-VAE"
    supports_straight_through = True
    final_temperature = 0.05
    non_negative = True
    model_options = ("excitatory_only", "indicator")

    def __init__(
        self,
        n_latents: int,
        prior_log_rate_range: tuple[float, float] = (-6.0, -4.0),
        excitatory_only: bool = False,
        indicator: str = "sigmoid",
        rate_cap: float = 5.3,
        residual_cap: float = 10.0,
    ) -> None:
        super().__init__(n_latents)
        low, high = prior_log_rate_range
        self.prior_log_rate = nn.Parameter(torch.empty(n_latents).uniform_(low, high))
        self.excitatory_only = excitatory_only
        self.indicator = indicator
        self.rate_cap = rate_cap
        self.residual_cap = residual_cap

    @classmethod
    def from_config(cls, n_latents: int, options: dict[str, Any], linear_decoder: bool) -> PoissonLatent:
        """Prior log-rates start in [-6, -4] with a linear decoder, [-6, -2] otherwise (as the
        paper's release)."""
        prior_range = (-6.0, -4.0) if linear_decoder else (-6.0, -2.0)
        return cls(n_latents, prior_range, **options)

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

    def distribution(self, code: LatentCode, temperature: float) -> RelaxedPoisson:
        return RelaxedPoisson(code.mean, temperature, indicator=self.indicator, validate_args=False)

    def prior(self, temperature: float) -> RelaxedPoisson:
        return RelaxedPoisson(self.prior_rate, temperature, indicator=self.indicator)


def _uniform(shape: torch.Size, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)


def soft_scale_clamp(log_scale: torch.Tensor, cap: float = 5.3) -> torch.Tensor:
    """``cap * tanh(log_scale / cap)``: keeps a log standard deviation (or scale) in (-cap, cap)."""
    return cap * torch.tanh(log_scale / cap)


#: exp(z) of G-VAE+exp is taken on z softly capped here (exp(10) ~ 2.2e4): at initialisation a
#: posterior standard deviation of e^3 already draws z ~ 60 for some latent, whose exp overflows
#: float32 in the reconstruction error.
EXP_CAP = 10.0


def _soft_capped_exp(z: torch.Tensor) -> torch.Tensor:
    """exp(z) for z well below :data:`EXP_CAP`, bounded by exp(EXP_CAP) above."""
    return soft_upper_clamp(z, EXP_CAP).exp()


class GaussianLatent(LatentFamily):
    """K Gaussian latents N(mu, sigma^2) on a fixed N(0, 1) prior (the G-VAE).

    The encoder outputs (mu, log sigma); log sigma is softly clamped to (-5.3, 5.3). The temperature
    does not apply. Subclasses set ``transform``, a function the sample passes through before
    decoding (:class:`GaussianReluLatent`, :class:`GaussianExpLatent`).
    """

    name = "gaussian"
    display_name = "G-VAE"
    params_per_latent = 2
    continuous = True
    transform: ClassVar[Callable[[torch.Tensor], torch.Tensor] | None] = None

    def forward(self, encoder_output: torch.Tensor) -> LatentCode:
        """Posterior from the encoder output (B, 2K): means, then log standard deviations."""
        mean, log_scale = encoder_output.chunk(2, dim=1)
        log_scale = soft_scale_clamp(log_scale)
        variance = (2 * log_scale).exp()
        kl = 0.5 * (mean.pow(2) + variance - 1) - log_scale
        return LatentCode(params=mean, mean=mean, variance=variance, kl=kl, features=mean)

    def _transformed(self, z: torch.Tensor) -> torch.Tensor:
        transform = type(self).transform
        return z if transform is None else transform(z)

    def point(self, code: LatentCode) -> torch.Tensor:
        return self._transformed(code.mean)

    def rsample(self, code, temperature, straight_through=False, generator=None) -> torch.Tensor:
        """(B, K) reparameterised sample mu + sigma eps (then the transform)."""
        noise = torch.randn(code.mean.shape, generator=generator, device=code.mean.device)
        return self._transformed(code.mean + code.variance.sqrt() * noise)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K) draws from N(0, 1) (then the transform)."""
        return self._transformed(torch.randn(n, self.n_latents, generator=generator))

    def distribution(self, code: LatentCode, temperature: float) -> Normal:
        """N(mu, sigma^2) of the latent before the transform (relu or exp) the decoder sees."""
        return Normal(code.mean, code.variance.sqrt())

    def prior(self, temperature: float) -> Normal:
        zeros = torch.zeros(self.n_latents)
        return Normal(zeros, torch.ones_like(zeros))


class GaussianReluLatent(GaussianLatent):
    """The G-VAE+relu: Gaussian latents decoded through relu (non-negative codes, same KL)."""

    name = "gaussian-relu"
    display_name = "G-VAE+relu"
    supports_exact = False
    non_negative = True
    transform = staticmethod(torch.relu)


class GaussianExpLatent(GaussianLatent):
    """The G-VAE+exp: Gaussian latents decoded through exp, softly capped at :data:`EXP_CAP`.

    Its networks start at a fifth of the usual weight scale: exp of the initial samples must stay
    near 1; at the usual scale, whitened patches give posterior standard deviations up to ~e^3 and
    exp(z) in the thousands, which training does not recover from quickly (NELBO 3.6e5 after 15
    epochs on natural16; 165 from the smaller scale).
    """

    name = "gaussian-exp"
    display_name = "G-VAE+exp"
    supports_exact = False
    non_negative = True
    init_std_scale = 0.2
    transform = staticmethod(_soft_capped_exp)


def _laplace_noise(u: torch.Tensor) -> torch.Tensor:
    """Laplace(0, 1) by inversion of u, uniform on (-1, 1)."""
    u = u.clamp(-1 + 1e-7, 1 - 1e-7)
    return -u.sign() * torch.log1p(-u.abs())


class LaplaceLatent(LatentFamily):
    """K Laplace latents Laplace(mu, b) on a fixed Laplace(0, 1) prior (the L-VAE).

    The encoder outputs (mu, log b), log b softly clamped to (-5.3, 5.3). KL in closed form:
    b exp(-|mu| / b) + |mu| - log b - 1. Posterior variance 2 b^2. The temperature does not apply.
    """

    name = "laplace"
    display_name = "L-VAE"
    params_per_latent = 2
    continuous = True

    def forward(self, encoder_output: torch.Tensor) -> LatentCode:
        """Posterior from the encoder output (B, 2K): locations, then log scales."""
        mean, log_scale = encoder_output.chunk(2, dim=1)
        log_scale = soft_scale_clamp(log_scale)
        scale = log_scale.exp()
        distance = mean.abs()
        kl = scale * torch.exp(-distance / scale) + distance - log_scale - 1
        return LatentCode(params=mean, mean=mean, variance=2 * scale.pow(2), kl=kl, features=mean)

    def rsample(self, code, temperature, straight_through=False, generator=None) -> torch.Tensor:
        """(B, K) reparameterised sample mu + b * Laplace(0, 1) noise (inverse CDF)."""
        u = _uniform(code.mean.shape, code.mean, generator) * 2 - 1
        return code.mean + (code.variance / 2).sqrt() * _laplace_noise(u)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K) draws from Laplace(0, 1)."""
        return _laplace_noise(torch.rand(n, self.n_latents, generator=generator) * 2 - 1)

    def distribution(self, code: LatentCode, temperature: float) -> Laplace:
        return Laplace(code.mean, (code.variance / 2).sqrt())

    def prior(self, temperature: float) -> Laplace:
        zeros = torch.zeros(self.n_latents)
        return Laplace(zeros, torch.ones_like(zeros))


class CategoricalLatent(LatentFamily):
    """One categorical latent over K categories, a relaxed one-hot code (the C-VAE).

    The encoder outputs K logits; the prior is uniform, so KL = sum_k p_k log(K p_k) <= log K.
    ``rsample`` is Gumbel-softmax at the temperature (the recipe anneals it 1 -> 0.1); temperature 0
    gives a hard one-hot sample; straight-through forwards the hard one-hot and backpropagates the
    relaxed one. The exact loss of a one-hot code is E ||x - Phi z||^2 = sum_k p_k ||x - phi_k||^2.
    """

    name = "categorical"
    display_name = "C-VAE"
    supports_straight_through = True
    final_temperature = 0.1
    non_negative = True

    def forward(self, encoder_output: torch.Tensor) -> LatentCode:
        """Posterior from the encoder output (B, K) logits."""
        log_p = torch.log_softmax(encoder_output, dim=1)
        p = log_p.exp()
        kl = p * (log_p + math.log(encoder_output.shape[1]))
        return LatentCode(params=log_p, mean=p, variance=p * (1 - p), kl=kl, features=encoder_output)

    def rsample(self, code, temperature, straight_through=False, generator=None) -> torch.Tensor:
        """(B, K) Gumbel-softmax sample; one-hot at temperature 0 or when straight-through."""
        u = _uniform(code.params.shape, code.params, generator).clamp_min(1e-12)
        perturbed = code.params - torch.log(-torch.log(u).clamp_max(-1e-12))
        hard = F.one_hot(perturbed.argmax(1), perturbed.shape[1]).to(perturbed.dtype)
        if temperature == 0:
            return hard
        soft = torch.softmax(perturbed / temperature, dim=1)
        return hard + soft - soft.detach() if straight_through else soft

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(n, K) one-hot codes of uniformly drawn categories."""
        category = torch.randint(self.n_latents, (n,), generator=generator)
        return F.one_hot(category, self.n_latents).float()

    def distribution(self, code: LatentCode, temperature: float) -> RelaxedOneHot:
        return RelaxedOneHot(temperature, logits=code.params)

    def prior(self, temperature: float) -> RelaxedOneHot:
        return RelaxedOneHot(temperature, probs=torch.full((self.n_latents,), 1 / self.n_latents))

    def expected_sse(self, x: torch.Tensor, dictionary: torch.Tensor, code: LatentCode) -> torch.Tensor:
        """sum_k p_k ||x - phi_k||^2 = ||x||^2 - 2 p . (Phi^T x) + p . ||phi||^2, (B,)."""
        p = code.mean
        return x.pow(2).sum(1) - 2 * (p * (x @ dictionary)).sum(1) + p @ dictionary.pow(2).sum(0)


#: Latent families by name, in the order of the paper's tables.
LATENT_FAMILIES: dict[str, type[LatentFamily]] = {
    family.name: family
    for family in (
        PoissonLatent,
        GaussianLatent,
        LaplaceLatent,
        CategoricalLatent,
        GaussianReluLatent,
        GaussianExpLatent,
    )
}


def build_latent(family: str, n_latents: int, **options) -> LatentFamily:
    """The latent family registered under ``family``, with its family-specific ``options``."""
    if family not in LATENT_FAMILIES:
        raise ValueError(f"unknown latent family {family!r}; choose one of {sorted(LATENT_FAMILIES)}")
    return LATENT_FAMILIES[family](n_latents, **options)
