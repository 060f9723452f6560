"""The amortisation gap: iterative sparse inference with a trained VAE's own linear dictionary.

A P-VAE with a linear decoder is amortised sparse coding: its encoder predicts in one pass what an
iterative sparse coder would find by optimisation. Running LCA / ISTA / FISTA with the VAE's
decoder as the fixed dictionary, at several sparsity weights, and comparing mse_map and lifetime
sparsity with the VAE's own encoder on the same patches measures what the amortisation costs
(docs/evaluation.md). The atoms are rescaled to unit norm for inference, which changes neither the
reconstructions nor the (scale-free) lifetime sparsity.

Other evaluated runs (VAEs and ``pvae sparse-coding train`` runs) can join the table and the
figure as single points, read from their ``pvae evaluate`` results by the reader of
:mod:`poisson_vae.compare`. A run that has not been evaluated is refused with the command to run
rather than evaluated here: evaluation is slow (Gabor fits, KNN, shattering), takes options of its
own, and writes into that run's folder, which a comparison should only read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import torch

from .config import RunConfig, choice, integer
from .errors import ConfigError, braces
from .figures import RatePoint, save_rate_distortion
from .iterative import IterativeVAE
from .latents import LATENT_FAMILIES
from .metrics import lifetime_sparsity
from .nets import LinearDecoder
from .runs import Run, check_output_path
from .sparse_coding import ALGORITHMS
from .sparse_coding.dictionary import normalise_atoms
from .tables import table
from .vae import load_model

__all__ = ["amortization_gap", "render_gap_table"]


def _vae_row(model, x: torch.Tensor, seed: int) -> dict:
    """The encoder's point: mse_map decodes the posterior means (a P-VAE's rates); the sparsity and
    zeros are those of hard samples (temperature 0), as ``pvae evaluate`` reports them."""
    with torch.no_grad():
        code = model.encode(x)
        z = model.latent.rsample(code, 0.0, generator=torch.Generator().manual_seed(seed))
        error = (x - model.decode_point(code)).flatten(1).pow(2).sum(1).mean()
    return {
        "source": "VAE encoder",
        "lam": None,
        "mse_map": float(error),
        "lifetime_sparsity": lifetime_sparsity(z),
        "portion_zeros": float((z == 0).double().mean()),
        "n_samples": len(x),
    }


def _compared_rows(directories: Sequence[str | Path], data: str) -> list[dict]:
    """One row per evaluated run in ``directories``, read from its ``eval/metrics.json``.

    Raises:
        ValueError: a run that is not evaluated (saying to run ``pvae evaluate``), lacks mse_map or
            lifetime sparsity, or was trained on other data than ``data``.
    """
    from .results import load_runs

    if not directories:
        return []
    rows = []
    for record in load_runs(directories):
        condition, metrics = record.condition, record.metrics
        if condition.data != data:
            raise ConfigError(
                f"{{0}} {braces(str(record.directory))} was trained on {braces(condition.data)}, "
                f"the VAE on {braces(data)}; compare runs on the same data",
                "compare",
            )
        if not {"mse_map", "lifetime_sparsity"} <= set(metrics):
            raise ConfigError(
                f"{Run(record.directory).eval_metrics_path} lacks mse_map or lifetime_sparsity; "
                f"evaluate it again with `pvae evaluate {record.directory}`"
            )
        evaluated = Run(record.directory).eval_metrics()
        rows.append(
            {
                "source": f"{condition.label}, seed {record.seed}",
                "lam": condition.lam,
                "mse_map": metrics["mse_map"],
                "lifetime_sparsity": metrics["lifetime_sparsity"],
                "portion_zeros": metrics.get("portion_zeros"),
                "n_samples": evaluated.get("n_samples"),
                "run": str(record.directory),
            }
        )
    return rows


def amortization_gap(
    run: str | Path,
    algorithm: str = "lca",
    lams: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0),
    n_samples: int = 2000,
    n_iterations: int = 900,
    non_negative: bool | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    compare: Sequence[str | Path] = (),
) -> list[dict]:
    """Sparse inference on a VAE's dictionary against its encoder; writes a table, JSON and figure.

    Args:
        run: a finished ``pvae train`` run with a linear decoder.
        algorithm: ``lca``, ``ista`` or ``fista``.
        lams: sparsity weights (the L1 weight, or LCA's threshold) to sweep.
        n_samples: validation samples (evenly spaced over the validation set).
        n_iterations: maximum iterations of inference (with early stopping at tol 1e-4).
        non_negative: non-negative codes (default: when the VAE's codes are non-negative).
        out: output folder (default ``RUN/amortization_gap``).
        seed: seed of the VAE's hard samples.
        compare: evaluated run directories (VAEs or sparse coders on the same data) whose
            ``pvae evaluate`` points join the table and figure.

    Returns:
        One row per point: the VAE's encoder, then each lambda (mse_map, lifetime sparsity, zeros,
        samples), then each compared run (with its directory as ``run``).
    """
    source = Run(run)
    choice(ALGORITHMS)("algorithm", algorithm)
    if not lams or not all(isinstance(lam, (int, float)) and lam > 0 for lam in lams):
        raise ConfigError(f"{{0}} needs positive values, got {braces(repr(list(lams)))}", "lams")
    integer(1)("n_samples", n_samples)
    integer(1)("n_iterations", n_iterations)
    config = source.config(RunConfig)
    model = load_model(source.directory)
    if isinstance(model, IterativeVAE):
        raise ConfigError(
            f"{source.directory} is an iterative VAE: it has no encoder whose gap to measure "
            "(its own inference is already iterative)"
        )
    if not isinstance(model.decoder, LinearDecoder) or model.decoder.linear.bias is not None:
        raise ConfigError(
            f"{source.directory} has decoder {model.config.arch!r}: the gap needs a linear decoder "
            "('...|lin')"
        )
    compared = _compared_rows(compare, config.data.data)
    valid = config.data.load()["valid"]
    # Evenly spaced samples: validation sets are stored image by image, so the first ones are not
    # representative.
    x = torch.as_tensor(valid[:: max(1, len(valid) // n_samples)][:n_samples])
    if non_negative is None:
        non_negative = LATENT_FAMILIES[config.model.latent].non_negative
    rows = [_vae_row(model, x, seed)]
    dictionary = normalise_atoms(model.decoder.dictionary.detach().double()).float()
    flat = x.flatten(1)
    for lam in lams:
        method = ALGORITHMS[algorithm](lam=lam, n_iterations=n_iterations, non_negative=non_negative)
        result = method.infer(flat, dictionary)
        error = (flat - result.codes @ dictionary.T).pow(2).sum(1).mean()
        rows.append(
            {
                "source": f"{algorithm.upper()} on the VAE's dictionary",
                "lam": lam,
                "mse_map": float(error),
                "lifetime_sparsity": lifetime_sparsity(result.codes),
                "portion_zeros": float((result.codes == 0).double().mean()),
                "n_samples": len(flat),
                "iterations": result.n_iterations,
            }
        )
    sweep = rows[1:]
    rows += compared
    out = check_output_path(out) if out is not None else source.gap_dir
    out.mkdir(parents=True, exist_ok=True)
    label = f"{config.model.latent} {config.model.arch}"
    (out / "amortization_gap.md").write_text(render_gap_table(rows, label))
    curves = {f"{label} encoder": [_point(rows[0])], sweep[0]["source"]: [_point(row) for row in sweep]}
    curves |= {row["source"]: [_point(row)] for row in compared}
    save_rate_distortion(curves, out / "rate_distortion.png", f"amortisation gap: {label}")
    (out / "amortization_gap.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


def _point(row: dict) -> RatePoint:
    """A row's point of the figure, labelled with its lambda where it has one."""
    label = "" if row["lam"] is None else f"λ={row['lam']:g}"
    return RatePoint(row["lifetime_sparsity"], row["mse_map"], label=label)


def render_gap_table(rows: list[dict], label: str) -> str:
    """A Markdown table of the gap rows (those of :func:`amortization_gap`), with what they mean."""
    cells = [
        [
            row["source"],
            "-" if row["lam"] is None else f"{row['lam']:g}",
            f"{row['mse_map']:.2f}",
            f"{row['lifetime_sparsity']:.3f}",
            "-" if row.get("portion_zeros") is None else f"{row['portion_zeros']:.3f}",
            row.get("n_samples") or "-",
        ]
        for row in rows
    ]
    header = ["codes from", "lambda", "mse_map", "lifetime sparsity", "zeros", "samples"]
    lines = [f"# Amortisation gap of {label}", "", *table(header, cells)]
    notes = [
        "",
        "The encoder's mse_map decodes its posterior means (a P-VAE's rates, not its samples); its "
        "lifetime sparsity and zeros are those of hard samples (temperature 0), as `pvae evaluate` "
        "reports them. Inference on the VAE's dictionary uses the same validation samples.",
    ]
    if any("run" in row for row in rows):
        notes += [
            "",
            "Rows of other runs (`--compare`) are their `pvae evaluate` results, on their whole "
            "validation set; a sparse coder's lambda is its own.",
        ]
    return "\n".join(lines + notes) + "\n\n![rate-distortion](rate_distortion.png)\n"
