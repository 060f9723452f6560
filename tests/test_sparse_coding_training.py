"""pvae sparse-coding train: a tiny dictionary-learning run, resume, refusals, and pvae evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from poisson_vae.cli import main
from poisson_vae.config import SparseCodingConfig
from poisson_vae.runs import Run
from poisson_vae.sparse_coding.training import inference_method

CHECKPOINT = Run.CHECKPOINT["sparse-coding"]

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
    assert "--lam differs from the run being resumed" in capsys.readouterr().err
    # resuming reads the run's own settings: only the new epoch count is given
    assert main(["sparse-coding", "train", "--out", str(out), "--resume", "--epochs", "3"]) == 0
    header, *rows = (out / "logs" / "metrics.csv").read_text().split()
    assert header == "epoch,objective" and [row.split(",")[0] for row in rows] == ["1", "2", "3"]
    objectives = [float(row.split(",")[1]) for row in rows]
    assert objectives[-1] < objectives[0]  # resumed at epoch 2; falls
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["algorithm"] == "lca" and 0 < metrics["portion_zeros"] < 1
    assert (out / "dictionary.png").is_file()
    log = (out / "train.log").read_text()  # both starts, one line per epoch
    assert all(f"epoch {epoch}/" in log for epoch in (1, 2, 3)), log
    assert main(["evaluate", str(out)]) == 0
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())
    assert evaluated["mse_map"] == pytest.approx(metrics["mse_map"], rel=1e-4)
    assert "gabor" in evaluated and "| SSE | mse_map |" in (out / "eval" / "report.md").read_text()


def test_bad_options_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["sparse-coding", "train", "--out", str(out), "--algorithm", "omp", *TINY]) == 2
    assert "argument --algorithm: invalid choice: 'omp'" in capsys.readouterr().err
    assert main(["sparse-coding", "train", "--out", str(out), *TINY, "--lam", "-1"]) == 2
    assert "--lam must be a finite number > 0, got -1.0" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--tol", "-0.1"], "--tol must be a finite number >= 0, got -0.1"),
        (["--tol", "nan"], "--tol must be a finite number >= 0, got nan"),
        (["--lr", "0"], "--lr must be a finite number > 0, got 0.0"),
        (["--n-iterations", "0"], "--n-iterations must be a positive integer, got 0"),
        (["--epochs", "-1"], "--epochs must be a positive integer, got -1"),
        (["--seed", "-1"], "--seed must be a whole number in [0, 2^32), got -1"),
        (["--threshold", "medium"], "argument --threshold: invalid choice: 'medium'"),
        (["--algorithm", "fista", "--threshold", "soft"], "--threshold applies to --algorithm lca"),
        (["--accelerator", "tpu"], "argument --accelerator: invalid choice: 'tpu'"),
        *(
            []
            if torch.cuda.is_available()
            else [(["--accelerator", "gpu"], "--accelerator gpu: no CUDA device is visible")]
        ),
    ],
)
def test_every_option_is_checked_before_the_run_folder_is_made(
    tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str], message: str
) -> None:
    out = tmp_path / "run"
    assert main(["sparse-coding", "train", "--out", str(out), *TINY, *flags]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()  # no config.json of a run that cannot start


def test_config_file_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_atoms must be a positive integer, got 2.5"):
        SparseCodingConfig(n_atoms=2.5)
    with pytest.raises(ValueError, match="non_negative must be true or false, got 'yes'"):
        SparseCodingConfig(non_negative="yes")
    with pytest.raises(ValueError, match="threshold applies to algorithm lca only"):
        SparseCodingConfig(algorithm="ista", threshold="hard")


def test_hard_threshold_lca_run(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "hard"
    flags = [*TINY, "--epochs", "1", "--threshold", "hard", "--n-iterations", "100"]
    assert main(["sparse-coding", "train", "--out", str(out), *flags]) == 0
    assert json.loads((out / "config.json").read_text())["sparse_coding"]["threshold"] == "hard"
    assert json.loads((out / "metrics.json").read_text())["threshold"] == "hard"
    assert inference_method(SparseCodingConfig(threshold="hard")).threshold == "hard"
    assert main(["evaluate", str(out), "--no-gabor"]) == 0
    evaluated = json.loads((out / "eval" / "metrics.json").read_text())
    assert evaluated["method"] == "hard threshold, lambda 0.5"
    # resuming keeps the run's threshold: a different one is refused
    assert main(["sparse-coding", "train", "--out", str(out), "--resume", "--threshold", "soft"]) == 2
    assert "--threshold differs from the run being resumed" in capsys.readouterr().err


def test_resume_after_a_stop_between_log_row_and_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["sparse-coding", "train", "--out", str(out), "--epochs", "2", *TINY]) == 0
    log = out / "logs" / "metrics.csv"
    # As if stopped after epoch 2's row was written but before its checkpoint was saved.
    state = load_file(out / CHECKPOINT)
    save_file(state | {"epoch": torch.tensor(1)}, out / CHECKPOINT)
    assert main(["sparse-coding", "train", "--out", str(out), "--resume", "--epochs", "3"]) == 0
    header, *rows = log.read_text().split()
    assert header == "epoch,objective"
    assert [row.split(",")[0] for row in rows] == ["1", "2", "3"]  # one row per finished epoch


def test_resume_of_a_log_without_header(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["sparse-coding", "train", "--out", str(out), "--epochs", "1", *TINY]) == 0
    log = out / "logs" / "metrics.csv"
    log.write_text("".join(log.read_text().splitlines(keepends=True)[1:]) + "2,0.5\n")
    assert main(["sparse-coding", "train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
    header, *rows = log.read_text().split()
    assert header == "epoch,objective" and [row.split(",")[0] for row in rows] == ["1", "2"]
    assert rows[1] != "2,0.5"  # the stale row of an unfinished epoch was dropped


def test_resume_of_a_run_older_than_an_option(tmp_path: Path) -> None:
    out = tmp_path / "run"
    assert main(["sparse-coding", "train", "--out", str(out), "--epochs", "1", *TINY]) == 0
    config = json.loads((out / "config.json").read_text())
    for key in ("threshold", "accelerator"):  # options the run's version did not have
        del config["sparse_coding"][key]
    (out / "config.json").write_text(json.dumps(config))
    resume = ["sparse-coding", "train", "--out", str(out), "--resume", "--epochs", "2"]
    assert main([*resume, "--threshold", "soft"]) == 0  # the default the run had


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_learns_on_cuda_and_writes_cpu_files(tmp_path: Path) -> None:
    out = tmp_path / "lca"
    assert (
        main(
            ["sparse-coding", "train", "--out", str(out), "--epochs", "1", "--accelerator", "gpu", *TINY]
        )
        == 0
    )
    dictionary = load_file(out / "dictionary.safetensors")["dictionary"]
    assert dictionary.device.type == "cpu" and dictionary.shape == (256, 32)
    assert main(["sparse-coding", "train", "--out", str(out), "--resume", "--epochs", "2"]) == 0
