"""Poisson gradient estimators: the gradient-quality study on the shipped P-VAE's dictionary, and
the linear P-VAE trained on natural16 with each estimator.

Its claims, from "A Hitchhiker's Guide to Poisson Gradient Estimation" and the P-VAE paper's
Table 4: the cubic relaxation's mean is the rate for temperatures up to 1 while the sigmoid's
over-counts by ``rate T log(1 + e^{-1/T})``; the score function is unbiased but its variance is
orders of magnitude above the pathwise estimators'; ``mc`` trains within about 1 % of ``exact``
and straight-through worse; the cubic relaxation's gradients and samples are better than the
sigmoid's; and estimators rank alike by gradient error and by the NELBO they train to.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy import stats

from ...figures import save_heatmaps
from ...gradient_study import STUDY_ESTIMATORS, STUDY_RATES, STUDY_TEMPERATURES
from ...results import condition_and_seed
from ...tables import number, published_cell, table
from ..claims import ALPHA, claim, equivalence_claim, threshold_claim
from .base import Job, Suite, SuiteDefinition, data_section, protocol, slug, train_options, vae_job

__all__ = ["DEFINITION", "HARNESS", "TABLE4", "TRAINED"]

#: The trained conditions: label -> (method, indicator, the study's label of its estimator; None
#: for ``exact``, whose gradient is the reference). In decreasing cost per epoch, the order the jobs
#: start in (one thread, 20,000 patches, the first epochs: gsm 13.7 s, rising with the largest rate
#: of a batch, score 3.4, vargrad 3.0, mc 1.3, straight-through 1.2, mvd 1.1, exact 0.9).
TRAINED: dict[str, tuple[str, str, str | None]] = {
    "gsm": ("gsm", "sigmoid", "gsm"),
    "score": ("score", "sigmoid", "score-loo"),
    "vargrad": ("vargrad", "sigmoid", "vargrad"),
    "mc": ("mc", "sigmoid", "eat-sigmoid"),
    "mc-cubic": ("mc", "cubic", "eat-cubic"),
    "straight-through": ("straight-through", "sigmoid", "eat-sigmoid-st"),
    "mvd": ("mvd", "sigmoid", "mvd"),
    "exact": ("exact", "sigmoid", None),
}

#: The P-VAE paper's Table 4 (van Hateren, K = 512, ``lin|lin``, 3000 epochs, 5 seeds): NELBO.
TABLE4 = {"mc": 167.17, "exact": 168.03, "straight-through": 179.30}

#: The gradient-quality study of the small scale: the shipped P-VAE's dictionary, rates from the
#: sparse regime to 100 and temperatures up to 1 (the cubic claim's range). About 4 minutes.
HARNESS = {
    "estimators": tuple(STUDY_ESTIMATORS),
    "rates": (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0),
    "temperatures": (0.05, 0.1, 0.2, 0.5, 1.0),
    "n_samples": 100,
    "rows": 8,
    "latents": 512,
    "dictionary": "natural16-pvae",
}
#: The final training temperature: the gradient error each trained estimator is ranked by.
FINAL_TEMPERATURE = 0.05
#: Relative NELBO margin of the "within about 1 %" claim (twice the stated 1 %).
MARGIN = 0.02
#: An unbiased estimator's measured bias is about its own noise (ratio <= 1 by Jensen's
#: inequality); above this ratio the bias is resolved.
UNRESOLVED = 1.5
#: "Orders of magnitude": the median variance ratio the score-function claim needs.
ORDERS = 100.0

_SMALL = {"seeds": (0, 1, 2), "n_train": 10_000, "n_valid": 5_000, "epochs": 50}
_PAPER = {"seeds": (0, 1, 2, 3, 4), "n_train": None, "n_valid": None, "epochs": None}


def _build(scale: str) -> Suite:
    settings = dict(_SMALL if scale == "small" else _PAPER)
    section = data_section("natural16", settings)
    train = train_options("natural16", settings["epochs"])
    harness = dict(HARNESS)
    if scale == "paper":
        harness |= {"rates": STUDY_RATES, "temperatures": (*STUDY_TEMPERATURES, 1.0)}
    jobs = [Job("harness", "gradients", harness, 0)]
    for label, (method, indicator, _) in TRAINED.items():
        for seed in settings["seeds"]:
            job = vae_job(section, "poisson", method, "lin|lin", 512, train, seed, geometry=False)
            config = {**job.config, "model": {**job.config["model"], "indicator": indicator}}
            name = slug("poisson", "lin|lin", label, "k512", f"s{seed}")
            jobs.append(replace(job, name=name, config=config))
    jobs.insert(len(settings["seeds"]), jobs.pop(0))  # the study starts beside the first gsm runs
    settings |= {"epochs": train["epochs"], "n_latents": 512, "estimators": tuple(TRAINED)}
    settings |= {f"study {key}": value for key, value in harness.items() if key != "estimators"}
    return Suite(
        "poisson-gradients",
        scale,
        "natural16",
        tuple(jobs),
        settings,
        "every Poisson gradient estimator: the gradient-quality study on the shipped P-VAE's "
        "dictionary (bias, variance, Hessian-weighted errors, W1 to the Poisson law, moments), and "
        "the linear P-VAE trained on natural16 with each estimator",
        protocol("natural16", "van Hateren patches", "`lin|lin` networks (Table 4)"),
    )


# --- reading the results ---------------------------------------------------------------------


def _cells(results: dict[str, dict]) -> list[dict]:
    """The study's cells (empty until its job has finished)."""
    return results.get("harness", {}).get("metrics", {}).get("cells", [])


