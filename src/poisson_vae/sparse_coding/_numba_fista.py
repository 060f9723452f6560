"""The compiled CPU pass of one FISTA iteration (:mod:`.fista`), loaded on first use so that
importing the package does not load numba."""

from __future__ import annotations

import math

import numba
import numpy as np

from .._numba_sampler import MIN_CHUNK, in_chunks

__all__ = ["MIN_CHUNK", "fista_rows", "in_chunks"]


@numba.njit(nogil=True, cache=True, fastmath=True)
def fista_rows(
    start,
    stop,
    offset,
    transition,
    codes,
    new_codes,
    extrapolated,
    momentum,
    threshold,
    non_negative,
    restart,
):  # pragma: no cover - compiled
    """Rows start..stop - 1 of one iteration (module docstring): the gradient step y M + c from
    the non-zero entries of y alone (y is as sparse as two consecutive codes), the shrunk codes
    into ``new_codes``, the restarted momentum s and the extrapolated point y in place."""
    size = offset.shape[1]
    change = np.empty(size, dtype=offset.dtype)
    for i in range(start, stop):
        change[:] = offset[i]
        for k in range(size):
            weight = extrapolated[i, k]
            if weight != 0:
                for j in range(size):
                    change[j] += weight * transition[k, j]
        uphill = 0.0
        for k in range(size):
            value = change[k]
            if value > threshold:
                code = value - threshold
            elif value < -threshold and not non_negative:
                code = value + threshold
            else:
                code = 0.0
            change[k] = code - codes[i, k]
            uphill += (extrapolated[i, k] - code) * change[k]
            new_codes[i, k] = code
        current = 1.0 if restart and uphill > 0 else momentum[i]
        following = (1.0 + math.sqrt(1.0 + 4.0 * current * current)) / 2.0
        weight = (current - 1.0) / following
        for k in range(size):
            extrapolated[i, k] = new_codes[i, k] + weight * change[k]
        momentum[i] = following
    return 0
