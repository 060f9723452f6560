"""The pvae command line: a tiny run end to end, and one-line errors for bad input."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import poisson_vae
from poisson_vae.cli import build_parser, main

TINY = ["--n-train", "600", "--n-valid", "200", "--n-latents", "16", "--batch-size", "200"]
TINY += ["--warmup-epochs", "1", "--no-progress"]


def run_cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_end_to_end_and_resume_refusals(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    code, stdout, _ = run_cli(capsys, "train", "--out", str(out), "--epochs", "2", *TINY)
    assert code == 0
    assert "validation: nelbo" in stdout
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["n_latents"] == 16 and config["train"]["epochs"] == 2
    assert config["model"]["input_shape"] == [1, 16, 16]
    for name in ("model.safetensors", "dictionary.png", "metrics.json", "checkpoints/last.ckpt"):
        assert (out / name).is_file()

    code, _, err = run_cli(capsys, "train", "--out", str(out), "--epochs", "2", *TINY)
    assert code == 2 and "already holds a run" in err and err.count("\n") == 1

    code, _, err = run_cli(capsys, "train", "--out", str(out), "--resume", "--n-latents", "32")
    assert code == 2 and "--n-latents differs from the run being resumed" in err

    code, stdout, _ = run_cli(capsys, "train", "--out", str(out), "--resume", "--epochs", "3")
    assert code == 0 and "validation" in stdout

    for flag, value in (("--recipe", "paper"), ("--config", str(out / "config.json"))):
        code, _, err = run_cli(capsys, "train", "--out", str(out), "--resume", flag, value)
        assert code == 2 and f"{flag} applies to a new run" in err

    (out / "checkpoints" / "last.ckpt").write_bytes(b"not a checkpoint")
    code, _, err = run_cli(capsys, "train", "--out", str(out), "--resume", "--epochs", "4")
    assert code == 2 and "last.ckpt is unreadable" in err

    (out / "config.json").unlink()
    code, _, err = run_cli(capsys, "train", "--out", str(out), "--resume", *TINY)
    assert code == 2 and "has no" in err and "config.json beside it" in err
    assert not (out / "config.json").exists()


def test_config_file_with_flag_overrides(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"model": {"n_latents": 12}, "train": {"epochs": 1, "seed": 4}}))
    out = tmp_path / "run"
    code, _, _ = run_cli(
        capsys,
        "train",
        "--out",
        str(out),
        "--config",
        str(config),
        "--seed",
        "5",
        *TINY[:2],
        *TINY[8:],
    )
    assert code == 0
    stored = json.loads((out / "config.json").read_text())
    assert stored["model"]["n_latents"] == 12 and stored["train"]["seed"] == 5


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--temperature-end", "-0.1"], "--temperature-end must be a finite number >= 0"),
        (["--latent", "gamma"], "argument --latent: invalid choice: 'gamma'"),
        (["--arch", "lin"], "--arch 'lin' is malformed"),
        (["--arch", "cnn|lin"], "unknown network 'cnn'"),
        (["--n-latents", "0"], "--n-latents must be a positive integer"),
        (["--epochs", "0"], "--epochs must be a positive integer, got 0"),
        (["--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        (["--devices", "two"], "--devices must be a positive count"),
        (["--data", "imagenet"], "--data must be a dataset of `pvae data list` or npy:PATH"),
        (["--config", "missing.json"], "--config missing.json does not exist"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str], message: str
) -> None:
    out = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", "--out", str(out), *flags)
    assert code == 2
    assert err.startswith("pvae: error: ") and message in err and err.count("\n") == 1
    assert not (out / "config.json").exists()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"data": {"contrast_normalise": "false"}}, "data.contrast_normalise must be true or false"),
        ({"train": {"epochs": 1.5}}, "train.epochs must be a positive integer, got 1.5"),
        ({"train": {"seed": "1"}}, "train.seed must be a whole number in [0, 2^32), got '1'"),
        ({"model": {"arch": 5}}, "model.arch must be a string 'encoder|decoder', got 5"),
        ({"data": {"n_train": "200"}}, "data.n_train must be a positive integer, got '200'"),
        ({"data": "mnist"}, "section 'data' must be an object of options"),
    ],
)
def test_config_values_of_the_wrong_type_are_named(
    tmp_path: Path, capsys: pytest.CaptureFixture, document: dict, message: str
) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps(document))
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--config", str(config))
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--seed", "-1"], "--seed must be a whole number in [0, 2^32)"),
        (["--data-seed", "-1"], "--data-seed must be a whole number in [0, 2^32)"),
        (["--accelerator", "tpu"], "argument --accelerator: invalid choice: 'tpu'"),
    ],
)
def test_out_of_range_hardware_and_seeds_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, flags: list[str], message: str
) -> None:
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), *flags)
    assert code == 2 and message in err and err.count("\n") == 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_a_gpu_asked_for_and_absent_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(
        capsys, "train", "--out", str(tmp_path / "run"), "--accelerator", "gpu", *TINY
    )
    assert code == 2 and "no CUDA device is visible" in err and err.count("\n") == 1


def test_out_that_is_a_file_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("")
    code, _, err = run_cli(capsys, "train", "--out", str(afile), *TINY)
    assert code == 2 and "is a file, not a folder" in err
    code, _, err = run_cli(capsys, "train", "--out", str(afile / "run"), *TINY)
    assert code == 2 and err.startswith("pvae: error: ") and err.count("\n") == 1


def test_a_run_on_user_arrays_is_usable_from_any_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.random.default_rng(0).normal(size=(400, 8, 8)).astype(np.float32)
    (tmp_path / "work").mkdir()
    np.save(tmp_path / "work" / "patches.npy", data)
    monkeypatch.chdir(tmp_path / "work")
    flags = ["--data", "npy:patches.npy", "--n-latents", "8", "--batch-size", "100", "--no-progress"]
    assert run_cli(capsys, "train", "--out", "run", "--epochs", "1", *flags)[0] == 0
    stored = json.loads((tmp_path / "work" / "run" / "config.json").read_text())
    assert stored["data"]["data"] == f"npy:{tmp_path / 'work' / 'patches.npy'}"
    # the same relative flag is the same data when resuming from the same folder ...
    assert run_cli(capsys, "train", "--out", "run", "--resume", "--epochs", "2", *flags)[0] == 0
    # ... and the run evaluates from anywhere
    monkeypatch.chdir(tmp_path)
    assert run_cli(capsys, "evaluate", "work/run", "--no-gabor")[0] == 0


def test_corrupt_config_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    config = tmp_path / "broken.json"
    config.write_text("{")
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--config", str(config))
    assert code == 2 and "broken.json is not valid JSON" in err
    config.write_text(json.dumps({"model": {"width": 3}}))
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--config", str(config))
    assert code == 2 and "unknown option(s) ['width']" in err


def test_console_script_is_installed() -> None:
    executable = shutil.which("pvae") or str(Path(sys.executable).with_name("pvae"))
    result = subprocess.run([executable, "train", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "--n-latents" in result.stdout and "--resume" in result.stdout


def test_version_names_the_sampler_of_each_device(capsys: pytest.CaptureFixture) -> None:
    assert main(["--version"]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"pvae {poisson_vae.__version__} (torch {torch.__version__}; CPU")
    assert "sampler: fused on the CPU" in text  # numba is a dependency
    expected = "triton" if importlib.util.find_spec("triton") else "torch"
    assert f"{expected} on CUDA" in text


def test_data_list_shows_every_dataset(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, stdout, _ = run_cli(capsys, "data", "list", "--data-dir", str(tmp_path))
    assert code == 0
    for name in ("natural16", "mnist", "npy:PATH"):
        assert f"{name}  (" in stdout
    assert "licence:" in stdout and "source:" in stdout
    assert "not available: mnist:" in stdout  # the empty --data-dir holds no MNIST files


def test_data_prepare_and_train_on_supplied_mnist_files(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    from idx_files import write_mnist_layout

    write_mnist_layout(tmp_path / "digits", n_train=400, n_valid=100)
    code, stdout, _ = run_cli(capsys, "data", "prepare", "mnist", "--data-dir", str(tmp_path / "digits"))
    assert code == 0 and "train: (400, 1, 28, 28)" in stdout and "valid_labels: (100,)" in stdout
    out = tmp_path / "run"
    flags = ["--data", "mnist", "--data-dir", str(tmp_path / "digits"), "--epochs", "1", "--no-progress"]
    code, _, _ = run_cli(
        capsys, "train", "--out", str(out), *flags, "--n-latents", "8", "--batch-size", "100"
    )
    assert code == 0
    assert json.loads((out / "config.json").read_text())["model"]["input_shape"] == [1, 28, 28]


def test_data_prepare_of_missing_data_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "data", "prepare", "mnist", "--data-dir", str(tmp_path))
    assert code == 2 and "train-images-idx3-ubyte(.gz) is missing" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, "data", "prepare", f"npy:{tmp_path / 'none.npy'}")
    assert code == 2 and "none.npy does not exist" in err


def test_invalid_preprocessing_flags(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "r"), "--whiten-f0", "0.9")
    assert code == 2 and "--whiten-f0 must be a number in (0, 0.5]" in err
    code, _, err = run_cli(capsys, "data", "prepare", "mnist", "--patch-size", "8")
    assert code == 2 and "mnist does not take --patch-size" in err


@pytest.mark.parametrize(
    ("latent", "size", "count"),
    [
        ("poisson", 16, "262,656"),
        ("gaussian", 16, "393,216"),
        ("poisson", 28, "803,328"),
        ("poisson-conv", 16, "1,405,596"),
    ],
)
def test_model_summary_prints_the_parameter_count(
    capsys: pytest.CaptureFixture, latent: str, size: int, count: str
) -> None:
    latent, _, network = latent.partition("-")
    arch = "conv+b|lin" if network else "lin|lin"
    code, stdout, _ = run_cli(
        capsys,
        "model-summary",
        "--latent",
        latent,
        "--arch",
        arch,
        "--n-latents",
        "512",
        "--input-size",
        str(size),
    )
    assert code == 0 and f"trainable parameters: {count}" in stdout
    assert "encoder.linear " in stdout and "decoder.linear " in stdout  # one row per layer


def test_model_summary_names_the_flag_of_a_bad_input_size(capsys: pytest.CaptureFixture) -> None:
    code, _, err = run_cli(capsys, "model-summary", "--input-size", "0")
    assert code == 2 and "--input-size must be a positive integer, got 0" in err


def test_sample_decodes_prior_draws_into_a_png(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from poisson_vae import ModelConfig, build_vae, save_model

    save_model(build_vae(ModelConfig(latent="laplace", n_latents=8)), tmp_path)
    code, stdout, _ = run_cli(capsys, "sample", str(tmp_path), "--n", "12")
    assert "samples.png" in stdout
    assert code == 0 and (tmp_path / "samples.png").read_bytes()[:4] == b"\x89PNG"
    code, _, err = run_cli(capsys, "sample", str(tmp_path / "missing"))
    assert code == 2 and "config.json is missing" in err


def _parsed_config(tmp_path: Path, *argv: str):
    from poisson_vae.cli import _run_config, build_parser

    return _run_config(build_parser().parse_args(["train", "--out", str(tmp_path / "run"), *argv]))


def test_paper_recipe_per_dataset_with_file_and_flag_overrides(tmp_path: Path) -> None:
    mnist = _parsed_config(tmp_path, "--recipe", "paper", "--data", "mnist").train
    assert (mnist.lr, mnist.batch_size, mnist.epochs, mnist.weight_decay) == (2e-3, 200, 1200, 3e-4)
    assert (mnist.grad_clip, mnist.lr_restarts) == (1000.0, 2)
    natural = _parsed_config(tmp_path, "--recipe", "paper").train  # natural16 by default
    assert (natural.lr, natural.batch_size, natural.epochs, natural.lr_restarts) == (5e-3, 1000, 3000, 0)
    assert _parsed_config(tmp_path, "--recipe", "paper", "--data", "cifar16").train.epochs == 1500
    assert _parsed_config(tmp_path, "--recipe", "paper", "--data", "npy:x.npy").train.epochs == 3000
    flagged = _parsed_config(tmp_path, "--recipe", "paper", "--data", "mnist", "--lr", "1e-3").train
    assert flagged.lr == 1e-3 and flagged.batch_size == 200
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data": {"data": "mnist"}, "train": {"epochs": 7}}))
    from_file = _parsed_config(tmp_path, "--recipe", "paper", "--config", str(config)).train
    assert from_file.epochs == 7 and from_file.lr == 2e-3


def test_unknown_recipe_is_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    code, _, err = run_cli(capsys, "train", "--out", str(tmp_path / "run"), "--recipe", "fast")
    assert (
        code == 2 and err.strip() == "pvae: error: --recipe must be one of iterative, paper, got 'fast'"
    )
    assert not (tmp_path / "run").exists()


def test_reproduce_refusals_are_one_line(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert (
        main(["reproduce", "vanhateren16", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")])
        == 2
    )
    assert "suite vanhateren16 needs the vanhateren16 data, which is absent" in capsys.readouterr().err
    assert main(["reproduce", "natural16-zoo", "--workers", "0"]) == 2
    assert "--workers must be a positive integer or 'auto', got 0" in capsys.readouterr().err
    assert main(["reproduce", "natural16-zoo", "--workers", "many"]) == 2
    assert "--workers: must be a positive integer or 'auto', got 'many'" in capsys.readouterr().err
    assert main(["reproduce", "natural16-zoo", "--executor", "dask", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "argument --executor: invalid choice: 'dask'" in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_reproduce_report_only_rewrites_the_report(
    capsys: pytest.CaptureFixture, tmp_path: Path
) -> None:
    out = tmp_path / "zoo"
    assert main(["reproduce", "natural16-zoo", "--report-only", "--out", str(out)]) == 2
    assert "holds no results/ folder: run the suite first" in capsys.readouterr().err
    (out / "results").mkdir(parents=True)
    assert main(["reproduce", "natural16-zoo", "--report-only", "--out", str(out)]) == 0
    report = (out / "REPORT.md").read_text()
    assert "jobs: 0 finished of 24" in report
    assert "pvae reproduce natural16-zoo --report-only --out" in report
    assert f"wrote {out / 'REPORT.md'}" in capsys.readouterr().out


# --- degenerate data and hostile input: one line each, nothing written ----------------------
@pytest.fixture(scope="module")
def finished_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny finished VAE run, a finished sparse-coding run, and their data."""
    folder = tmp_path_factory.mktemp("runs")
    data = folder / "patches.npy"
    np.save(data, np.random.default_rng(0).normal(size=(300, 8, 8)).astype(np.float32))
    common = ["--data", f"npy:{data}", "--epochs", "1", "--batch-size", "100", "--no-progress"]
    assert main(["train", "--out", str(folder / "vae"), "--n-latents", "4", *common]) == 0
    sparse = ["sparse-coding", "train", "--out", str(folder / "sparse"), "--n-atoms", "4", *common]
    assert main(sparse) == 0
    return {"vae": folder / "vae", "sparse": folder / "sparse", "data": data, "folder": folder}


