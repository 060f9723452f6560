"""The amortisation gap on a tiny trained P-VAE: the sweep trades distortion for sparsity, and
evaluated VAE and sparse-coding runs join the table and figure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from poisson_vae.amortization import amortization_gap
from poisson_vae.cli import main
from poisson_vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from poisson_vae.evaluation import evaluate_run
from poisson_vae.training import train


def _run(out: Path, arch: str = "lin|lin", **model) -> Path:
    config = RunConfig(
        data=DataConfig(n_train=1000, n_valid=300),
        model=ModelConfig(n_latents=24, arch=arch, **model),
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
    assert (
        "argument --lams/--lam: expected comma-separated numbers, got 'a,b'" in capsys.readouterr().err
    )
    assert main(["amortization-gap", str(pvae_run), "--algorithm", "omp"]) == 2
    assert "argument --algorithm: invalid choice: 'omp'" in capsys.readouterr().err
    mlp = _run(tmp_path / "mlp", arch="lin|mlp")
    with pytest.raises(ValueError, match="needs a linear decoder"):
        amortization_gap(mlp)


@pytest.fixture(scope="module")
def sparse_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny LCA run on the P-VAE's data, evaluated."""
    out = tmp_path_factory.mktemp("sparse") / "lca"
    flags = ["--n-train", "1000", "--n-valid", "300", "--n-atoms", "32", "--batch-size", "250"]
    flags += ["--lam", "0.5", "--epochs", "1", "--no-progress", "--non-negative"]
    assert main(["sparse-coding", "train", "--out", str(out), *flags]) == 0
    evaluate_run(out, gabor=False)
    return out


def test_compare_adds_evaluated_runs(
    pvae_run: Path, sparse_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    evaluated = evaluate_run(pvae_run, gabor=False)
    out = tmp_path / "gap"
    command = ["amortization-gap", str(pvae_run), "--lam", "0.3,1", "--n-samples", "150"]
    command += ["--out", str(out), "--compare", f"{pvae_run},{sparse_run}"]
    assert main(command) == 0
    assert "lca K=32 lam=0.5 (1 epoch), seed 0: mse_map" in capsys.readouterr().out
    rows = json.loads((out / "amortization_gap.json").read_text())
    assert [row.get("run") for row in rows] == [None, None, None, str(pvae_run), str(sparse_run)]
    vae, coder = rows[3:]
    assert vae["mse_map"] == evaluated["mse_map"] and vae["n_samples"] == 300
    assert vae["source"].startswith("poisson lin|lin") and vae["lam"] is None
    assert coder["source"] == "lca K=32 lam=0.5 (1 epoch), seed 0" and coder["lam"] == 0.5
    assert rows[1]["n_samples"] == 150  # the sweep's samples, beside the runs' whole sets
    table = (out / "amortization_gap.md").read_text()
    assert "| lca K=32 lam=0.5 (1 epoch), seed 0 | 0.5 |" in table
    assert "| poisson lin\\|lin mc" in table  # the pipe escaped: one cell, not two
    assert "Rows of other runs (`--compare`)" in table
    assert (out / "rate_distortion.png").stat().st_size > 1000


def test_compare_refusals(
    pvae_run: Path, sparse_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "gap"
    fresh = tmp_path / "fresh"
    shutil.copytree(sparse_run, fresh, ignore=shutil.ignore_patterns("eval"))
    command = ["amortization-gap", str(pvae_run), "--lam", "0.5", "--out", str(out)]
    assert main([*command, "--compare", str(fresh)]) == 2
    assert f"run `pvae evaluate {fresh}` first" in capsys.readouterr().err
    other = tmp_path / "other"
    shutil.copytree(sparse_run, other)
    config = json.loads((other / "config.json").read_text())
    config["data"]["data"] = "mnist"
    (other / "config.json").write_text(json.dumps(config))
    assert main([*command, "--compare", str(other)]) == 2
    assert f"--compare {other} was trained on mnist, the VAE on natural16" in capsys.readouterr().err
    assert not out.exists()  # refused before any work


@pytest.mark.parametrize("value", ["0", "-3"])
def test_n_samples_must_be_positive(
    pvae_run: Path, tmp_path: Path, value: str, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "gap"
    command = ["amortization-gap", str(pvae_run), "--n-samples", value, "--out", str(out)]
    assert main(command) == 2
    assert f"--n-samples must be a positive integer, got {value}" in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="n_iterations must be a positive integer, got 0"):
        amortization_gap(pvae_run, n_iterations=0)


def test_an_iterative_vae_has_no_gap_to_measure(tmp_path: Path) -> None:
    from poisson_vae.estimators import PoissonVAETransformer

    run = _run(tmp_path / "run", inference="iterative", n_steps=2)
    with pytest.raises(ValueError, match="is an iterative VAE: it has no encoder"):
        amortization_gap(run, lams=(0.5,))
    with pytest.raises(ValueError, match="holds an iterative VAE"):
        PoissonVAETransformer.from_checkpoint(run)
