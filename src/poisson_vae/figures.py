"""Figures: dictionaries, samples, reconstructions, KL per latent, code histograms, Gabor fits,
rate-distortion plots, KNN accuracy against labels and training curves: every figure the package
writes.

Drawn through matplotlib's object API (``matplotlib.figure.Figure``), never pyplot: importing or
calling the package switches no backend and leaves no open figure, so it works the same in scripts,
on headless servers and in Jupyter notebooks.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib
import numpy as np
import torch
from matplotlib import ticker
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from . import stats

__all__ = [
    "RatePoint",
    "atom_mosaic",
    "colour_limits",
    "grid_columns",
    "save_convergence",
    "save_dictionary_figure",
    "save_dictionary_panels",
    "save_gabor_figure",
    "save_heatmaps",
    "save_histogram",
    "save_ideal_plane",
    "save_kl_figure",
    "save_knn_figure",
    "save_rate_distortion",
    "save_reconstructions",
    "save_sample_grid",
    "save_training_curves",
]


def grid_columns(n: int, aspect: float = 2.0) -> int:
    """Columns of a grid of ``n`` cells with about ``aspect`` times as many columns as rows.

    A divisor of ``n`` within a factor 1.5 of that count where there is one (the grid then has no
    empty cell), else the nearest count.
    """
    target = math.sqrt(aspect * n)
    divisors = [d for d in range(1, n + 1) if n % d == 0 and target / 1.5 <= d <= 1.5 * target]
    return min(divisors, key=lambda d: abs(math.log(d / target)), default=max(1, round(target)))


def _tile(
    tiles: np.ndarray, n_columns: int, gaps: tuple[int, int] = (1, 1)
) -> tuple[np.ndarray, np.ndarray]:
    """Tiles on a grid, row by row, NaN between them.

    Args:
        tiles: (K, h, w).
        n_columns: tiles per row.
        gaps: pixels between rows and between columns.

    Returns:
        The mosaic (R, C), R = rows * (h + gaps[0]) - gaps[0] and C = n_columns * (w + gaps[1]) -
        gaps[1], and its (R, C) mask of the empty cells after the last tile (with the gaps that
        lead into them), to be drawn as background.
    """
    k, h, w = tiles.shape
    n_rows = max(1, math.ceil(k / n_columns))
    (row_gap, column_gap), cell = gaps, (h + gaps[0], w + gaps[1])
    mosaic = np.full((n_rows * cell[0] - row_gap, n_columns * cell[1] - column_gap), np.nan)
    empty = np.zeros(mosaic.shape, dtype=bool)
    for index in range(n_rows * n_columns):
        row, column = divmod(index, n_columns)
        top, left = row * cell[0], column * cell[1]
        if index < k:
            mosaic[top : top + h, left : left + w] = tiles[index]
        else:
            empty[max(top - row_gap, 0) : top + h, max(left - column_gap, 0) : left + w] = True
    return mosaic, empty


def _unit_scaled(atoms: np.ndarray) -> np.ndarray:
    """(K, H, W) atoms each divided by its largest magnitude (all-zero atoms stay zero)."""
    scale = np.abs(atoms).reshape(len(atoms), -1).max(1, initial=0.0)
    scale[scale == 0] = 1
    return atoms / scale[:, None, None]


def atom_mosaic(atoms: np.ndarray, n_columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Tile atoms into one image, each scaled by its own largest magnitude to [-1, 1].

    Args:
        atoms: (K, H, W).
        n_columns: atoms per row (default :func:`grid_columns`: about twice as many columns as
            rows, a divisor of K where one is near, so that no cell is empty).
        gap: pixels between atoms (drawn as NaN, shown as background).

    Returns:
        (rows * (H + gap) - gap, n_columns * (W + gap) - gap) float array with NaN gaps.
    """
    return _tile(_unit_scaled(atoms), n_columns or grid_columns(len(atoms)), (gap, gap))[0]


def _pairs(first: np.ndarray, second: np.ndarray, caption: int = 0) -> np.ndarray:
    """(K, h + caption, 2 w + 1) tiles: each image of ``first`` (K, h, w) beside its counterpart in
    ``second``, one NaN column between, and ``caption`` NaN rows below for a label."""
    k, h, w = first.shape
    tiles = np.full((k, h + caption, 2 * w + 1), np.nan)
    tiles[:, :h, :w], tiles[:, :h, w + 1 :] = first, second
    return tiles


