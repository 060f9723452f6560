"""Training end to end on small natural16 runs: loss falls, checkpoints, resume, divergence."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from poisson_vae import load_model
from poisson_vae.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from poisson_vae.training import (
    KNNCurve,
    NonFiniteLossError,
    RunExistsError,
    VAEModule,
    fit_array,
    train,
)
from poisson_vae.vae import CheckpointError

FINAL_FILES = ("model.safetensors", "dictionary.png", "training_curves.png", "metrics.json")


def small_config(epochs: int = 3, **train_options) -> RunConfig:
    return RunConfig(
        data=DataConfig(n_train=4000, n_valid=500),
        model=ModelConfig(n_latents=64),
        train=TrainConfig(
            epochs=epochs,
            batch_size=100,
            warmup_epochs=1,
            val_every=1,
            log_every=1,
            progress=False,
            **train_options,
        ),
    )


def logged(run: Path, column: str) -> list[float]:
    """A column of the CSV logs of every start of the run, in order."""
    values = []
    for path in sorted((run / "logs").glob("version_*/metrics.csv")):
        with open(path) as handle:
            values += [float(row[column]) for row in csv.DictReader(handle) if row.get(column)]
    return values


def test_short_run_loss_falls_and_writes_the_run_directory(tmp_path) -> None:
    metrics = train(small_config(epochs=6), tmp_path / "run")
    run = tmp_path / "run"
    for name in ("config.json", "checkpoints/last.ckpt", *FINAL_FILES):
        assert (run / name).is_file(), name
    # The loss itself rises with the beta ramp; its reconstruction part must fall.
    errors = logged(run, "train/sse")
    first, last = sum(errors[:20]) / 20, sum(errors[-20:]) / 20
    assert last < 0.9 * first, errors
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["nelbo"] == pytest.approx(metrics["nelbo"])
    assert stored["nelbo"] == pytest.approx(stored["sse"] + stored["kl"])
    for key in ("mse_map", "portion_zeros", "lifetime_sparsity", "n_active", "active_rule"):
        assert key in stored
    assert len(stored["kl_per_latent"]) == 64
    temperatures = logged(run, "train/temperature")
    assert temperatures[0] == pytest.approx(1.0, abs=0.05) and temperatures[-1] == pytest.approx(0.05)
    model = load_model(run)
    assert model.config.input_shape == (1, 16, 16)


def test_recipe_schedules_inside_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(VAEModule, "_total_steps", property(lambda self: 80))  # 8 steps per epoch
    module = VAEModule(small_config(epochs=10))
    assert module._warmup_steps == 8
    assert module.schedule(0) == (1.0, pytest.approx(1e-4))
    assert module.schedule(20) == (pytest.approx(0.525), pytest.approx(0.5 + 0.5e-4))
    assert module.schedule(40) == (0.05, 1.0)


def test_beta_is_held_for_the_first_percent_with_a_non_linear_decoder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(VAEModule, "_total_steps", property(lambda self: 1000))
    config = small_config(epochs=10)
    config.model = ModelConfig(arch="lin|mlp", n_latents=8)
    module = VAEModule(config)
    assert module.schedule(9)[1] == pytest.approx(1e-4)  # held for 10 steps ...
    assert module.schedule(255)[1] == pytest.approx(1e-4 + (1 - 1e-4) / 2)  # ... then ramped to 500
    assert module.schedule(255)[0] == pytest.approx(1 - 0.95 * 255 / 500)  # temperature is not held


def test_tensorboard_without_the_package_is_a_clear_error(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from poisson_vae.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # not importable
    with pytest.raises(MissingExtraError, match=r"pip install 'poisson-vae\[tensorboard\]'"):
        train(small_config(tensorboard=True), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_existing_run_is_not_overwritten(tmp_path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "metrics.json").write_text("{}")  # a run that finished
    with pytest.raises(RunExistsError, match="pass resume to continue it"):
        train(small_config(), tmp_path)


class _Interrupt(L.Callback):
    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 2:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_from_its_last_checkpoint(tmp_path) -> None:
    run = tmp_path / "run"
    assert train(small_config(epochs=4), run, callbacks=[_Interrupt()]) is None
    assert not any((run / name).exists() for name in FINAL_FILES)
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert state["epoch"] == 1 and state["global_step"] == 80
    metrics = train(small_config(epochs=4), run, resume=True)
    assert metrics is not None and (run / "metrics.json").is_file()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 160
    steps = [int(s) for s in logged(run, "step")]
    assert min(steps) < 10 and max(steps) >= 155  # the log of the first part is kept


def test_a_bfloat16_mixed_run_trains_and_resumes_in_float32(tmp_path) -> None:
    run = tmp_path / "run"
    assert train(small_config(epochs=3, precision="bf16-mixed"), run, callbacks=[_Interrupt()]) is None
    metrics = train(small_config(epochs=3, precision="32-true"), run, resume=True)
    assert metrics is not None and torch.isfinite(torch.tensor(metrics["nelbo"]))
    assert json.loads((run / "config.json").read_text())["train"]["precision"] == "32-true"
    model = load_model(run)
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_a_crafted_checkpoint_runs_no_code_on_resume(tmp_path) -> None:
    import builtins

    run, marker = tmp_path / "run", tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (builtins.open, (str(marker), "w"))

    assert train(small_config(epochs=4), run, callbacks=[_Interrupt()]) is None
    torch.save({"state_dict": Exploit()}, run / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match="last.ckpt is unreadable"):
        train(small_config(epochs=4), run, resume=True)
    assert not marker.exists()


def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path) -> None:
    straight = train(small_config(epochs=4), tmp_path / "straight")
    assert train(small_config(epochs=4), tmp_path / "resumed", callbacks=[_Interrupt()]) is None
    torch.manual_seed(12345)  # whatever the process did meanwhile
    resumed = train(small_config(epochs=4), tmp_path / "resumed", resume=True)
    for name in ("nelbo", "sse", "kl", "mse_map", "lifetime_sparsity"):
        assert resumed[name] == straight[name], name
    a, b = (load_model(tmp_path / name).state_dict() for name in ("straight", "resumed"))
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_checkpoints_are_written_beside_and_renamed_with_the_umask(tmp_path, monkeypatch) -> None:
    renames = []
    replace = os.replace

    def spy(source, destination):
        renames.append((Path(source), Path(destination)))
        replace(source, destination)

    monkeypatch.setattr(os, "replace", spy)
    previous = os.umask(0o022)
    try:
        train(small_config(epochs=1), tmp_path / "run")
    finally:
        os.umask(previous)
    checkpoint = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert any(dst == checkpoint and src.parent == dst.parent for src, dst in renames)
    for name in ("checkpoints/last.ckpt", "model.safetensors", "metrics.json", "config.json"):
        assert (tmp_path / "run" / name).stat().st_mode & 0o777 == 0o644, name


def test_resuming_a_finished_run_without_its_checkpoint_only_evaluates(tmp_path) -> None:
    run = tmp_path / "run"
    first = train(small_config(epochs=2), run)
    weights = (run / "model.safetensors").read_bytes()
    shutil.rmtree(run / "checkpoints")
    again = train(small_config(epochs=2), run, resume=True)
    assert (run / "model.safetensors").read_bytes() == weights  # not retrained
    assert again["nelbo"] == first["nelbo"]
    with pytest.raises(CheckpointError, match="checkpoint is gone, so it cannot be extended to 3"):
        train(small_config(epochs=3), run, resume=True)


def test_extending_a_finished_run_records_its_new_length(tmp_path) -> None:
    run = tmp_path / "run"
    train(small_config(epochs=1), run)
    train(small_config(epochs=2), run, resume=True)
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 2


def test_a_second_process_on_the_same_run_is_refused(tmp_path) -> None:
    from poisson_vae.runs import Run, RunBusyError

    with Run(tmp_path / "run").session(resume=False):
        with pytest.raises(RunBusyError, match="is being trained by another process"):
            train(small_config(epochs=1), tmp_path / "run")


def test_a_start_that_diverged_at_its_first_step_does_not_block_the_next(tmp_path) -> None:
    run = tmp_path / "run"
    diverging = small_config(epochs=1, lr=1e30, grad_clip=1e30)
    diverging.train.warmup_epochs = 0
    with pytest.raises(NonFiniteLossError, match=r"at step \d+ \(epoch 0\)"):
        train(diverging, run)
    assert (run / "config.json").is_file() and not (run / "checkpoints").exists()
    assert train(small_config(epochs=1), run) is not None


def test_a_checkpoint_of_another_model_names_both_files(tmp_path) -> None:
    run = tmp_path / "run"
    assert train(small_config(epochs=4), run, callbacks=[_Interrupt()]) is None
    other = small_config(epochs=1)
    other.model.n_latents = 32
    train(other, tmp_path / "other")
    shutil.copy(tmp_path / "other" / "checkpoints" / "last.ckpt", run / "checkpoints" / "last.ckpt")
    with pytest.raises(
        CheckpointError, match="last.ckpt does not fit the model .*config.json describes"
    ):
        train(small_config(epochs=4), run, resume=True)


class _Poison(L.Callback):
    def __init__(self, network: str) -> None:
        self.network = network

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.current_epoch == 1:
            with torch.no_grad():
                getattr(module.model, self.network).linear.weight.fill_(float("nan"))


@pytest.mark.parametrize(
    ("network", "message"),
    [("decoder", "became nan at step 40"), ("encoder", "diverged at step 40 .*rates must be finite")],
)
def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_checkpoint(
    tmp_path, network: str, message: str
) -> None:
    run = tmp_path / "run"
    with pytest.raises(NonFiniteLossError, match=message):
        train(small_config(epochs=3), run, callbacks=[_Poison(network)])
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert all(torch.isfinite(tensor).all() for tensor in state.values())
    assert not any((run / name).exists() for name in FINAL_FILES)


def test_two_process_ddp_keeps_replicas_identical(tmp_path) -> None:
    worker = Path(__file__).with_name("ddp_worker.py")
    result = subprocess.run(
        [sys.executable, str(worker), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    replicas = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    assert replicas[0].keys() == replicas[1].keys()
    for name in replicas[0]:
        assert torch.equal(replicas[0][name], replicas[1][name]), name
    initial = torch.load(tmp_path / "initial.pt")
    assert not torch.equal(
        initial["model.decoder.linear.weight"], replicas[0]["model.decoder.linear.weight"]
    )
    assert (tmp_path / "run" / "metrics.json").is_file()


def test_a_lightning_script_of_ones_own_trains_restores_and_predicts(tmp_path) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    x = torch.from_numpy(DataConfig(n_train=600, n_valid=100).load()["train"])
    labels = torch.zeros(len(x), dtype=torch.long)
    loader = DataLoader(TensorDataset(x, labels), batch_size=100, shuffle=True)  # (x, y) batches
    module = VAEModule(small_config(epochs=10))  # the trainer's epochs rule the schedules
    before = module.model.encoder.linear.weight.detach().clone()
    trainer = L.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    trainer.fit(module, loader)
    assert not torch.equal(module.model.encoder.linear.weight, before)  # the encoder trained
    assert module._warmup_steps == 6  # one warm-up epoch of 6 steps, of 2 epochs
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    restored = VAEModule.load_from_checkpoint(tmp_path / "last.ckpt")
    assert restored.config == module.config
    torch.testing.assert_close(restored.model.state_dict(), module.model.state_dict())
    rates = torch.cat(trainer.predict(restored, DataLoader(TensorDataset(x[:250]), batch_size=100)))
    torch.testing.assert_close(rates, module.model.eval().encode(x[:250]).mean)


def test_load_from_checkpoint_runs_no_code_from_the_file(tmp_path) -> None:
    import builtins
    import pickle

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (builtins.open, (str(marker), "w"))

    document = {"state_dict": {}, "hyper_parameters": {"config": Exploit()}}
    torch.save(document, tmp_path / "crafted.ckpt")
    with pytest.raises(pickle.UnpicklingError):
        VAEModule.load_from_checkpoint(tmp_path / "crafted.ckpt")
    assert not marker.exists()


def test_fit_array_trains_in_memory_seeded_and_leaves_the_callers_rng_alone() -> None:
    data = torch.randn(300, 1, 4, 4, generator=torch.Generator().manual_seed(0)).numpy()
    recipe = TrainConfig(epochs=4, batch_size=50, warmup_epochs=1, progress=False, seed=3)
    torch.manual_seed(11)
    expected = torch.rand(2)
    torch.manual_seed(11)
    model, curve = fit_array(ModelConfig(n_latents=8), recipe, data)
    torch.testing.assert_close(torch.rand(2), expected)
    assert model.config.input_shape == (1, 4, 4) and not model.training
    assert len(curve) == 4 and curve[-1] < curve[0]
    again, curve_again = fit_array(ModelConfig(n_latents=8), recipe, data)
    assert curve_again == curve
    for left, right in zip(model.parameters(), again.parameters(), strict=True):
        torch.testing.assert_close(left, right, rtol=0, atol=0)


def test_an_interrupted_fit_array_raises_keyboard_interrupt_and_leaves_ctrl_c_working(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Lightning turns Ctrl+C into exit(1) and ignores SIGINT from then on; in memory (the
    scikit-learn estimator, a notebook) the caller gets a KeyboardInterrupt and its handler back."""
    step = VAEModule.training_step

    def interrupted(self, batch, batch_index):
        if self.global_step == 2:
            raise KeyboardInterrupt
        return step(self, batch, batch_index)

    monkeypatch.setattr(VAEModule, "training_step", interrupted)
    handler = signal.getsignal(signal.SIGINT)
    data = torch.randn(300, 1, 4, 4, generator=torch.Generator().manual_seed(0)).numpy()
    recipe = TrainConfig(epochs=4, batch_size=50, warmup_epochs=1, progress=False)
    with pytest.raises(KeyboardInterrupt):
        fit_array(ModelConfig(n_latents=8), recipe, data)
    assert signal.getsignal(signal.SIGINT) is handler


