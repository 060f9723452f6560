"""FISTA: ISTA with Nesterov momentum (Beck & Teboulle 2009), restarted where the momentum points
uphill (O'Donoghue & Candès 2015).

The proximal gradient step of :mod:`.ista` is taken at an extrapolated point y instead of the last
code:

    a_t = S_{lam / L}(y_t + (Phi^T x - Phi^T Phi y_t) / L),
    s_{t+1} = (1 + sqrt(1 + 4 s_t^2)) / 2,
    y_{t+1} = a_t + ((s_t - 1) / s_{t+1}) (a_t - a_{t-1}),

with s_1 = 1 and y_1 = a_0 = 0. The objective converges at rate O(1 / t^2), though not
monotonically: the momentum overshoots and oscillates once the support has settled. The gradient
restart resets a sample's momentum (s_t = 1, so y_{t+1} = a_t) whenever its step went against the
momentum, (y_t - a_t) . (a_t - a_{t-1}) > 0; each sample restarts on its own trajectory. On the
Lasso, whose objective is strongly convex on the settled support, this turns the oscillation into
linear convergence. Hand-written: see :mod:`.base`.

On the CPU an iteration is one compiled pass per sample (numba, rows split among torch's
threads): the gradient step sums the rows of M at the non-zero entries of y only (y mixes two
consecutive codes, about as sparse as they are: a tenth of the dense product's work at 7 %
non-zero codes), then shrinks, tests for a restart and extrapolates, where torch would take a
dense product and about ten elementwise operations, each a wake-up of its thread pool. On other
devices it runs as torch operations.
"""

from __future__ import annotations

from collections.abc import Generator

import torch

from .base import InferenceMethod, gradient_terms, soft_threshold

__all__ = ["FISTA"]


class FISTA(InferenceMethod):
    """Batched FISTA with step 1 / L and per-sample gradient restarts.

    Args:
        restart: reset a sample's momentum where it points uphill (module docstring); False runs
            plain FISTA.
        lam: as for :class:`~.base.InferenceMethod`, like ``n_iterations``, ``tol``,
            ``non_negative``, ``check_every`` and ``record_objective``.
    """

    def __init__(
        self,
        lam: float = 0.1,
        n_iterations: int = 1000,
        tol: float = 1e-4,
        non_negative: bool = False,
        check_every: int = 10,
        record_objective: bool = False,
        restart: bool = True,
    ) -> None:
        super().__init__(lam, n_iterations, tol, non_negative, check_every, record_objective)
        self.restart = bool(restart)

    def _iterate(
        self, x: torch.Tensor, dictionary: torch.Tensor
    ) -> Generator[tuple[torch.Tensor, torch.Tensor], torch.Tensor | None, None]:
        transition, offset, step = gradient_terms(x, dictionary)
        threshold = self.lam * step
        fused = offset.device.type in _FUSED_DEVICES
        if fused:  # numba loads on first use, not with the package
            from ._numba_fista import MIN_CHUNK, fista_rows, in_chunks
        codes, extrapolated = torch.zeros_like(offset), torch.zeros_like(offset)
        momentum = torch.ones(offset.shape[0], 1, dtype=offset.dtype, device=offset.device)
        while True:
            if fused:  # extrapolated and momentum in place
                new_codes = torch.empty_like(codes)
                arrays = (offset, transition, codes, new_codes, extrapolated, momentum.view(-1))
                arguments = (*(array.numpy() for array in arrays), threshold)
                arguments += (self.non_negative, self.restart)
                rows = max(1, MIN_CHUNK // offset.shape[1])
                in_chunks(fista_rows, len(offset), arguments, torch.get_num_threads(), rows)
            else:
                gradient_step = torch.addmm(offset, extrapolated, transition)
                new_codes = soft_threshold(gradient_step, threshold, self.non_negative)
                change = new_codes - codes
                if self.restart:
                    uphill = (extrapolated - new_codes).mul_(change).sum(1, keepdim=True) > 0
                    momentum = torch.where(uphill, 1.0, momentum)
                new_momentum = (1 + torch.sqrt(1 + 4 * momentum**2)) / 2
                extrapolated = torch.addcmul(new_codes, (momentum - 1) / new_momentum, change)
                momentum = new_momentum
            codes = new_codes
            keep = yield codes, codes
            if keep is not None:
                offset, codes = offset[keep], codes[keep]
                extrapolated, momentum = extrapolated[keep], momentum[keep]


#: Devices whose tensors the compiled pass reads in place.
_FUSED_DEVICES = ("cpu",)
