"""Dictionary learning runs on registry datasets: ``pvae sparse-coding train``.

A run directory mirrors a VAE's: ``config.json`` (sections ``data`` and ``sparse_coding``),
``checkpoints/last.safetensors`` (dictionary, generator state and epoch, rewritten after every
epoch, so ``--resume`` continues an interrupted run), ``logs/metrics.csv`` (a header, then
``epoch,objective``: one row per finished epoch), and at the end ``dictionary.safetensors``,
``dictionary.png`` and ``metrics.json`` (written last).
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..figures import save_dictionary_figure
from ..metrics import active_latents, lifetime_sparsity, population_sparsity
from ..options import option
from .base import InferenceMethod
from .dictionary import dictionary_step, initial_dictionary
from .lca import THRESHOLDS

__all__ = [
    "SparseCodingConfig",
    "SparseCodingRun",
    "code_metrics",
    "load_run",
    "threshold_refusal",
    "train_sparse_coding",
]

CHECKPOINT = Path("checkpoints") / "last.safetensors"
DICTIONARY_FILE = "dictionary.safetensors"
LOG = Path("logs") / "metrics.csv"
#: Columns of ``logs/metrics.csv``: the epoch (from 1) and its mean inference objective.
LOG_HEADER = ("epoch", "objective")


@dataclass
class SparseCodingConfig:
    """The inference method and the dictionary-learning recipe."""

    algorithm: str = option("lca", "inference: lca, ista or fista")
    n_atoms: int = option(512, "number of atoms K")
    lam: float = option(0.5, "sparsity weight (L1 weight; LCA's threshold)")
    n_iterations: int = option(300, "maximum inference iterations per batch")
    tol: float = option(
        1e-3, "relative change (per sample; LCA: of its potentials) that stops inference early"
    )
    non_negative: bool = option(False, "non-negative codes")
    threshold: str = option("soft", "LCA's threshold: soft (Lasso) or hard (L0-like); LCA only")
    epochs: int = option(20, "passes over the training data")
    batch_size: int = option(1000, "samples per dictionary update")
    lr: float = option(0.1, "step size of the dictionary update")
    seed: int = option(0, "seed of the initial atoms and the batch order")
    accelerator: str = option("auto", "cpu, gpu, or auto (CUDA when present, else the CPU)")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self) -> None:
        """Check every field's type and range, so a bad value fails before a run folder is made."""
        from . import ALGORITHMS

        if self.algorithm not in ALGORITHMS:
            raise ValueError(
                f"--algorithm {self.algorithm!r} is unknown; choose one of {sorted(ALGORITHMS)}"
            )
        for name in ("n_atoms", "n_iterations", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"--{_flag(name)} must be a positive integer, got {value!r}")
        for name, zero_allowed in (("lam", False), ("lr", False), ("tol", True)):
            value = getattr(self, name)
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if not (number and math.isfinite(value) and (value >= 0 if zero_allowed else value > 0)):
                bound = ">= 0" if zero_allowed else "> 0"
                raise ValueError(f"--{_flag(name)} must be a finite number {bound}, got {value!r}")
        for name in ("non_negative", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"--{_flag(name)} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must be a whole number in [0, 2^32), got {self.seed!r}")
        if self.threshold not in THRESHOLDS:
            raise ValueError(
                f"--threshold must be one of {', '.join(THRESHOLDS)}, got {self.threshold!r}"
            )
        if self.threshold != "soft" and self.algorithm != "lca":
            raise ValueError(threshold_refusal(self.algorithm))
        from ..training import check_accelerator

        check_accelerator(self.accelerator)

    def device(self) -> torch.device:
        """Where inference and the dictionary updates run (a one-line error if CUDA is asked for
        and absent)."""
        from ..training import resolve_accelerator

        return torch.device("cuda" if resolve_accelerator(self.accelerator) == "gpu" else "cpu")

    @property
    def label(self) -> str:
        """The method in a few words: ``lca lambda 0.5``, ``lca hard lambda 0.5``."""
        hard = " hard" if self.threshold == "hard" else ""
        return f"{self.algorithm}{hard} lambda {self.lam:g}"

    def method(self) -> InferenceMethod:
        from . import ALGORITHMS

        options = {"lam": self.lam, "n_iterations": self.n_iterations, "tol": self.tol}
        if self.algorithm == "lca":
            options["threshold"] = self.threshold
        return ALGORITHMS[self.algorithm](non_negative=self.non_negative, **options)