def _one_line(capsys: pytest.CaptureFixture, *argv: str) -> str:
    code, _, err = run_cli(capsys, *argv)
    assert code == 2 and err.startswith("pvae") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (np.full((300, 8, 8), 3.0), "every training value is 3; a model has nothing to learn"),
        (np.zeros((300, 8, 8)), "every training value is 0; a model has nothing to learn"),
    ],
    ids=["constant", "zero"],
)
def test_constant_data_is_refused_before_training(
    tmp_path: Path, capsys: pytest.CaptureFixture, values: np.ndarray, message: str
) -> None:
    np.save(tmp_path / "x.npy", values.astype(np.float32))
    flags = ["--data", f"npy:{tmp_path / 'x.npy'}", "--n-latents", "4", "--epochs", "1"]
    assert message in _one_line(capsys, "train", "--out", str(tmp_path / "run"), *flags)
    assert not (tmp_path / "run").exists()


def test_one_pixel_images_train_and_report_undefined_r2(tmp_path: Path, capsys) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(300, 1, 1)).astype(np.float32))
    flags = ["--data", f"npy:{tmp_path / 'x.npy'}", "--n-latents", "4", "--epochs", "1", "--no-progress"]
    assert run_cli(capsys, "train", "--out", str(tmp_path / "run"), *flags)[0] == 0
    assert run_cli(capsys, "evaluate", str(tmp_path / "run"))[0] == 0
    metrics = json.loads((tmp_path / "run" / "eval" / "metrics.json").read_text())
    assert metrics["r2"] is None and metrics["gabor"]["skipped"] == "atoms smaller than 4x4"
    assert "| undefined |" in (tmp_path / "run" / "eval" / "report.md").read_text()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--warmup-clip-factor", "nan"], "--warmup-clip-factor must be a finite number >= 1"),
        (["train", "--lr-min", "0.1"], "--lr-min must be at most --lr"),
        (["train", "--n-latents", "1000000000"], "lower --n-latents or --batch-size"),
        (["train", "--out", ""], "argument --out: an empty path names no file or folder"),
        (["train", "--out", "/proc/x/run", "--epochs", "1"], "cannot create the run folder /proc/x/run"),
        (
            ["reproduce", "natural16-zoo", "--gpus-per-job", "-1"],
            "--gpus-per-job must be an integer >= 0",
        ),
        (["evaluate", "{vae}", "--seed", str(2**70)], "--seed must be a whole number in [0, 2^32)"),
        (["sample", "{vae}", "--n-samples", "1000000000"], "a grid of 1,000,000,000 samples"),
        (["sample", "{vae}", "--out", "{vae}/eval"], "would overwrite a file of the run"),
        (["sample", "{sparse}"], "holds a sparse-coding run, not a VAE run"),
        (["amortization-gap", "{sparse}"], "holds a sparse-coding run, not a VAE run"),
        (["train", "--out", "{folder}", "--epochs", "1"], "holds files that are not a run"),
    ],
)
def test_hostile_input_is_refused_in_one_line(
    capsys: pytest.CaptureFixture, finished_runs: dict, argv: list[str], message: str, tmp_path
) -> None:
    argv = [word.format(**finished_runs) for word in argv]
    if argv[0] == "train" and "--out" not in argv:
        argv += ["--out", str(tmp_path / "run"), "--data", f"npy:{finished_runs['data']}"]
    elif argv[0] == "train":
        argv += ["--data", f"npy:{finished_runs['data']}"]
    if argv[0] == "reproduce":
        argv += ["--out", str(tmp_path / "sweep")]
    assert message in _one_line(capsys, *argv)
    assert not (tmp_path / "run").exists()
    assert not (finished_runs["vae"] / "samples.png").exists()


