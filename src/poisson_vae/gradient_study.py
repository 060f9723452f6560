"""Measuring gradient estimators against the exact gradient: the metrics of the gradient-quality
study (bias, variance, SNR, cosine similarity, Hessian-weighted bias and noise energies) and the
1-Wasserstein distance of relaxed samples to the exact Poisson law.

Everything is computed in float64 from float32 samples. Hand-written: the metrics are the study's
own definitions (docs/sampler.md), which no library provides.
"""

from __future__ import annotations

import json
import math
import statistics
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from scipy import stats

from .distributions import relaxed_moments
from .gradients import ESTIMATORS, PoissonEstimator, SquaredError, make_estimator

__all__ = [
    "GRADIENT_METRICS",
    "STUDY_ESTIMATORS",
    "STUDY_RATES",
    "STUDY_TEMPERATURES",
    "gradient_statistics",
    "run_study",
    "sample_gradients",
    "study_cell",
    "study_problem",
    "summarise",
    "wasserstein_to_poisson",
]

#: The per-row metrics of :func:`gradient_statistics`.
GRADIENT_METRICS = (
    "bias",
    "variance",
    "snr",
    "cos",
    "cos_sample",
    "signal_energy",
    "bias_energy",
    "noise_energy",
)


def sample_gradients(
    estimator: PoissonEstimator,
    objective: SquaredError,
    rate: torch.Tensor,
    n_samples: int,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``n_samples`` independent gradients of each row's expected loss with respect to its
    log-rates, from one call of the estimator on the rows repeated ``n_samples`` times.

    Args:
        estimator: any estimator of :mod:`poisson_vae.gradients`.
        objective: the rows' loss (x of B rows).
        rate: (B, K) rates.
        n_samples: N.
        temperature: for the estimators that use one.
        generator: optional random generator.

    Returns:
        (N, B, K) float64 gradients.
    """
    batch, latents = rate.shape
    log_rate = rate.detach().log().repeat(n_samples, 1).requires_grad_()
    repeated = SquaredError(objective.x.repeat(n_samples, 1), objective.dictionary)
    loss, _ = estimator.loss(log_rate.exp(), repeated, temperature, generator)
    (gradient,) = torch.autograd.grad(loss.sum(), log_rate)
    return gradient.detach().double().view(n_samples, batch, latents)


def gradient_statistics(
    gradients: torch.Tensor, exact: torch.Tensor, hessian: torch.Tensor | None = None
) -> dict[str, torch.Tensor]:
    """The study's metrics of sampled gradients against the exact gradient, per row.

    With ``gbar`` the mean gradient over samples, ``Sigma`` their covariance (N - 1 denominator)
    and ``g*`` the exact gradient: ``bias`` = ||gbar - g*|| / ||g*||, ``variance`` =
    tr(Sigma) / ||g*||^2, ``snr`` = 1 / variance, ``cos`` = cos(gbar, g*), ``cos_sample`` = the
    mean over samples of cos(g_n, g*); with the Hessian H, ``signal_energy`` S = g*^T H g*,
    ``bias_energy`` = (gbar - g*)^T H (gbar - g*) / S and ``noise_energy`` = tr(H Sigma) / S. H can
    be indefinite: where S <= 0 the two energies are NaN (``signal_energy`` says why).

    Args:
        gradients: (N, B, K) sampled gradients, N >= 2.
        exact: (B, K) exact gradients.
        hessian: (B, K, K) Hessians, or None (the energies are then left out).

    Returns:
        Metric name -> (B,) float64 tensor.
    """
    gradients, exact = gradients.double(), exact.double()
    n = gradients.shape[0]
    if n < 2:
        raise ValueError(f"gradient statistics need at least 2 samples per row, got {n}")
    mean = gradients.mean(0)
    centred = gradients - mean
    bias = mean - exact
    norm2 = exact.pow(2).sum(-1)
    tiny = torch.finfo(torch.float32).eps
    trace = centred.pow(2).sum((0, 2)) / (n - 1)
    result = {
        "bias": bias.norm(dim=-1) / norm2.sqrt().clamp_min(tiny),
        "variance": trace / norm2.clamp_min(tiny),
        "snr": norm2 / trace.clamp_min(tiny),
        "cos": torch.nn.functional.cosine_similarity(mean, exact, dim=-1),
        "cos_sample": torch.nn.functional.cosine_similarity(gradients, exact, dim=-1).mean(0),
    }
    if hessian is not None:
        hessian = hessian.double()
        signal = torch.einsum("bk,bkl,bl->b", exact, hessian, exact)
        usable = signal > tiny
        bias_energy = torch.einsum("bk,bkl,bl->b", bias, hessian, bias)
        noise = torch.einsum("nbk,bkl,nbl->b", centred, hessian, centred) / (n - 1)
        result["signal_energy"] = signal
        result["bias_energy"] = torch.where(usable, bias_energy / signal, torch.nan)
        result["noise_energy"] = torch.where(usable, noise / signal, torch.nan)
    return result


def summarise(statistics: dict[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Each metric's mean and standard deviation over rows (NaN rows left out)."""
    summary = {}
    for name, values in statistics.items():
        finite = values[torch.isfinite(values)]
        if finite.numel() == 0:
            summary[name] = (math.nan, math.nan)
        else:
            spread = float(finite.std()) if finite.numel() > 1 else 0.0
            summary[name] = (float(finite.mean()), spread)
    return summary


def wasserstein_to_poisson(samples: torch.Tensor, rate: float) -> float:
    """The 1-Wasserstein distance of the empirical law of ``samples`` to Poisson(``rate``):
    ``mean_i |x_(i) - Q((i - 1/2) / n)|`` with Q the Poisson quantile function (no second
    sample, so no two-sample noise floor), divided by ``sqrt(rate)``.

    Args:
        samples: (n,) relaxed or exact counts.
        rate: > 0.
    """
    ordered = torch.sort(samples.detach().double().flatten()).values.numpy()
    n = ordered.size
    levels = (torch.arange(n, dtype=torch.float64).numpy() + 0.5) / n
    quantiles = stats.poisson.ppf(levels, rate)
    return float(abs(ordered - quantiles).mean() / math.sqrt(rate))


#: The estimators the study compares, by label: (registry name, options). The sigmoid is walked
#: untruncated, so that its bias is the relaxation's alone.
STUDY_ESTIMATORS: dict[str, tuple[str, dict]] = {
    "eat-sigmoid": ("eat", {"indicator": "sigmoid", "truncate": False}),
    "eat-linear": ("eat", {"indicator": "linear"}),
    "eat-cubic": ("eat", {"indicator": "cubic"}),
    "eat-quintic": ("eat", {"indicator": "quintic"}),
    "eat-cosine": ("eat", {"indicator": "cosine"}),
    "eat-sigmoid-st": ("eat", {"indicator": "sigmoid", "straight_through": True}),
    "gsm": ("gsm", {"support": "harness"}),
    "score-loo": ("score", {"n_samples": 8, "baseline": "loo"}),
    "score-mean": ("score", {"n_samples": 8, "baseline": "mean"}),
    "vargrad": ("vargrad", {"n_samples": 8}),
    "mvd": ("mvd", {}),
}
#: The rates and temperatures of the published study's grid.
STUDY_RATES = (0.1, 0.5, 1.0, 2.0, 5.0, 8.0, 10.0, 15.0, 20.0, 30.0, 40.0, 70.0, 100.0)
STUDY_TEMPERATURES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5)


