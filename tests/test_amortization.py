"""The amortisation gap on a tiny trained P-VAE: the sweep trades distortion for sparsity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from poisson_vae.amortization import amortization_gap
from poisson_vae.cli import main
from poisson_vae.training import DataConfig, RunConfig, TrainConfig, train
from poisson_vae.vae import ModelConfig


def _run(out: Path, arch: str = "lin|lin") -> Path:
    config = RunConfig(
        data=DataConfig(n_train=1000, n_valid=300),
        model=ModelConfig(n_latents=24, arch=arch),
        train=TrainConfig(epochs=2, batch_size=100, warmup_epochs=1, progress=False),
    )
    train(config, out)
    return out


@pytest.fixture(scope="module")
def pvae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _run(tmp_path_factory.mktemp("gap") / "run")


def test_sweep_trades_distortion_for_sparsity(pvae_run: Path) -> None:
    rows = amortization_gap(pvae_run, "fista", (0.05, 0.5, 5.0), n_samples=200)
    assert rows[0]["source"] == "VAE encoder" and len(rows) == 4
    sweep = rows[1:]
    errors = [row["mse_map"] for row in sweep]
    sparsity = [row["portion_zeros"] for row in sweep]
    assert errors == sorted(errors) and sparsity == sorted(sparsity) and errors[0] < errors[-1]
    out = pvae_run / "amortization_gap"
    assert json.loads((out / "amortization_gap.json").read_text())[1]["lam"] == 0.05
    assert "| FISTA on the VAE's dictionary | 0.5 |" in (out / "amortization_gap.md").read_text()
    assert (out / "rate_distortion.png").stat().st_size > 1000


def test_cli_and_refusals(pvae_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gap"
    assert (
        main(
            ["amortization-gap", str(pvae_run), "--lam", "0.5", "--n-samples", "100", "--out", str(out)]
        )
        == 0
    )
    assert "LCA on the VAE's dictionary lambda 0.5" in capsys.readouterr().out
    assert main(["amortization-gap", str(pvae_run), "--lam", "a,b"]) == 2
    assert "--lam 'a,b' must be comma-separated numbers" in capsys.readouterr().err
    assert main(["amortization-gap", str(pvae_run), "--algorithm", "omp"]) == 2
    assert "--algorithm 'omp' is unknown" in capsys.readouterr().err
    mlp = _run(tmp_path / "mlp", arch="lin|mlp")
    with pytest.raises(ValueError, match="needs a linear decoder"):
        amortization_gap(mlp)