#: Colour of the gaps between tiles, apart from the grey of the images.
_GAP = "#3b5b92"


def _mosaic_figure(
    mosaic: np.ndarray,
    empty: np.ndarray,
    title: str,
    limits: tuple[float, float] = (-1.0, 1.0),
    colour_bar: str | None = None,
) -> tuple[Figure, Axes]:
    """A figure of one mosaic at 40 pixels an inch: grey images, blue gaps, empty cells blank.

    Args:
        mosaic: (R, C) values, NaN in the gaps.
        empty: (R, C) mask drawn as the figure's background.
        title: figure title.
        limits: the values drawn black and white.
        colour_bar: label of a colour bar of the scale (None: no bar); its ends point where
            values lie beyond the limits.
    """
    height, width = mosaic.shape
    bar = 1.1 if colour_bar else 0.0
    # about 0.075 inch a character of a 10-point title: a small grid does not clip it
    figure = Figure(
        figsize=(max(width / 40 + 0.4, 0.075 * len(title)) + bar, height / 40 + 0.8), dpi=100
    )
    axis = figure.add_subplot()
    colormap = matplotlib.colormaps["gray"].with_extremes(bad=_GAP)
    image = axis.imshow(
        mosaic,
        cmap=colormap,
        vmin=limits[0],
        vmax=limits[1],
        alpha=np.where(empty, 0.0, 1.0),
        interpolation="nearest",
    )
    axis.set_axis_off()
    axis.set_title(title, fontsize=10)
    if colour_bar:
        low, high = bool(np.nanmin(mosaic) < limits[0]), bool(np.nanmax(mosaic) > limits[1])
        extend = ("neither", "max", "min", "both")[2 * low + high]
        figure.colorbar(image, ax=axis, label=colour_bar, fraction=0.08, pad=0.02, extend=extend)
    return figure, axis


def _save_mosaic(atoms: np.ndarray, path: str | Path, title: str) -> Path:
    """(K, H, W) atoms, each scaled to its own largest magnitude, on a grid of :func:`grid_columns`."""
    figure, _ = _mosaic_figure(*_tile(_unit_scaled(atoms), grid_columns(len(atoms))), title)
    return _save(figure, path)


def save_sample_grid(images: torch.Tensor, path: str | Path, title: str | None = None) -> Path:
    """Save decoded images (N, 1, H, W) as a PNG grid, each scaled to its own largest magnitude."""
    atoms = images.detach().cpu().double()[:, 0].numpy()
    return _save_mosaic(
        atoms, path, title or f"{len(images)} samples from the prior, each scaled to its range"
    )


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
    return _save_mosaic(atoms.reshape(-1, *atom_shape).numpy(), path, title or "")


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


def colour_limits(images: np.ndarray, percentile: float = 99.5) -> tuple[float, float]:
    """One colour scale for images of any shape, to the ``percentile`` of their magnitudes (the
    few brighter pixels saturate): [0, top] when no value is negative, else symmetric around 0
    (whitened data), [-top, top]."""
    magnitudes = np.abs(images[np.isfinite(images)])
    top = float(np.percentile(magnitudes, percentile)) if magnitudes.size else 0.0
    top = top or float(magnitudes.max(initial=0.0)) or 1.0
    return (0.0, top) if images.min(initial=0.0) >= 0 else (-top, top)


def save_reconstructions(
    inputs: torch.Tensor, reconstructions: torch.Tensor, path: str | Path, title: str | None = None
) -> Path:
    """Each input (N, 1, H, W) beside its reconstruction (N, 1, H, W), all on one colour scale
    (:func:`colour_limits` of the inputs), with a colour bar: a reconstruction's amplitude errors
    show as differences of contrast."""
    first, second = (
        images.detach().cpu().double()[:, 0].numpy() for images in (inputs, reconstructions)
    )
    limits = colour_limits(first)
    tiles = _pairs(first, second)
    mosaic, empty = _tile(tiles, grid_columns(len(tiles), aspect=1.0), gaps=(2, 3))
    title = title or "inputs (left of each pair) and reconstructions (right), one colour scale"
    figure, _ = _mosaic_figure(mosaic, empty, title, limits, colour_bar="pixel value")
    return _save(figure, path)


