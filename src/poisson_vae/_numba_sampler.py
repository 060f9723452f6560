"""The fused CPU kernel of the relaxed Poisson sampler, compiled by numba.

Each element walks its own arrivals in a compiled loop, from its own stream of a counter-based
random generator (Philox-4x32-10, keyed by a seed drawn from torch's generator, counter = element
index and arrival block), and stops at its own truncation ``n`` (when truncating) or as soon as
further arrivals can no longer change ``z`` or its gradient. It returns ``z`` and ``dz/drate``
together. The elements of a batch walk in step, four arrivals (one Philox block) a round, so that
the compiled loops over them carry no branch and run on the CPU's vector units (SIMD); its
logarithm and exponential are polynomials for the same reason.

``walk`` runs it on torch's number of threads: Python threads that each call the compiled kernel on
chunks of elements, taken in turn (no numba threading layer, so no second OpenMP pool whose idle
threads spin against torch's and against other processes). The results do not depend on the number
of threads: every element's random numbers are a function of the seed, its index and its arrival
number only.

numba rather than a C++ extension: it ships as binary wheels for every platform torch supports, so
users need no compiler, and the kernel stays readable Python.
"""

from __future__ import annotations

import itertools
import math
import os
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

__all__ = ["MIN_CHUNK", "in_chunks", "relaxed_poisson_kernel", "walk"]

_MASK = np.uint64(0xFFFFFFFF)
_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_TWO_TO_MINUS_32 = 2.0**-32


@numba.njit(inline="always", cache=True)
def _philox(c0, c1, c2, c3, k0, k1):  # pragma: no cover - compiled
    """Philox-4x32-10 (Salmon et al. 2011) on 32-bit words held in uint64."""
    for _ in range(10):
        product0 = _M0 * c0
        product1 = _M1 * c2
        c0, c1, c2, c3 = (
            (product1 >> np.uint64(32)) ^ c1 ^ k0,
            product1 & _MASK,
            (product0 >> np.uint64(32)) ^ c3 ^ k1,
            product0 & _MASK,
        )
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return c0, c1, c2, c3


@numba.njit(inline="always", cache=True)
def truncation(lam, thresholds, expansion):  # pragma: no cover - compiled
    """The truncation ``n`` of a rate: ``distributions.poisson_quantile`` of one element.

    A binary search of ``thresholds`` (the first index whose threshold is ``>= lam``) up to its
    last entry, the Cornish-Fisher expansion ``ceil(lam + a sqrt(lam) + b + c / sqrt(lam))``
    beyond, with ``expansion = (a, b, c)``.
    """
    if lam > thresholds[-1]:
        root = math.sqrt(lam)
        return math.ceil(lam + expansion[0] * root + expansion[1] + expansion[2] / root)
    low, high = 0, thresholds.shape[0]
    while low < high:
        middle = (low + high) // 2
        if thresholds[middle] < lam:
            low = middle + 1
        else:
            high = middle
    return low


# --- single-precision log and exp that vectorise ---------------------------------------------------
# libm's logf and expf are calls, which keep LLVM from vectorising a loop; these are the classic
# polynomial forms (Cephes' logf and expf, Moshier 1984-2000), within 2 ulp of the exact values on
# the ranges the kernel uses (tests/test_distributions.py compares them with numpy's).


@intrinsic
def _bits(typingctx, value):  # pragma: no cover - compiled
    """The bits of a float32 as an int32 (a reinterpretation, no conversion)."""

    def codegen(context, builder, signature, arguments):
        return builder.bitcast(arguments[0], context.get_value_type(types.int32))

    return types.int32(types.float32), codegen


@intrinsic
def _float(typingctx, value):  # pragma: no cover - compiled
    """The float32 whose bits are an int32."""

    def codegen(context, builder, signature, arguments):
        return builder.bitcast(arguments[0], context.get_value_type(types.float32))

    return types.float32(types.int32), codegen


_F = np.float32
_VECTOR = dict(fastmath=True, error_model="numpy")  # no zero-division branch: it stops vectorising