def study_problem(rows: int, latents: int, dictionary: str = "random", seed: int = 0) -> SquaredError:
    """The squared error the study differentiates: ``rows`` targets x (B, 256) and a dictionary.

    Args:
        rows: B.
        latents: K of a random dictionary (unit-norm atoms); the shipped model's is 512.
        dictionary: ``random``, or ``natural16-pvae`` (the shipped P-VAE's decoder, with natural16
            validation patches as targets).
        seed: of the random dictionary, the random targets and the choice of patches.
    """
    generator = torch.Generator().manual_seed(seed)
    if dictionary == "random":
        atoms = torch.randn(256, latents, generator=generator)
        atoms /= atoms.norm(dim=0, keepdim=True)
        return SquaredError(torch.randn(rows, 256, generator=generator), atoms)
    if dictionary == "natural16-pvae":
        from .data import load_dataset
        from .pretrained import load_pretrained

        atoms = load_pretrained("natural16-pvae").decoder.dictionary.detach()
        patches = torch.as_tensor(load_dataset("natural16")["valid"]).flatten(1)
        chosen = torch.randperm(patches.shape[0], generator=generator)[:rows]
        return SquaredError(patches[chosen].float(), atoms)
    raise ValueError(f"dictionary must be 'random' or 'natural16-pvae', got {dictionary!r}")