def _runs(results: dict[str, dict]) -> dict[str, list[dict]]:
    """The finished training jobs by label of :data:`TRAINED` (their condition's method)."""
    found: dict[str, list[dict]] = {}
    for name, result in results.items():
        if result["kind"] == "vae":
            condition, _ = condition_and_seed(result["config"], Path(name))
            found.setdefault(condition.method, []).append(result)
    return found


def _trained(results: dict[str, dict], metric: str) -> dict[str, dict[int, float]]:
    """``{label: {seed: metric}}`` of the finished training jobs."""
    return {
        label: {run["seed"]: run["metrics"][metric] for run in runs if metric in run["metrics"]}
        for label, runs in _runs(results).items()
    }


def _of(cells: list[dict], estimator: str, **match: float) -> list[dict]:
    return [
        cell
        for cell in cells
        if cell["estimator"] == estimator and all(cell[key] == value for key, value in match.items())
    ]


def _error(cell: dict) -> float:
    """The gradient's Hessian-weighted error: bias and noise energy over the signal's."""
    return cell["bias_energy_mean"] + cell["noise_energy_mean"]


def _gradient_error(cells: list[dict], estimator: str | None) -> float:
    """An estimator's gradient error at the final temperature, the median over the study's rates
    (0 for ``exact``; NaN when the study has not run)."""
    if estimator is None:
        return 0.0
    own = [
        _error(cell)
        for cell in _of(cells, estimator)
        if cell["temperature"] in (None, FINAL_TEMPERATURE) and math.isfinite(_error(cell))
    ]
    return statistics.median(own) if own else math.nan


# --- claims ----------------------------------------------------------------------------------


def _z(cell: dict, reference: float) -> float:
    """The sample mean's deviation from ``reference`` in standard errors."""
    return (cell["sample_mean"] - reference) / math.sqrt(cell["sample_var"] / cell["n_draws"])


def _consistent(text: str, test: str, zs: list[float], numbers: str) -> dict:
    """A claim of equality: chi-square of the z-scores; kept unless rejected at ALPHA."""
    found = {"claim": text, "test": test, "kind": "consistent"}
    if not zs:
        return found | {"numbers": "no cells", "verdict": "not testable (no cells)"}
    chi2 = float(np.sum(np.square(zs)))
    p = float(stats.chi2.sf(chi2, len(zs)))
    found["numbers"] = f"{numbers}; chi-square {chi2:.1f} on {len(zs)} cells, p = {p:.3g}"
    found["verdict"] = "reproduced" if p > ALPHA else "not reproduced"
    return found