def _flag(name: str) -> str:
    return name.replace("_", "-")


def threshold_refusal(algorithm: str) -> str:
    """The one-line refusal of ``--threshold`` with an algorithm other than LCA."""
    return (
        f"--threshold applies to --algorithm lca only ({algorithm} always soft-thresholds); "
        "drop --threshold or use --algorithm lca"
    )


@dataclass
class SparseCodingRun:
    """Everything that defines a sparse-coding run; saved as ``config.json``."""

    data: object = None  # a training.DataConfig
    sparse_coding: SparseCodingConfig = field(default_factory=SparseCodingConfig)

    def to_dict(self) -> dict:
        return {"data": asdict(self.data), "sparse_coding": asdict(self.sparse_coding)}


def load_run(directory: str | Path) -> tuple[SparseCodingRun, torch.Tensor]:
    """The configuration and final (D, K) dictionary of a finished sparse-coding run."""
    from ..training import DataConfig

    directory = Path(directory)
    document = json.loads((directory / "config.json").read_text())
    config = SparseCodingRun(
        DataConfig(**document["data"]), SparseCodingConfig(**document["sparse_coding"])
    )
    path = directory / DICTIONARY_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the run has not finished (resume it with --resume)")
    return config, load_file(path)["dictionary"]


@torch.no_grad()
def code_metrics(x: torch.Tensor, dictionary: torch.Tensor, method: InferenceMethod) -> dict:
    """Validation metrics of sparse codes: mse_map (SSE of Phi a), sparsity, active atoms.

    Args:
        x: (N, D) samples.
        dictionary: (D, K) unit-norm atoms.
        method: the inference method.
    """
    codes, errors = [], []
    for start in range(0, len(x), 1000):
        batch = x[start : start + 1000]
        result = method.infer(batch, dictionary)
        codes.append(result.codes)
        errors.append((batch - result.codes @ dictionary.T).pow(2).sum(1))
    a, sse = torch.cat(codes), torch.cat(errors)
    # The L1 cost per atom plays the part of a VAE's per-latent KL in the active-atom rule.
    cost = a.abs().mean(0)
    share = a.pow(2).mean(0) * dictionary.pow(2).sum(0)
    active, threshold = active_latents(cost, share)
    energy = (x - x.mean(1, keepdim=True)).pow(2).sum(1)
    return {
        "n_samples": len(x),
        "mse_map": float(sse.mean()),
        "sse": float(sse.mean()),
        "r2": float(1 - sse.sum() / energy.sum()),
        "l1": float(a.abs().sum(1).mean()),
        "portion_zeros": float((a == 0).double().mean()),
        "lifetime_sparsity": lifetime_sparsity(a),
        "population_sparsity": population_sparsity(a),
        "n_active": int(active.sum()),
        "active_fraction": float(active.double().mean()),
        "active_threshold": threshold,
        "cost_per_atom": cost.tolist(),
        "share_per_latent": share.tolist(),
    }


def _flat(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).flatten(1).float()


