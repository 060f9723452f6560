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
import statistics
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
    "poisson_entropy",
    "poisson_kl",
    "poisson_kl_residual",
    "poisson_quantile",
    "relaxed_moments",
    "relaxed_poisson_rsample",
    "sampler_self_check",
]

#: Tail probability left out by the per-element truncation: ``n = quantile(1 - TRUNCATION_TAIL)``.
TRUNCATION_TAIL = 1e-5

#: The largest rate the sampler accepts. Near it a float32 arrival time has a resolution of 1/16
#: (a bias far below the count's own noise); by 2^22 ~ 4e6 the rounding biases counts by ~1 %.
MAX_RATE = 1e6

# A sigmoid arrival with s = (1 - E / rate) / temperature below -_SIGMOID_CUTOFF would add less than
# exp(-40) ~ 4e-18 to z (and, with its factor E / (rate^2 temperature), far less than float32
# resolution to the gradient); later arrivals add even less, because s falls with every arrival.
# The walks count none of them and stop at the first.
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


def relaxed_moments(
    rate: torch.Tensor | float, temperature: float, indicator: str = "sigmoid"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and variance of the relaxed count with every arrival walked (no truncation).

    By Campbell's theorem, with ``x = (1 - t) / temperature`` running over ``(-inf, 1/temperature]``:
    ``E z = rate temperature int g(x) dx`` and ``Var z = rate temperature int g(x)^2 dx``, linear
    in the rate. The sigmoid's integrals are ``softplus(1/T)`` and ``softplus(1/T) - sigmoid(1/T)``
    (its mean over-counts by ``rate T log(1 + e^{-1/T})``); a compact indicator is 1 beyond
    ``x = 1`` and point-symmetric on ``[-1, 1]``, so for ``T <= 1`` its mean is the rate exactly
    and its variance ``rate (1 - c T)`` with ``c = 1 - int_{-1}^{1} g^2 / 2`` (1/3 linear, 9/35
    cubic, 50/231 quintic, 1/4 cosine); both integrals are taken by Gauss-Legendre quadrature in
    float64 (exact for the polynomials).

    Args:
        rate: any shape, >= 0.
        temperature: > 0.
        indicator: a key of ``INDICATORS``.

    Returns:
        (mean, variance), float64 tensors of the shape of ``rate``.
    """
    rate = torch.as_tensor(rate, dtype=torch.float64)
    top = 1.0 / temperature
    if indicator == "sigmoid":
        mass = math.log1p(math.exp(-top)) + top  # softplus(1/T), without overflow
        square = mass - 1.0 / (1.0 + math.exp(-top))
    else:
        end = min(top, 1.0)  # a temperature above 1 cuts the ramp at t = 0
        nodes, weights = np.polynomial.legendre.leggauss(32)
        x = torch.as_tensor((nodes + 1) * (end + 1) / 2 - 1)
        soft = INDICATORS[indicator](x)[0]
        half_width = (end + 1) / 2
        flat = max(top - 1.0, 0.0)  # g = 1 from x = 1 to 1/T
        mass = half_width * float((torch.as_tensor(weights) * soft).sum()) + flat
        square = half_width * float((torch.as_tensor(weights) * soft**2).sum()) + flat
    return rate * temperature * mass, rate * temperature * square


#: The compiled kernels' codes for the soft indicators.
INDICATOR_CODES = {"sigmoid": 0, "linear": 1, "cubic": 2, "quintic": 3, "cosine": 4}


# The truncation of rates up to the last threshold of this table is looked up exactly; beyond
# (rates above ~890) the Cornish-Fisher expansion gives it, never below the exact quantile and at
# most one above it (checked against the Poisson CDF up to MAX_RATE in the tests).
_TABLE_SIZE = 1024


@functools.lru_cache(maxsize=8)
def _quantile_thresholds(tail: float, device: torch.device) -> torch.Tensor:
    """Rates ``t_k`` (k = 0.._TABLE_SIZE) at which the Poisson ``1 - tail`` quantile steps past ``k``.

    ``P(N <= k; rate)`` falls with the rate, so the quantile is ``<= k`` exactly for rates ``<= t_k``.
    Found by bisection on ``gammaincc(k + 1, rate) = P(N <= k)`` in float64, once per device.

    Returns:
        (_TABLE_SIZE + 1,) float64 tensor on ``device``, increasing.
    """
    k = torch.arange(_TABLE_SIZE + 1, dtype=torch.float64)
    low = torch.zeros_like(k)
    high = k + 20 * k.sqrt() + 50
    for _ in range(80):
        middle = (low + high) / 2
        below = torch.special.gammaincc(k + 1, middle) >= 1 - tail
        low = torch.where(below, middle, low)
        high = torch.where(below, high, middle)
    return low.to(device)


@functools.lru_cache(maxsize=8)
def _cornish_fisher(tail: float) -> tuple[float, float, float]:
    """Coefficients ``(a, b, c)`` of the Poisson ``1 - tail`` quantile of large rates,
    ``ceil(rate + a sqrt(rate) + b + c / sqrt(rate))``, by the Cornish-Fisher expansion.

    With ``z`` the standard normal quantile, skewness ``rate^-1/2`` and excess kurtosis ``1/rate``:
    ``rate + sqrt(rate) (z + (z^2 - 1) / (6 sqrt(rate)) + ((z^3 - 3 z) / 24 - (2 z^3 - 5 z) / 36)
    / rate) - 1/2``, the half a continuity correction.
    """
    z = statistics.NormalDist().inv_cdf(1 - tail)
    return z, (z * z - 1) / 6 - 0.5, (z**3 - 3 * z) / 24 - (2 * z**3 - 5 * z) / 36


def _valid_rates(rate: torch.Tensor, refuse: bool) -> torch.Tensor:
    """The rates the sampler can walk: finite and at most ``MAX_RATE``.

    Args:
        rate: (N,) rates.
        refuse: raise for any other rate (this reads the tensor on the host: a synchronisation on
            a GPU, which the GPU kernel avoids by returning NaN for those rates instead).

    Returns:
        (N,) bool mask.

    Raises:
        FloatingPointError: ``refuse`` and a rate is NaN, infinite or above ``MAX_RATE``.
    """
    valid = torch.isfinite(rate) & (rate <= MAX_RATE)
    if refuse and not bool(valid.all()):
        largest = float(rate.max())
        if not math.isfinite(largest):
            raise FloatingPointError(f"Poisson rates must be finite, got a maximum of {largest}")
        raise FloatingPointError(
            f"Poisson rates above {MAX_RATE:g} are not supported (the relaxed sampler walks one "
            f"arrival per count, and single-precision arrival times drift beyond it); got a "
            f"maximum of {largest:g}: cap the rates, e.g. through the log-rate"
        )
    return valid


def poisson_quantile(rate: torch.Tensor, tail: float = TRUNCATION_TAIL) -> torch.Tensor:
    """The Poisson ``1 - tail`` quantile of every rate: smallest ``n`` with ``P(N <= n) >= 1 - tail``.

    Exact for rates up to ~890 (a table), the Cornish-Fisher expansion beyond (never below the
    exact quantile, at most one above it). Computed on the rates' device without reading them on
    the host; NaN, infinite and negative rates get 0.

    Args:
        rate: any shape, non-negative.
        tail: probability left above the quantile.

    Returns:
        int64 tensor of the shape of ``rate``.
    """
    x = rate.detach().to(torch.float64)
    thresholds = _quantile_thresholds(tail, x.device)
    exact = torch.searchsorted(thresholds, x.contiguous())
    a, b, c = _cornish_fisher(tail)
    root = x.clamp_min(1.0).sqrt()
    large = torch.ceil(x + a * root + b + c / root)
    quantile = torch.where(x <= thresholds[-1], exact.to(torch.float64), large)
    return torch.where(torch.isfinite(x) & (x >= 0), quantile, 0.0).to(torch.int64)


# Live elements are compacted once this fraction of them has finished; until then finished
# elements ride along, masked (past their n) or adding less than float precision (past the cutoff).
_COMPACT_FRACTION = 0.125


@torch.no_grad()
def _walk_arrivals(
    rate: torch.Tensor,
    temperature: float | torch.Tensor,
    indicator: str,
    truncate: bool,
    exact_counts: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """Relaxed counts of a flat batch of rates, walking arrivals one step for every live element.

    Args:
        rate: (N,) rates, detached.
        temperature: > 0, a number or an (N,) tensor (one per rate).
        indicator: a key of ``INDICATORS``.
        truncate: count only each element's first ``poisson_quantile(rate)`` arrivals.
        exact_counts: also count the arrivals before ``t = 1`` exactly (untruncated), walking on
            until that count is known.
        generator: optional random generator.

    Returns:
        (3, N): the relaxed count ``z``, ``dz/drate``, and the exact count (zero unless
        ``exact_counts``).
    """
    soft_indicator = INDICATORS[indicator]
    cutoff = _stop_below(indicator)
    _valid_rates(rate, refuse=True)  # the walk reads its progress on the host at every step anyway
    n_arrivals = poisson_quantile(rate) if truncate else _untruncated(rate)
    result = rate.new_zeros(3, rate.numel())
    # Rates below ~1e-5 have n = 0 arrivals: z = 0 and no gradient, unless exact counts are asked for.
    index = torch.nonzero((n_arrivals > 0) | (exact_counts & (rate > 0))).squeeze(1)
    # Rows: rate, n, arrival time E_j (unit rate), z, dz/drate, exact count, temperature.
    state = rate.new_zeros(7, index.numel())
    state[0] = rate[index]
    state[1] = n_arrivals[index]
    state[6] = temperature[index] if isinstance(temperature, torch.Tensor) else temperature
    lam, limit, arrival, z, dz_drate, count, temperature = state
    step = 0
    while index.numel():
        step += 1
        # Exp(1) by inversion of a uniform on [0, 1): several times faster than exponential_.
        uniform = torch.rand(lam.shape, generator=generator, device=lam.device, dtype=lam.dtype)
        arrival -= torch.log1p(-uniform)
        scaled = arrival / lam
        s = (1 - scaled) / temperature
        soft, slope = soft_indicator(s)
        counted = (limit >= step) & (s > cutoff)
        z += torch.where(counted, soft, 0.0)
        dz_drate += torch.where(counted, slope * scaled / (lam * temperature), 0.0)
        keep = counted
        if exact_counts:
            before_one = arrival < lam
            count += before_one
            keep |= before_one
        n_done = index.numel() - int(keep.sum())
        if n_done < max(1.0, _COMPACT_FRACTION * index.numel()):
            continue
        done = torch.nonzero(~keep).squeeze(1)
        result.index_copy_(1, index.index_select(0, done), state[3:6].index_select(1, done))
        kept = torch.nonzero(keep).squeeze(1)
        index = index.index_select(0, kept)
        state = state.index_select(1, kept)
        lam, limit, arrival, z, dz_drate, count, temperature = state
    return result


def _untruncated(rate: torch.Tensor) -> torch.Tensor:
    """The truncation of the walks that do not truncate: beyond reach (the largest int32, what
    the GPU kernel holds) for positive rates, 0 for the others (which have no arrivals)."""
    return torch.where(rate > 0, 2**31 - 1, 0).to(torch.int64)


def _philox_key(generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """One draw from torch's generator (the default one of ``device`` when None): the key of the
    counter-based generator of a whole call of a compiled kernel.

    Returns:
        (1,) int64 in [0, 2^62) on the generator's device (read by the GPU kernel there, with no
        trip through the host).
    """
    device = generator.device if generator is not None else device
    return torch.randint(0, 2**62, (1,), generator=generator, device=device)


@torch.no_grad()
def _fused_arrivals(
    rate: torch.Tensor,
    temperature: float | torch.Tensor,
    indicator: str,
    truncate: bool,
    exact_counts: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The same as ``_walk_arrivals``, by the compiled per-element kernel (CPU tensors), on
    torch's number of threads."""
    from ._numba_sampler import walk

    seed = int(_philox_key(generator, rate.device))
    result = rate.new_empty(3, rate.numel())
    invalid = walk(
        rate.numpy(),
        MAX_RATE,
        _quantile_thresholds(TRUNCATION_TAIL, rate.device).numpy(),
        np.array(_cornish_fisher(TRUNCATION_TAIL)),
        # one temperature, or one per rate
        torch.as_tensor(temperature, dtype=torch.float64).reshape(-1).numpy(),
        INDICATOR_CODES[indicator],
        _stop_below(indicator),
        truncate,
        exact_counts,
        np.uint64(seed & 0xFFFFFFFF),
        np.uint64(seed >> 32),
        *result.numpy(),
        threads=torch.get_num_threads(),
    )
    if invalid:  # the kernel found them in the same pass; this says which way they are wrong
        _valid_rates(rate, refuse=True)
    return result