def iterative_config(epochs: int = 3, **model_options) -> RunConfig:
    from poisson_vae.recipes import recipe

    options = recipe("iterative", "natural16") | {"epochs": epochs, "batch_size": 100}
    return RunConfig(
        data=DataConfig(n_train=400, n_valid=200),
        model=ModelConfig(inference="iterative", n_latents=32, n_steps=4, **model_options),
        train=TrainConfig(**options, val_every=1, log_every=1, progress=False),
    )


def test_the_iterative_recipe_anneals_beta_and_the_clamps_faster_than_the_temperature(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(VAEModule, "_total_steps", property(lambda self: 10_000))
    module = VAEModule(iterative_config())
    assert module.schedule(5) == (pytest.approx(1 - 0.99 * 5 / 5000), pytest.approx(1e-4))  # held
    assert module.clamp_progress(5) == 0.0
    assert module.schedule(1010)[1] == pytest.approx(24.0) and module.clamp_progress(1010) == 1.0
    assert module.schedule(1010)[0] == pytest.approx(1 - 0.99 * 1010 / 5000)
    assert module.schedule(5000) == (pytest.approx(0.01), pytest.approx(24.0))


@pytest.mark.parametrize("family", ["poisson", "gaussian-relu"])
def test_an_iterative_vae_trains_resumes_and_records_its_convergence(tmp_path, family: str) -> None:
    run = tmp_path / "run"
    config = iterative_config(epochs=3, latent=family, init_std=0.05)
    if family != "poisson":
        config.train.beta = 8.0
    assert train(config, run, callbacks=[_Interrupt()]) is None
    metrics = train(config, run, resume=True)
    for name in ("convergence.png", *FINAL_FILES):
        assert (run / name).is_file(), name
    stored = json.loads((run / "metrics.json").read_text())
    assert stored["nelbo"] == pytest.approx(metrics["nelbo"])
    assert len(stored["convergence"]["r2"]) == stored["n_steps"] == 1000
    for key in ("r2_mean", "r2_map", "portion_zeros", "distance", "distance_map", "mse_map"):
        assert key in stored
    assert 0 < stored["portion_zeros"] < 1
    model = load_model(run)
    assert type(model).__name__ == "IterativeVAE" and model.config.n_steps == 4
    assert logged(run, "train/temperature")[-1] == pytest.approx(model.final_temperature)


def test_an_iterative_vae_is_validated_with_the_clamps_of_its_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(VAEModule, "_total_steps", property(lambda self: 10_000))
    module = VAEModule(iterative_config(init_std=1.0))
    module.model.requires_grad_(False).log_step.fill_(3.0)  # steps that reach any clamp
    x = 10 * torch.randn(8, 1, 16, 16)
    early = float(module._forward(x, 0.0, step=0).state.location.max())
    late = float(module._forward(x, 0.0, step=5000).state.location.max())
    assert early < 2.0 < late < 10.0


def test_the_knn_curve_is_measured_on_the_first_rank_only() -> None:
    module = VAEModule(small_config())
    logged: dict[str, float] = {}
    module.log = lambda name, value, **options: logged.update({name: value})  # type: ignore[method-assign]
    valid = torch.randn(40, 1, 16, 16).numpy()
    curve = KNNCurve(valid, labels=np.arange(40) % 2, seed=0)
    curve.on_validation_epoch_end(SimpleNamespace(sanity_checking=False, is_global_zero=False), module)
    assert logged == {}  # another rank: no work, nothing logged
    curve.on_validation_epoch_end(SimpleNamespace(sanity_checking=False, is_global_zero=True), module)
    assert list(logged) == ["val/knn_20"] and 0 <= logged["val/knn_20"] <= 1  # a pool of 20
    assert module.model.training  # the measurement leaves the model in training mode