def _restart_log(path: Path, finished_epochs: int) -> None:
    """Rewrite the log as its header and the rows of the first ``finished_epochs`` epochs.

    An epoch's row is written just before its checkpoint, so a run stopped between the two has a
    row its checkpoint lacks; resuming redoes that epoch, and without this would log it twice.
    Rows of logs written before the header existed are kept the same way.
    """
    rows = []
    if path.is_file():
        with open(path, newline="") as handle:
            rows = [
                row
                for row in csv.reader(handle)
                if row and row[0].isdigit() and int(row[0]) <= finished_epochs
            ]
    path.parent.mkdir(exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", newline="") as handle:
        csv.writer(handle).writerows([LOG_HEADER, *rows])
    temporary.replace(path)


def train_sparse_coding(config: SparseCodingRun, out: str | Path, resume: bool = False) -> dict:
    """Learn a dictionary on ``config.data`` and write the run directory ``out``.

    Raises:
        FileExistsError: ``out`` holds a run and ``resume`` is False.
    """
    from ..training import check_out_is_a_folder

    out = Path(out)
    recipe = config.sparse_coding
    check_out_is_a_folder(out)
    if (out / "config.json").exists() and not resume:
        raise FileExistsError(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out"
        )
    if resume and (out / "config.json").is_file():
        if "sparse_coding" not in json.loads((out / "config.json").read_text()):
            raise ValueError(f"{out} holds a VAE run, not a sparse-coding run; choose another --out")
    # Everything that can refuse the recipe runs before the run folder is made.
    device = recipe.device()
    splits = config.data.load()
    train, valid = _flat(splits["train"]).to(device), _flat(splits["valid"]).to(device)
    method = recipe.method()
    generator = torch.Generator().manual_seed(recipe.seed)
    dictionary = initial_dictionary(train, recipe.n_atoms, "data", generator)
    out.mkdir(parents=True, exist_ok=True)
    if not (out / "config.json").exists():
        (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
    first_epoch = 0
    if resume and (out / CHECKPOINT).is_file():
        state = load_file(out / CHECKPOINT)
        dictionary, first_epoch = state["dictionary"].to(device), int(state["epoch"])
        generator.set_state(state["generator"])
    log = out / LOG
    _restart_log(log, first_epoch)
    steps = math.ceil(len(train) / recipe.batch_size)
    for epoch in range(first_epoch, recipe.epochs):
        order = torch.randperm(len(train), generator=generator)
        objective = 0.0
        batches = tqdm(
            range(steps), desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not recipe.progress
        )
        for step in batches:
            batch = train[order[step * recipe.batch_size : (step + 1) * recipe.batch_size]]
            result = method.infer(batch, dictionary)
            dictionary = dictionary_step(dictionary, batch, result.codes, recipe.lr)
            objective += float(result.objective.mean()) / steps
        with open(log, "a", newline="") as handle:
            csv.writer(handle).writerow([epoch + 1, objective])
        (out / CHECKPOINT).parent.mkdir(exist_ok=True)
        state = {
            "dictionary": dictionary.cpu(),
            "epoch": torch.tensor(epoch + 1),
            "generator": generator.get_state(),
        }
        save_file(state, out / CHECKPOINT)
    (out / "metrics.json").unlink(missing_ok=True)
    save_file({"dictionary": dictionary.cpu().contiguous()}, out / DICTIONARY_FILE)
    metrics = code_metrics(valid, dictionary, method)
    dictionary = dictionary.cpu()
    shape = tuple(splits["valid"].shape[-2:])
    order = torch.argsort(torch.tensor(metrics["cost_per_atom"]), descending=True)
    title = f"{recipe.label}: atoms by decreasing use"
    save_dictionary_figure(dictionary, shape, out / "dictionary.png", order=order, title=title)
    summary = {
        "data": config.data.data,
        "algorithm": recipe.algorithm,
        "lam": recipe.lam,
        "threshold": recipe.threshold,
        "seed": recipe.seed,
    }
    temporary = out / "metrics.json.tmp"
    temporary.write_text(json.dumps(summary | metrics, indent=2) + "\n")
    temporary.replace(out / "metrics.json")
    return metrics
