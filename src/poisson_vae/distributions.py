"""The relaxed Poisson distribution: reparameterised spike counts (the paper's Algorithm 1).

A Poisson process of rate ``rate`` on the unit time window has arrival times
``t_j = E_j / rate`` with ``E_j = e_1 + ... + e_j`` and ``e_i ~ Exp(1)``; the number of arrivals
before ``t = 1`` is exactly ``Poisson(rate)``. Replacing the hard indicator ``[t_j < 1]`` by a soft
one, ``g((1 - t_j) / temperature)``, makes the count differentiable in the rate:

    z = sum_{j <= n} g((1 - E_j / rate) / temperature),
    dz/drate = sum_{j <= n} g'(s_j) E_j / (rate^2 temperature).

Each element sums its own first ``n`` arrivals, ``n`` = the Poisson ``1 - 1e-5`` quantile of its own
rate (docs/sampler.md), and stops early once its remaining arrivals can no longer change ``z`` or its
gradient, so memory stays O(elements) instead of the release's dense (arrivals x batch x latents)
tensor. Three implementations: the compiled per-element kernels of :mod:`poisson_vae._numba_sampler`
(``fused``, the default on the CPU) and :mod:`poisson_vae._triton_sampler` (``triton``, the default on
CUDA), and a vectorised torch walk that steps all live elements one arrival at a time (``torch``,
any device). This module is hand-written: no library provides it.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import math
import os
import warnings
from collections.abc import Callable
from numbers import Number

import numpy as np
import torch
from torch.distributions import (
    Distribution,
    Poisson,
    RelaxedOneHotCategorical,
    constraints,
    register_kl,
)
from torch.distributions.utils import broadcast_all

__all__ = [
    "BACKENDS",
    "BACKEND_VARIABLE",
    "INDICATORS",
    "MAX_RATE",
    "TRUNCATION_TAIL",
    "RelaxedOneHot",
    "RelaxedPoisson",
    "default_backend",
    "poisson_kl",
    "poisson_kl_residual",
    "poisson_quantile",
    "relaxed_poisson_rsample",
    "sampler_self_check",
]

#: Tail probability left out by the per-element truncation: ``n = quantile(1 - TRUNCATION_TAIL)``.
TRUNCATION_TAIL = 1e-5

#: The largest rate the sampler accepts. Near it a float32 arrival time has a resolution of 1/16
#: (a bias far below the count's own noise); by 2^22 ~ 4e6 the rounding biases counts by ~1 %.
MAX_RATE = 1e6

# A sigmoid arrival with s = (1 - E / rate) / temperature below -_SIGMOID_CUTOFF adds less than
# exp(-40) ~ 4e-18 to z (and, with its factor E / (rate^2 temperature), far less than float32
# resolution to the gradient); later arrivals add even less, because s falls with every arrival.
_SIGMOID_CUTOFF = 40.0


def _stop_below(indicator: str) -> float:
    """The ``s`` below which an arrival, and every later one, adds nothing to z or its gradient."""
    return -_SIGMOID_CUTOFF if indicator == "sigmoid" else -1.0  # the others vanish for s <= -1


def _sigmoid(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    soft = torch.sigmoid(s)
    return soft, soft * torch.sigmoid(-s)


def _smooth_step(
    polynomial: Callable[[torch.Tensor], torch.Tensor],
    derivative: Callable[[torch.Tensor], torch.Tensor],
) -> Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """A soft indicator on ``s`` in [-1, 1] through ``u = (s + 1) / 2`` clamped to [0, 1]."""

    def indicator(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u = ((s + 1) / 2).clamp(0, 1)
        inside = (s > -1) & (s < 1)
        return polynomial(u), torch.where(inside, derivative(u) / 2, torch.zeros_like(u))

    return indicator


#: Soft indicators g(s) and their derivatives g'(s), keyed by name.
INDICATORS: dict[str, Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]] = {
    "sigmoid": _sigmoid,
    "linear": _smooth_step(lambda u: u, torch.ones_like),
    "cubic": _smooth_step(lambda u: u * u * (3 - 2 * u), lambda u: 6 * u * (1 - u)),
    "quintic": _smooth_step(
        lambda u: u**3 * (u * (6 * u - 15) + 10), lambda u: 30 * u**2 * (1 - u) ** 2
    ),
    "cosine": _smooth_step(
        lambda u: (1 - torch.cos(math.pi * u)) / 2, lambda u: math.pi / 2 * torch.sin(math.pi * u)
    ),
}

#: The compiled kernels' codes for the soft indicators.
INDICATOR_CODES = {"sigmoid": 0, "linear": 1, "cubic": 2, "quintic": 3, "cosine": 4}


@functools.lru_cache(maxsize=8)
def _quantile_thresholds(n_max: int, tail: float) -> torch.Tensor:
    """Rates ``t_k`` (k = 0..n_max) at which the Poisson ``1 - tail`` quantile steps past ``k``.

    ``P(N <= k; rate)`` falls with the rate, so the quantile is ``<= k`` exactly for rates ``<= t_k``.
    Found by bisection on ``gammaincc(k + 1, rate) = P(N <= k)`` in float64.

    Returns:
        (n_max + 1,) float64 tensor, increasing.
    """
    k = torch.arange(n_max + 1, dtype=torch.float64)
    low = torch.zeros_like(k)
    high = k + 20 * k.sqrt() + 50
    for _ in range(80):
        middle = (low + high) / 2
        below = torch.special.gammaincc(k + 1, middle) >= 1 - tail
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    return low


def _thresholds_covering(rate: torch.Tensor, tail: float) -> torch.Tensor:
    """Quantile thresholds (see ``_quantile_thresholds``) whose last entry exceeds every rate."""
    largest = float(rate.max()) if rate.numel() else 0.0
    if not math.isfinite(largest):
        raise FloatingPointError(f"Poisson rates must be finite, got a maximum of {largest}")
    if largest > MAX_RATE:
        raise FloatingPointError(
            f"Poisson rates above {MAX_RATE:g} are not supported (the relaxed sampler walks one "
            f"arrival per count, and single-precision arrival times drift beyond it); got a "
            f"maximum of {largest:g}: cap the rates, e.g. through the log-rate"
        )
    n_max = 64
    while float(_quantile_thresholds(n_max, tail)[-1]) < largest:
        n_max *= 2
    return _quantile_thresholds(n_max, tail)


def poisson_quantile(rate: torch.Tensor, tail: float = TRUNCATION_TAIL) -> torch.Tensor:
    """The Poisson ``1 - tail`` quantile of every rate: smallest ``n`` with ``P(N <= n) >= 1 - tail``.

    Args:
        rate: any shape, non-negative.
        tail: probability left above the quantile.

    Returns:
        int64 tensor of the shape of ``rate``.

    Raises:
        FloatingPointError: a rate is NaN, infinite or above ``MAX_RATE``.
    """
    thresholds = _thresholds_covering(rate, tail).to(rate.device)
    return torch.searchsorted(thresholds, rate.detach().to(torch.float64).contiguous())


# Live elements are compacted once this fraction of them has finished; until then finished
# elements ride along, masked (past their n) or adding less than float precision (past the cutoff).
_COMPACT_FRACTION = 0.125


@torch.no_grad()
def _walk_arrivals(
    rate: torch.Tensor,
    temperature: float,
    indicator: str,
    exact_counts: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Relaxed counts of a flat batch of rates, walking arrivals one step for every live element.

    Args:
        rate: (N,) rates, detached.
        temperature: > 0.
        indicator: a key of ``INDICATORS``.
        exact_counts: also count the arrivals before ``t = 1`` exactly (untruncated), walking on
            until that count is known.
        generator: optional random generator.

    Returns:
        (3, N): the relaxed count ``z``, ``dz/drate``, and the exact count (zero unless
        ``exact_counts``).
    """
    soft_indicator = INDICATORS[indicator]
    cutoff = _stop_below(indicator)
    n_arrivals = poisson_quantile(rate)
    result = rate.new_zeros(3, rate.numel())
    # Rates below ~1e-5 have n = 0 arrivals: z = 0 and no gradient, unless exact counts are asked for.
    index = torch.nonzero((n_arrivals > 0) | exact_counts).squeeze(1)
    # Rows: rate, n, arrival time E_j (unit rate), z, dz/drate, exact count.
    state = rate.new_zeros(6, index.numel())
    state[0] = rate[index]
    state[1] = n_arrivals[index]
    lam, limit, arrival, z, dz_drate, count = state
    step = 0
    while index.numel():
        step += 1
        # Exp(1) by inversion of a uniform on [0, 1): several times faster than exponential_.
        uniform = torch.rand(lam.shape, generator=generator, device=lam.device, dtype=lam.dtype)
        arrival -= torch.log1p(-uniform)
        scaled = arrival / lam
        s = (1 - scaled) / temperature
        soft, slope = soft_indicator(s)
        counted = limit >= step
        z += torch.where(counted, soft, 0.0)
        dz_drate += torch.where(counted, slope * scaled / (lam * temperature), 0.0)
        keep = counted & (s > cutoff)
        if exact_counts:
            before_one = arrival < lam
            count += before_one
            keep |= before_one
        n_done = index.numel() - int(keep.sum())
        if n_done < max(1.0, _COMPACT_FRACTION * index.numel()):
            continue
        done = torch.nonzero(~keep).squeeze(1)
        result.index_copy_(1, index.index_select(0, done), state[3:].index_select(1, done))
        kept = torch.nonzero(keep).squeeze(1)
        index = index.index_select(0, kept)
        state = state.index_select(1, kept)
        lam, limit, arrival, z, dz_drate, count = state
    return result


