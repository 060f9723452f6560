"""FISTA: ISTA with Nesterov momentum (Beck & Teboulle 2009).

The proximal gradient step of :mod:`.ista` is taken at an extrapolated point y instead of the last
code:

    a_t = S_{lam / L}(y_t + (Phi^T x - Phi^T Phi y_t) / L),
    s_{t+1} = (1 + sqrt(1 + 4 s_t^2)) / 2,
    y_{t+1} = a_t + ((s_t - 1) / s_{t+1}) (a_t - a_{t-1}),

with s_1 = 1 and y_1 = a_0 = 0. The objective converges at rate O(1 / t^2), though not monotonically.
Hand-written: see :mod:`.base`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch

from .base import InferenceMethod, gradient_terms, soft_threshold

__all__ = ["FISTA"]


class FISTA(InferenceMethod):
    """Batched FISTA with step 1 / L.

    Args: those of :class:`~.base.InferenceMethod` (``lam``, ``n_iterations``, ``tol``,
    ``non_negative``, ``check_every``, ``record_objective``).
    """

    def _iterate(
        self, x: torch.Tensor, dictionary: torch.Tensor
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gram, drive, step = gradient_terms(x, dictionary)
        codes = extrapolated = torch.zeros_like(drive)
        momentum = 1.0
        while True:
            gradient_step = torch.addmm(extrapolated + step * drive, extrapolated, gram, alpha=-step)
            new_codes = soft_threshold(gradient_step, step * self.lam, self.non_negative)
            new_momentum = (1 + math.sqrt(1 + 4 * momentum**2)) / 2
            extrapolated = new_codes + ((momentum - 1) / new_momentum) * (new_codes - codes)
            codes, momentum = new_codes, new_momentum
            yield codes, codes