def _tested(text: str, test: str, p: float, numbers: str) -> dict:
    """A claim decided by ``p`` among the suite's others (Benjamini-Hochberg)."""
    found = {"claim": text, "test": test, "kind": "greater", "p": p, "numbers": numbers}
    if not math.isfinite(p):
        found["verdict"] = "not testable (too few results)"
    return found


def _moment_claims(cells: list[dict]) -> list[dict]:
    cubic = [c for c in _of(cells, "eat-cubic") if c["temperature"] <= 1]
    deviation = max((abs(c["sample_mean"] / c["rate"] - 1) for c in cubic), default=math.nan)
    stated = [
        _consistent(
            "cubic EAT's mean equals the rate for temperatures <= 1",
            "sample mean against the rate in standard errors, chi-square over the (rate, "
            "temperature) cells; kept unless p <= 0.01",
            [_z(c, c["rate"]) for c in cubic],
            f"largest |mean / rate - 1| {deviation:.2g}",
        )
    ]
    sigmoid = [c for c in _of(cells, "eat-sigmoid") if math.isfinite(c["mean_exact"])]
    over = [c for c in sigmoid if c["mean_exact"] - c["rate"] > 0.05 * c["rate"]]  # resolvable
    zs = [_z(c, c["rate"]) for c in over]
    excess = [(c["sample_mean"] - c["rate"]) / (c["mean_exact"] - c["rate"]) for c in over]
    stated.append(
        _tested(
            "sigmoid EAT over-counts",
            "one-sided Stouffer z of the sample mean above the rate over the cells whose stated "
            "over-count exceeds 5 % of the rate",
            float(stats.norm.sf(np.sum(zs) / math.sqrt(len(zs)))) if zs else math.nan,
            f"measured / stated over-count {number(float(np.median(excess)), 3)} (median of "
            f"{len(over)} cells)"
            if over
            else "no cells",
        )
    )
    stated.append(
        _consistent(
            "by rate T log(1 + e^{-1/T}) (walked untruncated)",
            "sample mean against rate (1 + T log(1 + e^{-1/T})) in standard errors, chi-square "
            "over the cells; kept unless p <= 0.01",
            [_z(c, c["mean_exact"]) for c in sigmoid],
            f"over {len(sigmoid)} cells",
        )
    )
    return stated


def _score_claims(cells: list[dict]) -> list[dict]:
    score = _of(cells, "score-loo")
    sigmoid_bias = max((c["bias_resolved"] for c in _of(cells, "eat-sigmoid")), default=math.nan)
    largest = max((c["bias_resolved"] for c in score), default=math.nan)
    stated = [
        threshold_claim(
            "the score function (leave-one-out baseline) is unbiased",
            f"bias over its own noise <= {UNRESOLVED} at every rate (an unbiased estimator's is "
            "about 1 or below)",
            largest,
            largest <= UNRESOLVED,
            f"largest {largest:.2f} over {len(score)} rates (sigmoid EAT's: {sigmoid_bias:.1f})",
        )
    ]
    ratios = []
    for cell in score:
        pathwise = [c["variance_mean"] for c in _of(cells, "eat-cubic", rate=cell["rate"])]
        if pathwise:
            ratios.append(cell["variance_mean"] / statistics.median(pathwise))
    median = statistics.median(ratios) if ratios else math.nan
    stated.append(
        threshold_claim(
            "its variance is orders of magnitude above the pathwise estimators'",
            f"variance over cubic EAT's (median over temperatures) at each rate; median ratio >= "
            f"{ORDERS:g}",
            median,
            median >= ORDERS,
            f"median {number(median, 1)}, from {number(min(ratios, default=math.nan), 1)} to "
            f"{number(max(ratios, default=math.nan), 1)} over {len(ratios)} rates",
        )
    )
    return stated


