"""Pretrained models shipped inside the package, loadable offline with one call.

Each model is a folder beside this module holding what a finished ``pvae train`` run holds
(``config.json``, ``model.safetensors``, ``metrics.json``: the validation metrics recorded when it
was trained, and its training log, from which ``pvae evaluate`` draws the training curves) and
``TRAINING.md``: the command, the commit and the machine that trained it. The
command line reads them as ``pretrained:NAME`` (``pvae evaluate pretrained:natural16-pvae``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..runs import Run

if TYPE_CHECKING:
    from ..vae import VAE

__all__ = [
    "PREFIX",
    "PRETRAINED",
    "load_pretrained",
    "pretrained_metrics",
    "pretrained_name",
    "pretrained_path",
]

#: The shipped models and what each is.
PRETRAINED = {
    "natural16-pvae": "P-VAE, lin|lin, 512 Poisson latents, natural16, 150 epochs (the main job)",
    "natural16-gvae": "G-VAE, lin|lin, 512 Gaussian latents, natural16, 150 epochs (its twin)",
}

#: How the command line names a shipped model in place of a run folder.
PREFIX = "pretrained:"


def _root() -> Path:
    return Path(str(resources.files(__name__)))


def pretrained_path(name: str) -> Path:
    """The folder of a shipped model.

    Args:
        name: a key of :data:`PRETRAINED` (a leading ``pretrained:`` is accepted).

    Raises:
        ValueError: no model of that name ships with this version.
    """
    name = name.removeprefix(PREFIX)
    if name not in PRETRAINED:
        raise ValueError(
            f"no pretrained model named {name!r}; this version ships {', '.join(PRETRAINED)}"
        )
    return _root() / name


def pretrained_name(path: str | Path) -> str | None:
    """The name of the shipped model in ``path``, or None when ``path`` is not one."""
    path = Path(path).resolve()
    return path.name if path.parent == _root().resolve() and path.name in PRETRAINED else None


def load_pretrained(name: str, map_location: str | torch.device = "cpu") -> VAE:
    """A shipped model, in eval mode, on ``map_location``.

    Args:
        name: a key of :data:`PRETRAINED`, e.g. ``"natural16-pvae"``.
        map_location: the device the model is returned on.

    Returns:
        The :class:`~poisson_vae.vae.VAE`; it takes (B, 1, 16, 16) natural16 patches.
    """
    from ..vae import load_model

    return load_model(pretrained_path(name), map_location=map_location)


def pretrained_metrics(name: str) -> dict:
    """The validation metrics recorded when the model was trained (its ``metrics.json``)."""
    return Run(pretrained_path(name)).metrics()