def study_cell(
    label: str,
    objective: SquaredError,
    rate: float,
    temperature: float,
    n_samples: int,
    w1_samples: int = 20_000,
    seed: int = 0,
) -> dict:
    """One cell of the study: an estimator at one constant rate and temperature.

    Returns:
        ``{"estimator", "rate", "temperature", "<metric>_mean", "<metric>_std" for every metric of
        GRADIENT_METRICS, "bias_resolved" (the bias over the noise of the mean gradient), "w1"
        (relaxed samples against Poisson(rate); NaN for estimators that draw exact counts),
        "ms_per_gradient"}``.
    """
    import time

    name, options = STUDY_ESTIMATORS[label]
    estimator = make_estimator(name, **options)
    uses_temperature = estimator.uses_temperature
    rates = torch.full((objective.x.shape[0], objective.dictionary.shape[1]), rate)
    # one stream per cell, shared by the estimators: cells are independent, estimators paired
    cell_seed = zlib.crc32(repr((seed, float(rate), float(temperature))).encode())
    generator = torch.Generator().manual_seed(cell_seed)
    started = time.perf_counter()
    gradients = sample_gradients(estimator, objective, rates, n_samples, temperature, generator)
    seconds = time.perf_counter() - started
    exact = SquaredError(objective.x.double(), objective.dictionary.double())  # the reference in float64
    measured = gradient_statistics(
        gradients, exact.gradient(rates.double()), exact.hessian(rates.double())
    )
    row = {"estimator": label, "rate": rate, "temperature": temperature if uses_temperature else None}
    for metric, (mean, spread) in summarise(measured).items():
        row[f"{metric}_mean"], row[f"{metric}_std"] = mean, spread
    # the bias in units of the noise of a mean over N gradients: ~1 where no bias is resolved
    row["bias_resolved"] = row["bias_mean"] / math.sqrt(max(row["variance_mean"], 1e-300) / n_samples)
    row |= dict.fromkeys(("w1", "sample_mean", "sample_var", "mean_exact", "var_exact"), math.nan)
    row["n_draws"] = w1_samples
    if uses_temperature and not options.get("straight_through"):
        _, z = estimator.loss(
            torch.full((w1_samples, 1), rate), lambda z: z.sum(-1), temperature, generator
        )
        samples = z.detach().double().flatten()
        row["w1"] = wasserstein_to_poisson(samples, rate)
        row["sample_mean"], row["sample_var"] = float(samples.mean()), float(samples.var())
        untruncated = options.get("indicator") != "sigmoid" or options.get("truncate") is False
        if name == "eat" and untruncated:  # compact indicators are never truncated
            mean, variance = relaxed_moments(rate, temperature, options["indicator"])
            row["mean_exact"], row["var_exact"] = float(mean), float(variance)
    row["ms_per_gradient"] = 1000 * seconds / n_samples
    return row


#: The metrics the report and figures show, with their labels.
REPORTED = {
    "bias_mean": "bias (relative)",
    "bias_resolved": "bias / its noise",
    "snr_mean": "SNR",
    "cos_mean": "cosine of the mean gradient",
    "bias_energy_mean": "bias energy",
    "noise_energy_mean": "noise energy",
    "w1": "W1 to Poisson / sqrt(rate)",
    "ms_per_gradient": "ms per gradient",
}


