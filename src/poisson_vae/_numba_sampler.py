"""The fused CPU kernel of the relaxed Poisson sampler, compiled by numba.

Each element walks its own arrivals in a compiled loop, from its own stream of a counter-based
random generator (Philox-4x32-10, keyed by a seed drawn from torch's generator, counter = element
index and arrival block), and stops at its own truncation ``n`` (when truncating) or as soon as
further arrivals can no longer change ``z`` or its gradient. It returns ``z`` and ``dz/drate``
together.

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

__all__ = ["in_chunks", "relaxed_poisson_kernel", "walk"]

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
def _indicator(s, code):  # pragma: no cover - compiled
    """Soft indicator g(s) and its derivative g'(s) (see ``distributions.INDICATORS``)."""
    if code == 0:
        # exp(-|s|) in single precision: the outputs are float32, and this is the hot loop.
        e = np.float64(math.exp(np.float32(-abs(s))))
        inverse = 1.0 / (1.0 + e)
        slope = e * inverse * inverse
        return (inverse if s >= 0 else e * inverse), slope
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


@numba.njit(inline="always", cache=True)
def _gap(j, words, element_low, element_high, key0, key1):  # pragma: no cover - compiled
    """The Exp(1) gap before arrival ``j + 1`` (counting from 1) and the Philox block it came from.

    Four arrivals per Philox block; counter = (block, element).
    """
    lane = j & 3
    if lane == 0:
        block = np.uint64(j >> 2)
        words = _philox(block & _MASK, block >> np.uint64(32), element_low, element_high, key0, key1)
    # a uniform on (0, 1]; single precision suffices for an Exp(1) gap
    uniform = (np.float32(words[lane]) + np.float32(0.5)) * np.float32(_TWO_TO_MINUS_32)
    return -np.float64(math.log(uniform)), words


@numba.njit(nogil=True, cache=True, fastmath=True)
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
    invalid = 0
    for i in range(start, stop):
        lam = np.float64(rate[i])
        total = 0.0
        slope_total = 0.0
        exact = 0.0
        if not (-math.inf < lam <= max_rate):
            invalid += 1
        # Rates below the first threshold have truncation 0: nothing counted, unless exact counts
        # are asked for (a rate <= 0 has none).
        elif lam > thresholds[0] or (lam > 0 and (exact_counts or not truncate)):
            inverse_rate = 1.0 / lam
            per_element = temperatures.shape[0] > 1
            inverse_temperature = 1.0 / (temperatures[i] if per_element else temperatures[0])
            element_low = np.uint64(i) & _MASK
            element_high = np.uint64(i) >> np.uint64(32)
            arrival = 0.0
            j = 0
            words = (np.uint64(0), np.uint64(0), np.uint64(0), np.uint64(0))
            if not exact_counts:  # the hot loop: every arrival walked is counted
                limit = -1  # the truncation beyond the table, worked out when first needed
                while True:
                    gap, words = _gap(j, words, element_low, element_high, key0, key1)
                    j += 1
                    arrival += gap
                    scaled = arrival * inverse_rate
                    s = (1.0 - scaled) * inverse_temperature
                    if s <= cutoff:  # adds nothing, nor does any later arrival
                        break
                    soft, slope = _indicator(s, code)
                    total += soft
                    slope_total += slope * scaled
                    # Is arrival j + 1 within the truncation, truncation(lam) >= j + 1? In the
                    # table (increasing) that is lam > thresholds[j]: one comparison, no search.
                    if truncate:
                        if j < thresholds.shape[0]:
                            if not lam > thresholds[j]:
                                break
                        else:
                            if limit < 0:
                                limit = truncation(lam, thresholds, expansion)
                            if j >= limit:
                                break
            else:  # walk on past the relaxation's last arrival while arrivals fall before t = 1
                counted = not truncate or lam > thresholds[0]
                limit = -1
                while True:
                    gap, words = _gap(j, words, element_low, element_high, key0, key1)
                    j += 1
                    arrival += gap
                    scaled = arrival * inverse_rate
                    s = (1.0 - scaled) * inverse_temperature
                    counted = counted and s > cutoff
                    if counted:
                        soft, slope = _indicator(s, code)
                        total += soft
                        slope_total += slope * scaled
                        # is arrival j + 1 within the truncation? (as in the hot loop)
                        if truncate:
                            if j < thresholds.shape[0]:
                                counted = lam > thresholds[j]
                            else:
                                if limit < 0:
                                    limit = truncation(lam, thresholds, expansion)
                                counted = j < limit
                    if arrival < lam:
                        exact += 1.0
                    elif not counted:
                        break
            # dz/drate = sum_j g'(s_j) E_j / (rate^2 temperature), with scaled_j = E_j / rate
            slope_total *= inverse_rate * inverse_temperature
        z[i] = total
        dz_drate[i] = slope_total
        count[i] = exact
    return invalid


# Below this many elements per thread, a call runs in the calling thread alone.
_MIN_CHUNK = 16_384
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
    return in_chunks(relaxed_poisson_kernel, rate.shape[0], (rate, *arguments), threads, _MIN_CHUNK)


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
