"""Figures: the dictionary of a linear decoder as a grid of atoms."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["atom_mosaic", "save_dictionary_figure", "save_sample_grid"]


def atom_mosaic(atoms: np.ndarray, n_columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Tile atoms into one image, each scaled by its own largest magnitude to [-1, 1].

    Args:
        atoms: (K, H, W).
        n_columns: atoms per row (default: about twice as many columns as rows).
        gap: pixels between atoms (drawn as NaN, shown as background).

    Returns:
        (rows * (H + gap) - gap, n_columns * (W + gap) - gap) float array with NaN gaps.
    """
    k, h, w = atoms.shape
    n_columns = n_columns or max(1, math.ceil(math.sqrt(2 * k)))
    n_rows = math.ceil(k / n_columns)
    mosaic = np.full((n_rows * (h + gap) - gap, n_columns * (w + gap) - gap), np.nan)
    scale = np.abs(atoms).reshape(k, -1).max(1)
    scale[scale == 0] = 1
    for index, atom in enumerate(atoms / scale[:, None, None]):
        row, column = divmod(index, n_columns)
        mosaic[row * (h + gap) : row * (h + gap) + h, column * (w + gap) : column * (w + gap) + w] = atom
    return mosaic


def _save_mosaic(mosaic: np.ndarray, path: str | Path, title: str | None) -> Path:
    height, width = mosaic.shape
    figure, axis = plt.subplots(figsize=(width / 40 + 0.4, height / 40 + 0.8), dpi=100)
    colormap = plt.get_cmap("gray").with_extremes(bad="#3b5b92")
    axis.imshow(mosaic, cmap=colormap, vmin=-1, vmax=1, interpolation="nearest")
    axis.set_axis_off()
    if title:
        axis.set_title(title, fontsize=10)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path


def save_sample_grid(images: torch.Tensor, path: str | Path, title: str | None = None) -> Path:
    """Save decoded images (N, 1, H, W) as a PNG grid, each scaled to its own largest magnitude."""
    mosaic = atom_mosaic(images.detach().cpu().double()[:, 0].numpy())
    return _save_mosaic(mosaic, path, title or f"{len(images)} samples from the prior")


def save_dictionary_figure(
    dictionary: torch.Tensor,
    atom_shape: tuple[int, int],
    path: str | Path,
    order: torch.Tensor | None = None,
    title: str | None = None,
) -> Path:
    """Save the atoms of a linear decoder as a PNG grid.

    Args:
        dictionary: (D, K) atoms as columns, D = H * W.
        atom_shape: (H, W).
        path: output PNG.
        order: (K,) indices giving the order of the atoms (e.g. by decreasing KL).
        title: figure title.
    """
    atoms = dictionary.detach().cpu().double().T
    if order is not None:
        atoms = atoms[order]
    mosaic = atom_mosaic(atoms.reshape(-1, *atom_shape).numpy())
    return _save_mosaic(mosaic, path, title)
