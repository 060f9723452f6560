"""ISTA: the iterative shrinkage-thresholding algorithm (Daubechies, Defrise & De Mol 2004).

A proximal gradient step on 0.5 ||x - Phi a||^2 + lam ||a||_1 with step 1 / L, L the largest
eigenvalue of Phi^T Phi:

    a <- S_{lam / L}(a + (Phi^T x - Phi^T Phi a) / L),

S the soft threshold (one-sided for non-negative codes). The objective falls monotonically, at rate
O(1 / t); see :mod:`.fista` for the accelerated variant. Hand-written: see :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from .base import InferenceMethod, gradient_terms, soft_threshold

__all__ = ["ISTA"]


class ISTA(InferenceMethod):
    """Batched ISTA with step 1 / L.

    Args: those of :class:`~.base.InferenceMethod` (``lam``, ``n_iterations``, ``tol``,
    ``non_negative``, ``check_every``, ``record_objective``).
    """

    def _iterate(
        self, x: torch.Tensor, dictionary: torch.Tensor
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        gram, drive, step = gradient_terms(x, dictionary)
        codes = torch.zeros_like(drive)
        while True:
            gradient_step = torch.addmm(codes + step * drive, codes, gram, alpha=-step)
            codes = soft_threshold(gradient_step, step * self.lam, self.non_negative)
            yield codes, codes
