"""LCA: the locally competitive algorithm (Rozell, Johnson, Baraniuk & Olshausen 2008).

Each atom is a leaky integrator with membrane potential u_k driven by its match to the input and
inhibited by the active atoms that overlap it; its output is a thresholded potential a_k = T(u_k):

    tau du/dt = Phi^T x - u - (Phi^T Phi - I) a,        a = T(u),

integrated by forward Euler with step dt from u = 0. With the soft threshold
T(u) = sign(u) max(|u| - lam, 0) the fixed point is the Lasso minimiser of
0.5 ||x - Phi a||^2 + lam ||a||_1; with the hard threshold T(u) = u [|u| > lam] the dynamics
descend the energy 0.5 ||x - Phi a||^2 + (lam^2 / 2) ||a||_0 (Rozell et al., section 3.2). The
non-negative variants threshold u instead of |u|.

Step size: eta = dt / tau is the fraction of the way to the target potential covered per step.
Euler is stable while eta < 2 / L, L the largest eigenvalue of Phi^T Phi: about (1 + sqrt(K / D))^2
for random unit-norm atoms (512 atoms in 256 dimensions: L ~ 6), but far larger for correlated atoms
(512 whitened natural16 patches as atoms: L ~ 33; a trained P-VAE's normalised decoder: L ~ 27).
By default (``dt=None``) the step is eta = min(1 / 10, 1 / L), recomputed for each dictionary: 1 / 10
settles within a few hundred steps, and the cap keeps the integration stable for any dictionary. The
fixed points do not depend on eta, only the number of iterations to reach them. An explicit ``dt`` is
used as given (the rctn/sparsecoding package uses eta = 1e-3). Hand-written: see :mod:`.base`.
"""

from __future__ import annotations

import math
from collections.abc import Generator

import torch

from .base import InferenceMethod, lipschitz_step, soft_threshold

__all__ = ["LCA", "THRESHOLDS"]

#: The thresholds LCA offers.
THRESHOLDS = ("soft", "hard")


def hard_threshold(
    potentials: torch.Tensor, threshold: float, non_negative: bool = False
) -> torch.Tensor:
    """u where |u| > threshold (u > threshold if non-negative), else 0; elementwise."""
    above = potentials > threshold if non_negative else potentials.abs() > threshold
    return potentials * above


class LCA(InferenceMethod):
    """Batched LCA inference.

    Args:
        lam: threshold (the L1 weight for the soft threshold); >= 0.
        tau: time constant of the potentials; > 0.
        dt: Euler step; > 0, or None (default) for eta = dt / tau = min(1 / 10, 1 / L), half the
            stability limit 2 / L at most (module docstring). Only eta matters.
        threshold: ``"soft"`` (Lasso) or ``"hard"`` (L0-like energy).
        n_iterations: as for :class:`~.base.InferenceMethod`, like ``tol``, ``non_negative``,
            ``check_every`` and ``record_objective``.
    """

    def __init__(
        self,
        lam: float = 0.1,
        n_iterations: int = 1000,
        tol: float = 1e-4,
        non_negative: bool = False,
        tau: float = 10.0,
        dt: float | None = None,
        threshold: str = "soft",
        check_every: int = 10,
        record_objective: bool = False,
    ) -> None:
        super().__init__(lam, n_iterations, tol, non_negative, check_every, record_objective)
        if not (math.isfinite(tau) and tau > 0):
            raise ValueError(f"tau must be a finite number > 0, got {tau}")
        if dt is not None and not (math.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be a finite number > 0 or None, got {dt}")
        if threshold not in THRESHOLDS:
            raise ValueError(f"threshold must be one of {THRESHOLDS}, got {threshold!r}")
        self.tau = float(tau)
        self.dt = None if dt is None else float(dt)
        self.threshold = threshold

    def _threshold(self, potentials: torch.Tensor) -> torch.Tensor:
        transfer = soft_threshold if self.threshold == "soft" else hard_threshold
        return transfer(potentials, self.lam, self.non_negative)

    def step(self, dictionary: torch.Tensor) -> float:
        """eta = dt / tau for this (D, K) dictionary: as given, or min(1 / 10, 1 / L) when dt is None."""
        if self.dt is not None:
            return self.dt / self.tau
        return min(0.1, lipschitz_step(dictionary))

    def _iterate(
        self, x: torch.Tensor, dictionary: torch.Tensor
    ) -> Generator[tuple[torch.Tensor, torch.Tensor], torch.Tensor | None, None]:
        eta = self.step(dictionary)
        inhibition = dictionary.T @ dictionary  # (K, K): Phi^T Phi - I, computed once
        inhibition.diagonal().sub_(1)
        drive = eta * (x @ dictionary)  # (B, K): eta Phi^T x
        potentials = torch.zeros_like(drive)
        codes = self._threshold(potentials)
        while True:
            # u <- (1 - eta) u + eta Phi^T x - eta (Phi^T Phi - I) a, one fused product
            potentials = torch.addmm(
                torch.add(drive, potentials, alpha=1 - eta), codes, inhibition, alpha=-eta
            )
            codes = self._threshold(potentials)
            keep = yield codes, potentials
            if keep is not None:
                drive, potentials, codes = drive[keep], potentials[keep], codes[keep]

    def objective(self, x: torch.Tensor, dictionary: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """(B,) LCA energy: Lasso objective (soft), or 0.5 ||x - Phi a||^2 + lam^2 / 2 ||a||_0 (hard).

        The hard-threshold cost follows from lam C'(a) = u - a integrated over the jump of a from 0
        to lam at |u| = lam, which costs lam^2 / 2 per active atom (Rozell et al. 2008).
        """
        if self.threshold == "soft":
            return super().objective(x, dictionary, codes)
        residual = x - codes @ dictionary.T
        return 0.5 * residual.pow(2).sum(1) + 0.5 * self.lam**2 * (codes != 0).sum(1).to(x.dtype)
