"""ISTA: the iterative shrinkage-thresholding algorithm (Daubechies, Defrise & De Mol 2004).

A proximal gradient step on 0.5 ||x - Phi a||^2 + lam ||a||_1 with step 1 / L, L the largest
eigenvalue of Phi^T Phi:

    a <- S_{lam / L}(a + (Phi^T x - Phi^T Phi a) / L),

S the soft threshold (one-sided for non-negative codes). The objective falls monotonically, at rate
O(1 / t); see :mod:`.fista` for the accelerated variant. Hand-written: see :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Generator

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
    ) -> Generator[tuple[torch.Tensor, torch.Tensor], torch.Tensor | None, None]:
        transition, offset, step = gradient_terms(x, dictionary)
        threshold = self.lam * step
        codes = torch.zeros_like(offset)
        while True:
            codes = soft_threshold(torch.addmm(offset, codes, transition), threshold, self.non_negative)
            keep = yield codes, codes
            if keep is not None:
                offset, codes = offset[keep], codes[keep]
