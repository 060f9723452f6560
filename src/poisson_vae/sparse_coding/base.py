"""The interface every sparse-coding inference method follows, and the pieces they share.

An inference method finds, for each sample x (D,) and a fixed dictionary Phi (D, K) whose columns
are the atoms, a sparse code a (K,) that (approximately) minimises

    E(a) = 0.5 ||x - Phi a||^2 + lam ||a||_1        (optionally subject to a >= 0).

All methods work on a batch at once: ``x`` is (B, D), codes are (B, K), and every objective is per
sample. Computation runs on the device and in the dtype of ``x``, without autograd.

These solvers are hand-written because no well-kept library offers batched LCA, ISTA or FISTA in
torch (scikit-learn solves the Lasso by coordinate descent or LARS on the CPU, one sample at a time,
and has no LCA or ISTA).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Generator
from dataclasses import dataclass

import torch

__all__ = [
    "InferenceMethod",
    "SparseCodeResult",
    "check_inputs",
    "check_matrix",
    "gradient_terms",
    "largest_eigenvalue",
    "lasso_objective",
    "lipschitz_step",
    "soft_threshold",
]


@dataclass
class SparseCodeResult:
    """The outcome of one batched inference.

    Attributes:
        codes: (B, K) sparse codes.
        objective: (B,) final objective of each sample (the method's :meth:`~InferenceMethod.objective`).
        n_iterations: iterations actually run.
        converged: whether the stopping rule fired for every sample before ``n_iterations`` ran out
            (always False with ``tol=0``).
        objective_trace: (T, B) objective after each of the T iterations, when asked for with
            ``record_objective=True``; else None.
    """

    codes: torch.Tensor
    objective: torch.Tensor
    n_iterations: int
    converged: bool
    objective_trace: torch.Tensor | None = None


def soft_threshold(values: torch.Tensor, threshold: float, non_negative: bool = False) -> torch.Tensor:
    """Elementwise proximal map of ``threshold * ||.||_1`` (plus the indicator of a >= 0 if asked)."""
    if non_negative:
        return (values - threshold).clamp_min_(0)
    return torch.nn.functional.softshrink(values, threshold)  # one pass over the values


def lasso_objective(
    x: torch.Tensor, dictionary: torch.Tensor, codes: torch.Tensor, lam: float
) -> torch.Tensor:
    """0.5 ||x - Phi a||^2 + lam ||a||_1 per sample.

    Args:
        x: (B, D) data.
        dictionary: (D, K) atoms as columns.
        codes: (B, K) codes.
        lam: L1 weight.

    Returns:
        (B,) objective of each sample.
    """
    residual = x - codes @ dictionary.T
    return 0.5 * residual.pow(2).sum(1) + lam * codes.abs().sum(1)


def largest_eigenvalue(dictionary: torch.Tensor) -> float:
    """Largest eigenvalue of Phi^T Phi, i.e. the squared spectral norm of the (D, K) dictionary.

    This is the Lipschitz constant of the gradient of 0.5 ||x - Phi a||^2; an exact SVD rather than a
    power iteration, because an underestimate would make ISTA's and FISTA's step diverge.
    """
    return float(torch.linalg.matrix_norm(dictionary, ord=2)) ** 2


def lipschitz_step(dictionary: torch.Tensor) -> float:
    """1 / L for a (D, K) dictionary: the proximal-gradient step of ISTA and FISTA, and LCA's cap."""
    return 1.0 / max(largest_eigenvalue(dictionary), torch.finfo(dictionary.dtype).tiny)


def gradient_terms(
    x: torch.Tensor, dictionary: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """What ISTA and FISTA iterate with: the gradient step from a code y is
    ``y + (Phi^T x - Phi^T Phi y) / L = y M + c``, one product with the (K, K) transition
    M = I - Phi^T Phi / L and the (B, K) offset c = Phi^T x / L of each sample; returns
    (M, c, 1 / L)."""
    step = lipschitz_step(dictionary)
    transition = torch.eye(dictionary.shape[1], dtype=dictionary.dtype, device=dictionary.device)
    transition.sub_(dictionary.T @ dictionary, alpha=step)
    return transition, step * (x @ dictionary), step


def check_matrix(name: str, tensor: torch.Tensor) -> None:
    """Refuse anything but a non-empty, finite, floating-point 2-D tensor, with a one-line reason."""
    if not isinstance(tensor, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise ValueError(f"{name} must be floating point, got dtype {tensor.dtype}")
    if tensor.numel() == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)})")
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or infinite values")


def check_inputs(x: torch.Tensor, dictionary: torch.Tensor) -> None:
    """Refuse data and dictionaries that inference cannot use, with a one-line reason.

    Args:
        x: (B, D) data.
        dictionary: (D, K) atoms as columns.
    """
    check_matrix("x", x)
    check_matrix("dictionary", dictionary)
    if x.shape[1] != dictionary.shape[0]:
        raise ValueError(
            f"x has {x.shape[1]} features but the dictionary has {dictionary.shape[0]} rows; "
            "expected x (B, D) and dictionary (D, K) with atoms as columns"
        )
    if x.dtype != dictionary.dtype:
        raise ValueError(f"x is {x.dtype} but the dictionary is {dictionary.dtype}; convert one of them")
    if x.device != dictionary.device:
        raise ValueError(f"x is on {x.device} but the dictionary is on {dictionary.device}")


