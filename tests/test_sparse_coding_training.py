"""pvae sparse-coding train: a tiny dictionary-learning run, resume, refusals, and pvae evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from poisson_vae.cli import main

TINY = ["--n-train", "1000", "--n-valid", "300", "--n-atoms", "32", "--batch-size", "250"]
TINY += ["--lam", "0.5", "--no-progress"]


def test_train_resume_and_evaluate(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "lca"
    assert main(["sparse-coding", "train", "--out", str(out), "--epochs", "1", *TINY]) == 0
    first = load_file(out / "dictionary.safetensors")["dictionary"]
    assert first.shape == (256, 32)
    assert torch.allclose(first.norm(dim=0), torch.ones(32), atol=1e-5)  # unit-norm atoms
    assert main(["sparse-coding", "train", "--out", str(out), "--epochs", "1", *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["sparse-coding", "train", "--out", str(out), "--resume", "--lam", "5"]) == 2
    assert "--lam differ from the run being resumed" in capsys.readouterr().err
    # resuming reads the run's own settings: only the new epoch count is given
    assert main(["sparse-coding", "train", "--out", str(out), "--resume", "--epochs", "3"]) == 0
    objectives = [
        float(line.split(",")[1]) for line in (out / "logs" / "metrics.csv").read_text().split()
    ]
    assert len(objectives) == 3 and objectives[-1] < objectives[0]  # resumed at epoch 2; falls
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["algorithm"] == "lca" and 0 < metrics["portion_zeros"] < 1
    assert (out / "dictionary.png").is_file()
    assert main(["evaluate", str(out)]) == 0
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())
    assert evaluated["mse_map"] == pytest.approx(metrics["mse_map"], rel=1e-4)
    assert "gabor" in evaluated and "| SSE | mse_map |" in (out / "eval" / "report.md").read_text()


def test_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["sparse-coding", "train", "--out", str(out), "--algorithm", "omp", *TINY]) == 2
    assert "--algorithm 'omp' is unknown" in capsys.readouterr().err
    assert main(["sparse-coding", "train", "--out", str(out), *TINY, "--lam", "-1"]) == 2
    assert "--lam must be positive" in capsys.readouterr().err
    assert not out.exists()


def test_resume_refuses_a_vae_run_and_leaves_it_intact(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    vae = tmp_path / "vae"
    flags = ["--n-train", "600", "--n-valid", "200", "--n-latents", "8", "--batch-size", "200"]
    assert main(["train", "--out", str(vae), "--epochs", "1", "--no-progress", *flags]) == 0
    before = (vae / "metrics.json").read_bytes()
    assert main(["sparse-coding", "train", "--out", str(vae), "--resume", *TINY]) == 2
    assert "holds a VAE run, not a sparse-coding run" in capsys.readouterr().err
    assert (vae / "metrics.json").read_bytes() == before