def save_gabor_figure(
    atoms: torch.Tensor, fitted: torch.Tensor, r2: torch.Tensor, path: str | Path, n: int = 48
) -> Path:
    """Atoms (K, H, W) each beside its Gabor fit (K, H, W), the fit's R^2 (K,) under the pair, best
    fits first; a pair is scaled by its atom's largest magnitude."""
    order = torch.argsort(r2, descending=True)[:n]
    chosen = atoms[order].detach().cpu().double().numpy()
    scale = np.abs(chosen).reshape(len(chosen), -1).max(1, initial=0.0)
    scale = np.where(scale > 0, scale, 1.0)[:, None, None]
    fits = np.clip(fitted[order].detach().cpu().double().numpy() / scale, -1, 1)
    caption = 6  # rows of the R^2 label under each pair
    tiles = _pairs(chosen / scale, fits, caption)
    columns, gaps = grid_columns(len(tiles), aspect=1.0), (1, 3)
    mosaic, empty = _tile(tiles, columns, gaps)
    figure, axis = _mosaic_figure(mosaic, empty, "atoms (left) and their Gabor fits (right), best first")
    height, width = tiles.shape[1:]
    for index, value in enumerate(r2[order].tolist()):
        row, column = divmod(index, columns)
        x = column * (width + gaps[1]) + (width - 1) / 2
        y = row * (height + gaps[0]) + height - (caption + 1) / 2
        axis.text(x, y, f"R² {value:.2f}", color="white", fontsize=6.5, ha="center", va="center")
    return _save(figure, path)


@dataclass(frozen=True)
class RatePoint:
    """A point of a rate-distortion figure: means over seeds with their 99 % t confidence
    half-widths (NaN with one seed), a label (e.g. its beta or lambda) and each seed's point.

    Attributes:
        lifetime_sparsity: mean lifetime sparsity.
        mse_map: mean mse_map.
        lifetime_sparsity_ci: half-width of the confidence interval of ``lifetime_sparsity``.
        mse_map_ci: half-width of the confidence interval of ``mse_map``.
        label: drawn beside the point.
        seeds: (n, 2) each seed's (lifetime sparsity, mse_map) when several seeds were run.
    """

    lifetime_sparsity: float
    mse_map: float
    lifetime_sparsity_ci: float = math.nan
    mse_map_ci: float = math.nan
    label: str = ""
    seeds: tuple[tuple[float, float], ...] = ()

    @classmethod
    def over_seeds(cls, points: Sequence[tuple[float, float]], label: str = "") -> RatePoint:
        """The point of each seed's (lifetime sparsity, mse_map): means and 99 % half-widths of
        :func:`poisson_vae.stats.confidence_interval`."""
        sparsity, sparsity_ci = stats.confidence_interval([x for x, _ in points])
        mse, mse_ci = stats.confidence_interval([y for _, y in points])
        seeds = tuple((float(x), float(y)) for x, y in points) if len(points) > 1 else ()
        return cls(sparsity, mse, sparsity_ci, mse_ci, label, seeds)


