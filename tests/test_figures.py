"""Figures: the data each one plots (read from its artists, not its pixels), and that it is drawn
without pyplot."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.collections import PathCollection, PolyCollection
from matplotlib.figure import Figure

from poisson_vae import stats
from poisson_vae.figures import (
    RatePoint,
    atom_mosaic,
    grid_columns,
    save_convergence,
    save_dictionary_figure,
    save_gabor_figure,
    save_ideal_plane,
    save_knn_figure,
    save_rate_distortion,
    save_reconstructions,
    save_sample_grid,
    save_training_curves,
)


def _image(figure: Figure) -> tuple[np.ndarray, np.ndarray]:
    """The (R, C) values of a figure's mosaic (NaN in the gaps) and their (R, C) opacity."""
    image = figure.axes[0].images[0]
    return np.ma.filled(image.get_array(), np.nan), np.asarray(image.get_alpha())


def test_mosaic_layout_and_scaling() -> None:
    atoms = np.random.default_rng(0).normal(size=(10, 4, 4))
    mosaic = atom_mosaic(atoms, n_columns=5)
    assert mosaic.shape == (2 * 5 - 1, 5 * 5 - 1)
    assert np.nanmax(np.abs(mosaic)) == 1.0
    assert np.allclose(mosaic[:4, :4], atoms[0] / np.abs(atoms[0]).max())
    assert np.isnan(mosaic[4]).all()


def test_grid_columns_divide_the_count_when_a_divisor_is_near() -> None:
    assert grid_columns(64) in (8, 16) and grid_columns(512) == 32 and grid_columns(10) == 5
    assert grid_columns(13) == 5  # prime: the nearest count, with two empty cells
    assert grid_columns(32, aspect=1.0) in (4, 8) and grid_columns(1) == 1
    assert not np.isnan(atom_mosaic(np.ones((48, 4, 4)))[-4:, -4:]).any()  # no empty cell


