"""Dictionary learning runs on registry datasets: ``pvae sparse-coding train``.

A run folder (:class:`~poisson_vae.runs.Run`) mirrors a VAE's: ``config.json`` (sections ``data``
and ``sparse_coding``), a checkpoint (dictionary, generator state and epoch, rewritten after every
epoch, so a resumed run continues exactly), ``logs/metrics.csv`` (a header, then
``epoch,objective``: one row per finished epoch), and at the end the dictionary's weights, its
figure and ``metrics.json`` (written last).
"""

from __future__ import annotations

import csv
import functools
import math
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from ..config import SparseCodingConfig, SparseCodingRunConfig, resolve_accelerator
from ..errors import CheckpointError
from ..figures import save_dictionary_figure
from ..files import write_atomic
from ..metrics import active_latents, explained_variance, lifetime_sparsity, population_sparsity
from ..progress import RunLog, on_terminal
from ..runs import Run
from .base import InferenceMethod
from .dictionary import dictionary_step, initial_dictionary

__all__ = ["code_metrics", "inference_method", "load_run", "train_sparse_coding"]

#: The log of a run, under its ``logs`` folder.
LOG = "metrics.csv"
#: Columns of ``logs/metrics.csv``: the epoch (from 1) and its mean inference objective.
LOG_HEADER = ("epoch", "objective")


def inference_method(config: SparseCodingConfig) -> InferenceMethod:
    """The inference method a sparse-coding configuration names."""
    from . import ALGORITHMS

    options = {"lam": config.lam, "n_iterations": config.n_iterations, "tol": config.tol}
    if config.algorithm == "lca":
        options["threshold"] = config.threshold
    return ALGORITHMS[config.algorithm](non_negative=config.non_negative, **options)


def _device(config: SparseCodingConfig) -> torch.device:
    """Where inference and the dictionary updates run (a one-line error if CUDA is asked for
    and absent)."""
    return torch.device("cuda" if resolve_accelerator(config.accelerator) == "gpu" else "cpu")


def load_run(directory: str | Path) -> tuple[SparseCodingRunConfig, torch.Tensor]:
    """The configuration and final (D, K) dictionary of a finished sparse-coding run."""
    run = Run(directory)
    config = run.config(SparseCodingRunConfig)
    return config, load_file(run.require_weights("sparse-coding"))["dictionary"]


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
        **explained_variance(sse, energy),
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


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    save_file(tensors, path)


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

    def write(temporary: Path) -> None:
        with open(temporary, "w", newline="") as handle:
            csv.writer(handle).writerows([LOG_HEADER, *rows])

    write_atomic(path, write)


def train_sparse_coding(config: SparseCodingRunConfig, out: str | Path, resume: bool = False) -> dict:
    """Learn a dictionary on ``config.data`` and write the run folder ``out``.

    Raises:
        RunExistsError: ``out`` holds a run and ``resume`` is False.
        RunBusyError: another process is training the run in ``out``.
    """
    run = Run(out)
    with run.session(resume):
        run.stored_config(SparseCodingRunConfig)  # refuses a VAE run in ``out``
        return _train(config, run, resume)


def _train(config: SparseCodingRunConfig, run: Run, resume: bool) -> dict:
    coder = config.sparse_coding
    # Everything that can refuse the configuration runs before the run folder is written.
    device = _device(coder)
    splits = config.data.load()
    train, valid = _flat(splits["train"]).to(device), _flat(splits["valid"]).to(device)
    method = inference_method(coder)
    generator = torch.Generator().manual_seed(coder.seed)
    dictionary = initial_dictionary(train, coder.n_atoms, "data", generator)
    first_epoch = 0
    checkpoint = Run.CHECKPOINT["sparse-coding"]
    if resume and (run.directory / checkpoint).is_file():
        state = load_file(run.directory / checkpoint)
        dictionary, first_epoch = state["dictionary"].to(device), int(state["epoch"])
        generator.set_state(state["generator"])
    elif resume and run.finished:  # its checkpoint is gone: evaluate the final dictionary again
        trained = run.config(SparseCodingRunConfig).sparse_coding.epochs
        if coder.epochs > trained:
            raise CheckpointError(
                f"{run.directory} finished {trained} epochs and its checkpoint is gone, so it "
                f"cannot be extended to {coder.epochs}; start a new run instead"
            )
        dictionary = load_run(run.directory)[1].to(device)
        first_epoch = coder.epochs
    run.write_config(config)
    log = run.logs / LOG
    _restart_log(log, first_epoch)
    steps = math.ceil(len(train) / coder.batch_size)
    bar = coder.progress and on_terminal()  # elsewhere a plain line per epoch
    lines = RunLog(run.log_path, echo=coder.progress and not bar)
    lines.line(
        f"learning {coder.label} with {coder.n_atoms} atoms: epochs {first_epoch + 1} to {coder.epochs}"
    )
    for epoch in range(first_epoch, coder.epochs):
        order = torch.randperm(len(train), generator=generator)
        objective = 0.0
        batches = tqdm(
            range(steps), desc=f"epoch {epoch + 1}/{coder.epochs}", disable=not bar, file=sys.stdout
        )
        for step in batches:
            batch = train[order[step * coder.batch_size : (step + 1) * coder.batch_size]]
            result = method.infer(batch, dictionary)
            dictionary = dictionary_step(dictionary, batch, result.codes, coder.lr)
            objective += float(result.objective.mean()) / steps
        with open(log, "a", newline="") as handle:
            csv.writer(handle).writerow([epoch + 1, objective])
        lines.line(f"epoch {epoch + 1}/{coder.epochs}, objective {objective:.4g}")
        state = {
            "dictionary": dictionary.cpu(),
            "epoch": torch.tensor(epoch + 1),
            "generator": generator.get_state(),
        }
        write_atomic(run.directory / checkpoint, functools.partial(_save, state))
    run.metrics_path.unlink(missing_ok=True)
    final = {"dictionary": dictionary.cpu().contiguous()}
    write_atomic(
        run.directory / Run.WEIGHTS["sparse-coding"], lambda temporary: save_file(final, temporary)
    )
    metrics = code_metrics(valid, dictionary, method)
    dictionary = dictionary.cpu()
    shape = tuple(splits["valid"].shape[-2:])
    order = torch.argsort(torch.tensor(metrics["cost_per_atom"]), descending=True)
    title = f"{coder.label}: atoms by decreasing use"
    save_dictionary_figure(dictionary, shape, run.figure_path, order=order, title=title)
    summary = {
        "data": config.data.data,
        "algorithm": coder.algorithm,
        "lam": coder.lam,
        "threshold": coder.threshold,
        "epochs": coder.epochs,
        "seed": coder.seed,
    }
    run.write_metrics(summary | metrics)
    return metrics
