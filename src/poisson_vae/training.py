"""Training on Lightning: the paper's recipe, checkpoints, resume, and the files of a VAE run.

The run folder and its files belong to :class:`~poisson_vae.runs.Run`; this module fills it:
``config.json`` at the start, ``checkpoints/last.ckpt`` after every epoch (the full trainer state:
weights, optimiser, schedules, loop position and every random state, so that a resumed run
continues exactly as an uninterrupted one), CSV logs per start, and at the end the weights, the
dictionary figure, the training curves and ``metrics.json``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import random
import signal
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from lightning.pytorch.accelerators import CUDAAccelerator
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger
from torch.utils.data import DataLoader, Dataset

from .config import DataConfig, ModelConfig, RunConfig, TrainConfig, check_memory, resolve_accelerator
from .errors import ConfigError, braces, require_extra
from .figures import save_dictionary_figure, save_training_curves
from .files import write_atomic
from .iterative import IterativeVAE, evaluate_iterative, save_iterative_figures
from .metrics import evaluate_model
from .nets import LinearDecoder, parse_architecture
from .progress import RunLog, on_terminal
from .runs import Run, RunExistsError, is_replica
from .schedules import learning_rate_factor, linear_ramp
from .vae import VAE, CheckpointError, build_vae, load_model, save_model, training_bytes

__all__ = [
    "DataModule",
    "KNNCurve",
    "NonFiniteLossError",
    "RunExistsError",
    "VAEModule",
    "fit_array",
    "train",
]


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class _BatchedTensors(Dataset):
    """A tensor indexed a whole batch at a time (``__getitems__``), skipping per-sample collation."""

    def __init__(self, tensor: torch.Tensor) -> None:
        self.tensor = tensor

    def __len__(self) -> int:
        return len(self.tensor)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.tensor[index]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        return self.tensor[torch.as_tensor(indices)]


def _identity(batch: torch.Tensor) -> torch.Tensor:
    return batch


def _loader(array: np.ndarray, batch_size: int, shuffle: bool) -> DataLoader:
    return DataLoader(
        _BatchedTensors(torch.from_numpy(array)),
        batch_size=batch_size,
        shuffle=shuffle,
        collate_fn=_identity,
    )


class DataModule(L.LightningDataModule):
    """Training and validation samples for Lightning: a data set of the registry (as ``pvae
    train`` loads it) or arrays in memory (as the scikit-learn estimator fits them).

    Batches are tensors (B, C, H, W), indexed a whole batch at a time.

    Args:
        train: (N, C, H, W) float32 training samples.
        valid: (M, C, H, W) validation samples, or None for none.
        batch_size: samples per training batch (validation batches hold at least 2000).
        valid_labels: (M,) class labels of the validation samples, if the data has them.

    Example:
        >>> data = DataModule.from_config(DataConfig(n_train=4000, n_valid=1000), batch_size=500)
    """

    def __init__(
        self,
        train: np.ndarray,
        valid: np.ndarray | None,
        batch_size: int,
        valid_labels: np.ndarray | None = None,
    ) -> None:
        super().__init__()
        self.train, self.valid, self.batch_size = train, valid, batch_size
        self.valid_labels = valid_labels

    @classmethod
    def from_config(cls, config: DataConfig, batch_size: int) -> DataModule:
        """The splits of a data set of the registry, loaded (and cached) now."""
        splits = config.load()
        return cls(splits["train"], splits["valid"], batch_size, splits.get("valid_labels"))

    def train_dataloader(self) -> DataLoader:
        return _loader(self.train, min(self.batch_size, len(self.train)), shuffle=True)

    def val_dataloader(self) -> DataLoader | list:
        if self.valid is None:
            return []
        return _loader(self.valid, max(self.batch_size, 2000), shuffle=False)


def _inputs(batch: torch.Tensor | Sequence[torch.Tensor]) -> torch.Tensor:
    """The inputs of a batch: a tensor, or the first of ``(x,)`` / ``(x, y)`` (a TensorDataset's)."""
    return batch[0] if isinstance(batch, (list, tuple)) else batch


class VAEModule(L.LightningModule):
    """The VAE with the paper's optimiser, schedules and gradient clipping.

    Takes batches of inputs, or ``(x,)`` / ``(x, y)`` tuples as a ``TensorDataset`` gives them
    (labels are ignored). ``predict_step`` returns the deterministic codes (the posterior means:
    a P-VAE's rates), (B, K). The configuration is saved as the module's hyperparameters, so
    ``VAEModule.load_from_checkpoint(path)`` rebuilds it.

    Args:
        config: the run configuration (a :class:`~poisson_vae.config.RunConfig`, or its
            ``to_dict()`` document).

    Example:
        >>> module = VAEModule(RunConfig(model=ModelConfig(n_latents=64)))
    """

    def __init__(self, config: RunConfig | dict) -> None:
        super().__init__()
        if not isinstance(config, RunConfig):
            config = RunConfig.from_dict(config)
        self.save_hyperparameters({"config": config.to_dict()})
        self.config = config
        self.model: VAE | IterativeVAE = build_vae(config.model)

    @classmethod
    def load_from_checkpoint(  # type: ignore[override]
        cls, checkpoint_path, map_location=None, hparams_file=None, strict=None, **kwargs
    ) -> VAEModule:
        """Lightning's ``load_from_checkpoint``, reading tensors and plain data only (a crafted
        checkpoint runs no code): the configuration is saved as plain data, so nothing needs
        unpickling, and a request to unpickle anything is refused."""
        if kwargs.pop("weights_only", True) is False:
            raise ValueError("VAEModule checkpoints load weights-only; drop weights_only=False")
        kwargs["weights_only"] = True
        return super().load_from_checkpoint(
            checkpoint_path, map_location, hparams_file, strict, **kwargs
        )

    # --- schedules -------------------------------------------------------------------------
    @property
    def _total_steps(self) -> int:
        return max(int(self.trainer.estimated_stepping_batches), 1)

    @property
    def _warmup_steps(self) -> int:
        # the trainer's epochs (in a script of one's own), else the configuration's
        epochs = self._trainer.max_epochs if self._trainer is not None else None
        epochs = epochs if epochs is not None and epochs > 0 else self.config.train.epochs
        return round(self.config.train.warmup_epochs * self._total_steps / epochs)

    def schedule(self, step: int) -> tuple[float, float]:
        """(temperature, beta) at an optimiser step."""
        train = self.config.train
        ramp = int(train.anneal_fraction * self._total_steps)
        end = train.temperature_end
        end = self.model.final_temperature if end is None else end
        temperature = linear_ramp(step, ramp, train.temperature_start, end)
        return temperature, self._beta_ramp(step, train.beta_start, train.beta)

    def clamp_progress(self, step: int) -> float:
        """How far an iterative model's clamps have been annealed at a step, 0 to 1 (with beta)."""
        return self._beta_ramp(step, 0.0, 1.0)

    def _beta_ramp(self, step: int, start: float, end: float) -> float:
        train = self.config.train
        hold = train.beta_hold_fraction
        if hold is None:  # the paper's recipe: non-linear decoders hold beta at first for 1 % of steps
            hold = 0.0 if parse_architecture(self.config.model.arch).decoder == "lin" else 0.01
        hold_steps = int(hold * self._total_steps)
        ramp = int(train.beta_ramp_fraction * self._total_steps)
        return linear_ramp(step, ramp, start, end, hold_steps)

    def configure_optimizers(self):
        train = self.config.train
        optimizer = torch.optim.Adamax(
            self.parameters(),
            lr=train.lr,
            betas=(0.9, 0.999),
            eps=1e-8,
            weight_decay=train.weight_decay,
        )
        total, warmup, floor = self._total_steps, self._warmup_steps, train.lr_min / train.lr
        restarts = train.lr_restarts
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: learning_rate_factor(step, warmup, total, floor, restarts)
        )
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ):
        train = self.config.train
        factor = train.warmup_clip_factor if self.global_step < self._warmup_steps else 1.0
        self.clip_gradients(
            optimizer, gradient_clip_val=train.grad_clip * factor, gradient_clip_algorithm="norm"
        )

    # --- steps -----------------------------------------------------------------------------
    def _forward(self, batch: torch.Tensor, temperature: float, step: int):
        """The model's loss terms: a VAE's one pass, or an iterative VAE's unrolled steps with its
        clamps annealed as at optimiser ``step``."""
        model = self.config.model
        if model.inference != "iterative":
            return self.model(batch, temperature=temperature)
        clamp = self.clamp_progress(step)
        return self.model(batch, model.n_steps, temperature, clamp, model.truncation)

    def training_step(self, batch: torch.Tensor, batch_index: int) -> torch.Tensor:
        batch = _inputs(batch)
        temperature, beta = self.schedule(self.global_step)
        where = f"at step {self.global_step} (epoch {self.current_epoch})"
        try:
            terms = self._forward(batch, temperature, self.global_step)
        except FloatingPointError as error:
            raise NonFiniteLossError(f"training diverged {where}: {error}") from None
        loss = terms.loss(beta)
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"the training loss became {float(loss.detach())} {where}")
        self.log_dict(
            {"train/loss": loss, "train/sse": terms.sse.mean(), "train/kl": terms.kl.mean()},
            prog_bar=True,
            on_step=True,
            on_epoch=False,
        )
        self.log_dict(
            {"train/temperature": temperature, "train/beta": beta}, on_step=True, on_epoch=False
        )
        return loss

    def validation_step(self, batch: torch.Tensor, batch_index: int) -> None:
        batch = _inputs(batch)
        if self.config.model.inference == "iterative":  # with the clamps of the current step
            terms = self._forward(batch, self.model.evaluation_temperature, self.global_step)
            mse_map = (batch.flatten(1) - self.model.decode_point(terms.state)).pow(2).sum(1)
            self.log_dict(
                {"val/sse": terms.sse.mean(), "val/kl": terms.kl.mean(), "val/mse_map": mse_map.mean()},
                sync_dist=True,
                batch_size=len(batch),
            )
            nelbo = (terms.nll + terms.kl).mean()
            self.log("val/nelbo", nelbo, prog_bar=True, sync_dist=True, batch_size=len(batch))
            return
        terms = self.model(batch, temperature=0.0, method="mc")
        mse_map = (batch.flatten(1) - self.model.decode_point(terms.code).flatten(1)).pow(2).sum(1)
        metrics = {
            "val/sse": terms.sse.mean(),
            "val/kl": terms.kl.mean(),
            "val/mse_map": mse_map.mean(),
        }
        self.log_dict(metrics, sync_dist=True, batch_size=len(batch))
        nelbo = (terms.sse + terms.kl).mean()
        self.log("val/nelbo", nelbo, prog_bar=True, sync_dist=True, batch_size=len(batch))

    def predict_step(self, batch: torch.Tensor, batch_index: int) -> torch.Tensor:
        """(B, K) the deterministic codes of a batch: the posterior means (a P-VAE's rates; an
        iterative VAE's after its training horizon of steps)."""
        if self.config.model.inference == "iterative":
            return self.model.posterior_mean(self.model.infer(_inputs(batch)))
        return self.model.encode(_inputs(batch)).mean


