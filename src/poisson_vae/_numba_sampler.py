"""The fused CPU kernel of the relaxed Poisson sampler, compiled by numba.

Each element walks its own arrivals in a compiled loop, from its own stream of a counter-based
random generator (Philox-4x32-10, keyed by a seed drawn from torch's generator, counter = element
index and arrival block), and stops at its own truncation ``n`` (when truncating) or as soon as
further arrivals can no longer change ``z`` or its gradient. It returns ``z`` and ``dz/drate``
together. Elements whose window of arrivals is small (most elements once the temperature is low)
are drawn faster by scattering their arrivals instead of walking them (``_scattered``), with the
same law.

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

__all__ = ["SCATTER_LIMIT", "in_chunks", "relaxed_poisson_kernel", "walk"]

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
def _word(j, words, element_low, element_high, key0, key1):  # pragma: no cover - compiled
    """Random 32-bit word ``j`` (counting from 0) of an element's stream, and the Philox block it
    came from: four words per block, counter = (block, element)."""
    lane = j & 3
    if lane == 0:
        block = np.uint64(j >> 2)
        words = _philox(block & _MASK, block >> np.uint64(32), element_low, element_high, key0, key1)
    return words[lane], words


@numba.njit(inline="always", cache=True)
def _uniform32(word):  # pragma: no cover - compiled
    """A single-precision uniform on (0, 1] from a 32-bit word."""
    return (np.float32(word) + np.float32(0.5)) * np.float32(_TWO_TO_MINUS_32)


@numba.njit(inline="always", cache=True)
def _gap(j, words, element_low, element_high, key0, key1):  # pragma: no cover - compiled
    """The Exp(1) gap before arrival ``j + 1`` (counting from 1), from word ``j``, and the Philox
    block it came from."""
    word, words = _word(j, words, element_low, element_high, key0, key1)
    # single precision suffices for an Exp(1) gap
    return -np.float64(math.log(_uniform32(word))), words


#: Elements whose window holds at most this many arrivals on average, and whose truncation is at
#: least that mean + 3 (so rarely cuts the window short), are scattered (``_scattered``), the others
#: walked. Scattering saves the walk's logarithm per arrival and its chain of dependent sums, but
#: pays an exponential per element and a loop over the Poisson CDF that grows with the window.
#: Measured on lognormal rates at temperatures 0.05 and 0.1 on one thread beside other work, limits
#: of 6 to 10 were equally fast and 1.3-1.5x faster than walking every element, 20 slower; on two
#: threads of a quiet machine the whole pass gains 1.18x at 0.05 (BENCHMARKS.md).
SCATTER_LIMIT = 6.0

# The most arrivals a scattered window is drawn with: beyond the Poisson tail of any window it is
# used for (P(more than 64 arrivals) < 1e-40 at a mean of SCATTER_LIMIT).
_MOST_SCATTERED = 64


@numba.njit(inline="always", cache=True)
def _scattered(
    lam,
    width,
    inverse_temperature,
    code,
    thresholds,
    expansion,
    truncate,
    element_low,
    element_high,
    key0,
    key1,
):  # pragma: no cover - compiled
    """The sums of g(s) and g'(s) E / rate over the arrivals of one element's window, scattered.

    The window is the arrival times E < width * rate that can add to ``z`` (``width`` = 1 - cutoff
    * temperature). Instead of walking the arrivals one exponential gap (one logarithm) at a time,
    this draws how many fall in the window, m ~ Poisson(width * rate) (by inversion, from a
    53-bit uniform), and places them as m independent uniforms: the arrivals of a Poisson process
    on an interval, given their number. Every function of the arrivals the kernel computes is a
    sum over them, so their order does not matter, and no logarithm is needed. Where the
    truncation ``n < m`` keeps only the first ``n``, those are drawn in order as the smallest ``n``
    of ``m`` uniforms (U_(k+1) = 1 - (1 - U_(k)) V^(1 / (m - k))). The arrivals have exactly the
    law of the walk's, so z and dz/drate have exactly the walk's distribution; they are not the
    walk's draws for the same seed.

    Returns:
        (sum of g(s), sum of g'(s) E / rate) over the counted arrivals.
    """
    empty = (np.uint64(0), np.uint64(0), np.uint64(0), np.uint64(0))
    word0, words = _word(0, empty, element_low, element_high, key0, key1)
    word1, words = _word(1, words, element_low, element_high, key0, key1)
    uniform = (np.float64(word0) * 2.0**21 + np.float64(word1 >> np.uint64(11)) + 0.5) * 2.0**-53
    mean = lam * width
    probability = math.exp(-mean)
    cumulative = probability
    m = 0
    # the first few steps without a branch (their outcome is random: a branch would be mispredicted)
    for k in range(1, 5):
        m += uniform > cumulative
        probability *= mean / k
        cumulative += probability
    while uniform > cumulative and m < _MOST_SCATTERED:
        m += 1
        probability *= mean / m
        cumulative += probability
    counted = m
    if truncate and m > 0:
        if m - 1 < thresholds.shape[0]:  # is arrival m within the truncation? (as in the walk)
            if not lam > thresholds[m - 1]:
                counted = truncation(lam, thresholds, expansion)
        else:
            counted = min(m, truncation(lam, thresholds, expansion))
    total = 0.0
    slope_total = 0.0
    if counted == m:  # every arrival counts, in any order
        for k in range(m):
            word, words = _word(k + 2, words, element_low, element_high, key0, key1)
            scaled = width * np.float64(_uniform32(word))  # E / rate
            soft, slope = _indicator((1.0 - scaled) * inverse_temperature, code)
            total += soft
            slope_total += slope * scaled
        return total, slope_total
    position = 0.0
    for k in range(counted):  # the k-th smallest of m uniforms, in order
        word, words = _word(k + 2, words, element_low, element_high, key0, key1)
        position = 1.0 - (1.0 - position) * math.exp(math.log(_uniform32(word)) / (m - k))
        scaled = width * position
        soft, slope = _indicator((1.0 - scaled) * inverse_temperature, code)
        total += soft
        slope_total += slope * scaled
    return total, slope_total


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
    scatter_limit,
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
        scatter_limit: without exact counts, an element whose window holds at most this many
            arrivals on average is drawn by ``_scattered`` instead of walked (0: walk them all).
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
            width = 1.0 - cutoff / inverse_temperature  # the window: E < width * rate
            mean = lam * width
            # scatter small windows that the truncation rarely cuts short: n >= mean + 3
            if (
                not exact_counts
                and mean <= scatter_limit
                and (not truncate or lam > thresholds[int(mean) + 2])
            ):
                total, slope_total = _scattered(
                    lam,
                    width,
                    inverse_temperature,
                    code,
                    thresholds,
                    expansion,
                    truncate,
                    element_low,
                    element_high,
                    key0,
                    key1,
                )
            elif not exact_counts:  # the hot loop: every arrival walked is counted
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