def _cubic_against_sigmoid(cells: list[dict], metric: str, text: str, what: str) -> dict:
    pairs = []
    for cell in _of(cells, "eat-cubic"):
        other = _of(cells, "eat-sigmoid", rate=cell["rate"], temperature=cell["temperature"])
        if other:
            a, b = _metric(cell, metric), _metric(other[0], metric)
            if math.isfinite(a) and math.isfinite(b):
                pairs.append((a, b))
    if len(pairs) < 2:
        return _tested(text, what, math.nan, "no cells")
    cubic, sigmoid = np.array(pairs).T
    p = float(stats.wilcoxon(sigmoid, cubic, alternative="greater").pvalue)
    below = int(np.sum(cubic < sigmoid))
    return _tested(text, what, p, f"cubic below sigmoid in {below} of {len(pairs)} cells")


def _metric(cell: dict, metric: str) -> float:
    """A cell's metric, or the gradient error for ``error``."""
    return _error(cell) if metric == "error" else cell[metric]


def _claims(suite: Suite, results: dict[str, dict]) -> list[dict]:
    cells = _cells(results)
    nelbo = _trained(results, "nelbo")
    stated = _moment_claims(cells) + _score_claims(cells)
    stated.append(
        _cubic_against_sigmoid(
            cells,
            "error",
            "cubic EAT's gradient error is below sigmoid EAT's",
            "Hessian-weighted bias + noise energy per (rate, temperature) cell, one-sided "
            "Wilcoxon signed-rank test over the cells",
        )
    )
    stated.append(
        _cubic_against_sigmoid(
            cells,
            "w1",
            "cubic EAT's samples are closer to the Poisson law than sigmoid EAT's",
            "W1 to Poisson / sqrt(rate) per cell, one-sided Wilcoxon signed-rank test",
        )
    )
    stated.append(
        equivalence_claim(
            "`mc` trains within about 1 % of `exact` in NELBO",
            f"paired relative difference within ±{MARGIN:.0%} over seeds (two one-sided t-tests)",
            nelbo.get("mc", {}),
            nelbo.get("exact", {}),
            MARGIN,
            "mc",
            "exact",
        )
    )
    stated.append(
        claim(
            "straight-through trains to a worse NELBO than `mc` (about 7 % in Table 4)",
            "NELBO, one-sided paired t-test over seeds",
            nelbo.get("straight-through", {}),
            nelbo.get("mc", {}),
            "greater",
            "straight-through",
            "mc",
        )
    )
    stated.append(_ranking_claim(cells, nelbo))
    return stated


def _ranking_claim(cells: list[dict], nelbo: dict[str, dict[int, float]]) -> dict:
    text = "estimators with a smaller gradient error train to a lower NELBO"
    test = (
        f"Spearman correlation over the trained estimators of the gradient error (temperature "
        f"{FINAL_TEMPERATURE:g}, median over rates) and the mean NELBO, one-sided"
    )
    points = [
        (_gradient_error(cells, TRAINED[label][2]), float(np.mean(list(seeds.values()))))
        for label, seeds in nelbo.items()
        if label in TRAINED and seeds
    ]
    points = [point for point in points if math.isfinite(point[0])]
    if len(points) < 3:
        return _tested(text, test, math.nan, "too few estimators")
    errors, means = np.array(points).T
    result = stats.spearmanr(errors, means, alternative="greater")
    return _tested(text, test, float(result.pvalue), f"rho {result.statistic:.2f} over {len(points)}")


# --- tables and figures ----------------------------------------------------------------------

#: The study's metrics in the estimator table, with their headers.
_STUDY_COLUMNS = {
    "bias_resolved": "bias / its noise",
    "variance_mean": "variance (relative)",
    "error": "gradient error",
    "w1": "W1 / sqrt(rate)",
    "ms_per_gradient": "ms per gradient",
}
#: The heatmaps the report shows.
_FIGURES = {
    "noise_energy_mean": "noise energy",
    "bias_resolved": "bias / its noise",
    "w1": "W1 to Poisson / sqrt(rate)",
}