class _RandomState(Callback):
    """Every random state in the checkpoint, so that a resumed run draws what an uninterrupted
    one would have: torch's (CPU and CUDA; the compiled samplers key their counters from it, and
    it shuffles the batches), numpy's and Python's.

    A new run seeds each rank apart when training starts (same initial weights, seeded before the
    model is built; different noise). A resumed run restores the saved states as the checkpoint
    is read, before the first batch is drawn. Under data parallelism only rank 0's states are
    saved: the other ranks are seeded apart from them, deterministically but not as if
    uninterrupted.
    """

    def __init__(self) -> None:
        self.restored = False

    def state_dict(self) -> dict[str, Any]:
        numpy_state = np.random.get_state()  # noqa: NPY002 (numpy's global state, whoever uses it)
        return {
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [
                numpy_state[0],
                torch.from_numpy(numpy_state[1].astype(np.int64)),
                *numpy_state[2:],
            ],
            "python": list(random.getstate()),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.restored = True
        if is_replica():
            return
        torch.set_rng_state(state_dict["torch"])
        if state_dict["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
        name, keys, *rest = state_dict["numpy"]
        np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))  # noqa: NPY002
        version, internal, gauss = state_dict["python"]
        random.setstate((version, tuple(internal), gauss))

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not self.restored or trainer.global_rank > 0:
            seed = module.config.train.seed * 1000 + trainer.global_rank + 1
            torch.manual_seed(seed + 7919 * trainer.current_epoch)


