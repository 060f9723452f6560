"""The shipped models load offline and reproduce the validation metrics recorded when they were
trained."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from poisson_vae import load_pretrained
from poisson_vae.cli import main
from poisson_vae.config import DataConfig
from poisson_vae.metrics import evaluate_model
from poisson_vae.pretrained import PRETRAINED, pretrained_metrics, pretrained_name, pretrained_path
from poisson_vae.runs import Run


@pytest.fixture(scope="module")
def natural16_valid() -> torch.Tensor:
    return torch.from_numpy(DataConfig(data="natural16").load()["valid"])


@pytest.mark.parametrize("name", list(PRETRAINED))
def test_a_shipped_model_reproduces_its_recorded_validation_metrics(
    name: str, natural16_valid: torch.Tensor
) -> None:
    """Recomputed on the 20,000 natural16 validation patches with the recorded seed. The hard
    samples come from the counter-based generator, identical on every machine; what differs
    between CPUs is float32 rounding of the rates and the sums (relative 1e-6), which can at most
    flip the rare count whose arrival lies within rounding of t = 1: 1e-3 relative on the losses
    and 1e-3 absolute on the sparsities leave room for that and for nothing else."""
    recorded = pretrained_metrics(name)
    model = load_pretrained(name)
    assert model.config.latent == recorded["latent"] and model.config.n_latents == 512
    assert recorded["n_samples"] == len(natural16_valid) == 20_000
    metrics = evaluate_model(model, natural16_valid, seed=recorded["seed"])
    for key in ("nelbo", "sse", "kl", "mse_map"):
        assert metrics[key] == pytest.approx(recorded[key], rel=1e-3), key
    for key in ("portion_zeros", "lifetime_sparsity", "population_sparsity"):
        assert metrics[key] == pytest.approx(recorded[key], abs=1e-3), key
    assert metrics["n_active"] == recorded["n_active"]


def test_the_pvae_is_sparser_than_its_gaussian_twin() -> None:
    pvae, gvae = pretrained_metrics("natural16-pvae"), pretrained_metrics("natural16-gvae")
    assert pvae["portion_zeros"] > 0.5 > gvae["portion_zeros"]
    assert pvae["lifetime_sparsity"] > gvae["lifetime_sparsity"]


def test_a_shipped_model_is_named_by_its_folder() -> None:
    model = load_pretrained("pretrained:natural16-pvae")
    assert not model.training
    assert pretrained_name(pretrained_path("natural16-gvae")) == "natural16-gvae"
    assert pretrained_name(pretrained_path("natural16-gvae").parent) is None


def test_an_unknown_name_is_refused_with_the_names_that_exist() -> None:
    with pytest.raises(ValueError, match="ships natural16-pvae, natural16-gvae"):
        load_pretrained("natural16-lvae")


def test_every_shipped_model_records_how_it_was_trained() -> None:
    for name in PRETRAINED:
        training = (pretrained_path(name) / "TRAINING.md").read_text()
        assert "pvae train" in training and "commit" in training
        history = Run(pretrained_path(name)).training_history()  # its training log ships too
        assert history.columns["val/nelbo"][-1, 1] == pytest.approx(
            pretrained_metrics(name)["nelbo"], rel=0.05
        )


def test_the_command_line_samples_a_shipped_model_into_the_current_folder(
    tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["sample", "pretrained:natural16-gvae", "--n-samples", "16"]) == 0
    assert (tmp_path / "natural16-gvae" / "samples.png").stat().st_size > 0
    assert main(["sample", "pretrained:natural16-xvae"]) == 2
    assert "no pretrained model named 'natural16-xvae'" in capsys.readouterr().err


def test_the_command_line_evaluates_a_shipped_model_without_writing_into_the_package(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(path.name for path in pretrained_path("natural16-pvae").iterdir())
    assert main(["evaluate", "pretrained:natural16-pvae", "--no-gabor"]) == 0
    assert (tmp_path / "natural16-pvae" / "eval" / "report.md").is_file()
    assert sorted(path.name for path in pretrained_path("natural16-pvae").iterdir()) == before


def test_the_wheel_carries_every_file_of_the_package(tmp_path) -> None:
    """The shipped models (and every other non-Python file) reach users only if the wheel's
    package-data patterns match them: build the wheel from a copy of the tree and compare."""
    root = Path(__file__).parents[1]
    tree = tmp_path / "tree"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(root / "src", tree / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(root / name, tree / name)
    build = "from setuptools import build_meta; build_meta.build_wheel('dist')"
    result = subprocess.run(
        [sys.executable, "-c", build], cwd=tree, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = (tree / "dist").glob("poisson_vae-*.whl")
    files = (tree / "src" / "poisson_vae").rglob("*")
    expected = {path.relative_to(tree / "src").as_posix() for path in files if path.is_file()}
    with zipfile.ZipFile(wheel) as archive:
        carried = {name for name in archive.namelist() if name.startswith("poisson_vae/")}
    assert expected - carried == set()
    assert any(name.endswith("natural16-pvae/model.safetensors") for name in carried)