def _check_options(lam: float, n_iterations: int, tol: float, check_every: int) -> None:
    if not (math.isfinite(lam) and lam >= 0):
        raise ValueError(f"lam must be a finite number >= 0, got {lam}")
    if isinstance(n_iterations, bool) or not isinstance(n_iterations, int) or n_iterations < 1:
        raise ValueError(f"n_iterations must be an integer >= 1, got {n_iterations!r}")
    if not (math.isfinite(tol) and tol >= 0):
        raise ValueError(f"tol must be a finite number >= 0, got {tol}")
    if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every must be an integer >= 1, got {check_every!r}")


class InferenceMethod(ABC):
    """A batched sparse-coding solver: subclasses say how to iterate, this class runs the loop.

    Stopping rule, per sample: every ``check_every`` iterations, the relative change of each
    sample's state since the previous check, ``||s_t - s_{t - check_every}|| / ||s_t||``, is compared
    with ``tol``; a sample at or below it keeps its codes from then on and leaves the batch (the
    iterations that follow cost only the rows still moving), and the loop stops once every sample
    has settled. The state is the code for ISTA and FISTA (a code that is still all-zero
    after the first steps stays zero: it is the minimiser) and the potentials for LCA, whose codes
    sit at zero while the potentials rise towards the threshold. Because each sample stops on its
    own trajectory, its code does not depend on the other samples of the batch (up to the
    floating-point rounding of batched products). Checking only every few iterations keeps the
    device-to-host synchronisation cheap.

    Args:
        lam: L1 weight (LCA: the threshold); >= 0.
        n_iterations: most iterations to run.
        tol: relative change of the codes at which to stop; 0 runs all ``n_iterations``.
        non_negative: constrain the codes to a >= 0.
        check_every: iterations between two checks of the stopping rule.
        record_objective: keep the objective of every iteration (costs one extra (B, K) x (K, D)
            product per iteration).
    """

    def __init__(
        self,
        lam: float = 0.1,
        n_iterations: int = 1000,
        tol: float = 1e-4,
        non_negative: bool = False,
        check_every: int = 10,
        record_objective: bool = False,
    ) -> None:
        _check_options(lam, n_iterations, tol, check_every)
        self.lam = float(lam)
        self.n_iterations = n_iterations
        self.tol = float(tol)
        self.non_negative = bool(non_negative)
        self.check_every = check_every
        self.record_objective = bool(record_objective)

    @abstractmethod
    def _iterate(
        self, x: torch.Tensor, dictionary: torch.Tensor
    ) -> Generator[tuple[torch.Tensor, torch.Tensor], torch.Tensor | None, None]:
        """Yield ``(codes, state)`` after each iteration, forever: the (B', K) codes and the
        (B', K) state whose settling stops a sample (class docstring), for the B' rows still
        iterating; never mutate a yielded tensor. ``send`` may answer a yield with a (B',) boolean
        mask: keep only those rows from then on (the settled ones are dropped from the work)."""

    def objective(self, x: torch.Tensor, dictionary: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """The (B,) objective this method minimises: :func:`lasso_objective` unless overridden."""
        return lasso_objective(x, dictionary, codes, self.lam)

    @torch.no_grad()
    def infer(self, x: torch.Tensor, dictionary: torch.Tensor) -> SparseCodeResult:
        """Sparse codes of a batch.

        Args:
            x: (B, D) data.
            dictionary: (D, K) atoms as columns, same dtype and device as ``x``.

        Returns:
            A :class:`SparseCodeResult` with (B, K) codes and (B,) objectives.
        """
        check_inputs(x, dictionary)
        x, dictionary = x.detach(), dictionary.detach()
        trace: list[torch.Tensor] = []
        # the final codes of the settled rows; ``active`` are the rows still iterating, in order
        codes = torch.zeros(x.shape[0], dictionary.shape[1], dtype=x.dtype, device=x.device)
        active = torch.arange(x.shape[0], device=x.device)
        previous = codes
        converged, iteration, keep = False, 0, None

        def current(latest: torch.Tensor) -> torch.Tensor:
            if len(active) == len(codes):
                return latest
            full = codes.clone()
            full[active] = latest
            return full

        steps = self._iterate(x, dictionary)
        latest = codes
        for iteration in range(1, self.n_iterations + 1):
            latest, state = next(steps) if keep is None else steps.send(keep)
            keep = None
            if self.record_objective:
                trace.append(self.objective(x, dictionary, current(latest)))
            if self.tol > 0 and iteration % self.check_every == 0:
                newly = self._settled(state, previous)
                previous = state
                if bool(newly.any()):
                    codes[active[newly]] = latest[newly]
                    keep = ~newly
                    active, latest, previous = active[keep], latest[keep], previous[keep]
                    if len(active) == 0:
                        converged = True
                        break
        steps.close()
        codes = current(latest)
        if not bool(torch.isfinite(codes).all()):
            raise FloatingPointError(
                f"{type(self).__name__} produced non-finite codes; its step is too large for this "
                "dictionary (LCA: lower dt / tau, or leave dt unset for a stable step)"
            )
        return SparseCodeResult(
            codes=codes,
            objective=self.objective(x, dictionary, codes),
            n_iterations=iteration,
            converged=converged,
            objective_trace=torch.stack(trace) if trace else None,
        )

    def _settled(self, state: torch.Tensor, previous: torch.Tensor) -> torch.Tensor:
        """(B,) whether each sample's state moved by at most ``tol`` (relative) since the last check."""
        return (state - previous).norm(dim=1) <= self.tol * state.norm(dim=1)
