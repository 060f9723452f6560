"""poisson-vae: the Poisson Variational Autoencoder (Vafaii, Galor & Yates, NeurIPS 2024)."""

import os

# Idle OpenMP threads of torch sleep instead of spinning (unless the user chose otherwise): spinning
# threads take the cores the fused sampler's threads, and other processes, need (docs/performance.md).
# It takes effect only if torch is not loaded yet (`pvae`, or this package imported first).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