def _training_table(results: dict[str, dict], cells: list[dict]) -> list[str]:
    runs = _runs(results)
    metrics = {metric: _trained(results, metric) for metric in ("nelbo", "sse", "kl", "mse_map")}
    rows = []
    for label, (_, _, estimator) in TRAINED.items():
        if label not in metrics["nelbo"]:
            continue
        row = [f"`{label}`", estimator or "(exact gradient)"]
        row.append(published_cell(list(metrics["nelbo"][label].values()), TABLE4.get(label)))
        row += [
            published_cell(list(metrics[m].get(label, {}).values())) for m in ("sse", "kl", "mse_map")
        ]
        row.append(number(_gradient_error(cells, estimator), 3))
        row.append(f"{statistics.mean(run['seconds'] for run in runs[label]) / 60:.1f}")
        rows.append(row)
    header = ["trained with", "study estimator", "NELBO", "SSE", "KL", "mse_map"]
    return table([*header, f"gradient error (T {FINAL_TEMPERATURE:g})", "minutes per run"], rows)


def _study_table(cells: list[dict]) -> list[str]:
    rows = []
    for label in dict.fromkeys(cell["estimator"] for cell in cells):
        row = [label]
        for metric in _STUDY_COLUMNS:
            found = [_metric(c, metric) for c in _of(cells, label)]
            found = [value for value in found if value is not None and math.isfinite(value)]
            row.append(number(statistics.median(found), 3) if found else "-")
        rows.append(row)
    return table(["estimator", *_STUDY_COLUMNS.values()], rows)


def _moments_table(cells: list[dict]) -> list[str]:
    rows = []
    for cell in cells:
        if cell["rate"] == 10.0 and math.isfinite(cell.get("mean_exact", math.nan)):
            half_width = 2.576 * math.sqrt(cell["sample_var"] / cell["n_draws"])
            rows.append(
                [
                    cell["estimator"],
                    f"{cell['temperature']:g}",
                    f"{cell['sample_mean']:.3f} ± {half_width:.3f}",
                    f"{cell['mean_exact']:.3f}",
                    f"{cell['sample_var']:.2f}",
                    f"{cell['var_exact']:.2f}",
                ]
            )
    header = ["relaxation", "temperature", "mean (99 % CI)", "closed form", "variance", "closed form"]
    return table(header, rows)


def _sections(suite: Suite, results: dict[str, dict], out: Path) -> list[str]:
    cells = _cells(results)
    lines = ["### Training the linear P-VAE with each estimator", ""]
    lines += [
        "NELBO at evaluation (exact Poisson draws) on the validation patches; the published "
        "numbers are Table 4's on van Hateren. The gradient error is the study's Hessian-weighted "
        "bias + noise energy over the signal's at the final temperature, median over rates.",
        "",
    ]
    lines += [*_training_table(results, cells), ""]
    if not cells:
        return lines
    lines += ["### The gradient-quality study", ""]
    lines += [
        "Medians over the study's (rate, temperature) cells. Gradients of the expected squared "
        "error with respect to the log-rates, against the exact gradient, on the shipped P-VAE's "
        "dictionary (docs/estimators.md defines each metric).",
        "",
    ]
    lines += [*_study_table(cells), ""]
    lines += ["### Moments of the relaxed counts at rate 10", ""]
    lines += [*_moments_table(cells), ""]
    lines += ["## Figures", ""]
    for metric, title in _FIGURES.items():
        path = save_heatmaps(cells, metric, title, out / "figures" / f"{metric}.png")
        lines += [f"![{title}]({path.relative_to(out)})", ""]
    return lines


DEFINITION = SuiteDefinition(
    build=_build,
    claims=_claims,
    sections=_sections,
    published_note="the NELBOs are the P-VAE paper's Table 4 (van Hateren, of which natural16 is "
    "our offline stand-in); the estimator study published no numbers we could retrieve, only the "
    "claims tested below",
)