@numba.njit(inline="always", cache=True, **_VECTOR)
def _log32(x):  # pragma: no cover - compiled
    """log(x) in single precision, for normal x > 0."""
    bits = _bits(x)
    exponent = (bits >> 23) - 127
    mantissa = _float((bits & 0x007FFFFF) | 0x3F800000)  # in [1, 2)
    high = mantissa > _F(1.41421356)  # keep it in [sqrt(1/2), sqrt(2))
    mantissa = mantissa * _F(0.5) if high else mantissa
    exponent = exponent + 1 if high else exponent
    f = mantissa - _F(1.0)
    f2 = f * f
    y = _F(7.0376836292e-2)
    y = y * f + _F(-1.1514610310e-1)
    y = y * f + _F(1.1676998740e-1)
    y = y * f + _F(-1.2420140846e-1)
    y = y * f + _F(1.4249322787e-1)
    y = y * f + _F(-1.6668057665e-1)
    y = y * f + _F(2.0000714765e-1)
    y = y * f + _F(-2.4999993993e-1)
    y = y * f + _F(3.3333331174e-1)
    e = _F(exponent)
    y = y * f * f2 + _F(-2.12194440e-4) * e - _F(0.5) * f2
    return f + y + _F(0.693359375) * e  # log 2 in two parts: exact and correction


@numba.njit(inline="always", cache=True, **_VECTOR)
def _exp32(x):  # pragma: no cover - compiled
    """exp(x) in single precision, for x <= 0 (below -87, exp(-87) ~ 1.6e-38 instead of less)."""
    x = max(x, _F(-87.0))
    # the integer nearest x / log 2 (x <= 0), by truncation toward zero: no call to floor
    n = _F(np.int32(x * _F(1.44269504088896341) - _F(0.5)))
    r = x - n * _F(0.693359375) - n * _F(-2.12194440e-4)
    p = _F(1.9875691500e-4)
    p = p * r + _F(1.3981999507e-3)
    p = p * r + _F(8.3334519073e-3)
    p = p * r + _F(4.1665795894e-2)
    p = p * r + _F(1.6666665459e-1)
    p = p * r + _F(5.0000001201e-1)
    p = p * r * r + r + _F(1.0)
    return p * _float((np.int32(n) + 127) << 23)  # times 2^n


@numba.njit(inline="always", cache=True, **_VECTOR)
def _sigmoid(s):  # pragma: no cover - compiled
    """The sigmoid indicator g(s) and its derivative g'(s), its exponential in single precision."""
    e = np.float64(_exp32(np.float32(-abs(s))))
    inverse = 1.0 / (1.0 + e)
    return (inverse if s >= 0 else e * inverse), e * inverse * inverse


@numba.njit(inline="always", cache=True)
def _indicator(s, code):  # pragma: no cover - compiled
    """Soft indicator g(s) and its derivative g'(s) (see ``distributions.INDICATORS``)."""
    if code == 0:
        return _sigmoid(s)
    if s <= -1.0:
        return 0.0, 0.0
    if s >= 1.0:
        return 1.0, 0.0
    u = (s + 1.0) / 2.0
    if code == 1:
        return u, 0.5
    if code == 2:
        return u * u * (3.0 - 2.0 * u), 3.0 * u * (1.0 - u)
    if code == 3:
        return u**3 * (u * (6.0 * u - 15.0) + 10.0), 15.0 * u * u * (1.0 - u) * (1.0 - u)
    return (1.0 - math.cos(math.pi * u)) / 2.0, math.pi / 4.0 * math.sin(math.pi * u)


# --- the kernel -------------------------------------------------------------------------------------

#: Elements walked together: their state fits in the L1/L2 caches, and the loops over them are long
#: enough to vectorise.
BATCH = 1024


