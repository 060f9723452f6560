"""pvae evaluate end to end on tiny runs: metrics, report, figures, Gabor fits and geometry."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from poisson_vae.cli import main
from poisson_vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from poisson_vae.errors import ConfigError
from poisson_vae.evaluation import evaluate_run
from poisson_vae.results import flat_metrics
from poisson_vae.training import train
from poisson_vae.vae import CheckpointError


def _tiny_run(out: Path, data: DataConfig, **model) -> Path:
    config = RunConfig(
        data=data,
        model=ModelConfig(**model),
        train=TrainConfig(epochs=2, batch_size=100, warmup_epochs=1, val_every=1, progress=False),
    )
    train(config, out)
    return out


@pytest.fixture(scope="module")
def natural_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("natural") / "run"
    return _tiny_run(out, DataConfig(n_train=1000, n_valid=300), n_latents=24)


def test_evaluate_writes_metrics_report_and_figures(natural_run: Path, drawn: dict) -> None:
    metrics = evaluate_run(natural_run)
    out = natural_run / "eval"
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["nelbo"] == pytest.approx(metrics["nelbo"])
    assert stored["nelbo"] == pytest.approx(stored["sse"] + stored["kl"])
    assert 0 <= stored["r2"] <= 1 and 0 <= stored["lifetime_sparsity"] <= 1
    assert stored["n_active"] == round(stored["active_fraction"] * 24)
    assert len(stored["share_per_latent"]) == 24 and stored["active_rule"]
    gabor = stored["gabor"]
    assert gabor["n"] == stored["n_active"] and 0 <= gabor["fraction_gabor"] <= 1
    assert "knn" not in stored  # natural16 has no labels
    figures = ("kl_per_latent", "code_histogram", "reconstructions", "samples", "dictionary")
    for name in (*figures, "training_curves"):
        assert (out / f"{name}.png").stat().st_size > 1000, name
    assert (out / "gabor_fits.png").is_file()
    report = (out / "report.md").read_text()
    assert "| NELBO | SSE | KL | mse_map |" in report and "fit a 2-D Gabor" in report
    assert "R^2 is pooled" in report and "Its mean per sample" in report
    assert "![training curves](training_curves.png)" in report
    # the curves are the run's logs: 2 epochs of 10 steps, validated after each
    curves = {axis.get_title(): axis for axis in drawn[out / "training_curves.png"].axes}
    nelbo = curves["validation NELBO"].lines[0].get_xydata()
    assert nelbo[:, 0].tolist() == [9, 19] and np.isfinite(nelbo).all()
    assert len(curves["temperature"].lines[0].get_xdata()) == 20 // 10  # logged every 10 steps
    assert (natural_run / "training_curves.png").stat().st_size > 1000  # written by training


def test_evaluate_cli_and_its_errors(
    natural_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert main(["evaluate", str(natural_run), "--no-gabor", "--seed", "3"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert "gabor" not in json.loads((natural_run / "eval" / "metrics.json").read_text())
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "has no config.json" in capsys.readouterr().err
    with pytest.raises(CheckpointError):
        evaluate_run(tmp_path)


def test_evaluate_measures_geometry_on_labelled_data(tmp_path: Path) -> None:
    from idx_files import write_mnist_layout

    write_mnist_layout(tmp_path / "digits", n_train=400, n_valid=200)
    data = DataConfig(data="mnist", data_dir=str(tmp_path / "digits"))
    run = _tiny_run(tmp_path / "run", data, n_latents=8, latent="gaussian")
    metrics = evaluate_run(run, gabor=False)
    # 200 validation samples: a pool of 100, so only the whole pool is drawn
    assert list(metrics["knn"]) == ["100"] and metrics["knn"]["100"]["n_draws"] == 1
    assert 0 <= metrics["knn"]["100"]["mean"] <= 1
    assert metrics["shattering"]["n_splits"] == 126 and 0 <= metrics["shattering"]["mean"] <= 1
    assert metrics["shattering"]["train_samples"] == 400
    assert "Representation geometry" in (run / "eval" / "report.md").read_text()
    quick = evaluate_run(run, gabor=False, shattering_samples=150)["shattering"]
    assert quick["train_samples"] == 150 and quick["n_splits"] == 126


def test_a_run_records_its_knn_curve_over_training_and_resumes_it(tmp_path: Path) -> None:
    from idx_files import write_mnist_layout

    write_mnist_layout(tmp_path / "digits", n_train=400, n_valid=600)
    data = DataConfig(data="mnist", data_dir=str(tmp_path / "digits"))
    config = RunConfig(
        data=data,
        model=ModelConfig(n_latents=8, latent="gaussian"),
        train=TrainConfig(
            epochs=2, batch_size=100, warmup_epochs=1, val_every=1, knn_curve=True, progress=False
        ),
    )
    train(config, tmp_path / "run")
    longer = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=3))
    train(longer, tmp_path / "run", resume=True)  # the curve goes on where it stopped
    metrics = evaluate_run(tmp_path / "run", gabor=False, shattering_samples=150)
    curve = metrics["knn_curve"]
    assert curve["epoch"] == [1, 2, 3] and list(curve) == ["epoch", "200"]  # a pool of 300
    assert all(0 <= accuracy <= 1 for accuracy in curve["200"])
    flat = flat_metrics(metrics)
    assert [flat[f"knn_200_e{epoch}"] for epoch in (1, 2, 3)] == curve["200"]
    # the last validation's 20 draws against the evaluation's 100, on the same model
    assert abs(flat["knn_200_e3"] - flat["knn_200"]) < 0.1


def test_a_knn_curve_on_unlabelled_data_is_refused(tmp_path: Path) -> None:
    config = RunConfig(
        data=DataConfig(n_train=200, n_valid=100),
        model=ModelConfig(n_latents=8),
        train=TrainConfig(epochs=1, batch_size=100, knn_curve=True, progress=False),
    )
    with pytest.raises(ConfigError, match="knn_curve needs labelled data; natural16 has no labels"):
        train(config, tmp_path / "run")
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_iterative_run_on_labelled_data_probes_its_rates(tmp_path: Path, capsys) -> None:
    from idx_files import write_mnist_layout

    write_mnist_layout(tmp_path / "digits", n_train=400, n_valid=200)
    data = DataConfig(data="mnist", data_dir=str(tmp_path / "digits"))
    run = _tiny_run(tmp_path / "run", data, n_latents=8, inference="iterative", n_steps=2)
    assert main(["evaluate", str(run), "--n-steps", "20", "--probe-samples", "300"]) == 0
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    probe = metrics["linear_probe"]
    assert probe["step"] == [1, 16, 20] and all(0 <= a <= 1 for a in probe["accuracy"])
    assert "Linear probe of the firing rates" in (run / "eval" / "report.md").read_text()
    assert "knn" in metrics  # beside the KNN read-out
    assert main(["evaluate", str(run), "--probe-samples", "-1"]) != 0
    assert "--probe-samples must be 0 (all) or more, got -1" in capsys.readouterr().err


def test_an_iterative_run_trains_and_is_evaluated_over_its_steps_from_the_cli(
    tmp_path: Path, capsys
) -> None:
    run = tmp_path / "run"
    data = ["--n-train", "300", "--n-valid", "120", "--epochs", "2", "--batch-size", "100"]
    model = ["--inference", "iterative", "--n-steps", "3", "--n-latents", "16", "--recipe", "iterative"]
    assert main(["train", "--out", str(run), *data, *model, "--beta", "2", "--no-progress"]) == 0
    assert main(["evaluate", str(run), "--n-steps", "40"]) == 0
    assert "r2_mean" in capsys.readouterr().out
    metrics = json.loads((run / "eval" / "metrics.json").read_text())
    assert metrics["n_steps"] == 40 and metrics["training_steps"] == 3
    assert metrics["convergence"]["step"] == list(range(1, 41))
    assert metrics["r2_mean"] == pytest.approx(metrics["convergence"]["r2"][-1])
    report = (run / "eval" / "report.md").read_text()
    assert "iterative inference" in report and "After 40 steps of inference (3 in training)" in report
    for name in ("convergence.png", "dictionary.png", "reconstructions.png"):
        assert (run / "eval" / name).stat().st_size > 1000, name
    assert main(["evaluate", str(run), "--n-steps", "0"]) != 0
    assert "--n-steps must be at least 1, got 0" in capsys.readouterr().err


def test_two_seeds_evaluated_then_compared(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"seed{seed}"
        config = RunConfig(
            data=DataConfig(n_train=600, n_valid=200),
            model=ModelConfig(n_latents=12),
            train=TrainConfig(epochs=1, batch_size=100, warmup_epochs=1, progress=False, seed=seed),
        )
        train(config, run)
        assert main(["evaluate", str(run), "--no-gabor"]) == 0
        runs.append(str(run))
    assert main(["compare", *runs, "--out", str(tmp_path / "cmp")]) == 0
    table = (tmp_path / "cmp" / "COMPARE.md").read_text()
    assert (
        "poisson lin\\|lin mc K=12 beta=1 (1 epoch)" in table
        and (tmp_path / "cmp" / "rate_distortion.png").is_file()
    )
    assert main(["compare", runs[0], str(tmp_path / "missing")]) == 2
    assert "config.json" in capsys.readouterr().err
