"""Dictionary learning by alternating sparse inference and a gradient step on the dictionary.

Olshausen & Field (1996) in its plainest form: for each minibatch x (B, D), infer codes a (B, K)
with the dictionary held fixed, take one gradient step on the mean of 0.5 ||x - Phi a||^2 with the
codes held fixed, then rescale every atom to unit norm. The renormalisation is what keeps the L1
penalty meaningful: without it the atoms grow and the codes shrink toward zero at no cost.
Hand-written: see :mod:`.base`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .base import InferenceMethod, SparseCodeResult, check_matrix

__all__ = ["dictionary_step", "initial_dictionary", "learn_dictionary", "normalise_atoms"]

#: Initialisations :func:`learn_dictionary` offers.
INITIALISATIONS = ("random", "data")


def normalise_atoms(dictionary: torch.Tensor) -> torch.Tensor:
    """The (D, K) dictionary with every column rescaled to unit norm (zero columns stay zero)."""
    return dictionary / dictionary.norm(dim=0, keepdim=True).clamp_min(
        torch.finfo(dictionary.dtype).tiny
    )


@torch.no_grad()
def dictionary_step(
    dictionary: torch.Tensor, x: torch.Tensor, codes: torch.Tensor, lr: float
) -> torch.Tensor:
    """One gradient step on the mean reconstruction error, then unit-norm atoms.

    Phi <- normalise(Phi + lr (x - a Phi^T)^T a / B), the negative gradient of
    mean_b 0.5 ||x_b - Phi a_b||^2 with respect to Phi.

    Args:
        dictionary: (D, K) atoms as columns.
        x: (B, D) data.
        codes: (B, K) codes of ``x`` under ``dictionary``.
        lr: step size.

    Returns:
        The new (D, K) dictionary; the input is not modified.
    """
    if codes.shape != (x.shape[0], dictionary.shape[1]):
        raise ValueError(
            f"codes must be (B, K) = {(x.shape[0], dictionary.shape[1])}, got {tuple(codes.shape)}"
        )
    residual = x - codes @ dictionary.T  # (B, D)
    return normalise_atoms(torch.addmm(dictionary, residual.T, codes, alpha=lr / x.shape[0]))


def initial_dictionary(
    data: torch.Tensor, n_atoms: int, init: str = "random", generator: torch.Generator | None = None
) -> torch.Tensor:
    """A (D, K) starting dictionary of unit-norm atoms: Gaussian directions, or samples of ``data``.

    Args:
        data: (N, D) samples; sets D, dtype and device.
        n_atoms: K.
        init: ``"random"`` (Gaussian) or ``"data"`` (K distinct samples, needs N >= K).
        generator: a CPU generator for the draw.
    """
    if init == "random":
        atoms = torch.randn(data.shape[1], n_atoms, generator=generator, dtype=torch.float64)
        return normalise_atoms(atoms.to(dtype=data.dtype, device=data.device))
    if init == "data":
        if data.shape[0] < n_atoms:
            raise ValueError(
                f"init='data' needs at least n_atoms={n_atoms} samples, got {data.shape[0]}"
            )
        chosen = torch.randperm(data.shape[0], generator=generator)[:n_atoms]
        return normalise_atoms(data[chosen.to(data.device)].T.clone())
    raise ValueError(f"init must be one of {INITIALISATIONS}, got {init!r}")


def learn_dictionary(
    data: torch.Tensor,
    n_atoms: int,
    method: InferenceMethod,
    n_steps: int = 1000,
    batch_size: int = 256,
    lr: float = 0.1,
    seed: int | torch.Generator = 0,
    init: str = "random",
    callback: Callable[[int, torch.Tensor, SparseCodeResult], None] | None = None,
) -> torch.Tensor:
    """Learn a dictionary of unit-norm atoms by minibatch alternating minimisation.

    Args:
        data: (N, D) training samples, on the device to learn on.
        n_atoms: K, the number of atoms.
        method: the inference method that codes each minibatch (its ``lam`` sets the sparsity).
        n_steps: minibatch updates.
        batch_size: samples per minibatch, drawn uniformly with replacement across steps.
        lr: step size of :func:`dictionary_step` (on the batch-mean gradient; the right size scales
            inversely with residual x code magnitudes, so tune it per data set).
        seed: an int seed or a CPU ``torch.Generator``, for the initial atoms and the minibatches.
        init: ``"random"`` or ``"data"`` (see :func:`initial_dictionary`).
        callback: called as ``callback(step, dictionary, result)`` after each update, with the step
            number (from 1), the new (D, K) dictionary and the minibatch's inference result (whose
            ``objective`` was measured before the update).

    Returns:
        The learned (D, K) dictionary, in the dtype and on the device of ``data``.
    """
    check_matrix("data", data)
    if isinstance(n_atoms, bool) or not isinstance(n_atoms, int) or n_atoms < 1:
        raise ValueError(f"n_atoms must be an integer >= 1, got {n_atoms!r}")
    if isinstance(n_steps, bool) or not isinstance(n_steps, int) or n_steps < 0:
        raise ValueError(f"n_steps must be an integer >= 0, got {n_steps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr}")
    generator = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(seed)
    dictionary = initial_dictionary(data, n_atoms, init, generator)
    for step in range(1, n_steps + 1):
        batch = data[torch.randint(data.shape[0], (batch_size,), generator=generator).to(data.device)]
        result = method.infer(batch, dictionary)
        dictionary = dictionary_step(dictionary, batch, result.codes, lr)
        if callback is not None:
            callback(step, dictionary, result)
    return dictionary
