"""Dictionary figures."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import torch

from poisson_vae.figures import atom_mosaic, save_dictionary_figure


def test_mosaic_layout_and_scaling() -> None:
    atoms = np.random.default_rng(0).normal(size=(10, 4, 4))
    mosaic = atom_mosaic(atoms, n_columns=5)
    assert mosaic.shape == (2 * 5 - 1, 5 * 5 - 1)
    assert np.nanmax(np.abs(mosaic)) == 1.0
    assert np.allclose(mosaic[:4, :4], atoms[0] / np.abs(atoms[0]).max())
    assert np.isnan(mosaic[4]).all()


def test_dictionary_figure_is_a_png(tmp_path) -> None:
    path = save_dictionary_figure(
        torch.randn(256, 64), (16, 16), tmp_path / "d.png", order=torch.arange(64).flip(0)
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sample_grid_is_a_png(tmp_path) -> None:
    from poisson_vae.figures import save_sample_grid

    path = save_sample_grid(torch.randn(10, 1, 16, 16), tmp_path / "s.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


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
