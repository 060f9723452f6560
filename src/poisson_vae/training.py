"""Training on Lightning: the paper's recipe (SPEC 2), checkpoints, resume and the run directory.

A run directory holds::

    config.json           data, model and training configuration
    checkpoints/last.ckpt Lightning's trainer state (weights, optimiser, schedules, loop position)
    logs/version_N/       CSV logs, one folder per start (the first and each resume)
    tensorboard/          optional TensorBoard logs
    model.safetensors     final weights                    } written only when
    dictionary.png        decoder atoms sorted by KL       } the run finishes,
    metrics.json          validation metrics               } metrics.json last
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import signal
import warnings
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, Logger
from torch.utils.data import DataLoader, Dataset

from .data import Preprocessing, load_dataset
from .figures import save_dictionary_figure
from .metrics import evaluate_model
from .nets import LinearDecoder, parse_architecture
from .options import option
from .schedules import learning_rate_factor, linear_ramp
from .vae import CONFIG_FILE, VAE, CheckpointError, ModelConfig, build_vae, save_model

__all__ = [
    "DataConfig",
    "NonFiniteLossError",
    "RunConfig",
    "RunExistsError",
    "TrainConfig",
    "VAEModule",
    "fit_array",
    "train",
]

CHECKPOINT = Path("checkpoints") / "last.ckpt"


class _DropAdvertisement(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "litlogger" not in record.getMessage()


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdvertisement())
METRICS_FILE = "metrics.json"


#: Values of ``--accelerator``: ``auto`` takes CUDA when present (``gpu`` and ``cuda`` require it).
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


class RunExistsError(FileExistsError):
    """The output directory already holds a run."""


def resolve_source(data: str) -> str:
    """A dataset name as given, or ``npy:PATH`` with PATH made absolute."""
    if isinstance(data, str) and data.startswith("npy:"):
        return "npy:" + os.path.abspath(os.path.expanduser(data[len("npy:") :]))
    return data


@dataclass
class DataConfig:
    """Which data, how much of it, and where processed arrays are cached."""

    data: str = option("natural16", "dataset: natural16, mnist, or npy:PATH (see `pvae data list`)")
    n_train: int | None = option(None, "training samples (natural16: 80,000; others: all)")
    n_valid: int | None = option(None, "validation samples (natural16: 20,000; others: all)")
    data_seed: int = option(0, "seed of natural16's patch positions")
    data_dir: str | None = option(None, "folder of source files you supply (e.g. MNIST's IDX files)")
    whiten_f0: float | None = option(None, "whitening cut-off in cycles/pixel (dataset default)")
    contrast_normalise: bool | None = option(None, "local contrast normalisation (dataset default)")
    patch_size: int | None = option(None, "side of the square patches (dataset default)")
    patches_per_image: int | None = option(None, "random patches per image (dataset default)")
    cache_dir: str | None = option(
        None, "processed-array cache (default: $PVAE_CACHE_DIR or user cache)"
    )

    def __post_init__(self) -> None:
        # Absolute paths, so that the stored config.json works from any folder.
        self.data = resolve_source(self.data)
        for name in ("data_dir", "cache_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, os.path.abspath(os.path.expanduser(value)))
        for name in ("n_train", "n_valid"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
        if self.whiten_f0 is not None and not 0 < self.whiten_f0 <= 0.5:
            raise ValueError(f"--whiten-f0 must lie in (0, 0.5] cycles/pixel, got {self.whiten_f0}")
        if self.patch_size is not None and self.patch_size < 2:
            raise ValueError(f"--patch-size must be at least 2, got {self.patch_size}")
        if self.patches_per_image is not None and self.patches_per_image < 1:
            raise ValueError(f"--patches-per-image must be positive, got {self.patches_per_image}")
        if not 0 <= self.data_seed < 2**32:
            raise ValueError(f"--data-seed must be a whole number in [0, 2^32), got {self.data_seed}")

    def load(self) -> dict[str, np.ndarray]:
        """The dataset's train and validation arrays (and labels), from the cache when built."""
        preprocessing = Preprocessing(
            self.whiten_f0, self.contrast_normalise, self.patch_size, self.patches_per_image
        )
        return load_dataset(
            self.data,
            self.n_train,
            self.n_valid,
            self.data_seed,
            self.cache_dir,
            self.data_dir,
            preprocessing,
        )