class _PlainLogFormatter(ticker.LogFormatter):
    """The ticks matplotlib's log formatter labels, labelled in plain numbers (0.06, not 6e-02)."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:.6g}" if super().__call__(x, pos) else ""


def _plain_log_y(axis: Axes) -> None:
    """A logarithmic y axis labelled in plain numbers (0.06, 40, 200), not powers of ten."""
    axis.set_yscale("log")
    axis.yaxis.set_major_formatter(_PlainLogFormatter(labelOnlyBase=False))
    axis.yaxis.set_minor_formatter(_PlainLogFormatter(labelOnlyBase=False))


#: How close to 0 or 1 a lifetime sparsity is drawn on the logit axis (an all-silent code scores 1).
_LOGIT_MARGIN = 1e-5


def _open_unit(values: np.ndarray | float) -> np.ndarray:
    return np.clip(values, _LOGIT_MARGIN, 1 - _LOGIT_MARGIN)


def _curve_style(index: int) -> dict:
    """Colour, marker and line style of the ``index``-th curve: their periods (10, 11, 4) are
    coprime, so no two of the first 440 curves look alike."""
    return {
        "color": f"C{index % 10}",
        "marker": "osD^vPX*<>h"[index % 11],
        "linestyle": ("-", "--", "-.", ":")[index % 4],
    }


#: Where a point's label may go, in points from the point: right above, right below, left above,
#: left below (the left ones less the label's width).
_LABEL_PLACES = ((4, 2, 0), (4, -11, 0), (-4, 2, 1), (-4, -11, 1))
#: A label's background: lines that pass under it do not cross out its text.
_LABEL_BOX = {"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none", "alpha": 0.7}


def _label_points(axis: Axes, labels: list[tuple[float, float, str, str]], size: float = 7) -> None:
    """Write each (x, y, text, colour) beside its point, at the first of :data:`_LABEL_PLACES`
    where it covers neither a point nor a label written before it; a label with no free place is
    left out, and so is one whose text is already written within 30 pixels (where curves meet, one
    serves them all)."""
    axis.figure.draw_without_rendering()  # the final layout, so that display pixels are final
    pixels = axis.figure.dpi / 72
    points = axis.transData.transform([(x, y) for x, y, _, _ in labels]).reshape(-1, 2)
    # (left, bottom, right, top) in display pixels of each marker, then of each label written
    boxes = [np.concatenate([point - 3 * pixels, point + 3 * pixels]) for point in points]
    written: list[tuple[np.ndarray, str]] = []
    for point, (x, y, text, colour) in zip(points, labels):
        if any(text == other and np.hypot(*(point - at)) < 30 for at, other in written):
            continue
        width, height = 0.6 * size * len(text), 1.2 * size  # points, roughly
        for dx, dy, left in _LABEL_PLACES:
            dx -= left * width
            box = np.concatenate([point, point]) + pixels * np.array([dx, dy, dx + width, dy + height])
            if all(box[2] < b[0] or b[2] < box[0] or box[3] < b[1] or b[3] < box[1] for b in boxes):
                boxes.append(box)
                written.append((point, text))
                axis.annotate(
                    text,
                    (x, y),
                    xytext=(dx, dy),
                    textcoords="offset points",
                    fontsize=size,
                    color=colour,
                    bbox=_LABEL_BOX,
                )
                break


def save_rate_distortion(
    curves: Mapping[str, Sequence[RatePoint]], path: str | Path, title: str
) -> Path:
    """mse_map (log y) against lifetime sparsity on a logit x axis, which spreads the sparse codes
    crowded just below 1: a line through each named curve's points in the order given (a sweep's),
    each point its mean over seeds with 99 % confidence bars both ways, its seeds as faint dots,
    and its label (its beta or lambda).

    Curves differ in colour, marker and line style at once, so that overlapping curves stay
    apart; the legend sits outside the axes. A sparsity of exactly 0 or 1 is drawn 1e-5 inside.

    Args:
        curves: points by curve name (a single point draws no line).
        path: output PNG.
        title: figure title.
    """
    figure = Figure(figsize=(8.5, 4.6), layout="constrained")
    axis = figure.add_subplot()
    axis.set_xlabel("lifetime sparsity (logit scale)")
    axis.set_ylabel("mse_map (SSE per sample, log scale)")
    axis.grid(True, which="major", alpha=0.3)
    axis.set_title(title, fontsize=10)
    labels = []
    for index, (name, points) in enumerate(curves.items()):
        style = _curve_style(index)
        x = _open_unit(np.array([point.lifetime_sparsity for point in points]))
        y = np.array([point.mse_map for point in points])
        half = np.nan_to_num([[p.lifetime_sparsity_ci, p.mse_map_ci] for p in points]).reshape(-1, 2)
        x_bars = np.abs(_open_unit([x - half[:, 0], x + half[:, 0]]) - x)
        y_bars = np.stack([np.minimum(half[:, 1], y * 0.999), half[:, 1]])  # inside the log axis
        style["linestyle"] = style["linestyle"] if len(points) > 1 else "none"
        axis.errorbar(
            x, y, xerr=x_bars, yerr=y_bars, **style, markersize=6, capsize=2, elinewidth=0.8, label=name
        )
        seeds = np.array([seed for point in points for seed in point.seeds]).reshape(-1, 2)
        axis.scatter(_open_unit(seeds[:, 0]), seeds[:, 1], s=9, alpha=0.3, color=style["color"])
        labels += [(*xy, point.label, style["color"]) for *xy, point in zip(x, y, points) if point.label]
    mse_values = [point.mse_map for points in curves.values() for point in points]
    if not mse_values:
        message = "no point has both mse_map and lifetime sparsity"
        axis.text(0.5, 0.5, message, ha="center", transform=axis.transAxes)
        return _save(figure, path, dpi=120)
    axis.set_xscale("logit")
    axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:.10g}"))
    axis.xaxis.set_minor_formatter(ticker.LogitFormatter(minor=True, use_overline=False))
    if min(mse_values) > 0:
        _plain_log_y(axis)
    figure.legend(loc="outside right upper", fontsize=7, frameon=False)
    _label_points(axis, labels)
    return _save(figure, path, dpi=120)


def save_knn_figure(
    panels: Mapping[str, Mapping[str, Mapping[int, Sequence[float]]]],
    path: str | Path,
    title: str,
    over_epochs: bool = False,
) -> Path:
    """KNN accuracy against the number of labels (log x), or against training epochs: in each panel
    a line per condition through its mean accuracy over seeds, in a band of the 99 % t confidence
    interval (:func:`poisson_vae.stats.confidence_interval`; no band where one seed was run).

    Args:
        panels: ``{panel title: {condition: {N labels (or epoch): accuracies, one per seed}}}``; a
            condition keeps its colour and marker in every panel, and the legend below names each
            once.
        path: output PNG.
        title: figure title.
        over_epochs: the x values are training epochs (a linear axis) rather than label counts.
    """
    names = list(dict.fromkeys(name for curves in panels.values() for name in curves))
    n_panels, width = max(len(panels), 1), max(3.4 * len(panels), 6.0)
    # a legend entry is about 0.065 inch per character at 8 points, and 0.6 inch of handle and space
    n_columns = max(1, min(len(names), int(width / (0.065 * max(map(len, names), default=1) + 0.6))))
    figure = Figure(figsize=(width, 3.4 + 0.2 * math.ceil(len(names) / n_columns)), layout="constrained")
    axes = figure.subplots(1, n_panels, sharey=True, squeeze=False)[0]
    handles = {}
    for axis, (panel, curves) in zip(axes, panels.items()):
        for name, by_size in curves.items():
            sizes = np.array(sorted(by_size))
            mean, half = np.array([stats.confidence_interval(by_size[n]) for n in sizes]).T
            style = _curve_style(names.index(name)) | {"linestyle": "-"}
            (handles[name],) = axis.plot(sizes, mean, **style, markersize=5)
            axis.fill_between(sizes, mean - half, mean + half, color=style["color"], alpha=0.18, lw=0)
        if over_epochs:
            axis.set_xlabel("training epochs")
        else:
            axis.set_xscale("log")
            shown = sorted({n for by_size in curves.values() for n in by_size})
            axis.set_xticks(shown, [f"{n:,}" for n in shown])
            axis.xaxis.set_minor_formatter(ticker.NullFormatter())
            axis.set_xlabel("labelled samples N (log scale)")
        axis.set_title(panel, fontsize=10)
        axis.grid(True, alpha=0.3)
    axes[0].set_ylabel("KNN accuracy")
    if handles:
        figure.legend(
            [handles[name] for name in names],
            names,
            loc="outside lower center",
            ncols=n_columns,
            fontsize=8,
            frameon=False,
        )
    figure.suptitle(f"{title}: mean and 99 % CI over seeds", fontsize=11)
    return _save(figure, path, dpi=110)


#: The panels of the training curves: (quantity, [(logged column, legend)]), the columns as
#: :class:`~poisson_vae.training.VAEModule` logs them.
_TRAINING_PANELS = (
    ("training loss (SSE + beta KL)", (("train/loss", "training"),)),
    ("SSE", (("train/sse", "training"), ("val/sse", "validation"))),
    ("KL (nats)", (("train/kl", "training"), ("val/kl", "validation"))),
    ("beta", (("train/beta", "training"),)),
    ("temperature", (("train/temperature", "training"),)),
    ("validation NELBO", (("val/nelbo", "validation"),)),
)


def save_training_curves(
    history: Mapping[str, np.ndarray], path: str | Path, title: str, resumed_at: Sequence[int] = ()
) -> Path:
    """A panel per logged quantity against the optimiser step: the training loss, SSE and KL
    (with the validation values, as markers, where logged), beta, the temperature and the
    validation NELBO.

    A panel's y axis is logarithmic when its values are positive and span a factor 10 or more.

    Args:
        history: ``{column: (n, 2) (step, value)}`` as :meth:`poisson_vae.runs.Run.training_history`
            reads it; panels without any of their columns are left out.
        path: output PNG.
        title: figure title.
        resumed_at: steps at which the run was resumed (dotted lines).
    """
    panels = [(name, [c for c in columns if c[0] in history]) for name, columns in _TRAINING_PANELS]
    panels = [(name, columns) for name, columns in panels if columns]
    n_columns = min(3, max(len(panels), 1))
    n_rows = max(1, math.ceil(len(panels) / n_columns))
    figure = Figure(figsize=(4 * n_columns, 2.6 * n_rows + 0.4), layout="constrained")
    axes = figure.subplots(n_rows, n_columns, squeeze=False).ravel()
    for axis in axes[len(panels) :]:
        axis.set_axis_off()
    if not panels:
        axes[0].text(
            0.5, 0.5, "no training metrics were logged", ha="center", transform=axes[0].transAxes
        )
    for axis, (name, columns) in zip(axes, panels):
        for column, legend in columns:
            steps, values = history[column].T
            validation = column.startswith("val/")
            axis.plot(
                steps,
                values,
                "o-" if validation else "-",
                lw=1.0 if validation else 0.8,
                ms=3,
                label=legend,
            )
        values = np.concatenate([history[column][:, 1] for column, _ in columns])
        if values.min() > 0 and values.max() >= 10 * values.min():
            _plain_log_y(axis)
        for step in resumed_at:
            axis.axvline(step, color="0.5", linestyle=":", linewidth=1)
        if len(columns) > 1:
            axis.legend(fontsize=7, frameon=False)
        axis.set_title(name, fontsize=10)
        axis.set_xlabel("optimiser step")
        axis.grid(True, alpha=0.3)
    resumes = f"; dotted: resumed before step {', '.join(map(str, resumed_at))}" if resumed_at else ""
    figure.suptitle(title + resumes, fontsize=11)
    return _save(figure, path)


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


def save_heatmaps(rows: Sequence[Mapping], metric: str, title: str, path: str | Path) -> Path:
    """One panel per estimator: ``metric`` over rate (rows) x temperature (columns), on one colour
    scale shared by the panels (logarithmic for positive metrics). Estimators with no temperature
    have one column.

    Args:
        rows: cells with ``estimator``, ``rate``, ``temperature`` (None for none) and ``metric``.
        metric: the key to show.
        title: the figure's title.
        path: where to write the PNG.
    """
    from matplotlib.colors import LogNorm, Normalize

    labels = list(dict.fromkeys(row["estimator"] for row in rows))
    rates = sorted({row["rate"] for row in rows})
    values = [row[metric] for row in rows if row[metric] is not None and math.isfinite(row[metric])]
    positive = bool(values) and min(values) > 0
    norm = (
        LogNorm(min(values), max(values))
        if positive and max(values) > min(values)
        else Normalize(min(values, default=0), max(values, default=1))
    )
    n_columns = grid_columns(len(labels), aspect=1.5)
    n_rows = math.ceil(len(labels) / n_columns)
    figure = Figure(figsize=(2.6 * n_columns + 1, 2.4 * n_rows + 0.6), layout="constrained")
    axes = figure.subplots(n_rows, n_columns, squeeze=False)
    image = None
    for axis, label in zip(axes.flat, labels, strict=False):
        own = [row for row in rows if row["estimator"] == label]
        temperatures = sorted({row["temperature"] for row in own}, key=lambda t: -1 if t is None else t)
        grid = np.full((len(rates), len(temperatures)), np.nan)
        for row in own:
            value = row[metric]
            if value is not None and math.isfinite(value):
                grid[rates.index(row["rate"]), temperatures.index(row["temperature"])] = value
        image = axis.imshow(grid, aspect="auto", origin="lower", norm=norm, cmap="viridis")
        axis.set_title(label, fontsize=9)
        axis.set_yticks(range(len(rates)), [f"{rate:g}" for rate in rates], fontsize=6)
        names = ["-" if t is None else f"{t:g}" for t in temperatures]
        axis.set_xticks(range(len(temperatures)), names, fontsize=6, rotation=90)
        axis.set_xlabel("temperature", fontsize=7)
        axis.set_ylabel("rate", fontsize=7)
    for axis in axes.flat[len(labels) :]:
        axis.remove()
    if image is not None:
        figure.colorbar(image, ax=list(axes.flat[: len(labels)]), shrink=0.8)
    figure.suptitle(title)
    return _save(figure, path)


#: The panels of :func:`save_convergence`: (record, title).
_CONVERGENCE_PANELS = (
    ("r2", "R^2 of the spikes (mean per sample; dashed: pooled)"),
    ("portion_zeros", "portion of zero spikes"),
    ("step_norm", "step norm ||u_t - u_(t-1)||"),
    ("distance", "distance to the ideal point"),
)


def save_convergence(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    path: str | Path,
    title: str,
    horizon: int | None = None,
) -> Path:
    """Iterative inference over its steps (log axis), one line per model: the R^2 of the spikes
    (the mean per sample, and dashed the pooled one where the records have it),
    the portion of zeros, the step norm and the distance to the ideal point.

    Args:
        curves: ``{label: convergence record}`` (:func:`poisson_vae.iterative.convergence`).
        path: output PNG.
        title: figure title.
        horizon: the training horizon, marked with a dotted line.
    """
    figure = Figure(figsize=(10, 6.4), layout="constrained")
    axes = figure.subplots(2, 2).ravel()
    for axis, (key, name) in zip(axes, _CONVERGENCE_PANELS):
        for index, (label, record) in enumerate(curves.items()):
            axis.plot(record["step"], record[key], lw=1.0, label=label, color=f"C{index % 10}")
            if key == "r2" and "r2_pooled" in record:
                axis.plot(record["step"], record["r2_pooled"], lw=1.0, ls="--", color=f"C{index % 10}")
        axis.set_xscale("log")
        axis.set_xlabel("inference step")
        axis.set_title(name, fontsize=9)
        if horizon is not None:
            axis.axvline(horizon, color="0.5", linestyle=":", linewidth=1)
    if len(curves) > 1:
        axes[0].legend(fontsize=7)
    figure.suptitle(title)
    return _save(figure, path)


def save_ideal_plane(
    curves: Mapping[str, Sequence[tuple[str, Sequence[tuple[float, float]]]]],
    path: str | Path,
    title: str,
) -> Path:
    """R^2 against the portion of zeros, with the ideal point (1, 1) and arcs of equal distance
    to it: one line per named sweep through its points, each the mean over seeds (seeds as faint
    dots) with its label (a beta or lambda).

    Args:
        curves: ``{name: [(label, [(portion of zeros, R^2) of each seed]), ...]}`` in sweep order.
        path: output PNG.
        title: figure title.
    """
    figure = Figure(figsize=(8.5, 5.2), layout="constrained")
    axis = figure.add_subplot()
    angles = np.linspace(math.pi, 1.5 * math.pi, 60)
    for radius in (0.1, 0.2, 0.3, 0.5, 0.75, 1.0):
        axis.plot(1 + radius * np.cos(angles), 1 + radius * np.sin(angles), color="0.85", lw=0.8)
        axis.annotate(f"d = {radius:g}", (1 - radius, 1), fontsize=6, color="0.5", ha="left", va="top")
    axis.plot([1], [1], marker="*", markersize=12, color="k", linestyle="none", label="ideal point")
    lowest = 0.0
    for index, (name, points) in enumerate(curves.items()):
        style = _curve_style(index)
        seeds = [np.array(each, dtype=float).reshape(-1, 2) for _, each in points]
        means = np.array([each.mean(0) for each in seeds]).reshape(-1, 2)
        style["linestyle"] = style["linestyle"] if len(points) > 1 else "none"
        axis.plot(means[:, 0], means[:, 1], **style, markersize=6, label=name)
        for each in seeds:
            axis.scatter(each[:, 0], each[:, 1], s=9, alpha=0.3, color=style["color"])
        for (label, _), (x, y) in zip(points, means):
            axis.annotate(label, (x, y), textcoords="offset points", xytext=(4, 2), fontsize=6)
        lowest = min([lowest, *means[:, 1]])
    axis.set_xlim(0, 1.02)
    axis.set_ylim(max(lowest - 0.05, -0.5), 1.02)
    axis.set_xlabel("portion of zeros")
    axis.set_ylabel("R^2")
    axis.grid(True, alpha=0.3)
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(figure, path)