@numba.njit(nogil=True, cache=True, **_VECTOR)
def relaxed_poisson_kernel(
    start,
    stop,
    rate,
    max_rate,
    thresholds,
    expansion,
    temperatures,
    code,
    cutoff,
    truncate,
    exact_counts,
    key0,
    key1,
    z,
    dz_drate,
    count,
):  # pragma: no cover - compiled
    """Fill ``z``, ``dz_drate`` and (when ``exact_counts``) ``count`` for the rates ``start:stop``.

    Elements are walked ``BATCH`` at a time, in rounds of four arrivals: in round b every element
    still walking draws Philox block b (four words, one per arrival) and takes its arrivals
    4b + 1 .. 4b + 4, then the elements that have stopped leave the batch. Every element is at the
    same arrival in the same step, so the loops over the batch have no branches (an element that
    stops inside a round adds nothing for the rest of it) and LLVM vectorises them.

    Args:
        start, stop: the range of elements to walk.
        rate: (N,) float32 or float64 rates.
        max_rate: the largest rate walked (``distributions.MAX_RATE``).
        thresholds, expansion: the truncation's table and large-rate coefficients (see
            ``truncation``).
        temperatures: (1,) or (N,) float64, > 0: one temperature for all, or one per rate.
        code: indicator code, a value of ``distributions.INDICATOR_CODES``.
        cutoff: an arrival with s = (1 - E / rate) / temperature at or below this adds nothing,
            and neither does any later one: the walk stops there.
        truncate: count only each element's first ``truncation(rate)`` arrivals.
        exact_counts: also count arrivals before t = 1 exactly (untruncated).
        key0, key1: the 32-bit halves of the random seed, as uint64.
        z, dz_drate, count: (N,) outputs of the dtype of ``rate``.

    Returns:
        The number of rates in the range that are NaN, infinite or above ``max_rate`` (their
        outputs are zero).
    """
    # One 1-D array per quantity, used in the loops below and nowhere else: only so does LLVM see
    # they do not overlap, and vectorise (numba's 2-D arrays have run-time row strides, and arrays
    # passed to a helper function bring reference-counting calls into the loop).
    index = np.empty(BATCH, np.int64)
    lam, inverse_rate, inverse_temperature = np.empty(BATCH), np.empty(BATCH), np.empty(BATCH)
    limit, arrival, total = np.empty(BATCH), np.empty(BATCH), np.empty(BATCH)
    slope_total, exact = np.empty(BATCH), np.empty(BATCH)
    scaled, position, soft, slope = np.empty(BATCH), np.empty(BATCH), np.empty(BATCH), np.empty(BATCH)
    counting = np.empty(BATCH, np.bool_)
    walking = np.empty(BATCH, np.bool_)
    words = np.empty((4, BATCH), np.uint64)
    n_table = thresholds.shape[0]
    per_element = temperatures.shape[0] > 1
    invalid = 0
    for first in range(start, stop, BATCH):
        n = 0  # the elements of this batch that walk
        for i in range(first, min(stop, first + BATCH)):
            x = np.float64(rate[i])
            z[i] = 0.0
            dz_drate[i] = 0.0
            count[i] = 0.0
            if not (-math.inf < x <= max_rate):
                invalid += 1
            # Rates below the first threshold have truncation 0: nothing counted, unless exact
            # counts are asked for (a rate <= 0 has none).
            elif x > thresholds[0] or (x > 0 and (exact_counts or not truncate)):
                index[n] = i
                lam[n] = x
                inverse_rate[n] = 1.0 / x
                inverse_temperature[n] = 1.0 / (temperatures[i] if per_element else temperatures[0])
                # the truncation beyond the table (within it, the table is read arrival by arrival)
                beyond = truncate and x > thresholds[n_table - 1]
                limit[n] = truncation(x, thresholds, expansion) if beyond else math.inf
                arrival[n] = 0.0
                total[n] = 0.0
                slope_total[n] = 0.0
                exact[n] = 0.0
                counting[n] = not truncate or x > thresholds[0]  # may arrival 1 count?
                n += 1
        block = 0
        while n > 0:
            counter = np.uint64(block)
            for m in range(n):
                element = np.uint64(index[m])
                words[0, m], words[1, m], words[2, m], words[3, m] = _philox(
                    counter & _MASK,
                    counter >> np.uint64(32),
                    element & _MASK,
                    element >> np.uint64(32),
                    key0,
                    key1,
                )
            for lane in range(4):
                j = 4 * block + lane  # this is arrival j + 1
                # Is arrival j + 2 within the truncation, truncation(rate) >= j + 2? In the table
                # (increasing) that is rate > thresholds[j + 1]: one comparison for all elements.
                following = thresholds[j + 1] if truncate and j + 1 < n_table else -1.0
                for m in range(n):  # the arrival's time, E / rate, and s
                    uniform = (np.float32(words[lane, m]) + _F(0.5)) * _F(_TWO_TO_MINUS_32)
                    arrival[m] -= np.float64(_log32(uniform))  # plus an Exp(1) gap
                    scaled[m] = arrival[m] * inverse_rate[m]
                    position[m] = (1.0 - scaled[m]) * inverse_temperature[m]
                # the sigmoid's loop apart from the others': it vectorises only without their calls
                if code == 0:
                    for m in range(n):
                        soft[m], slope[m] = _sigmoid(position[m])
                else:
                    for m in range(n):
                        soft[m], slope[m] = _indicator(position[m], code)
                for m in range(n):  # what the arrival adds, and whether the element goes on
                    counts = counting[m] & (position[m] > cutoff)
                    total[m] += soft[m] if counts else 0.0
                    slope_total[m] += slope[m] * scaled[m] if counts else 0.0
                    counting[m] = counts & (j + 1 < limit[m]) & (lam[m] > following)
                    below = exact_counts & (arrival[m] < lam[m])
                    exact[m] += 1.0 if below else 0.0
                    walking[m] = counting[m] | below
            kept = 0  # write every element's sums so far (final where it stopped); keep the others
            for m in range(n):
                i = index[m]
                z[i] = total[m]
                # dz/drate = sum_j g'(s_j) E_j / (rate^2 temperature), with scaled_j = E_j / rate
                dz_drate[i] = slope_total[m] * inverse_rate[m] * inverse_temperature[m]
                count[i] = exact[m]
                index[kept] = i
                lam[kept], inverse_rate[kept] = lam[m], inverse_rate[m]
                inverse_temperature[kept], limit[kept] = inverse_temperature[m], limit[m]
                arrival[kept], total[kept] = arrival[m], total[m]
                slope_total[kept], exact[kept], counting[kept] = slope_total[m], exact[m], counting[m]
                kept += walking[m]
            n = kept
            block += 1
    return invalid