@torch.no_grad()
def _triton_arrivals(
    rate: torch.Tensor,
    temperature: float | torch.Tensor,
    indicator: str,
    truncate: bool,
    exact_counts: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    """The same as ``_walk_arrivals``, by the Triton per-element kernel (CUDA tensors).

    Nothing is read back to the host: on a GPU, rates the sampler cannot walk (NaN, infinite,
    above ``MAX_RATE``) give NaN counts instead of an error (a training loss then turns NaN and
    stops the run); CPU tensors (under Triton's interpreter) are refused as by the other walks.
    """
    from ._triton_sampler import relaxed_poisson_triton

    valid = _valid_rates(rate, refuse=rate.device.type == "cpu")
    walked = torch.where(valid, rate, 0.0)
    key = _philox_key(generator, rate.device).to(rate.device)
    if isinstance(temperature, torch.Tensor):
        temperatures = temperature.reshape(-1).to(torch.float32)
    else:
        temperatures = torch.full((1,), temperature, dtype=torch.float32, device=rate.device)
    with torch.cuda.device(rate.device) if rate.is_cuda else contextlib.nullcontext():
        result = relaxed_poisson_triton(
            walked,
            poisson_quantile(walked) if truncate else _untruncated(walked),
            temperatures,
            INDICATOR_CODES[indicator],
            _stop_below(indicator),
            exact_counts,
            key,
        )
    return torch.where(valid, result, torch.nan)


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
    temperature: float | torch.Tensor,
    indicator: str = "sigmoid",
    straight_through: bool = False,
    generator: torch.Generator | None = None,
    backend: str = "auto",
    truncate: bool = True,
) -> torch.Tensor:
    """Reparameterised relaxed Poisson counts with a gradient with respect to ``rate``.

    Args:
        rate: any shape, non-negative; gradients flow back to it. float16 and bfloat16 rates are
            sampled in float32 and the counts returned in the rates' dtype.
        temperature: > 0 (use ``torch.poisson`` for temperature 0): a number, or a tensor that
            broadcasts with ``rate`` (one temperature per element). Under ``torch.func.vmap``
            (with ``randomness="different"``) each element still draws its own arrivals.
        indicator: soft indicator, a key of ``INDICATORS``.
        straight_through: forward the exact count, backward the relaxed count's gradient.
        generator: optional random generator.
        backend: one of ``BACKENDS``.
        truncate: for the sigmoid, count each element's arrivals only up to the Poisson
            ``1 - TRUNCATION_TAIL`` quantile of its rate (the original release's rule, the default);
            ``False`` walks on until the arrivals left add less than ``exp(-40) rate temperature``
            in expectation. The compact indicators always walk exactly to ``t = 1 + temperature``,
            the last arrival they count: no truncation.

    Returns:
        Counts of the shape of ``rate``.
    """
    resolved = _resolve_backend(backend, rate.device)
    truncate = truncate and indicator == "sigmoid"
    if isinstance(temperature, torch.Tensor) and temperature.numel() > 1:
        temperature = temperature.detach().to(rate.device).expand(rate.shape)
    try:
        return _RelaxedPoissonSample.apply(
            rate, temperature, indicator, truncate, straight_through, generator, resolved
        )[0]
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
            rate, temperature, indicator, truncate, straight_through, generator, "torch"
        )[0]


