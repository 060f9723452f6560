"""The fused GPU kernel of the relaxed Poisson sampler, written in Triton.

The walk of the CPU kernel of :mod:`poisson_vae._numba_sampler`, with the same random numbers:
each element walks its own arrivals, from its own Philox-4x32-10 stream (keyed by a seed drawn
from torch's generator, counter = arrival block and element index), and stops at its own
truncation ``n`` or once further arrivals can no longer change ``z`` or its gradient. A program
handles ``BLOCK`` elements and runs until the last of them stops; the four words of one Philox
block serve four consecutive arrivals. Arrival times are accumulated in single precision (the CPU
kernel uses double, and polynomials for its log and exp), so the two walks agree to float32
rounding, not bit for bit.

Triton rather than CUDA C++: it ships with torch's CUDA builds on Linux, compiles at first use with
no toolchain on the user's machine, and its interpreter (``TRITON_INTERPRET=1``) runs the very same
kernel on CPU tensors, which is how the test suite checks it on machines without a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

__all__ = ["relaxed_poisson_triton"]

# Elements per program: on a GPU a few warps' worth; under the interpreter (numpy, one program at
# a time) large blocks amortise its per-operation overhead.
_GPU_BLOCK = 256
_INTERPRETER_BLOCK = 1 << 16


@triton.jit
def _indicator(s, CODE: tl.constexpr):  # pragma: no cover - compiled
    """Soft indicator g(s) and its derivative g'(s) (see ``distributions.INDICATORS``)."""
    if CODE == 0:
        e = tl.exp(-tl.abs(s))
        inverse = 1.0 / (1.0 + e)
        soft = tl.where(s >= 0, inverse, e * inverse)
        slope = e * inverse * inverse
    else:
        u = tl.minimum(tl.maximum((s + 1.0) * 0.5, 0.0), 1.0)
        if CODE == 1:
            soft = u
            slope = tl.full(u.shape, 0.5, tl.float32)
        elif CODE == 2:
            soft = u * u * (3.0 - 2.0 * u)
            slope = 3.0 * u * (1.0 - u)
        elif CODE == 3:
            soft = u * u * u * (u * (6.0 * u - 15.0) + 10.0)
            slope = 15.0 * u * u * (1.0 - u) * (1.0 - u)
        else:
            soft = (1.0 - tl.cos(3.141592653589793 * u)) * 0.5
            slope = 0.7853981633974483 * tl.sin(3.141592653589793 * u)
        slope = tl.where((s > -1.0) & (s < 1.0), slope, 0.0)
    return soft, slope