class _AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints written beside their final name, then renamed into place.

    Lightning's own writer stages the file under ``$TMPDIR`` and moves it; across file systems
    (a tmpfs ``/tmp``, a run on NFS) the move copies into the truncated final file, so a kill at
    that moment left an empty checkpoint, and every interrupted save left a full-size temporary
    file behind (with mode 0600).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None
    ) -> None:
        write_atomic(Path(path), lambda temporary: torch.save(checkpoint, temporary))


def _tensorboard_logger(out: Path) -> Logger:
    require_extra("tensorboard", "tensorboard", "tensorboard logging")
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(out, name="tensorboard")


class _ProgressBar(TQDMProgressBar):
    """Lightning's bar without the logger's version number."""

    def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)
        return metrics


class _EpochLines(Callback):
    """A line per epoch into the run's ``train.log`` (and onto standard error when no progress
    bar shows): the training loss and, when the epoch validated, the validation NELBO."""

    def __init__(self, log: RunLog) -> None:
        self.run_log = log

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.is_global_zero:
            model, train = module.config.model, module.config.train
            device = "GPU" if isinstance(trainer.accelerator, CUDAAccelerator) else "CPU"
            self.run_log.line(
                f"training {model.latent} {model.arch}, K = {model.n_latents}, on "
                f"{module.config.data.data}: epochs {trainer.current_epoch + 1} to {train.epochs} "
                f"on the {device}"
            )

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        parts = [f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
        if "train/loss" in metrics:
            parts.append(f"train loss {float(metrics['train/loss']):.4g}")
        validated = (trainer.current_epoch + 1) % module.config.train.val_every == 0
        if validated and "val/nelbo" in metrics:
            parts.append(f"validation NELBO {float(metrics['val/nelbo']):.4g}")
        self.run_log.line(", ".join(parts))


class KNNCurve(Callback):
    """5-NN accuracy of the read-out features with 200 and 1000 labels, at every validation.

    The paper's protocol (:func:`~poisson_vae.geometry.knn_sample_efficiency` on the validation
    set) with fewer draws, logged as ``val/knn_200`` and ``val/knn_1000``: how the representation
    evolves over training, at a fraction of an epoch's cost. Under data parallelism only the
    first rank measures, on the whole validation set.

    Args:
        valid: (M, C, H, W) validation samples.
        labels: (M,) their class labels.
        seed: seed of the labelled subsets (the same at every validation).
        n_draws: labelled subsets drawn per size.
    """

    SIZES = (200, 1000)

    def __init__(self, valid: np.ndarray, labels: np.ndarray, seed: int, n_draws: int = 20) -> None:
        self.valid, self.labels, self.seed, self.n_draws = valid, labels, seed, n_draws

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        from .evaluation import representation_features
        from .geometry import knn_sample_efficiency

        if trainer.sanity_checking or not trainer.is_global_zero:
            return  # every rank holds the same weights: one measures, the others go on
        training = module.model.training
        features = representation_features(module.model, self.valid)
        module.model.train(training)
        pool = len(self.valid) // 2
        sizes = [size for size in self.SIZES if size < pool] or [pool]
        knn = knn_sample_efficiency(features, self.labels, sizes, self.n_draws, seed=self.seed)
        for size, row in knn.items():
            module.log(f"val/knn_{size}", row["mean"], rank_zero_only=True)


def _check_checkpoint(run: Run, module: VAEModule) -> None:
    """Refuse a checkpoint that cannot be read, or that another model wrote, in one line."""
    checkpoint = run.checkpoint
    try:
        # Weights only: a checkpoint is data, and unpickling anything else could run code.
        # Memory-mapped: checks the file's structure without reading its tensors twice.
        state = torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["state_dict"]
    except Exception as error:
        raise CheckpointError(
            f"{checkpoint} is unreadable ({type(error).__name__}); delete it to restart the run "
            "from scratch, or restore a copy"
        ) from None
    expected = {name: tuple(tensor.shape) for name, tensor in module.state_dict().items()}
    found = {name: tuple(tensor.shape) for name, tensor in state.items()}
    if found != expected:
        differing = sorted(set(found) ^ set(expected)) or sorted(
            name for name in expected if found[name] != expected[name]
        )
        raise CheckpointError(
            f"{checkpoint} does not fit the model {run.config_path} describes ({differing[0]} "
            f"{found.get(differing[0], 'absent')} against {expected.get(differing[0], 'absent')}); "
            "restore the run's own config.json, or delete the checkpoint to start again"
        )


def finish_run(model: VAE | IterativeVAE, config: RunConfig, valid: np.ndarray, run: Run) -> dict:
    """Write the final weights, figures (dictionary, training curves; an iterative VAE's
    convergence) and metrics of a finished run (metrics.json last)."""
    run.metrics_path.unlink(missing_ok=True)
    save_model(model, run.directory)
    if isinstance(model, IterativeVAE):
        metrics = evaluate_iterative(model, valid, seed=config.train.seed)
        save_iterative_figures(model, metrics, run.directory, f"{config.model.latent} iterative")
    else:
        metrics = evaluate_model(model, valid, seed=config.train.seed)
    if isinstance(model, VAE) and isinstance(model.decoder, LinearDecoder):
        order = torch.argsort(torch.tensor(metrics["kl_per_latent"]), descending=True)
        save_dictionary_figure(
            model.decoder.dictionary,
            tuple(config.model.input_shape[1:]),
            run.figure_path,
            order=order,
            title=f"{config.model.latent} {config.model.arch}: atoms by decreasing KL",
        )
    history = run.training_history()
    title = f"{config.model.latent} {config.model.arch} on {config.data.data}: training"
    save_training_curves(history.columns, run.curves_path, title, history.resumed_at)
    summary = {"data": config.data.data, "latent": config.model.latent, "arch": config.model.arch}
    summary |= {
        "method": config.model.method,
        "epochs": config.train.epochs,
        "seed": config.train.seed,
    }
    run.write_metrics(summary | metrics)
    keys = ("nelbo", "mse_map", "n_active")
    if isinstance(model, IterativeVAE):
        keys = ("nelbo", "mse_map", "r2_mean", "portion_zeros")
    shown = ", ".join(f"{key} {metrics[key]:.4g}" for key in keys)
    RunLog(run.log_path, echo=False).line(f"finished: {shown}")
    return metrics


def _accelerator(train_config: TrainConfig) -> str:
    """Lightning's accelerator for a run's ``accelerator``."""
    return resolve_accelerator(train_config.accelerator)


def _make_trainer(config: RunConfig, run: Run, callbacks: list[Callback]) -> L.Trainer:
    """The Lightning trainer of a run; it writes nothing until it runs."""
    # Every start of the run (the first and each resume) logs into its own logs/version_N/.
    loggers: list[Logger] = [CSVLogger(run.directory, name=run.LOGS)]
    if config.train.tensorboard:
        loggers.append(_tensorboard_logger(run.directory))
    # Without a monitored metric, top-1 keeps the newest checkpoint: one file, rewritten every epoch.
    checkpointing = ModelCheckpoint(
        dirpath=run.checkpoint.parent,
        filename=run.checkpoint.stem,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    train_config = config.train
    accelerator = _accelerator(train_config)
    bar = train_config.progress and on_terminal()  # elsewhere a plain line per epoch
    return L.Trainer(
        max_epochs=train_config.epochs,
        accelerator=accelerator,
        devices=int(train_config.devices) if train_config.devices.isdigit() else "auto",
        num_nodes=train_config.num_nodes,
        strategy=train_config.strategy,
        precision=train_config.precision,
        logger=loggers,
        plugins=[_AtomicCheckpointIO()],
        callbacks=[
            checkpointing,
            _RandomState(),
            *([_ProgressBar()] if bar else []),
            _EpochLines(RunLog(run.log_path, echo=train_config.progress and not bar)),
            *callbacks,
        ],
        check_val_every_n_epoch=train_config.val_every,
        enable_progress_bar=bar,
        enable_model_summary=False,
        log_every_n_steps=train_config.log_every,
        num_sanity_val_steps=0,
        deterministic=False,
    )


class _DropAdvertisement(logging.Filter):
    """Lightning's advertisement of its paid logger, printed when a trainer is built."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Inside: Lightning's warnings and notices that do not apply here are dropped (the filters
    are removed on the way out, so importing or calling the package changes no global state)."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    advertisement = _DropAdvertisement()
    log.addFilter(advertisement)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")  # in memory
            warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # Lightning, new torch
            # An epoch shorter than log_every: the step count that triggers a log runs across
            # epochs, so training is still logged every log_every steps.
            warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")
            warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
            warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_")
            yield
    finally:
        log.removeFilter(advertisement)


def train(
    config: RunConfig,
    out: str | Path,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
) -> dict | None:
    """Train a VAE and write its run folder.

    A new run refuses a folder that holds a run; resuming continues from the last checkpoint
    (bit for bit as if uninterrupted, on one device), extends a run to more ``epochs``, or only
    evaluates a finished run again.

    Args:
        config: the run configuration (its ``model.input_shape`` is taken from the data).
        out: run folder.
        resume: continue the run in ``out`` from its last checkpoint (or start it if there is none).
        callbacks: extra Lightning callbacks.

    Returns:
        The validation metrics, or None on processes other than rank 0 and when interrupted.

    Raises:
        NonFiniteLossError: the loss diverged; the run's checkpoint holds the last good state.
        RunExistsError: ``out`` holds a run and ``resume`` is False.
        RunBusyError: another process is training the run in ``out``.
        CheckpointError: the checkpoint is unreadable or belongs to another model.
    """
    run = Run(out)
    with run.session(resume):
        data = DataModule.from_config(config.data, config.train.batch_size)
        model_config = dataclasses.replace(config.model, input_shape=data.train.shape[1:])
        config = dataclasses.replace(config, model=model_config)
        _check_memory(config)
        if resume and run.finished and not run.checkpoint.is_file():
            return _evaluate_finished(run, config, data.valid)
        callbacks = list(callbacks or [])
        if config.train.knn_curve:
            if data.valid_labels is None:
                raise ConfigError(
                    f"{{0}} needs labelled data; {braces(config.data.data)} has no labels", "knn_curve"
                )
            callbacks.append(KNNCurve(data.valid, data.valid_labels, config.train.seed))
        with _quiet_lightning():
            trainer = _make_trainer(config, run, callbacks)
            L.seed_everything(config.train.seed, verbose=False)
            module = VAEModule(config)
            checkpoint = run.checkpoint if resume and run.checkpoint.is_file() else None
            if checkpoint is not None:
                _check_checkpoint(run, module)
            run.write_config(config)
            _fit(
                trainer,
                module,
                datamodule=data,
                ckpt_path=checkpoint,
                weights_only=True,  # explicit: torch < 2.6 defaults to unpickling anything
            )
        if trainer.interrupted or not trainer.is_global_zero:
            return None
        return finish_run(module.model.cpu(), config, data.valid, run)


def _fit(trainer: L.Trainer, module: L.LightningModule, **options: Any) -> None:
    """``trainer.fit``; on Ctrl+C it stops as Lightning stops (``trainer.interrupted``), without
    Lightning's ``exit(1)`` and with the caller's Ctrl+C handler back in place (Lightning ignores
    SIGINT once it has caught one)."""
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, **options)
    except SystemExit:
        if not trainer.interrupted:
            raise
    finally:
        if threading.current_thread() is threading.main_thread() and handler is not None:
            signal.signal(signal.SIGINT, handler)


def _check_memory(config: RunConfig) -> None:
    """Refuse a model too large for the device before anything is allocated."""
    needed = training_bytes(config.model, config.train.batch_size)
    check_memory(needed, config.train.accelerator, "training this model", "n_latents", "batch_size")


def _evaluate_finished(run: Run, config: RunConfig, valid: np.ndarray) -> dict:
    """Resuming a finished run whose checkpoint is gone: evaluate its final weights again, or
    refuse to extend it (its optimiser state is lost)."""
    trained = run.metrics().get("epochs", config.train.epochs)
    if config.train.epochs > trained:
        raise CheckpointError(
            f"{run.directory} finished {trained} epochs and its checkpoint is gone, so it cannot be "
            f"extended to {config.train.epochs}; start a new run instead"
        )
    model = load_model(run.directory)
    return finish_run(model, config, valid, run)


class _EpochLoss(Callback):
    """Mean training loss of each epoch (weighted by batch size)."""

    def __init__(self) -> None:
        self.curve: list[float] = []
        self._total, self._count = 0.0, 0

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_index) -> None:
        self._total += float(outputs["loss"].detach()) * len(batch)
        self._count += len(batch)

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.curve.append(self._total / max(self._count, 1))
        self._total, self._count = 0.0, 0


def fit_array(
    model_config: ModelConfig, train_config: TrainConfig, data: np.ndarray
) -> tuple[VAE, list[float]]:
    """Train a VAE in memory on ``data`` with the run recipe, writing nothing and without validation.

    The same Lightning module, optimiser, schedules and clipping as :func:`train`; for the
    scikit-learn estimators and notebooks. Seeding follows ``train_config.seed`` and leaves the
    caller's random generators as they were.

    Args:
        model_config: the model; its ``input_shape`` is replaced by ``data.shape[1:]``.
        train_config: the recipe (``progress`` shows a bar; single device only).
        data: (N, C, H, W) or (N, D) float32 samples.

    Returns:
        The trained model (on the CPU, in eval mode) and the mean training loss of each epoch.
    """
    data = np.ascontiguousarray(data, dtype=np.float32)
    input_shape = data.shape[1:] if data.ndim == 4 else (1, 1, data.shape[1])
    config = RunConfig(
        model=dataclasses.replace(model_config, input_shape=input_shape),
        train=train_config,
    )
    _check_memory(config)
    accelerator = _accelerator(train_config)
    bar = train_config.progress and on_terminal()
    epoch_loss = _EpochLoss()
    batch_size = min(train_config.batch_size, len(data))
    samples = data.reshape(len(data), *input_shape)
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    if not train_config.progress:  # no "GPU available" banners either
        lightning_log.setLevel(logging.WARNING)
    try:
        with _quiet_lightning():
            trainer = L.Trainer(
                max_epochs=train_config.epochs,
                accelerator=accelerator,
                devices=1,
                precision=train_config.precision,
                logger=False,
                enable_checkpointing=False,
                callbacks=[epoch_loss, *([_ProgressBar()] if bar else [])],
                enable_progress_bar=bar,
                enable_model_summary=False,
                limit_val_batches=0,
                num_sanity_val_steps=0,
            )
        rng_devices = [] if accelerator == "cpu" else [torch.cuda.current_device()]
        with _quiet_lightning(), torch.random.fork_rng(devices=rng_devices):
            torch.manual_seed(train_config.seed)
            module = VAEModule(config)
            _fit(trainer, module, datamodule=DataModule(samples, None, batch_size))
    finally:
        lightning_log.setLevel(level)
    if trainer.interrupted:
        raise KeyboardInterrupt("training was interrupted")
    return module.model.cpu().eval(), epoch_loss.curve
