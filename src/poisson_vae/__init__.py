"""poisson-vae: the Poisson Variational Autoencoder (Vafaii, Galor & Yates, NeurIPS 2024)."""

import os

# Idle OpenMP threads of torch spin briefly (GNU OpenMP's 1000 spins), then sleep, unless the user
# chose a policy: threads spinning for long take the cores the fused sampler's threads, and other
# processes, need; threads that sleep at once must be woken for every small operation
# (docs/performance.md). It takes effect only if torch is not loaded yet (`pvae`, or this package
# imported first).
if "OMP_WAIT_POLICY" not in os.environ:
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    os.environ.setdefault("GOMP_SPINCOUNT", "1000")

from .config import ModelConfig
from .distributions import (
    INDICATORS,
    RelaxedPoisson,
    poisson_kl,
    poisson_kl_residual,
    poisson_quantile,
    relaxed_poisson_rsample,
)
from .gabor import fit_gabors, gabor_summary
from .latents import LatentCode, PoissonLatent
from .pretrained import load_pretrained
from .sparse_coding import FISTA, ISTA, LCA
from .vae import VAE, CheckpointError, build_vae, load_model, save_model

__version__ = "0.2.0.dev0"

__all__ = [
    "FISTA",
    "INDICATORS",
    "ISTA",
    "LCA",
    "VAE",
    "CheckpointError",
    "LatentCode",
    "ModelConfig",
    "PoissonLatent",
    "PoissonVAETransformer",
    "RelaxedPoisson",
    "SparseCodingTransformer",
    "__version__",
    "build_vae",
    "fit_gabors",
    "gabor_summary",
    "load_model",
    "load_pretrained",
    "poisson_kl",
    "poisson_kl_residual",
    "poisson_quantile",
    "relaxed_poisson_rsample",
    "save_model",
]


def __getattr__(name: str):
    """The scikit-learn estimators, imported on first use (they load scikit-learn and Lightning)."""
    if name in ("PoissonVAETransformer", "SparseCodingTransformer"):
        from . import estimators

        return getattr(estimators, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
