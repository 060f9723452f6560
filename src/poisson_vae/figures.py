"""Figures: dictionaries, samples, reconstructions, KL per latent, code histograms, Gabor fits and
rate-distortion plots: every figure the package writes.

Drawn through matplotlib's object API (``matplotlib.figure.Figure``), never pyplot: importing or
calling the package switches no backend and leaves no open figure, so it works the same in scripts,
on headless servers and in Jupyter notebooks.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "atom_mosaic",
    "save_dictionary_figure",
    "save_dictionary_panels",
    "save_gabor_figure",
    "save_histogram",
    "save_kl_figure",
    "save_rate_distortion_points",
    "save_rate_distortion_scatter",
    "save_reconstructions",
    "save_sample_grid",
]


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
    figure = Figure(figsize=(width / 40 + 0.4, height / 40 + 0.8), dpi=100)
    axis = figure.add_subplot()
    colormap = matplotlib.colormaps["gray"].with_extremes(bad="#3b5b92")
    axis.imshow(mosaic, cmap=colormap, vmin=-1, vmax=1, interpolation="nearest")
    axis.set_axis_off()
    if title:
        axis.set_title(title, fontsize=10)
    return _save(figure, path)


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


def _save(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if figure.get_layout_engine() is None:
        figure.tight_layout()
    figure.savefig(path, dpi=dpi)
    return path


def save_kl_figure(
    kl_per_latent: torch.Tensor, active: torch.Tensor, path: str | Path, title: str | None = None
) -> Path:
    """Per-latent mean KL, sorted, on a log scale; active latents dark, inactive light.

    Args:
        kl_per_latent: (K,) mean KL of each latent.
        active: (K,) boolean mask of active latents.
    """
    order = torch.argsort(kl_per_latent, descending=True)
    kl = kl_per_latent[order].double().clamp_min(1e-8).numpy()
    mask = active[order].numpy()
    figure = Figure(figsize=(6, 3.2))
    axis = figure.add_subplot()
    ranks = np.arange(1, len(kl) + 1)
    axis.scatter(ranks[mask], kl[mask], s=6, color="#1f4e79", label=f"active ({mask.sum()})")
    axis.scatter(ranks[~mask], kl[~mask], s=6, color="#b0b0b0", label=f"inactive ({(~mask).sum()})")
    axis.set_yscale("log")
    axis.set_xlabel("latent, by decreasing KL")
    axis.set_ylabel("mean KL (nats)")
    axis.legend(frameon=False)
    axis.set_title(title or "KL per latent")
    return _save(figure, path)


def save_histogram(
    values: torch.Tensor, path: str | Path, xlabel: str, title: str | None = None
) -> Path:
    """Histogram of code values (integer bins for counts), log-scaled counts. values: any shape."""
    data = values.detach().cpu().double().flatten().numpy()
    figure = Figure(figsize=(5, 3.2))
    axis = figure.add_subplot()
    integer = np.all(data == np.round(data)) and data.min() >= 0
    bins = np.arange(-0.5, min(data.max(), 30) + 1.5) if integer else 60
    axis.hist(np.clip(data, None, 30) if integer else data, bins=bins, color="#1f4e79", log=True)
    axis.set_xlabel(xlabel)
    axis.set_ylabel("occurrences")
    axis.set_title(title or "code values")
    return _save(figure, path)


def save_reconstructions(
    inputs: torch.Tensor, reconstructions: torch.Tensor, path: str | Path, title: str | None = None
) -> Path:
    """Inputs (N, 1, H, W) and their reconstructions side by side, pairs in columns."""
    pairs = torch.stack([inputs.detach().cpu(), reconstructions.detach().cpu()], 1)  # (N, 2, 1, H, W)
    n = len(pairs)
    columns = min(n, 16)
    # Rows alternate input / reconstruction; each pair is scaled by the input's own range.
    tiles = []
    for start in range(0, n, columns):
        block = pairs[start : start + columns]
        scale = block[:, 0].flatten(1).abs().amax(1).clamp_min(1e-12)[:, None, None]
        tiles += [block[:, 0, 0] / scale, block[:, 1, 0] / scale]
    mosaic = atom_mosaic(torch.cat(tiles).double().clamp(-1, 1).numpy(), n_columns=columns)
    return _save_mosaic(mosaic, path, title or "inputs (odd rows) and reconstructions (even rows)")


def save_gabor_figure(
    atoms: torch.Tensor, fitted: torch.Tensor, r2: torch.Tensor, path: str | Path, n: int = 48
) -> Path:
    """Atoms (K, H, W) next to their Gabor fits (K, H, W): pairs in columns, best fits first."""
    order = torch.argsort(r2, descending=True)[:n]
    columns = min(len(order), 16)
    tiles = []
    for start in range(0, len(order), columns):
        chosen = order[start : start + columns]
        scale = atoms[chosen].flatten(1).abs().amax(1).clamp_min(1e-12)[:, None, None]
        tiles += [atoms[chosen] / scale, fitted[chosen] / scale]
    mosaic = atom_mosaic(torch.cat(tiles).double().clamp(-1, 1).cpu().numpy(), n_columns=columns)
    return _save_mosaic(mosaic, path, "atoms (odd rows) and their Gabor fits (even rows)")


def save_rate_distortion_points(
    series: dict[str, list[tuple[float, float]]], path: str | Path, title: str | None = None
) -> Path:
    """mse_map (y) against lifetime sparsity (x): one marker and line per named series of points.

    Every series is drawn: markers cycle with a period (11) prime to the colours' (10), so no two
    of the first 110 series look alike.
    """
    figure = Figure(figsize=(5.5, 4))
    axis = figure.add_subplot()
    for (name, points), marker in zip(series.items(), itertools.cycle("osD^v<>ph*X")):
        xs, ys = zip(*sorted(points))
        axis.plot(xs, ys, marker=marker, label=name, linestyle="-" if len(points) > 1 else "none")
    axis.set_xlabel("lifetime sparsity")
    axis.set_ylabel("mse_map (SSE per sample)")
    axis.legend(frameon=False, fontsize=8)
    axis.set_title(title or "rate-distortion")
    return _save(figure, path)


def save_rate_distortion_scatter(
    groups: Sequence[tuple[str, np.ndarray, tuple[float, float], tuple[float, float]]],
    path: str | Path,
    title: str,
) -> Path:
    """mse_map (y) against lifetime sparsity (x): per-run dots and a mean with error bars per group.

    Args:
        groups: ``(label, points (n, 2), mean (x, y), half-widths (x, y))`` per group; a NaN
            half-width (one run) draws no bar.
        path: output PNG.
        title: figure title.
    """
    figure = Figure(figsize=(6, 4.5), layout="constrained")
    axes = figure.add_subplot()
    markers = "osD^vPX*<>"
    for index, (label, points, mean, half) in enumerate(groups):
        colour, marker = f"C{index % 10}", markers[index % len(markers)]
        axes.scatter(points[:, 0], points[:, 1], color=colour, marker=marker, alpha=0.35, s=18)
        bars = [0.0 if math.isnan(width) else width for width in half]
        axes.errorbar(
            *mean,
            xerr=bars[0],
            yerr=bars[1],
            color=colour,
            marker=marker,
            markersize=8,
            capsize=3,
            label=label,
        )
    if groups:
        axes.legend(fontsize="small")
    else:
        axes.text(
            0.5,
            0.5,
            "no run has both mse_map and lifetime_sparsity",
            ha="center",
            transform=axes.transAxes,
        )
    axes.set_xlabel("lifetime sparsity")
    axes.set_ylabel("MSE (MAP)")
    axes.set_title(title)
    return _save(figure, path, dpi=120)


def save_dictionary_panels(panels: Sequence[tuple[str, np.ndarray]], path: str | Path) -> Path:
    """Several atom mosaics (:func:`atom_mosaic`) side by side, four per row, each titled."""
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    height, width = panels[0][1].shape
    figure = Figure(figsize=(3.2 * columns, (3.2 * height / width + 0.35) * rows), layout="constrained")
    for index, (title, mosaic) in enumerate(panels):
        axis = figure.add_subplot(rows, columns, index + 1)
        axis.imshow(mosaic, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    return _save(figure, path, dpi=110)
