"""Datasets: a name maps to a loader returning float32 arrays (N, C, H, W) per split."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .cache import cache_dir, cached_arrays
from .natural import NATURAL16_IMAGES, load_natural16

__all__ = [
    "DATASETS",
    "NATURAL16_IMAGES",
    "cache_dir",
    "cached_arrays",
    "check_array",
    "load_dataset",
    "load_natural16",
]

#: Loaders by name; each takes ``n_train, n_valid, seed, cache_dir`` keywords.
DATASETS: dict[str, Callable[..., dict[str, np.ndarray]]] = {"natural16": load_natural16}


def check_array(array: np.ndarray, name: str) -> np.ndarray:
    """Refuse arrays that are not finite float (N, C, H, W) images, with a one-line reason."""
    array = np.asarray(array)
    if array.ndim != 4:
        raise ValueError(
            f"{name}: expected an array of shape (N, channels, height, width), got {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name}: the array is empty")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: expected floating-point values, got dtype {array.dtype}")
    bad = np.size(array) - np.count_nonzero(np.isfinite(array))
    if bad:
        raise ValueError(f"{name}: {bad} values are NaN or infinite; clean or drop those samples")
    return array.astype(np.float32, copy=False)


def load_dataset(
    name: str, n_train: int, n_valid: int, seed: int = 0, cache_dir: str | None = None
) -> dict[str, np.ndarray]:
    """Train and validation arrays of a registered dataset, checked.

    Returns:
        ``{"train": (N, C, H, W), "valid": (M, C, H, W)}`` float32 arrays.
    """
    if name not in DATASETS:
        raise ValueError(f"--data {name!r} is unknown; choose one of {sorted(DATASETS)}")
    splits = DATASETS[name](n_train=n_train, n_valid=n_valid, seed=seed, cache_dir=cache_dir)
    checked = {key: check_array(value, f"{name}/{key}") for key, value in splits.items()}
    if checked["train"].shape[1:] != checked["valid"].shape[1:]:
        raise ValueError(
            f"{name}: train samples are {checked['train'].shape[1:]} but validation samples are "
            f"{checked['valid'].shape[1:]}"
        )
    return checked
