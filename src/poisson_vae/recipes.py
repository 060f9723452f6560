"""Named training recipes: the paper's optimisation settings for each kind of data.

``pvae train --recipe paper --data mnist`` starts from :data:`RECIPES` ``["paper"]["mnist"]``
(``--recipe iterative``: the iterative VAEs' release)
(each data set's record names its recipe key: natural16, van Hateren and user arrays train with
the van Hateren recipe, Fashion-MNIST with MNIST's); a ``--config`` file and explicit flags override
any of its values. Beta and temperature schedules are the same for every dataset and are the
defaults of :class:`~poisson_vae.config.TrainConfig` (beta held at 1e-4 for the first 1 % of the
steps with a non-linear decoder, then ramped over the first half; the temperature ramped to the
family's final value over the first half).
"""

from __future__ import annotations

from .data import dataset_record
from .errors import ConfigError, braces

__all__ = ["RECIPES", "recipe"]

_VAN_HATEREN = {
    "epochs": 3000,
    "batch_size": 1000,
    "lr": 5e-3,
    "lr_min": 1e-5,
    "warmup_epochs": 5,
    "weight_decay": 0.0,
    "grad_clip": 500.0,
    "warmup_clip_factor": 3.0,
    "lr_restarts": 0,
}

# The iterative VAEs' release: Adamax with coupled weight decay on every parameter, lr warm-up over
# 0.5 % of the steps, beta held at 1e-4 for 0.1 % of them and ramped until 10.1 % (the clamps
# with it), the temperature ramped to 0.01 over half. beta 24 is the iP-VAE's on 16 x 16 patches
# (the iG-VAEs': 8; on MNIST beta = T = 128 for the iP-VAE).
_ITERATIVE = {
    "epochs": 300,
    "batch_size": 200,
    "lr": 5e-3,
    "lr_min": 1e-5,
    "warmup_epochs": 1.5,
    "weight_decay": 3e-4,
    "grad_clip": 300.0,
    "warmup_clip_factor": 3.0,
    "lr_restarts": 0,
    "beta": 24.0,
    "beta_hold_fraction": 0.001,
    "beta_anneal_fraction": 0.101,
    "anneal_fraction": 0.5,
}

#: recipe name -> the recipe key of a data set's record -> TrainConfig values.
RECIPES: dict[str, dict[str, dict[str, float | int]]] = {
    "paper": {
        "vanhateren": _VAN_HATEREN,
        "cifar": {**_VAN_HATEREN, "epochs": 1500, "warmup_clip_factor": 1.0},
        "mnist": {
            **_VAN_HATEREN,
            "epochs": 1200,
            "batch_size": 200,
            "lr": 2e-3,
            "weight_decay": 3e-4,
            "grad_clip": 1000.0,
            "warmup_clip_factor": 1.0,
            "lr_restarts": 2,
        },
    },
    "iterative": {
        "vanhateren": _ITERATIVE,
        "cifar": _ITERATIVE,
        "mnist": {
            **_ITERATIVE,
            "epochs": 400,
            "batch_size": 100,
            "lr": 2e-3,
            "warmup_epochs": 2.0,
            "grad_clip": 3000.0,
            "beta": 128.0,
        },
    },
}


def recipe(name: str, dataset: str) -> dict[str, float | int]:
    """The training options of recipe ``name`` for ``dataset`` (a registry name or ``npy:PATH``),
    by the recipe key of the data set's record.

    Raises:
        ConfigError: an unknown recipe or data set, or a recipe without settings for the data set.
    """
    if name not in RECIPES:
        raise ConfigError(
            f"{{0}} must be one of {', '.join(sorted(RECIPES))}, got {braces(repr(name))}", "recipe"
        )
    key = dataset_record(dataset).recipe
    if key not in RECIPES[name]:
        raise ConfigError(
            f"{{0}} {name} has no settings for {{1}} {braces(dataset)}; "
            f"it covers {', '.join(sorted(RECIPES[name]))}",
            "recipe",
            "data",
        )
    return dict(RECIPES[name][key])