@dataclass
class TrainConfig:
    """The optimisation recipe (defaults: the paper's van Hateren recipe, SPEC 2) and the hardware."""

    epochs: int = option(100, "training epochs (the paper: 3000)")
    batch_size: int = option(1000, "samples per batch (per device)")
    lr: float = option(5e-3, "peak learning rate of Adamax")
    lr_min: float = option(1e-5, "learning rate at the end of the cosine")
    warmup_epochs: float = option(5, "epochs of linear learning-rate warm-up")
    weight_decay: float = option(0.0, "Adamax weight decay")
    grad_clip: float = option(500.0, "gradient-norm clip")
    warmup_clip_factor: float = option(3.0, "clip multiplier during warm-up")
    lr_restarts: int = option(0, "warm restarts of the cosine after warm-up (the paper's MNIST: 2)")
    beta: float = option(1.0, "final KL weight")
    beta_start: float = option(1e-4, "initial KL weight of the linear ramp")
    beta_hold_fraction: float | None = option(
        None,
        "fraction of the steps beta stays at --beta-start (default: 0.01 with a "
        "non-linear decoder, else 0)",
    )
    temperature_start: float = option(1.0, "initial sampler temperature")
    temperature_end: float | None = option(
        None, "final sampler temperature (default: poisson 0.05, categorical 0.1)"
    )
    anneal_fraction: float = option(0.5, "fraction of the steps over which beta and temperature ramp")
    seed: int = option(0, "seed of initialisation, shuffling and sampling")
    accelerator: str = option("auto", "cpu, gpu, or auto (CUDA when present, else the CPU)")
    devices: str | int = option("auto", "devices per node: a count or 'auto'")
    num_nodes: int = option(1, "nodes for multi-node data parallelism")
    strategy: str = option("auto", "Lightning strategy, e.g. ddp")
    val_every: int = option(5, "validate every this many epochs")
    log_every: int = option(10, "log training metrics every this many steps")
    tensorboard: bool = option(False, "also log to TensorBoard")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        positive = (
            "epochs",
            "batch_size",
            "lr",
            "grad_clip",
            "num_nodes",
            "val_every",
            "log_every",
        )
        for name in positive:
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {value}")
        non_negative = ("lr_min", "warmup_epochs", "weight_decay", "beta", "beta_start")
        non_negative += ("temperature_start", "temperature_end")
        for name in non_negative:
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")
        if not 0 <= self.anneal_fraction <= 1:
            raise ValueError(f"--anneal-fraction must lie in [0, 1], got {self.anneal_fraction}")
        hold = self.beta_hold_fraction
        if hold is not None and not 0 <= hold <= self.anneal_fraction:
            raise ValueError(
                f"--beta-hold-fraction must lie in [0, --anneal-fraction = {self.anneal_fraction}], "
                f"got {hold}"
            )
        if not (isinstance(self.lr_restarts, int) and self.lr_restarts >= 0):
            raise ValueError(f"--lr-restarts must be an integer >= 0, got {self.lr_restarts}")
        if self.warmup_clip_factor < 1:
            raise ValueError(f"--warmup-clip-factor must be >= 1, got {self.warmup_clip_factor}")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be a whole number in [0, 2^32), got {self.seed}")
        check_accelerator(self.accelerator)
        self.devices = str(self.devices)
        if self.devices != "auto" and not (self.devices.isdigit() and int(self.devices) > 0):
            raise ValueError(f"--devices must be a positive count or 'auto', got {self.devices!r}")