def run_study(
    out: str | Path,
    estimators: Sequence[str] = tuple(STUDY_ESTIMATORS),
    rates: Sequence[float] = STUDY_RATES,
    temperatures: Sequence[float] = STUDY_TEMPERATURES,
    n_samples: int = 100,
    rows: int = 8,
    latents: int = 64,
    dictionary: str = "random",
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """The gradient-quality study over estimators x rates x temperatures, resumable.

    Each finished cell is appended to ``out/cells.jsonl`` at once; a second call with the same
    arguments skips the cells already there (an interrupted study resumes where it stopped).
    Estimators that use no temperature run once per rate. Writes ``out/REPORT.md`` and one
    heatmap figure per reported metric (``out/<metric>.png``, rate x temperature per estimator).

    Returns:
        Every cell's row (see :func:`study_cell`).
    """
    unknown = sorted(set(estimators) - set(STUDY_ESTIMATORS))
    if unknown:
        raise ValueError(f"unknown estimators {unknown}; choose from {', '.join(STUDY_ESTIMATORS)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cells_path = out / "cells.jsonl"
    done = {}
    if cells_path.is_file():
        for line in cells_path.read_text().splitlines():
            if line.strip():  # a line cut short by a kill is the one cell computed again
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                done[(row["estimator"], row["rate"], row["temperature"])] = row
    objective = study_problem(rows, latents, dictionary, seed)
    results = []
    for label in estimators:
        uses_temperature = ESTIMATORS[STUDY_ESTIMATORS[label][0]].uses_temperature
        estimator_temperatures = temperatures if uses_temperature else (None,)
        for rate in rates:
            for temperature in estimator_temperatures:
                key = (label, float(rate), temperature)
                if key not in done:
                    row = study_cell(
                        label, objective, float(rate), temperature or 0.0, n_samples, seed=seed
                    )
                    with cells_path.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
                    done[key] = row
                    if progress is not None:
                        progress(
                            f"{label} rate {rate} temperature {temperature}: "
                            f"bias {row['bias_mean']:.3g}, snr {row['snr_mean']:.3g}"
                        )
                results.append(done[key])
    write_report(
        out,
        results,
        n_samples=n_samples,
        rows=rows,
        latents=objective.dictionary.shape[1],
        dictionary=dictionary,
    )
    return results


def write_report(out: Path, results: list[dict], **setup) -> Path:
    """``out/REPORT.md`` (per estimator, each reported metric averaged over the grid and at each
    temperature) and the heatmaps."""
    from .figures import save_heatmaps

    labels = list(dict.fromkeys(row["estimator"] for row in results))
    lines = [
        "# Gradient-quality study",
        "",
        "Setup: " + ", ".join(f"{key} {value}" for key, value in setup.items()) + ". Constant rates; "
        "gradients with respect to the log-rates against the exact gradient of a linear decoder's "
        "squared error; metrics per row, averaged over rows (docs/sampler.md).",
        "",
        "| estimator | " + " | ".join(REPORTED.values()) + " |",
        "|---|" + "---|" * len(REPORTED),
    ]
    for label in labels:
        own = [row for row in results if row["estimator"] == label]
        cells = []
        for metric in REPORTED:
            values = [
                row[metric] for row in own if row[metric] is not None and math.isfinite(row[metric])
            ]
            cells.append(f"{statistics.median(values):.3g}" if values else "-")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Medians over the grid's cells (rates x temperatures). The measured bias includes the noise "
        "of a mean over N gradients, about sqrt(variance / N) = 1 / sqrt(SNR N); 'bias / its "
        "noise' near 1 means no bias is resolved at this N, well above 1 a real bias.",
        "",
    ]
    for metric, title in REPORTED.items():
        path = save_heatmaps(results, metric, title, out / f"{metric}.png")
        lines.append(f"![{title}]({path.name})")
    report = out / "REPORT.md"
    report.write_text("\n".join(lines) + "\n")
    return report