def test_broken_configuration_files_are_named(tmp_path: Path, capsys, finished_runs: dict) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(finished_runs["vae"], broken)
    (broken / "config.json").write_text("{")
    assert "broken/config.json is not valid JSON" in _one_line(capsys, "evaluate", str(broken))
    (tmp_path / "adir").mkdir()
    for document, message in ((None, "got None"), ([[1]], "got [[1]]")):
        (tmp_path / "c.json").write_text(json.dumps(document))
        err = _one_line(
            capsys, "train", "--out", str(tmp_path / "run"), "--config", str(tmp_path / "c.json")
        )
        assert "c.json: a configuration must be a JSON object of sections" in err and message in err
    err = _one_line(capsys, "train", "--out", str(tmp_path / "run"), "--config", str(tmp_path / "adir"))
    assert "--config " in err and "adir is a folder, not a JSON file" in err


@pytest.mark.parametrize("edit", ["changed", "removed"])
def test_resuming_with_an_edited_model_section_names_both_files(
    tmp_path: Path, capsys: pytest.CaptureFixture, finished_runs: dict, edit: str
) -> None:
    run = tmp_path / "run"
    shutil.copytree(finished_runs["vae"], run)
    document = json.loads((run / "config.json").read_text())
    if edit == "changed":
        document["model"]["n_latents"] = 7
    else:
        del document["model"]
    (run / "config.json").write_text(json.dumps(document))
    err = _one_line(capsys, "train", "--out", str(run), "--resume", "--epochs", "2")
    assert "last.ckpt does not fit the model" in err and "config.json describes" in err