@dataclass
class RunConfig:
    """Everything that defines a run; saved as ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, document: dict) -> RunConfig:
        sections = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
        unknown = sorted(set(document) - set(sections))
        if unknown:
            raise ValueError(f"unknown configuration section(s) {unknown}; known: {sorted(sections)}")
        parts = {}
        for name, kind in sections.items():
            values = document.get(name, {})
            if not isinstance(values, dict):
                raise ValueError(f"section {name!r} must be an object of options, got {values!r}")
            known = {f.name: f for f in fields(kind)}
            extra = sorted(set(values) - set(known))
            if extra:
                raise ValueError(f"unknown option(s) {extra} in section {name!r}")
            for key, value in values.items():
                _check_type(f"{name}.{key}", value, str(known[key].type))
            parts[name] = kind(**values)
        return cls(**parts)

    @classmethod
    def load(cls, path: str | Path) -> RunConfig:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON ({error})") from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: {error}") from None


_TYPE_NAMES = {
    "bool": "true or false",
    "int": "a whole number",
    "float": "a number",
    "str": "a string",
}


def _check_type(name: str, value: object, annotation: str) -> None:
    """Refuse a configuration value whose JSON type does not match its field's annotation, e.g.
    ``"false"`` for a flag (a non-empty string would otherwise count as true)."""
    allowed = [part.strip() for part in annotation.split("|")]
    if value is None and "None" in allowed:
        return
    for kind in allowed:
        if kind == "bool" and isinstance(value, bool):
            return
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return
        if kind == "str" and isinstance(value, str):
            return
        if kind.startswith("tuple[int") and isinstance(value, (list, tuple)):
            if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
                return
    expected = " or ".join(
        _TYPE_NAMES.get(kind, "a list of whole numbers" if kind.startswith("tuple") else kind)
        for kind in allowed
        if kind != "None"
    )
    expected += " (or null)" if "None" in allowed else ""
    raise ValueError(f"{name} must be {expected}, got {json.dumps(value)}")


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


class VAEModule(L.LightningModule):
    """The VAE with the paper's optimiser, schedules and gradient clipping.

    Args:
        config: the run configuration.
    """

    def __init__(self, config: RunConfig) -> None:
        super().__init__()
        self.config = config
        self.model: VAE = build_vae(config.model)

    # --- schedules -------------------------------------------------------------------------
    @property
    def _total_steps(self) -> int:
        return max(int(self.trainer.estimated_stepping_batches), 1)

    @property
    def _warmup_steps(self) -> int:
        per_epoch = self._total_steps / self.config.train.epochs
        return round(self.config.train.warmup_epochs * per_epoch)

    def schedule(self, step: int) -> tuple[float, float]:
        """(temperature, beta) at an optimiser step."""
        train = self.config.train
        ramp = int(train.anneal_fraction * self._total_steps)
        end = train.temperature_end
        end = self.model.latent.final_temperature if end is None else end
        temperature = linear_ramp(step, ramp, train.temperature_start, end)
        hold = train.beta_hold_fraction
        if hold is None:  # SPEC 2: non-linear decoders hold beta at its start for 1 % of the steps
            hold = 0.0 if parse_architecture(self.config.model.arch).decoder == "lin" else 0.01
        hold_steps = int(hold * self._total_steps)
        beta = linear_ramp(step, ramp, train.beta_start, train.beta, hold_steps)
        return temperature, beta

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
    def training_step(self, batch: torch.Tensor, batch_index: int) -> torch.Tensor:
        temperature, beta = self.schedule(self.global_step)
        where = f"at step {self.global_step} (epoch {self.current_epoch})"
        try:
            terms = self.model(batch, temperature=temperature)
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
        terms = self.model(batch, temperature=0.0, method="mc")
        mse_map = (batch - self.model.decode_point(terms.code)).pow(2).flatten(1).sum(1)
        metrics = {
            "val/sse": terms.sse.mean(),
            "val/kl": terms.kl.mean(),
            "val/mse_map": mse_map.mean(),
        }
        self.log_dict(metrics, sync_dist=True, batch_size=len(batch))
        nelbo = (terms.sse + terms.kl).mean()
        self.log("val/nelbo", nelbo, prog_bar=True, sync_dist=True, batch_size=len(batch))


class _ReseedPerRank(Callback):
    """Same initial weights on every rank (seeded before the model is built), different noise."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        torch.manual_seed(module.config.train.seed * 1000 + trainer.global_rank + 1)


