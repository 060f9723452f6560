"""Named recipes: every registry dataset has the paper's settings, and every value is a valid option."""

from __future__ import annotations

import pytest

from poisson_vae.data import DATASETS
from poisson_vae.recipes import RECIPES, recipe
from poisson_vae.training import TrainConfig


@pytest.mark.parametrize("dataset", [*DATASETS, "npy:patches.npy"])
def test_paper_recipe_covers_every_dataset_with_valid_options(dataset: str) -> None:
    values = recipe("paper", dataset)
    config = TrainConfig(**values)  # validates every value
    assert config.lr in (5e-3, 2e-3) and config.warmup_epochs == 5 and config.lr_min == 1e-5


def test_paper_values_of_spec_2() -> None:
    assert recipe("paper", "vanhateren16") == recipe("paper", "natural16") == recipe("paper", "npy:a")
    assert recipe("paper", "vanhateren16")["epochs"] == 3000
    assert recipe("paper", "cifar16")["epochs"] == 1500
    mnist = recipe("paper", "mnist")
    assert (mnist["lr"], mnist["batch_size"], mnist["weight_decay"]) == (2e-3, 200, 3e-4)
    assert (mnist["grad_clip"], mnist["lr_restarts"], mnist["epochs"]) == (1000.0, 2, 1200)


def test_recipe_values_are_copies() -> None:
    recipe("paper", "mnist")["lr"] = 1.0
    assert RECIPES["paper"]["mnist"]["lr"] == 2e-3


def test_unknown_recipe_or_dataset_is_refused() -> None:
    with pytest.raises(ValueError, match="recipe must be one of iterative, paper, got 'quick'"):
        recipe("quick", "mnist")
    with pytest.raises(ValueError, match="data must be one of .*, got 'imagenet'"):
        recipe("paper", "imagenet")