def _philox_seed(generator: torch.Generator | None, device: torch.device) -> int:
    """One draw from torch's generator (the default one of ``device`` when None): the key of the
    counter-based generator of a whole call of a compiled kernel."""
    device = generator.device if generator is not None else device
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=device))


@torch.no_grad()
def _fused_arrivals(
    rate: torch.Tensor,
    temperature: float,
    indicator: str,
    exact_counts: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The same as ``_walk_arrivals``, by the compiled per-element kernel (CPU tensors)."""
    from ._numba_sampler import relaxed_poisson_kernel

    thresholds = _thresholds_covering(rate, TRUNCATION_TAIL).numpy()
    seed = _philox_seed(generator, rate.device)
    result = rate.new_empty(3, rate.numel())
    cutoff = _stop_below(indicator)
    relaxed_poisson_kernel(
        rate.numpy(),
        thresholds,
        temperature,
        INDICATOR_CODES[indicator],
        cutoff,
        exact_counts,
        np.uint64(seed & 0xFFFFFFFF),
        np.uint64(seed >> 32),
        *result.numpy(),
    )
    return result


@torch.no_grad()
def _triton_arrivals(
    rate: torch.Tensor,
    temperature: float,
    indicator: str,
    exact_counts: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The same as ``_walk_arrivals``, by the Triton per-element kernel (CUDA tensors)."""
    from ._triton_sampler import relaxed_poisson_triton

    limit = poisson_quantile(rate)
    seed = _philox_seed(generator, rate.device)
    cutoff = _stop_below(indicator)
    with torch.cuda.device(rate.device) if rate.is_cuda else contextlib.nullcontext():
        code = INDICATOR_CODES[indicator]
        return relaxed_poisson_triton(rate, limit, temperature, code, cutoff, exact_counts, seed)


#: Sampler implementations: ``fused`` (compiled per-element kernel, CPU), ``triton`` (the same
#: kernel for CUDA tensors) and ``torch`` (the vectorised walk, any device); ``auto`` takes
#: ``fused`` for CPU tensors when numba is installed, ``triton`` for CUDA tensors when Triton is.
BACKENDS = ("auto", "fused", "triton", "torch")
_WALKS = {"fused": _fused_arrivals, "triton": _triton_arrivals, "torch": _walk_arrivals}


@functools.cache
def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _triton_runs_on(device: torch.device) -> bool:
    """Triton kernels run on CUDA tensors, and on CPU tensors under its interpreter."""
    return device.type == "cuda" or (
        device.type == "cpu" and os.environ.get("TRITON_INTERPRET", "0") == "1"
    )


#: Environment variable that sets what ``backend="auto"`` runs: one of :data:`BACKENDS`.
BACKEND_VARIABLE = "PVAE_SAMPLER_BACKEND"

# Compiled backends that failed on a device type in this process: ``auto`` runs the torch walk
# there from then on (see ``relaxed_poisson_rsample``).
_FAILED: set[tuple[str, str]] = set()


def _resolve_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        forced = os.environ.get(BACKEND_VARIABLE, "auto").strip() or "auto"
        if forced not in BACKENDS:
            raise ValueError(
                f"{BACKEND_VARIABLE}={forced!r} is not a sampler backend; choose one of "
                f"{', '.join(BACKENDS)}"
            )
        if forced != "auto":
            return _resolve_backend(forced, device)
        if device.type == "cpu" and _installed("numba"):
            chosen = "fused"
        else:
            chosen = "triton" if device.type == "cuda" and _installed("triton") else "torch"
        return "torch" if (chosen, device.type) in _FAILED else chosen
    if backend == "fused":
        if device.type != "cpu":
            raise ValueError(f"backend 'fused' runs on the CPU; got a tensor on {device}")
        if not _installed("numba"):
            raise ValueError("backend 'fused' needs numba: pip install numba")
    if backend == "triton":
        if not _triton_runs_on(device):
            raise ValueError(
                f"backend 'triton' runs on CUDA tensors (or on the CPU with TRITON_INTERPRET=1); "
                f"got a tensor on {device}"
            )
        if not _installed("triton"):
            raise ValueError("backend 'triton' needs triton: pip install triton")
    return backend


def default_backend(device: str | torch.device) -> str:
    """The sampler implementation that ``backend="auto"`` runs for tensors on ``device``."""
    return _resolve_backend("auto", torch.device(device))


def relaxed_poisson_rsample(
    rate: torch.Tensor,
    temperature: float,
    indicator: str = "sigmoid",
    straight_through: bool = False,
    generator: torch.Generator | None = None,
    backend: str = "auto",
) -> torch.Tensor:
    """Reparameterised relaxed Poisson counts with a gradient with respect to ``rate``.

    Args:
        rate: any shape, non-negative; gradients flow back to it.
        temperature: > 0 (use ``torch.poisson`` for temperature 0).
        indicator: soft indicator, a key of ``INDICATORS``.
        straight_through: forward the exact count, backward the relaxed count's gradient.
        generator: optional random generator.
        backend: one of ``BACKENDS``.

    Returns:
        Counts of the shape of ``rate``.
    """
    resolved = _resolve_backend(backend, rate.device)
    try:
        return _RelaxedPoissonSample.apply(
            rate, temperature, indicator, straight_through, generator, resolved
        )
    except FloatingPointError:  # the rates' fault, not the kernel's
        raise
    except Exception as error:
        if backend != "auto" or resolved == "torch" or BACKEND_VARIABLE in os.environ:
            raise
        # A compiled kernel that cannot compile or launch here must not stop training.
        _FAILED.add((resolved, rate.device.type))
        warnings.warn(
            f"the {resolved} sampler failed on {rate.device} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); using the torch walk from now "
            f"on (set {BACKEND_VARIABLE}=torch to choose it, or ={resolved} to insist)",
            RuntimeWarning,
            stacklevel=2,
        )
        return _RelaxedPoissonSample.apply(
            rate, temperature, indicator, straight_through, generator, "torch"
        )


class _RelaxedPoissonSample(torch.autograd.Function):
    """z and dz/drate in one forward pass; the backward pass is one multiply."""

    @staticmethod
    def forward(ctx, rate, temperature, indicator, straight_through, generator, backend):  # type: ignore[override]
        flat = rate.detach().reshape(-1).contiguous()
        walk = _WALKS[backend]
        soft, dz_drate, exact = walk(flat, temperature, indicator, straight_through, generator)
        ctx.save_for_backward(dz_drate.view_as(rate))
        return (exact if straight_through else soft).view_as(rate)

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        (dz_drate,) = ctx.saved_tensors
        return grad_output * dz_drate, None, None, None, None, None


def _floating(name: str, value: torch.Tensor | Number) -> torch.Tensor | Number:
    """Rates as floating point: integer tensors are converted to torch's default float dtype (a
    relaxed count is not a whole number); bool and complex tensors are refused."""
    if not isinstance(value, torch.Tensor) or value.is_floating_point():
        return value
    if value.dtype == torch.bool or value.is_complex():
        raise ValueError(f"RelaxedPoisson: {name} must be real numbers, got a {value.dtype} tensor")
    return value.to(torch.get_default_dtype())


class RelaxedPoisson(Distribution):
    """Poisson counts relaxed by a temperature, reparameterised through exponential arrivals.

    ``rsample()`` draws relaxed counts that are differentiable in the rate (the paper's
    Algorithm 1 with per-element truncation); at ``temperature=0`` it returns exact Poisson counts,
    which carry no gradient. ``sample()`` always draws exact Poisson counts. ``log_prob``, ``mean``
    and ``variance`` are those of the Poisson distribution the relaxation tends to as the
    temperature falls to zero.

    Args:
        rate: (...,) non-negative Poisson rates. Give this or ``log_rate``. Integer tensors are
            converted to torch's default floating dtype.
        temperature: >= 0; the relaxation's sharpness (the release anneals it from 1 to 0.05).
        log_rate: (...,) natural log of the rates.
        indicator: the soft indicator, one of ``INDICATORS`` (``sigmoid``, ``linear``, ``cubic``,
            ``quintic``, ``cosine``).
        straight_through: ``rsample`` forwards the exact count and backpropagates the relaxed one.
        backend: sampler implementation, one of ``BACKENDS``: ``auto`` (default) runs the compiled
            per-element kernel on CPU tensors (``fused``, numba) and on CUDA tensors (``triton``),
            and the vectorised torch walk (``torch``) where neither applies; all draw from the
            same distribution. If a compiled kernel fails to compile or launch, ``auto`` warns
            once and runs the torch walk on that kind of device from then on. The environment
            variable ``PVAE_SAMPLER_BACKEND`` sets what ``auto`` means (``torch``, ``fused``,
            ``triton``), with no fallback.
        validate_args: as in ``torch.distributions``.

    Example:
        >>> q = RelaxedPoisson(log_rate=torch.zeros(3), temperature=0.1)
        >>> q.rsample().shape
        torch.Size([3])
    """

    arg_constraints = {"rate": constraints.nonnegative}  # noqa: RUF012
    support = constraints.nonnegative
    has_rsample = True

    def __init__(
        self,
        rate: torch.Tensor | Number | None = None,
        temperature: float = 1.0,
        *,
        log_rate: torch.Tensor | Number | None = None,
        indicator: str = "sigmoid",
        straight_through: bool = False,
        backend: str = "auto",
        validate_args: bool | None = None,
    ) -> None:
        if (rate is None) == (log_rate is None):
            raise ValueError("RelaxedPoisson: give exactly one of `rate` and `log_rate`.")
        if backend not in BACKENDS:
            raise ValueError(
                f"RelaxedPoisson: unknown backend {backend!r}; choose one of {list(BACKENDS)}"
            )
        if indicator not in INDICATORS:
            raise ValueError(
                f"RelaxedPoisson: unknown indicator {indicator!r}; choose one of {sorted(INDICATORS)}."
            )
        if isinstance(temperature, torch.Tensor) and temperature.requires_grad:
            raise ValueError(
                "RelaxedPoisson: temperature requires grad, but the relaxation is not "
                "differentiable in it; pass temperature.detach() or a number"
            )
        temperature = float(temperature)
        if not math.isfinite(temperature) or temperature < 0:
            raise ValueError(
                f"RelaxedPoisson: temperature must be a finite number >= 0, got {temperature}."
            )
        if log_rate is not None:
            (log_rate,) = broadcast_all(_floating("log_rate", log_rate))
            rate = log_rate.exp()
        (self.rate,) = broadcast_all(_floating("rate", rate))
        self.temperature = temperature
        self.indicator = indicator
        self.straight_through = straight_through
        self.backend = backend
        super().__init__(self.rate.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):  # type: ignore[override]
        new = self._get_checked_instance(RelaxedPoisson, _instance)
        new.rate = self.rate.expand(torch.Size(batch_shape))
        new.temperature = self.temperature
        new.indicator = self.indicator
        new.straight_through = self.straight_through
        new.backend = self.backend
        super(RelaxedPoisson, new).__init__(torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    @property
    def mean(self) -> torch.Tensor:
        return self.rate

    @property
    def mode(self) -> torch.Tensor:
        return self.rate.floor()

    @property
    def variance(self) -> torch.Tensor:
        return self.rate

    def rsample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Relaxed counts of shape ``sample_shape + batch_shape``, differentiable in the rate."""
        rate = self.rate.expand(self._extended_shape(sample_shape))
        if self.temperature == 0:
            return torch.poisson(rate.detach(), generator=generator)
        return relaxed_poisson_rsample(
            rate, self.temperature, self.indicator, self.straight_through, generator, self.backend
        )

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact Poisson counts of shape ``sample_shape + batch_shape``."""
        with torch.no_grad():
            rate = self.rate.expand(self._extended_shape(sample_shape))
            return torch.poisson(rate, generator=generator)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Poisson log-probability (continued to non-integer counts through lgamma)."""
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return value.xlogy(rate) - rate - torch.lgamma(value + 1)

    def entropy(self) -> torch.Tensor:
        return Poisson(self.rate).entropy()


def poisson_kl(rate_q: torch.Tensor, rate_p: torch.Tensor) -> torch.Tensor:
    """KL(Pois(rate_q) || Pois(rate_p)) = rate_q log(rate_q / rate_p) - rate_q + rate_p, elementwise."""
    return rate_q.xlogy(rate_q) - rate_q.xlogy(rate_p) - rate_q + rate_p


def poisson_kl_residual(prior_log_rate: torch.Tensor, log_rate_residual: torch.Tensor) -> torch.Tensor:
    """The P-VAE's metabolic cost r f(dr), f(y) = 1 - y + y log y, in log space.

    KL(Pois(r dr) || Pois(r)) with ``r = exp(prior_log_rate)`` and ``dr = exp(log_rate_residual)``;
    equal to ``poisson_kl(r * dr, r)`` (docs/model.md).

    Args:
        prior_log_rate: (K,) or broadcastable, log r.
        log_rate_residual: (..., K), log dr.

    Returns:
        (..., K) non-negative KL per latent.
    """
    residual = log_rate_residual.exp()
    return prior_log_rate.exp() * (1 - residual + log_rate_residual * residual)


@register_kl(RelaxedPoisson, RelaxedPoisson)
def _kl_relaxed_relaxed(q: RelaxedPoisson, p: RelaxedPoisson) -> torch.Tensor:
    return poisson_kl(q.rate, p.rate)


@register_kl(RelaxedPoisson, Poisson)
def _kl_relaxed_poisson(q: RelaxedPoisson, p: Poisson) -> torch.Tensor:
    return poisson_kl(q.rate, p.rate)


@register_kl(Poisson, RelaxedPoisson)
def _kl_poisson_relaxed(q: Poisson, p: RelaxedPoisson) -> torch.Tensor:
    return poisson_kl(q.rate, p.rate)


def sampler_self_check(device: str | torch.device = "cpu", n: int = 60_000, seed: int = 0) -> dict:
    """Compare the sampler ``backend="auto"`` runs on ``device`` with the torch walk, statistically.

    Draws ``n`` relaxed counts (temperature 0.1) at each of three rates with both, and compares
    the mean count and the mean gradient per rate in units of their standard error: a working
    kernel stays within a few, a broken one (wrong distribution, wrong gradient) is far out.

    Returns:
        ``{"device", "backend", "ok", "worst" (standard errors), "seconds"}``.
    """
    import time

    device = torch.device(device)
    backend = default_backend(device)
    rates = torch.tensor([0.3, 2.0, 12.0], device=device).repeat_interleave(n)
    summaries = []
    relaxed_poisson_rsample(rates[:10], 0.1, backend=backend)  # compiles the kernel, if it must
    started = time.perf_counter()
    for name in (backend, "torch"):
        rate = rates.clone().requires_grad_()
        generator = torch.Generator(device=device).manual_seed(seed)
        z = relaxed_poisson_rsample(rate, 0.1, generator=generator, backend=name)
        z.sum().backward()
        pieces = torch.stack([z.detach(), rate.grad]).double().view(2, 3, n)
        summaries.append((pieces.mean(-1), pieces.var(-1) / n))
        if name == backend:
            seconds = time.perf_counter() - started
    (mean_a, var_a), (mean_b, var_b) = summaries
    worst = float(((mean_a - mean_b).abs() / (var_a + var_b).sqrt().clamp_min(1e-12)).max())
    return {
        "device": str(device),
        "backend": backend,
        "ok": worst < 6.0,
        "worst": worst,
        "seconds": seconds,
    }


class RelaxedOneHot(RelaxedOneHotCategorical):
    """torch's relaxed one-hot categorical (Gumbel-softmax), also at temperature 0, where
    ``rsample`` draws exact one-hot codes (no gradient): the C-VAE's posterior and prior.

    Args:
        temperature: >= 0.
        probs, logits: the category probabilities (one of them), (..., K).
    """

    def __init__(self, temperature, probs=None, logits=None, validate_args=None) -> None:
        temperature = torch.as_tensor(temperature, dtype=torch.get_default_dtype())
        self.hard = bool((temperature == 0).all())
        # the parent divides by the temperature; any positive one does for the hard case
        super().__init__(
            torch.ones_like(temperature) if self.hard else temperature, probs, logits, validate_args
        )

    def rsample(self, sample_shape: torch.Size = torch.Size()) -> torch.Tensor:
        if not self.hard:
            return super().rsample(sample_shape)
        with torch.no_grad():
            index = torch.distributions.Categorical(logits=self.logits).sample(sample_shape)
            return torch.nn.functional.one_hot(index, self.logits.shape[-1]).to(self.logits.dtype)


@register_kl(RelaxedOneHot, RelaxedOneHot)
def _kl_one_hot(q: RelaxedOneHot, p: RelaxedOneHot) -> torch.Tensor:
    """The KL of the categorical distributions the relaxations tend to, (...,) summed over K."""
    return (q.probs * (q.logits - p.logits)).sum(-1)