def _is_launched_replica() -> bool:
    """True in the extra processes that a multi-device launcher starts (they re-run this code)."""
    return any(os.environ.get(name, "0") != "0" for name in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _tensorboard_logger(out: Path) -> Logger:
    import importlib.util

    if not any(importlib.util.find_spec(name) for name in ("tensorboard", "tensorboardX")):
        raise ValueError("--tensorboard needs the tensorboard package: pip install tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger

    return TensorBoardLogger(out, name="tensorboard")


class _ProgressBar(TQDMProgressBar):
    """Lightning's bar without the logger's version number."""

    def get_metrics(self, trainer: L.Trainer, module: L.LightningModule) -> dict:
        metrics = super().get_metrics(trainer, module)
        metrics.pop("v_num", None)
        return metrics


def check_out_is_a_folder(out: Path) -> None:
    """Refuse an ``--out`` that is, or lies inside, a file, before any work is done."""
    existing = next((path for path in (out, *out.parents) if path.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ValueError(f"--out {out}: {existing} is a file, not a folder; choose another --out")


def check_run_directory(out: Path, resume: bool) -> Path | None:
    """Refuse an ``out`` that holds a run (unless resuming); the checkpoint to resume from, if any."""
    checkpoint = out / CHECKPOINT
    check_out_is_a_folder(out)
    if not resume and (out / CONFIG_FILE).exists() and not _is_launched_replica():
        raise RunExistsError(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out"
        )
    if not (resume and checkpoint.is_file()):
        return None
    if not (out / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{checkpoint} has no {out / CONFIG_FILE} beside it to say what it trained; restore "
            "it, or delete the checkpoint to start again"
        )
    try:
        # Weights only: a checkpoint is data, and unpickling anything else could run code.
        # Memory-mapped: checks the file's structure without reading its tensors twice.
        torch.load(checkpoint, map_location="cpu", weights_only=True, mmap=True)["state_dict"]
    except Exception as error:
        raise CheckpointError(
            f"{checkpoint} is unreadable ({type(error).__name__}); delete it to restart the run "
            "from scratch, or restore a copy"
        ) from None
    return checkpoint


def write_config(out: Path, config: RunConfig) -> None:
    """Write ``config.json`` of a new run (a resumed run keeps its own)."""
    config_path = out / CONFIG_FILE
    if _is_launched_replica() or config_path.exists():
        return
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config.to_dict(), indent=2) + "\n")


def finish_run(model: VAE, config: RunConfig, valid: np.ndarray, out: Path) -> dict:
    """Write the final weights, figure and metrics of a finished run (metrics.json last)."""
    (out / METRICS_FILE).unlink(missing_ok=True)
    save_model(model, out)
    metrics = evaluate_model(model, valid, seed=config.train.seed)
    if isinstance(model.decoder, LinearDecoder):
        order = torch.argsort(torch.tensor(metrics["kl_per_latent"]), descending=True)
        save_dictionary_figure(
            model.decoder.dictionary,
            tuple(config.model.input_shape[1:]),
            out / "dictionary.png",
            order=order,
            title=f"{config.model.latent} {config.model.arch}: atoms by decreasing KL",
        )
    summary = {"data": config.data.data, "latent": config.model.latent, "arch": config.model.arch}
    summary |= {
        "method": config.model.method,
        "epochs": config.train.epochs,
        "seed": config.train.seed,
    }
    temporary = out / (METRICS_FILE + ".tmp")
    temporary.write_text(json.dumps(summary | metrics, indent=2) + "\n")
    temporary.replace(out / METRICS_FILE)
    return metrics


def check_accelerator(accelerator: str) -> None:
    """Raise a one-line ``ValueError`` unless ``accelerator`` is one of :data:`ACCELERATORS`."""
    if accelerator not in ACCELERATORS:
        raise ValueError(f"--accelerator must be one of {', '.join(ACCELERATORS)}, got {accelerator!r}")


def resolve_accelerator(accelerator: str) -> str:
    """``cpu`` or ``gpu`` (CUDA) for an ``--accelerator`` of :data:`ACCELERATORS`; a one-line error
    when CUDA is asked for and absent (Lightning's own "auto" would also pick Apple's MPS, untested
    here)."""
    if accelerator == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "gpu"
    if accelerator == "auto":
        return "cpu"
    raise ValueError(
        f"--accelerator {accelerator}: no CUDA device is visible to torch "
        f"{torch.__version__}; use --accelerator cpu (or auto)"
    )


def _accelerator(train_config: TrainConfig) -> str:
    """Lightning's accelerator for a run's ``--accelerator``."""
    return resolve_accelerator(train_config.accelerator)


def _make_trainer(config: RunConfig, out: Path, callbacks: list[Callback]) -> L.Trainer:
    """The Lightning trainer of a run; it writes nothing until it runs."""
    # Every start of the run (the first and each resume) logs into its own logs/version_N/.
    loggers: list[Logger] = [CSVLogger(out, name="logs")]
    if config.train.tensorboard:
        loggers.append(_tensorboard_logger(out))
    # Without a monitored metric, top-1 keeps the newest checkpoint: one file, rewritten every epoch.
    checkpointing = ModelCheckpoint(
        dirpath=out / CHECKPOINT.parent,
        filename=CHECKPOINT.stem,
        save_top_k=1,
        save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    train_config = config.train
    accelerator = _accelerator(train_config)
    return L.Trainer(
        max_epochs=train_config.epochs,
        accelerator=accelerator,
        devices=int(train_config.devices) if train_config.devices.isdigit() else "auto",
        num_nodes=train_config.num_nodes,
        strategy=train_config.strategy,
        logger=loggers,
        callbacks=[
            checkpointing,
            _ReseedPerRank(),
            *([_ProgressBar()] if train_config.progress else []),
            *callbacks,
        ],
        check_val_every_n_epoch=train_config.val_every,
        enable_progress_bar=train_config.progress,
        enable_model_summary=False,
        log_every_n_steps=train_config.log_every,
        num_sanity_val_steps=0,
        deterministic=False,
    )


def _ignore_lightning_noise() -> None:
    """Inside ``warnings.catch_warnings``: drop Lightning's warnings that do not apply here."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")  # in-memory tensors
    warnings.filterwarnings("ignore", message=".*treespec, LeafSpec.*")  # Lightning vs new torch
    # An epoch shorter than --log-every: the step count that triggers a log runs across epochs, so
    # training is still logged every --log-every steps.
    warnings.filterwarnings("ignore", message=".*smaller than the logging interval.*")


def train(
    config: RunConfig,
    out: str | Path,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
) -> dict | None:
    """Train a VAE and write its run directory.

    Args:
        config: the run configuration (its ``model.input_shape`` is taken from the data).
        out: run directory.
        resume: continue the run in ``out`` from its last checkpoint (or start it if there is none).
        callbacks: extra Lightning callbacks.

    Returns:
        The validation metrics, or None on processes other than rank 0 and when interrupted.

    Raises:
        NonFiniteLossError: the loss diverged; ``out/checkpoints/last.ckpt`` holds the last good state.
        RunExistsError: ``out`` holds a run and ``resume`` is False.
    """
    out = Path(out)
    checkpoint = check_run_directory(out, resume)
    splits = config.data.load()
    model_config = dataclasses.replace(config.model, input_shape=splits["train"].shape[1:])
    config = dataclasses.replace(config, model=model_config)
    trainer = _make_trainer(config, out, callbacks or [])
    write_config(out, config)
    L.seed_everything(config.train.seed, verbose=False)
    module = VAEModule(config)
    batch_size = config.train.batch_size
    with warnings.catch_warnings():
        _ignore_lightning_noise()
        warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
        try:
            trainer.fit(
                module,
                train_dataloaders=_loader(splits["train"], batch_size, shuffle=True),
                val_dataloaders=_loader(splits["valid"], max(batch_size, 2000), shuffle=False),
                ckpt_path=checkpoint,
                weights_only=True,  # explicit: torch < 2.6 defaults to unpickling anything
            )
        except SystemExit:
            # Lightning turns Ctrl+C into a graceful shutdown and exit(1), ignoring SIGINT from then on.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            if not trainer.interrupted:
                raise
    if trainer.interrupted or not trainer.is_global_zero:
        return None
    return finish_run(module.model.cpu(), config, splits["valid"], out)


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
    accelerator = _accelerator(train_config)
    epoch_loss = _EpochLoss()
    batch_size = min(train_config.batch_size, len(data))
    samples = data.reshape(len(data), *input_shape)
    lightning_log = logging.getLogger("lightning.pytorch")
    level = lightning_log.level
    if not train_config.progress:  # no "GPU available" banners either
        lightning_log.setLevel(logging.WARNING)
    try:
        trainer = L.Trainer(
            max_epochs=train_config.epochs,
            accelerator=accelerator,
            devices=1,
            logger=False,
            enable_checkpointing=False,
            callbacks=[epoch_loss, *([_ProgressBar()] if train_config.progress else [])],
            enable_progress_bar=train_config.progress,
            enable_model_summary=False,
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        rng_devices = [] if accelerator == "cpu" else [torch.cuda.current_device()]
        with warnings.catch_warnings(), torch.random.fork_rng(devices=rng_devices):
            _ignore_lightning_noise()
            warnings.filterwarnings("ignore", message=".*`validation_step` but have no `val_")
            torch.manual_seed(train_config.seed)
            module = VAEModule(config)
            trainer.fit(module, train_dataloaders=_loader(samples, batch_size, shuffle=True))
    finally:
        lightning_log.setLevel(level)
    return module.model.cpu().eval(), epoch_loss.curve