def test_doctor_checks_the_sampler_of_every_device(capsys: pytest.CaptureFixture) -> None:
    code, out, _ = run_cli(capsys, "doctor")
    assert code == 0 and out.startswith("pvae ")
    assert "cpu: the fused sampler agrees with the torch walk" in out


def test_list_flags_never_take_the_positional_run() -> None:
    args = build_parser().parse_args(["amortization-gap", "--compare", "a,b", "--lams", "0.3", "run"])
    assert args.run == Path("run") and args.compare == [Path("a"), Path("b")] and args.lams == [0.3]
    args = build_parser().parse_args(["amortization-gap", "run", "--compare", "a", "--compare", "b"])
    assert args.compare == [Path("a"), Path("b")]


def test_free_text_flags_offer_their_choices(capsys: pytest.CaptureFixture) -> None:
    parser = build_parser()
    for argv, flag in (
        (["train", "--out", "x", "--latent", "gamma"], "--latent"),
        (["train", "--out", "x", "--method", "vi"], "--method"),
        (["train", "--out", "x", "--indicator", "step"], "--indicator"),
        (["sparse-coding", "train", "--out", "x", "--algorithm", "omp"], "--algorithm"),
        (["reproduce", "natural16-zoo", "--scale", "huge"], "--scale"),
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert f"argument {flag}: invalid choice" in err and err.count("\n") == 1
    text = parser.format_help()
    assert "Exit codes: 0 done; 1 training diverged" in text and "130 interrupted" in text


def test_sample_writes_into_a_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from poisson_vae import ModelConfig, build_vae, save_model

    save_model(build_vae(ModelConfig(n_latents=4)), tmp_path / "model")
    assert (
        main(["sample", str(tmp_path / "model"), "--n-samples", "9", "--out", str(tmp_path / "o")]) == 0
    )
    assert (tmp_path / "o" / "samples.png").read_bytes()[:4] == b"\x89PNG"


def _documented_commands() -> list[str]:
    """Every ``pvae`` command line of a bash block in the README and the docs."""
    root = Path(__file__).resolve().parents[1]
    commands = []
    for page in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), flags=re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if re.match(r"(\.venv/bin/)?pvae ", line):
                    commands.append(line)
    return commands


@pytest.mark.parametrize("command", _documented_commands())
def test_documented_commands_parse(command: str) -> None:
    """A renamed flag cannot leave the documentation behind: each command line parses."""
    argv = shlex.split(command)[1:]
    try:
        build_parser().parse_args(argv)
    except SystemExit as stop:  # a parse error, or --help / --version
        assert stop.code == 0, command
