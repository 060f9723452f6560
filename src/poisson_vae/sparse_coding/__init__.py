"""Batched sparse coding in torch: LCA, ISTA and FISTA inference, and dictionary learning.

Every solver takes data x (B, D) and a dictionary Phi (D, K) with atoms as columns and returns a
:class:`SparseCodeResult` with (B, K) codes and per-sample objectives, on the device and in the dtype
of x. Hand-written, because no well-kept library offers batched LCA/ISTA/FISTA in torch (scikit-learn
has no LCA or ISTA).

Example::

    method = ALGORITHMS["fista"](lam=0.1, n_iterations=500)
    result = method.infer(patches, dictionary)  # patches (B, 256), dictionary (256, 512)
    dictionary = learn_dictionary(patches, 512, method, n_steps=2000)
"""

from __future__ import annotations

from .base import InferenceMethod, SparseCodeResult, lasso_objective, soft_threshold
from .dictionary import dictionary_step, initial_dictionary, learn_dictionary, normalise_atoms
from .fista import FISTA
from .ista import ISTA
from .lca import LCA

__all__ = [
    "ALGORITHMS",
    "FISTA",
    "ISTA",
    "LCA",
    "InferenceMethod",
    "SparseCodeResult",
    "dictionary_step",
    "initial_dictionary",
    "lasso_objective",
    "learn_dictionary",
    "normalise_atoms",
    "soft_threshold",
]

#: Inference methods by name.
ALGORITHMS: dict[str, type[InferenceMethod]] = {"lca": LCA, "ista": ISTA, "fista": FISTA}