#: Below this many elements per thread, a call runs in the calling thread alone (the sampler's and
#: FISTA's compiled passes alike).
MIN_CHUNK = 16_384
_POOL: tuple[int, ThreadPoolExecutor] | None = None


def _pool(workers: int) -> ThreadPoolExecutor:
    """The module's worker threads, made anew after a fork (a child has none of its parent's)."""
    global _POOL
    if _POOL is None or _POOL[0] != os.getpid() or _POOL[1]._max_workers < workers:
        _POOL = (os.getpid(), ThreadPoolExecutor(workers, thread_name_prefix="pvae-sampler"))
    return _POOL[1]


def walk(rate: np.ndarray, *arguments, threads: int) -> int:
    """``relaxed_poisson_kernel`` over all of ``rate``, on up to ``threads`` threads
    (:func:`in_chunks`).

    Returns:
        The number of invalid rates (see ``relaxed_poisson_kernel``).
    """
    return in_chunks(relaxed_poisson_kernel, rate.shape[0], (rate, *arguments), threads, MIN_CHUNK)


def in_chunks(kernel, n: int, arguments: tuple, threads: int, min_chunk: int) -> int:
    """``kernel(start, stop, *arguments)`` over the items 0..n - 1, on up to ``threads`` threads
    with at least ``min_chunk`` items each; returns the sum of what the calls return.

    The items are cut into chunks that the calling thread and ``threads - 1`` workers take in
    turn until none is left: a thread the system slows down (another process on the core) takes
    fewer chunks instead of holding the others up, and idle workers sleep instead of spinning.
    ``kernel`` must release the GIL (``numba.njit(nogil=True)``).
    """
    threads = max(1, min(threads, n // min_chunk))
    if threads == 1:
        return kernel(0, n, *arguments)
    size = -(-n // (16 * threads))
    chunks = itertools.count()  # next() on it is atomic under the GIL

    def take() -> int:
        total = 0
        for chunk in chunks:
            if chunk * size >= n:
                return total
            total += kernel(chunk * size, min(n, chunk * size + size), *arguments)
        return total

    others = [_pool(threads - 1).submit(take) for _ in range(threads - 1)]
    total = take()
    return total + sum(other.result() for other in others)