# no recompilation for each batch size
@triton.jit(do_not_specialize=["n_elements"])
def _relaxed_poisson_kernel(
    rate_ptr,
    limit_ptr,
    z_ptr,
    dz_drate_ptr,
    count_ptr,
    n_elements,
    temperature_ptr,
    cutoff,
    seed_ptr,
    CODE: tl.constexpr,
    EXACT_COUNTS: tl.constexpr,
    PER_ELEMENT: tl.constexpr,
    BLOCK: tl.constexpr,
):  # pragma: no cover - compiled
    """Fill ``z``, ``dz/drate`` and (when ``EXACT_COUNTS``) the exact count of ``BLOCK`` elements."""
    element = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    inside = element < n_elements
    lam = tl.load(rate_ptr + element, mask=inside, other=0.0).to(tl.float32)
    if PER_ELEMENT:
        temperature = tl.load(temperature_ptr + element, mask=inside, other=1.0)
    else:
        temperature = tl.load(temperature_ptr + element * 0)
    inverse_temperature = 1.0 / temperature
    limit = tl.load(limit_ptr + element, mask=inside, other=0)
    seed = tl.load(seed_ptr)  # from device memory: a new seed needs no host value or recompilation
    # a zero rate walks no arrival (or, when EXACT_COUNTS, stops at its first): any finite inverse does
    inverse_rate = 1.0 / tl.where(lam > 0, lam, 1.0)
    if EXACT_COUNTS:
        live = inside
    else:
        live = inside & (limit > 0)
    element_low = (element & 0xFFFFFFFF).to(tl.uint32)
    element_high = (element >> 32).to(tl.uint32)
    zero = tl.zeros([BLOCK], dtype=tl.uint32)
    arrival = tl.zeros([BLOCK], dtype=tl.float32)
    z = tl.zeros([BLOCK], dtype=tl.float32)
    slope_total = tl.zeros([BLOCK], dtype=tl.float32)
    count = tl.zeros([BLOCK], dtype=tl.float32)
    block = 0
    while tl.max(live.to(tl.int32), axis=0) > 0:
        # counter = (block low, block high, element low, element high); blocks stay below 2^32
        words = tl.random.philox(seed, zero + block, zero, element_low, element_high)
        for lane in tl.static_range(4):  # four arrivals per Philox block
            # a uniform on (0, 1] from 32 random bits, as in the CPU kernel
            uniform = (words[lane].to(tl.float32) + 0.5) * 2.3283064365386963e-10
            arrival = arrival - tl.log(uniform)
            scaled = arrival * inverse_rate
            s = (1.0 - scaled) * inverse_temperature
            counted = live & (4 * block + lane < limit) & (s > cutoff)
            soft, slope = _indicator(s, CODE)
            z += tl.where(counted, soft, 0.0)
            slope_total += tl.where(counted, slope * scaled, 0.0)
            keep = counted
            if EXACT_COUNTS:
                before_one = live & (arrival < lam)
                count += tl.where(before_one, 1.0, 0.0)
                keep = keep | before_one
            live = live & keep
        block += 1
    # dz/drate = sum_j g'(s_j) E_j / (rate^2 temperature), with scaled_j = E_j / rate
    dz_drate = slope_total * inverse_rate * inverse_temperature
    tl.store(z_ptr + element, z, mask=inside)
    tl.store(dz_drate_ptr + element, dz_drate, mask=inside)
    tl.store(count_ptr + element, count, mask=inside)


def relaxed_poisson_triton(
    rate: torch.Tensor,
    limit: torch.Tensor,
    temperatures: torch.Tensor,
    code: int,
    cutoff: float,
    exact_counts: bool,
    seed: torch.Tensor,
) -> torch.Tensor:
    """Run the kernel on a flat batch.

    Args:
        rate: (N,) contiguous rates on a CUDA device (or the CPU under the interpreter).
        limit: (N,) integer truncations ``n`` (``distributions.poisson_quantile``).
        temperatures: (1,) or (N,) float32 on the device of ``rate``, > 0: one temperature, or one
            per rate.
        code: indicator code, a value of ``distributions.INDICATOR_CODES``.
        cutoff: an arrival with s = (1 - E / rate) / temperature at or below this adds nothing,
            and neither does any later one: the walk stops there.
        exact_counts: also count arrivals before t = 1 exactly (untruncated).
        seed: (1,) int64 on the device of ``rate``, the key of the Philox streams.

    Returns:
        (3, N) of the dtype of ``rate``: ``z``, ``dz/drate`` and the exact count (zero unless
        ``exact_counts``).
    """
    result = rate.new_empty(3, rate.numel())
    # CPU tensors run only under the interpreter
    block = _INTERPRETER_BLOCK if rate.device.type == "cpu" else _GPU_BLOCK
    grid = (triton.cdiv(rate.numel(), block),)
    _relaxed_poisson_kernel[grid](
        rate,
        limit.to(torch.int32),
        *result,
        rate.numel(),
        temperatures,
        cutoff,
        seed,
        CODE=code,
        EXACT_COUNTS=exact_counts,
        PER_ELEMENT=temperatures.numel() > 1,
        BLOCK=block,
    )
    return result