class _RelaxedPoissonSample(torch.autograd.Function):
    """z and dz/drate in one forward pass; the backward pass is one multiply."""

    @staticmethod
    def forward(rate, temperature, indicator, truncate, straight_through, generator, backend):  # type: ignore[override]
        working = torch.float32 if rate.dtype in (torch.float16, torch.bfloat16) else rate.dtype
        flat = rate.detach().reshape(-1).to(working).contiguous()
        if isinstance(temperature, torch.Tensor) and temperature.numel() > 1:
            temperature = temperature.reshape(-1).to(working).contiguous()
        walk = _WALKS[backend]
        soft, dz_drate, exact = walk(flat, temperature, indicator, truncate, straight_through, generator)
        z = (exact if straight_through else soft).view(rate.shape).to(rate.dtype)
        return z, dz_drate.view(rate.shape).to(rate.dtype)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:  # type: ignore[override]
        ctx.save_for_backward(output[1])
        ctx.mark_non_differentiable(output[1])

    @staticmethod
    def backward(ctx, grad_z, grad_slope):  # type: ignore[override]
        (dz_drate,) = ctx.saved_tensors
        return grad_z * dz_drate, None, None, None, None, None, None

    @staticmethod
    def vmap(
        info, in_dims, rate, temperature, indicator, truncate, straight_through, generator, backend
    ):  # type: ignore[override]
        # The sampler is elementwise: a batch of rates is one bigger call, its batch dimension
        # moved to the front (and the temperature broadcast to it).
        rate = (
            rate.movedim(in_dims[0], 0)
            if in_dims[0] is not None
            else rate.expand(info.batch_size, *rate.shape)
        )
        if isinstance(temperature, torch.Tensor) and in_dims[1] is not None:
            temperature = temperature.movedim(in_dims[1], 0).expand(rate.shape)
        outputs = _RelaxedPoissonSample.apply(
            rate, temperature, indicator, truncate, straight_through, generator, backend
        )
        return outputs, (0, 0)


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
        temperature: >= 0; the relaxation's sharpness (the release anneals it from 1 to 0.05). A
            number, or a tensor that broadcasts with the rates (each > 0; its values are checked
            when ``validate_args``).
        log_rate: (...,) natural log of the rates.
        indicator: the soft indicator, one of ``INDICATORS`` (``sigmoid``, ``linear``, ``cubic``,
            ``quintic``, ``cosine``).
        straight_through: ``rsample`` forwards the exact count and backpropagates the relaxed one.
        truncate: for the sigmoid, count each element's arrivals only up to the Poisson
            ``1 - 1e-5`` quantile of its rate (the original release's rule, the default); see
            ``relaxed_poisson_rsample``. The compact indicators never truncate.
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
        temperature: float | torch.Tensor = 1.0,
        *,
        log_rate: torch.Tensor | Number | None = None,
        indicator: str = "sigmoid",
        straight_through: bool = False,
        truncate: bool = True,
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
        validate = Distribution._validate_args if validate_args is None else validate_args
        temperature = _checked_temperature(temperature, validate)
        self._log_rate = None
        if log_rate is not None:
            (log_rate,) = broadcast_all(_floating("log_rate", log_rate))
            self._log_rate, rate = log_rate, log_rate.exp()
        (self.rate,) = broadcast_all(_floating("rate", rate))
        if isinstance(temperature, torch.Tensor):
            try:
                shape = torch.broadcast_shapes(self.rate.shape, temperature.shape)
            except RuntimeError:
                raise ValueError(
                    f"RelaxedPoisson: a temperature of shape {tuple(temperature.shape)} does not "
                    f"broadcast with rates of shape {tuple(self.rate.shape)}"
                ) from None
            self.rate = self.rate.expand(shape)
            self._log_rate = None if self._log_rate is None else self._log_rate.expand(shape)
            temperature = temperature.to(self.rate.device).expand(shape)
        self.temperature = temperature
        self.indicator = indicator
        self.straight_through = straight_through
        self.truncate = truncate
        self.backend = backend
        super().__init__(self.rate.shape, validate_args=validate_args)

    @property
    def log_rate(self) -> torch.Tensor:
        """The natural log of the rates (as given, when the distribution was built from it)."""
        return self._log_rate if self._log_rate is not None else self.rate.log()

    @property
    def _hard(self) -> bool:
        """Temperature 0: exact counts."""
        return not isinstance(self.temperature, torch.Tensor) and self.temperature == 0

    def expand(self, batch_shape, _instance=None):  # type: ignore[override]
        new = self._get_checked_instance(RelaxedPoisson, _instance)
        batch_shape = torch.Size(batch_shape)
        new.rate = self.rate.expand(batch_shape)
        new._log_rate = None if self._log_rate is None else self._log_rate.expand(batch_shape)
        temperature = self.temperature
        new.temperature = (
            temperature.expand(batch_shape) if isinstance(temperature, torch.Tensor) else temperature
        )
        new.indicator = self.indicator
        new.straight_through = self.straight_through
        new.truncate = self.truncate
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
        shape = self._extended_shape(sample_shape)
        rate = self.rate.expand(shape)
        if self._hard:
            return _exact_counts(rate.detach(), generator)
        temperature = self.temperature
        if isinstance(temperature, torch.Tensor):
            temperature = temperature.expand(shape)
        return relaxed_poisson_rsample(
            rate,
            temperature,
            self.indicator,
            self.straight_through,
            generator,
            self.backend,
            self.truncate,
        )

    def sample(
        self, sample_shape: torch.Size = torch.Size(), generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Exact Poisson counts of shape ``sample_shape + batch_shape``."""
        with torch.no_grad():
            rate = self.rate.expand(self._extended_shape(sample_shape))
            return _exact_counts(rate, generator)

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        """Poisson log-probability (continued to non-integer counts through lgamma)."""
        if self._validate_args:
            self._validate_sample(value)
        rate, value = broadcast_all(self.rate, value)
        return value.xlogy(rate) - rate - torch.lgamma(value + 1)

    def entropy(self) -> torch.Tensor:
        """The entropy of the Poisson distribution the relaxation tends to (nats), elementwise:
        a direct sum for rates up to 50, the asymptotic series beyond (error below 1e-7)."""
        return poisson_entropy(self.rate)


def _checked_temperature(temperature: float | torch.Tensor, validate: bool) -> float | torch.Tensor:
    """A number >= 0, or a tensor of numbers > 0 (one per element), refused in one line else.

    The values of a tensor are checked only when ``validate`` (reading them is a host
    synchronisation on a GPU, which ``validate_args=False`` avoids, as in ``torch.distributions``).
    """
    if isinstance(temperature, torch.Tensor) and temperature.requires_grad:
        raise ValueError(
            "RelaxedPoisson: temperature requires grad, but the relaxation is not "
            "differentiable in it; pass temperature.detach() or a number"
        )
    if not isinstance(temperature, torch.Tensor) or temperature.numel() == 1:
        value = float(temperature)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"RelaxedPoisson: temperature must be a finite number >= 0, got {value}.")
        return value
    if not temperature.is_floating_point():
        raise ValueError("RelaxedPoisson: temperatures must be floating-point numbers")
    if validate and not bool((torch.isfinite(temperature) & (temperature > 0)).all()):
        raise ValueError(
            "RelaxedPoisson: a tensor of temperatures must be finite and > 0 everywhere "
            "(temperature 0, exact counts, is one number for the whole distribution)"
        )
    return temperature


def _exact_counts(rate: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Poisson counts, drawn in float32 for half-precision rates and returned in their dtype."""
    if rate.dtype in (torch.float16, torch.bfloat16):
        return torch.poisson(rate.float(), generator=generator).to(rate.dtype)
    return torch.poisson(rate, generator=generator)


# Rates up to this are summed directly; beyond, the asymptotic series is accurate to below 1e-7.
_ENTROPY_SUM_UP_TO = 50.0


def poisson_entropy(rate: torch.Tensor) -> torch.Tensor:
    """The entropy H = -sum_k p_k log p_k of Poisson(rate), elementwise, in nats.

    A direct sum over k for rates up to 50 (to the k past which p_k < 1e-17), the asymptotic
    series 0.5 log(2 pi e rate) - 1/(12 rate) - 1/(24 rate^2) - 19/(360 rate^3) beyond. Computed in
    float64, returned in the rates' dtype; 0 for a zero rate.
    """
    rate64 = torch.as_tensor(rate).detach().to(torch.float64)
    flat = rate64.reshape(-1)
    small = flat <= _ENTROPY_SUM_UP_TO
    result = torch.empty_like(flat)
    if bool(small.any()):
        lam = flat[small].unsqueeze(1)
        last = int(_ENTROPY_SUM_UP_TO + 12 * math.sqrt(_ENTROPY_SUM_UP_TO) + 40)
        k = torch.arange(0, last, dtype=torch.float64)
        log_p = torch.special.xlogy(k, lam) - lam - torch.lgamma(k + 1)
        result[small] = -(log_p.exp() * log_p).nan_to_num(0.0).sum(1)
    large = flat[~small]
    result[~small] = (
        0.5 * torch.log(2 * math.pi * math.e * large)
        - 1 / (12 * large)
        - 1 / (24 * large**2)
        - 19 / (360 * large**3)
    )
    dtype = rate.dtype if isinstance(rate, torch.Tensor) and rate.is_floating_point() else torch.float64
    return result.view(rate64.shape).to(dtype)


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
        probs: the category probabilities, (..., K); give this or ``logits``.
        logits: their logits, (..., K).
        validate_args: as for any torch distribution.
    """

    def __init__(
        self,
        temperature: float | torch.Tensor,
        probs: torch.Tensor | None = None,
        logits: torch.Tensor | None = None,
        validate_args: bool | None = None,
    ) -> None:
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