def test_dictionary_figure_is_a_png(tmp_path: Path) -> None:
    path = save_dictionary_figure(
        torch.randn(256, 64), (16, 16), tmp_path / "d.png", order=torch.arange(64).flip(0)
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_grid_leaves_empty_cells_blank(tmp_path: Path, drawn: dict) -> None:
    images = torch.randn(13, 1, 4, 4)
    path = save_sample_grid(images, tmp_path / "s.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    values, alpha = _image(drawn[tmp_path / "s.png"])
    assert values.shape == (3 * 5 - 1, 5 * 5 - 1)  # 5 columns, 3 rows: cells 13 and 14 empty
    assert np.allclose(values[10:14, 10:14], images[12, 0] / images[12, 0].abs().max())
    assert (alpha[10:14, 15:] == 0).all() and (alpha[9, 14:] == 0).all()  # blank, not a block
    assert (alpha[:9] == 1).all() and (alpha[10:14, :14] == 1).all()  # atoms and the gaps between


def test_reconstructions_share_one_colour_scale_with_a_bar(tmp_path: Path, drawn: dict) -> None:
    inputs = torch.randn(6, 1, 4, 4) * torch.arange(1.0, 7.0).view(-1, 1, 1, 1)
    reconstructions = 0.5 * inputs  # an amplitude error: must not be scaled away
    save_reconstructions(inputs, reconstructions, tmp_path / "r.png")
    figure = drawn[tmp_path / "r.png"]
    values, _ = _image(figure)
    columns = grid_columns(6, aspect=1.0)
    for index in range(6):
        row, column = divmod(index, columns)
        top, left = row * (4 + 2), column * (2 * 4 + 1 + 3)
        assert np.allclose(values[top : top + 4, left : left + 4], inputs[index, 0])
        assert np.allclose(values[top : top + 4, left + 5 : left + 9], reconstructions[index, 0])
    top = np.percentile(inputs.abs().numpy(), 99.5)
    norm = figure.axes[0].images[0].norm
    assert (norm.vmin, norm.vmax) == pytest.approx((-top, top))  # symmetric: whitened data
    assert len(figure.axes) == 2  # the colour bar
    save_reconstructions(inputs.abs(), reconstructions.abs(), tmp_path / "positive.png")
    assert drawn[tmp_path / "positive.png"].axes[0].images[0].norm.vmin == 0


def test_gabor_atoms_sit_beside_their_fits_with_r2_below(tmp_path: Path, drawn: dict) -> None:
    atoms = torch.randn(5, 8, 8, dtype=torch.float64)
    fitted, r2 = 0.5 * atoms, torch.tensor([0.1, 0.9, 0.5, 0.3, 0.7])
    save_gabor_figure(atoms, fitted, r2, tmp_path / "g.png")
    figure = drawn[tmp_path / "g.png"]
    values, _ = _image(figure)
    columns, (height, width) = grid_columns(5, aspect=1.0), (8 + 6, 2 * 8 + 1)
    for index, atom in enumerate([1, 4, 2, 3, 0]):  # best fit first
        row, column = divmod(index, columns)
        top, left = row * (height + 1), column * (width + 3)
        scale = atoms[atom].abs().max()
        assert np.allclose(values[top : top + 8, left : left + 8], atoms[atom] / scale)
        assert np.allclose(values[top : top + 8, left + 9 : left + width], fitted[atom] / scale)
    texts = figure.axes[0].texts
    assert [text.get_text() for text in texts] == ["R² 0.90", "R² 0.70", "R² 0.50", "R² 0.30", "R² 0.10"]
    x, y = texts[0].get_position()
    assert 8 <= x <= 9 and 8 < y < height  # centred under the first pair


def test_rate_point_over_seeds_is_the_t_interval() -> None:
    point = RatePoint.over_seeds([(0.9, 50.0), (0.92, 56.0), (0.91, 53.0)], "β=1")
    assert (point.lifetime_sparsity, point.lifetime_sparsity_ci) == pytest.approx(
        stats.confidence_interval([0.9, 0.92, 0.91])
    )
    assert (point.mse_map, point.mse_map_ci) == pytest.approx(stats.confidence_interval([50, 56, 53]))
    assert len(point.seeds) == 3 and point.label == "β=1"
    single = RatePoint.over_seeds([(0.9, 50.0)])
    assert np.isnan(single.mse_map_ci) and single.seeds == ()


def test_rate_distortion_spreads_sparsity_and_labels_each_point(tmp_path: Path, drawn: dict) -> None:
    sweep = [
        RatePoint.over_seeds([(0.9, 50.0), (0.92, 56.0), (0.91, 53.0)], "β=0.5"),
        RatePoint.over_seeds([(0.97, 80.0), (0.975, 86.0), (0.972, 83.0)], "β=1"),
    ]
    curves = {
        "P-VAE": sweep,
        "LCA": [RatePoint(0.95, 10.0, label="λ=1"), RatePoint(1.0, 200.0, label="λ=3")],
        "LCA again": [RatePoint(0.95, 10.0, label="λ=1")],  # meets LCA: one label serves both
        **{f"curve {index}": [RatePoint(0.5, 1.0 + index)] for index in range(9)},
    }
    save_rate_distortion(curves, tmp_path / "rd.png", "rate-distortion")
    axis = drawn[tmp_path / "rd.png"].axes[0]
    assert (axis.get_xscale(), axis.get_yscale()) == ("logit", "log")
    line, _, (_, y_bars) = axis.containers[0]
    assert np.allclose(line.get_xydata(), [[p.lifetime_sparsity, p.mse_map] for p in sweep])
    spans = [segment[:, 1] for segment in y_bars.get_segments()]
    assert np.allclose(spans, [[p.mse_map - p.mse_map_ci, p.mse_map + p.mse_map_ci] for p in sweep])
    assert axis.containers[1].lines[0].get_xydata()[1, 0] == pytest.approx(1 - 1e-5)  # 1 drawn inside
    seeds = next(c for c in axis.collections if isinstance(c, PathCollection)).get_offsets()
    assert np.allclose(seeds, [seed for point in sweep for seed in point.seeds])
    assert sorted(text.get_text() for text in axis.texts) == ["β=0.5", "β=1", "λ=1", "λ=3"]
    styles = {(c.lines[0].get_color(), c.lines[0].get_marker()) for c in axis.containers}
    assert len(styles) == len(curves)  # every curve looks different


def test_ideal_plane_draws_sweep_means_their_seeds_and_the_ideal_point(
    tmp_path: Path, drawn: dict
) -> None:
    curves = {
        "iP-VAE (beta sweep)": [("8", [(0.7, 0.9), (0.8, 0.8)]), ("24", [(0.9, 0.6), (0.9, 0.7)])],
        "LCA (lambda sweep)": [("1", [(0.95, -0.2)])],
    }
    save_ideal_plane(curves, tmp_path / "plane.png", "plane")
    axis = drawn[tmp_path / "plane.png"].axes[0]
    lines = {line.get_label(): line for line in axis.lines}
    assert np.allclose(lines["ideal point"].get_xydata(), [[1, 1]])
    assert np.allclose(lines["iP-VAE (beta sweep)"].get_xydata(), [[0.75, 0.85], [0.9, 0.65]])
    assert lines["LCA (lambda sweep)"].get_linestyle() == "None"  # one point: no line
    seeds = np.concatenate([c.get_offsets() for c in axis.collections if isinstance(c, PathCollection)])
    assert len(seeds) == 5
    assert axis.get_ylim()[0] == pytest.approx(-0.25)  # the lowest point inside
    assert {"8", "24", "1"} <= {text.get_text() for text in axis.texts}


def test_convergence_draws_the_pooled_r2_dashed_beside_the_mean(tmp_path: Path, drawn: dict) -> None:
    record = {"step": [1, 2, 4], "r2": [0.1, 0.2, 0.3], "r2_pooled": [0.2, 0.4, 0.5]}
    record |= {"portion_zeros": [0.5] * 3, "step_norm": [1.0] * 3, "distance": [0.6] * 3}
    save_convergence({"a": record, "b": record}, tmp_path / "c.png", "c", horizon=2)
    axis = drawn[tmp_path / "c.png"].axes[0]
    solid, dashed = axis.lines[0], axis.lines[1]
    assert np.allclose(solid.get_ydata(), record["r2"]) and np.allclose(
        dashed.get_ydata(), record["r2_pooled"]
    )
    assert dashed.get_linestyle() == "--" and dashed.get_color() == solid.get_color()
    assert axis.lines[2].get_color() != solid.get_color()  # the next model


def test_knn_figure_draws_means_and_confidence_bands(tmp_path: Path, drawn: dict) -> None:
    poisson = {1000: [0.7, 0.72, 0.71], 200: [0.6, 0.64, 0.61]}
    panels = {
        "K = 10": {"P-VAE": poisson, "G-VAE": {200: [0.75], 1000: [0.8]}},
        "K = 50": {"G-VAE": {200: [0.7, 0.72], 5000: [0.9, 0.91]}},
    }
    save_knn_figure(panels, tmp_path / "knn.png", "KNN")
    first, second = drawn[tmp_path / "knn.png"].axes
    assert first.get_xscale() == "log" and list(first.get_xticks()) == [200, 1000]
    line = first.lines[0]
    assert list(line.get_xdata()) == [200, 1000]
    means, halves = zip(*(stats.confidence_interval(poisson[n]) for n in (200, 1000)))
    assert np.allclose(line.get_ydata(), means)
    band = next(c for c in first.collections if isinstance(c, PolyCollection)).get_paths()[0].vertices
    assert band[:, 1].min() == pytest.approx(means[0] - halves[0])
    assert band[:, 1].max() == pytest.approx(means[1] + halves[1])
    assert second.lines[0].get_color() == first.lines[1].get_color()  # G-VAE in both panels


def test_training_curves_plot_each_logged_quantity(tmp_path: Path, drawn: dict) -> None:
    steps = np.arange(9.0, 100.0, 10.0)
    history = {
        "train/loss": np.stack([steps, 300 - steps], 1),
        "train/beta": np.stack([steps, np.geomspace(1e-3, 1, len(steps))], 1),
        "train/temperature": np.stack([steps, np.linspace(1.0, 0.5, len(steps))], 1),
        "val/nelbo": np.array([[49.0, 250.0], [99.0, 240.0]]),
    }
    save_training_curves(history, tmp_path / "c.png", "run", resumed_at=[59])
    axes = [axis for axis in drawn[tmp_path / "c.png"].axes if axis.axison]
    titles = [axis.get_title() for axis in axes]
    assert titles == ["training loss (SSE + beta KL)", "beta", "temperature", "validation NELBO"]
    for axis, column in zip(axes, ["train/loss", "train/beta", "train/temperature", "val/nelbo"]):
        assert np.allclose(axis.lines[0].get_xydata(), history[column])
        assert list(axis.lines[-1].get_xdata()) == [59, 59]  # the resume
        assert axis.get_xlabel() == "optimiser step"
    assert [axis.get_yscale() for axis in axes] == ["linear", "log", "linear", "linear"]
    save_training_curves({}, tmp_path / "none.png", "run")
    assert "no training metrics" in drawn[tmp_path / "none.png"].axes[0].texts[0].get_text()


def test_importing_the_package_leaves_matplotlibs_backend_alone() -> None:
    script = (
        "import matplotlib\n"
        "matplotlib.use('svg')\n"
        "import poisson_vae, poisson_vae.figures, poisson_vae.evaluation, poisson_vae.compare\n"
        "from poisson_vae import PoissonVAETransformer\n"
        "assert matplotlib.get_backend() == 'svg', matplotlib.get_backend()\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
