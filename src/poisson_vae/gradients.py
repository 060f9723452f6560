"""Gradient estimators for Poisson latents: every estimator of the field behind one interface.

The problem they all solve: the gradient, with respect to the rates ``lambda`` (B, K) of independent
Poisson latents, of an expected loss ``E_{z ~ Poisson(lambda)} f(z)``, where ``f`` maps counts
(..., B, K) to one loss per batch row (..., B) (the P-VAE's reconstruction error, a GLM's negative
log-likelihood). An estimator returns a loss (B,) whose *value* estimates ``E f(z)`` and whose
*gradient* (with respect to the rates and to whatever ``f`` depends on, e.g. a decoder) is the
estimator's gradient, so any of them drops into a training loop as ``loss.mean().backward()``.

Estimators (``ESTIMATORS``; ``make_estimator(name, **options)``):

``eat``
    The exponential-arrival-time relaxation (the P-VAE's): ``RelaxedPoisson.rsample`` with a soft
    indicator (``sigmoid``, ``linear``, ``cubic``, ``quintic``, ``cosine``), optionally
    straight-through. Pathwise; biased by the relaxation (a closed form for linear decoders,
    ``SquaredError.relaxed``). One evaluation of ``f``.
``gsm``
    Gumbel-softmax over the truncated support ``{0, ..., U - 1}`` with logits
    ``k log(lambda) - log(k!)``: ``z = sum_k k softmax((logits + Gumbel) / tau)_k``. Pathwise,
    biased. ``U`` by a rule of ``GSM_SUPPORT_RULES`` or a fixed number. One evaluation of ``f``, but
    ``U`` softmax entries per latent.
``score``
    The score function (REINFORCE), ``(f(z) - b) d log p(z; lambda)``, over ``n_samples`` exact
    draws, with a leave-one-out baseline (``loo``, unbiased), the leave-in mean (``mean``, biased
    by a factor ``(S - 1) / S``, the gradient-analysis code's) or none. ``n_samples`` evaluations.
``vargrad``
    The gradient of the sample variance (``S - 1`` denominator) of ``f`` over ``n_samples`` exact
    draws, halved: ``(1 / (S - 1)) sum_n (f_n - mean f) d log p(z_n)``. Unbiased; for a loss that
    does not itself depend on the rates it equals the leave-one-out score estimator exactly.
``mvd``
    The measure-valued derivative of the Poisson law, ``d/dlambda_k E f(z) = E[f(z + e_k) - f(z)]``:
    unbiased, no temperature. ``K + 1`` evaluations of ``f`` per draw in general; one matrix
    product for a squared error through a linear decoder (``SquaredError``).
``exact``
    The closed form of ``E f`` for a squared error through a linear decoder (``SquaredError``):
    no sampling, the reference every other estimator is measured against.

Hand-written: no library provides Poisson gradient estimators.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import ClassVar

import torch

from .distributions import INDICATORS, poisson_quantile, relaxed_moments, relaxed_poisson_rsample

__all__ = [
    "EAT",
    "ESTIMATORS",
    "GSM_SUPPORT_RULES",
    "Exact",
    "GumbelSoftmax",
    "MeasureValued",
    "PoissonEstimator",
    "ScoreFunction",
    "SquaredError",
    "VarGrad",
    "gsm_support",
    "make_estimator",
]

#: A per-row loss of counts: (..., B, K) -> (..., B).
Loss = Callable[[torch.Tensor], torch.Tensor]


class SquaredError:
    """``f(z) = ||x - Phi z||^2`` per row: a linear decoder's reconstruction error, with the closed
    forms the ``exact`` and ``mvd`` estimators (and the gradient harness) use.

    Args:
        x: (B, D) targets.
        dictionary: (D, K) the decoder's atoms ``Phi``.
    """

    def __init__(self, x: torch.Tensor, dictionary: torch.Tensor) -> None:
        if x.dim() != 2 or dictionary.dim() != 2 or x.shape[1] != dictionary.shape[0]:
            raise ValueError(
                f"SquaredError needs x (B, D) and a dictionary (D, K), got {tuple(x.shape)} and "
                f"{tuple(dictionary.shape)}"
            )
        self.x = x
        self.dictionary = dictionary

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        """(..., B, K) counts -> (..., B) squared errors."""
        return (self.x - z @ self.dictionary.T).pow(2).sum(-1)

    def expected(self, mean: torch.Tensor, variance: torch.Tensor) -> torch.Tensor:
        """``E f(z)`` for independent latents of the given (B, K) means and variances:
        ``||x - Phi m||^2 + sum_k v_k ||phi_k||^2``, (B,)."""
        residual = self.x - mean @ self.dictionary.T
        return residual.pow(2).sum(-1) + variance @ self.dictionary.pow(2).sum(0)

    def differences(self, z: torch.Tensor) -> torch.Tensor:
        """``f(z + e_k) - f(z)`` for every k at once: ``2 phi_k . (Phi z - x) + ||phi_k||^2``.

        Returns:
            (..., B, K).
        """
        residual = z @ self.dictionary.T - self.x
        return 2 * residual @ self.dictionary + self.dictionary.pow(2).sum(0)

    def gradient(self, rate: torch.Tensor) -> torch.Tensor:
        """The exact gradient of ``E f(z)``, ``z ~ Poisson(rate)``, with respect to the log-rates:
        ``lambda_k (2 (G lambda - Phi^T x)_k + d_k)`` with ``G = Phi^T Phi``, ``d = diag G``.

        Returns:
            (B, K).
        """
        return rate * self.differences(rate)

    def hessian(self, rate: torch.Tensor) -> torch.Tensor:
        """The Hessian of ``E f(z)`` with respect to the log-rates, one (K, K) block per row:
        ``diag(g*) + 2 Lambda G Lambda`` (``g*`` = :meth:`gradient`, ``Lambda = diag(lambda)``,
        ``G = Phi^T Phi``). Indefinite wherever a rate is too small (``g*_k < 0``).

        Returns:
            (B, K, K).
        """
        gram = self.dictionary.T @ self.dictionary
        return torch.diag_embed(self.gradient(rate)) + 2 * rate.unsqueeze(-1) * gram * rate.unsqueeze(-2)

    def relaxed(self, rate: torch.Tensor, temperature: float, indicator: str) -> torch.Tensor:
        """``E f(z)`` under the untruncated EAT relaxation: ``f`` at its moments
        (``distributions.relaxed_moments``). Its gradient is what the pathwise EAT gradient
        estimates; the difference from :meth:`gradient` is the relaxation's bias.

        Returns:
            (B,).
        """
        mean, variance = relaxed_moments(1.0, temperature, indicator)
        return self.expected(rate * float(mean), rate * float(variance))


class PoissonEstimator:
    """One way to differentiate ``E_{z ~ Poisson(rate)} f(z)``; subclasses set the class attributes
    and implement :meth:`loss`.

    Attributes:
        name: the registry name (``make_estimator``, ``pvae train --method``).
        unbiased: whether the gradient is unbiased for ``d E f / d rate`` (tested where claimed).
        uses_temperature: whether ``temperature`` matters.
    """

    name: ClassVar[str]
    unbiased: ClassVar[bool]
    uses_temperature: ClassVar[bool] = False

    def loss(
        self,
        rate: torch.Tensor,
        f: Loss,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """A differentiable estimate of ``E f(z)`` per row, and one draw.

        Args:
            rate: (B, K) rates (> 0 where a gradient is wanted).
            f: per-row loss of counts, (..., B, K) -> (..., B); a :class:`SquaredError` enables
                the closed forms.
            temperature: the relaxation's temperature, for the estimators that use one.
            generator: optional random generator.

        Returns:
            (B,) loss whose value estimates ``E f(z)`` and whose gradient is the estimator's, and
            a (B, K) draw of ``z`` (the relaxed or exact counts the loss saw; None for ``exact``).
        """
        raise NotImplementedError

    def evaluations(self, n_latents: int) -> int:
        """Evaluations of ``f`` (decoder passes) per batch for a general ``f``."""
        return 1

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


ESTIMATORS: dict[str, type[PoissonEstimator]] = {}


def _register(cls: type[PoissonEstimator]) -> type[PoissonEstimator]:
    ESTIMATORS[cls.name] = cls
    return cls


def make_estimator(name: str, **options) -> PoissonEstimator:
    """The estimator registered as ``name`` with its options (see each class)."""
    if name not in ESTIMATORS:
        raise ValueError(f"unknown gradient estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name](**options)


def _score(z: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """``log p(z; rate)`` up to terms free of the rate, (..., B, K): its gradient is the score."""
    return z * rate.log() - rate


def _exact_draws(rate: torch.Tensor, n_samples: int, generator: torch.Generator | None) -> torch.Tensor:
    """(S, B, K) exact Poisson counts, no gradient."""
    with torch.no_grad():
        return torch.poisson(rate.detach().expand(n_samples, *rate.shape), generator=generator)


def _positive(name: str, value: float) -> float:
    if not value > 0:
        raise ValueError(f"{name} needs a temperature > 0, got {value}")
    return value


@_register
class EAT(PoissonEstimator):
    """The exponential-arrival-time relaxation (see the module docstring).

    Args:
        indicator: a key of ``distributions.INDICATORS``.
        straight_through: forward the exact count, backward the relaxed count's gradient.
        truncate: the sigmoid's per-element truncation (``RelaxedPoisson``); compact indicators
            never truncate.
        backend: the sampler implementation (``distributions.BACKENDS``).
    """

    name = "eat"
    unbiased = False
    uses_temperature = True

    def __init__(
        self,
        indicator: str = "sigmoid",
        straight_through: bool = False,
        truncate: bool = True,
        backend: str = "auto",
    ) -> None:
        if indicator not in INDICATORS:
            raise ValueError(f"unknown indicator {indicator!r}; choose one of {sorted(INDICATORS)}")
        self.indicator = indicator
        self.straight_through = straight_through
        self.truncate = truncate
        self.backend = backend

    def loss(self, rate, f, temperature=0.0, generator=None):
        temperature = _positive("eat", temperature)
        z = relaxed_poisson_rsample(
            rate,
            temperature,
            self.indicator,
            self.straight_through,
            generator,
            self.backend,
            self.truncate,
        )
        return f(z), z

    def __repr__(self) -> str:
        straight = ", straight_through=True" if self.straight_through else ""
        return f"EAT(indicator={self.indicator!r}{straight})"


#: How ``gsm`` chooses its support ``{0, ..., U - 1}`` from the rates (all batch-wide: the
#: largest rate): ``harness`` ``U = floor(lambda + 4 sqrt(lambda) + 5)`` (the gradient-analysis
#: code's), ``quantile`` the Poisson ``1 - 1e-5`` quantile plus one (so that the quantile itself is
#: in the support, which the original rule left out).
GSM_SUPPORT_RULES = ("harness", "quantile")


def gsm_support(rate: torch.Tensor, rule: str | int) -> int:
    """The support size ``U`` of ``gsm`` for these rates (see ``GSM_SUPPORT_RULES``), or ``rule``
    itself when it is a number."""
    if isinstance(rule, int):
        if rule < 2:
            raise ValueError(f"gsm needs a support of at least 2 counts, got {rule}")
        return rule
    largest = float(rate.detach().max())
    if rule == "harness":
        return int(largest + 4 * math.sqrt(largest) + 5)
    if rule == "quantile":
        return int(poisson_quantile(torch.tensor(largest))) + 1
    raise ValueError(f"unknown gsm support rule {rule!r}; choose one of {GSM_SUPPORT_RULES} or a number")


@_register
class GumbelSoftmax(PoissonEstimator):
    """Gumbel-softmax over the truncated Poisson support (see the module docstring).

    As the temperature falls, ``z`` tends to an exact draw from the Poisson law renormalised on
    ``{0, ..., U - 1}``.

    Args:
        support: a rule of ``GSM_SUPPORT_RULES`` or a fixed ``U``.
    """

    name = "gsm"
    unbiased = False
    uses_temperature = True

    def __init__(self, support: str | int = "harness") -> None:
        gsm_support(torch.ones(1), support)  # refuses a bad rule now, not at the first batch
        self.support = support

    def loss(self, rate, f, temperature=0.0, generator=None):
        temperature = _positive("gsm", temperature)
        size = gsm_support(rate, self.support)
        k = torch.arange(size, dtype=rate.dtype, device=rate.device)
        logits = k * rate.clamp_min(1e-30).log().unsqueeze(-1) - torch.lgamma(k + 1)
        uniform = torch.rand(logits.shape, generator=generator, device=rate.device, dtype=rate.dtype)
        gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1 - 1e-7)))
        weights = torch.softmax((logits + gumbel) / temperature, dim=-1)
        z = weights @ k
        return f(z), z

    def __repr__(self) -> str:
        return f"GumbelSoftmax(support={self.support!r})"


@_register
class ScoreFunction(PoissonEstimator):
    """The score-function (REINFORCE) estimator over ``n_samples`` exact draws.

    Args:
        n_samples: draws per row (>= 2 for a leave-one-out or mean baseline).
        baseline: ``loo`` (leave-one-out, unbiased), ``mean`` (leave-in, biased by (S - 1) / S),
            or ``none``.
    """

    name = "score"
    uses_temperature = False
    BASELINES: ClassVar[tuple[str, ...]] = ("loo", "mean", "none")

    def __init__(self, n_samples: int = 8, baseline: str = "loo") -> None:
        if baseline not in self.BASELINES:
            raise ValueError(f"unknown baseline {baseline!r}; choose one of {self.BASELINES}")
        if n_samples < (2 if baseline != "none" else 1):
            raise ValueError(f"the {baseline!r} baseline needs n_samples >= 2, got {n_samples}")
        self.n_samples = n_samples
        self.baseline = baseline

    @property
    def unbiased(self) -> bool:  # type: ignore[override]
        return self.baseline != "mean"

    def loss(self, rate, f, temperature=0.0, generator=None):
        z = _exact_draws(rate, self.n_samples, generator)
        losses = f(z)  # (S, B), differentiable in whatever f depends on
        values = losses.detach()
        if self.baseline == "loo":
            baseline = (values.sum(0, keepdim=True) - values) / (self.n_samples - 1)
        elif self.baseline == "mean":
            baseline = values.mean(0, keepdim=True)
        else:
            baseline = torch.zeros_like(values)
        log_p = _score(z, rate).sum(-1)  # (S, B)
        # value: the mean loss; gradient: the mean loss's (for f's parameters) plus the score term
        surrogate = ((values - baseline) * (log_p - log_p.detach())).mean(0)
        return losses.mean(0) + surrogate, z[0]

    def evaluations(self, n_latents: int) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        return f"ScoreFunction(n_samples={self.n_samples}, baseline={self.baseline!r})"


@_register
class VarGrad(PoissonEstimator):
    """Half the gradient of the sample variance of ``f`` over ``n_samples`` exact draws (see the
    module docstring).

    Args:
        n_samples: draws per row, >= 2.
    """

    name = "vargrad"
    unbiased = True

    def __init__(self, n_samples: int = 8) -> None:
        if n_samples < 2:
            raise ValueError(f"vargrad needs n_samples >= 2, got {n_samples}")
        self.n_samples = n_samples

    def loss(self, rate, f, temperature=0.0, generator=None):
        z = _exact_draws(rate, self.n_samples, generator)
        losses = f(z)
        log_p = _score(z, rate).sum(-1)
        # the gradient of Var_n(f_n + log p_n - stopgrad(log p_n)) / 2 is
        # (1 / (S - 1)) sum_n (f_n - mean f) d log p_n
        w = losses.detach() + log_p - log_p.detach()
        variance = w.var(0, correction=1) / 2
        return losses.mean(0) + variance - variance.detach(), z[0]

    def evaluations(self, n_latents: int) -> int:
        return self.n_samples

    def __repr__(self) -> str:
        return f"VarGrad(n_samples={self.n_samples})"


@_register
class MeasureValued(PoissonEstimator):
    """The measure-valued derivative of the Poisson law (see the module docstring): per latent,
    ``lambda_k [f(z + e_k) - f(z)]`` with respect to the log-rate, from one exact draw."""

    name = "mvd"
    unbiased = True

    def loss(self, rate, f, temperature=0.0, generator=None):
        z = _exact_draws(rate, 1, generator)[0]
        losses = f(z)
        with torch.no_grad():
            if isinstance(f, SquaredError):
                differences = f.differences(z)
            else:  # K + 1 evaluations: f at z + e_k for every k, as one batch
                eye = torch.eye(z.shape[-1], dtype=z.dtype, device=z.device)
                shifted = z.unsqueeze(0) + eye.unsqueeze(1)  # (K, B, K)
                differences = (f(shifted) - losses.detach()).T  # (B, K)
        return losses + (differences * (rate - rate.detach())).sum(-1), z

    def evaluations(self, n_latents: int) -> int:
        return n_latents + 1


@_register
class Exact(PoissonEstimator):
    """The closed-form expectation of a :class:`SquaredError`: no sampling."""

    name = "exact"
    unbiased = True

    def loss(self, rate, f, temperature=0.0, generator=None):
        if not isinstance(f, SquaredError):
            raise ValueError(
                "the exact estimator needs the loss in closed form: a SquaredError (a linear "
                "decoder's reconstruction error)"
            )
        return f.expected(rate, rate), None

    def evaluations(self, n_latents: int) -> int:
        return 0
