"""``REPORT.md`` of a suite: the paper's tables with our numbers beside the published ones, and a
verdict on each of the paper's claims computed from the runs.

Every number comes from the result files of :mod:`poisson_vae.reproduce.runner`, so a report can be
regenerated from ``results/*.json`` alone. Means carry 99 % t confidence half-widths over seeds;
claims are one-sided paired t-tests over seeds, Benjamini-Hochberg corrected across the claims of a
suite at false-discovery rate 0.01 (:mod:`poisson_vae.stats`).
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .. import stats
from ..compare import RunRecord, aggregate, condition_and_seed
from .published import BETA_SWEEP, KNN_K10, SHATTERING, SPARSE_CODING, zoo_published
from .suites import FAMILIES, ZOO_ROWS, Suite

__all__ = ["ALPHA", "claims", "matched_mse", "render_report", "write_report"]

ALPHA = 0.01
_NAMES = {
    "poisson": "P-VAE",
    "gaussian": "G-VAE",
    "laplace": "L-VAE",
    "categorical": "C-VAE",
    "gaussian-relu": "G-VAE+relu",
    "gaussian-exp": "G-VAE+exp",
    "lca": "LCA",
    "ista": "ISTA",
}


# --- records ---------------------------------------------------------------------------------
def _records(results: dict[str, dict], kinds: Sequence[str] = ("vae", "sparse")) -> list[RunRecord]:
    records = []
    for name, result in results.items():
        if result["kind"] in kinds:
            condition, seed = condition_and_seed(result["config"], Path(name))
            records.append(RunRecord(Path(name), condition, seed, result["metrics"]))
    return records


def _values(records: Sequence[RunRecord], metric: str, **match) -> dict[int, float]:
    """``{seed: value}`` of ``metric`` over the records whose condition matches ``match``."""
    return {
        record.seed: record.metrics[metric]
        for record in records
        if metric in record.metrics
        and all(getattr(record.condition, key) == value for key, value in match.items())
    }


def _gap_source(gap: dict, results: dict) -> tuple[str, float] | None:
    """(arch, beta) of the VAE whose dictionary a gap result used (None when that run is missing)."""
    source = results.get(gap.get("after") or "")
    if source is None:
        return None
    return source["config"]["model"]["arch"], float(source["config"]["train"].get("beta", 1.0))


def _gaps_at_beta_1(suite: Suite, results: dict) -> dict[str, list[dict]]:
    """``{arch: finished gap results}`` for every network whose beta = 1 P-VAE dictionary the
    suite measures a gap on (an empty list while none has finished)."""
    vaes = {job.name: job for job in suite.jobs if job.kind == "vae"}
    gaps: dict[str, list[dict]] = {}
    for job in suite.jobs:
        source = vaes.get(job.after or "")
        if job.kind == "gap" and source is not None and source.config["train"].get("beta") == 1.0:
            finished = [results[job.name]] if job.name in results else []
            gaps.setdefault(source.config["model"]["arch"], []).extend(finished)
    return gaps


def _k(record: RunRecord, results: dict) -> int:
    return int(results[str(record.directory)]["config"]["model"]["n_latents"])


# --- formatting ------------------------------------------------------------------------------
def _number(value: float | None, digits: int) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def _setting(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _digits(value: float) -> int:
    return 3 if abs(value) < 2 else 1


def _mean_ci(values: Sequence[float]) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    mean, half = stats.confidence_interval(list(values)) if len(values) > 1 else (values[0], math.nan)
    return mean, half


def _cell(values: Sequence[float], published: float | None = None) -> str:
    """``mean ± ci`` (published; deviation) for a table cell."""
    if not values:
        return "—"
    mean, half = _mean_ci(values)
    digits = _digits(mean if published is None else published)
    text = _number(mean, digits) + (f" ± {_number(half, digits)}" if math.isfinite(half) else "")
    if published is not None:
        text += f" ({_number(published, digits)}; {mean - published:+.{digits}f})"
    return text


def _metric_cell(
    records: Sequence[RunRecord], metric: str, published: float | None = None, **match
) -> str:
    """The table cell of ``metric`` over the seeds of the records matching ``match``."""
    return _cell(list(_values(records, metric, **match).values()), published)


def _table(header: Sequence[str], rows: list[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


# --- claims ----------------------------------------------------------------------------------
def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[np.ndarray, np.ndarray]:
    seeds = sorted(set(a) & set(b))
    return np.array([a[s] for s in seeds], dtype=float), np.array([b[s] for s in seeds], dtype=float)


def _one_sided_p(a: np.ndarray, b: np.ndarray) -> float:
    """p of a paired t-test of H1: mean(a - b) > 0 (0 when every difference is the same positive
    number, 1 when a and b are equal)."""
    if len(a) < 2:
        return float("nan")
    difference = a - b
    if np.all(difference == difference[0]):
        return 0.0 if difference[0] > 0 else 1.0
    t, p = stats.paired_t_test(a, b)
    return p / 2 if t > 0 else 1 - p / 2


def _claim(text: str, test: str, a: dict, b: dict, kind: str, label_a: str, label_b: str) -> dict:
    """A paired claim ``a > b`` (``greater``) or ``a >= b`` (``at_least``) over seeds."""
    left, right = _paired(a, b)
    claim = {"claim": text, "test": test, "kind": kind, "n": len(left)}
    if len(left) == 0:
        return claim | {"numbers": "no paired runs", "p": float("nan")}
    claim["mean_a"], claim["mean_b"] = float(left.mean()), float(right.mean())
    digits = _digits(claim["mean_b"])
    claim["numbers"] = (
        f"{label_a} {_number(claim['mean_a'], digits)} vs {label_b} {_number(claim['mean_b'], digits)} "
        f"(n = {len(left)} seeds)"
    )
    # greater: evidence for a > b; at_least: evidence against it (a < b).
    claim["p"] = _one_sided_p(left, right) if kind == "greater" else _one_sided_p(right, left)
    return claim


def _monotone_claim(text: str, metric: str, records: Sequence[RunRecord]) -> dict:
    by_beta = {}
    for record in records:
        if record.condition.family == "poisson" and metric in record.metrics:
            by_beta.setdefault(record.condition.beta, []).append(record.metrics[metric])
    betas = sorted(by_beta)
    means = [float(np.mean(by_beta[beta])) for beta in betas]
    rising = len(means) >= 2 and all(b > a for a, b in itertools.pairwise(means))
    numbers = ", ".join(f"beta {beta:g}: {_number(m, _digits(m))}" for beta, m in zip(betas, means))
    return {
        "claim": text,
        "test": "the mean over seeds rises at every step of beta",
        "kind": "monotone",
        "numbers": numbers or "no runs",
        "verdict": "reproduced" if rising else "not reproduced",
    }


def matched_mse(points: list[dict], sparsity: float) -> float:
    """The mse_map of a lambda sweep at lifetime sparsity ``sparsity`` (inf if no point reaches it).

    Linear in sparsity between the two points that bracket it; the lowest mse_map of the points at
    least that sparse if it is lower still or nothing is below. Where mse_map is convex in
    sparsity (it rises ever faster towards 1), the interpolation over-estimates the curve.
    """
    above = [p for p in points if p["lifetime_sparsity"] >= sparsity]
    if not above:
        return float("inf")
    best = min(p["mse_map"] for p in above)
    below = [p for p in points if p["lifetime_sparsity"] < sparsity]
    if below:
        low = max(below, key=lambda p: p["lifetime_sparsity"])
        high = min(above, key=lambda p: p["lifetime_sparsity"])
        fraction = (sparsity - low["lifetime_sparsity"]) / (
            high["lifetime_sparsity"] - low["lifetime_sparsity"]
        )
        best = min(best, low["mse_map"] + fraction * (high["mse_map"] - low["mse_map"]))
    return best


def _gap_claim(gaps: list[dict], arch: str) -> dict:
    """Per seed: the mse_map LCA reaches on the beta = 1 P-VAE's dictionary at the encoder's
    lifetime sparsity (:func:`matched_mse`), against the encoder's mse_map. A seed whose LCA
    points are all less sparse than its encoder cannot be matched and is left out (and named)."""
    encoder, lca, unmatched = {}, {}, []
    for result in gaps:
        seed, metrics = result["seed"], result["metrics"]
        matched = matched_mse(metrics["points"], metrics["encoder"]["lifetime_sparsity"])
        if math.isfinite(matched):
            encoder[seed], lca[seed] = metrics["encoder"]["mse_map"], matched
        else:
            unmatched.append(seed)
    claim = _claim(
        "LCA on the P-VAE's own dictionary reaches a lower mse_map than the P-VAE's encoder at "
        f"matched sparsity (the amortisation gap, `{arch}`)",
        "per seed: the encoder's mse_map against LCA's at the encoder's lifetime sparsity, "
        "interpolated linearly between the two lambdas that bracket it (an over-estimate where "
        "the curve is convex); one-sided paired t-test",
        encoder,
        lca,
        "greater",
        "encoder",
        "LCA",
    )
    if unmatched:
        seeds = ", ".join(map(str, sorted(unmatched)))
        claim["numbers"] += f"; left out, no LCA point as sparse as the encoder: seed {seeds}"
    return claim


def _decide(claim_list: list[dict]) -> list[dict]:
    """Benjamini-Hochberg across the paired claims; a verdict for each."""
    tested = [c for c in claim_list if c["kind"] in ("greater", "at_least") and math.isfinite(c["p"])]
    if tested:
        _, adjusted = stats.benjamini_hochberg([c["p"] for c in tested], ALPHA)
        for claim, p_adjusted in zip(tested, adjusted):
            claim["p_adjusted"] = float(p_adjusted)
    for claim in claim_list:
        if "verdict" in claim:
            continue
        p = claim.get("p_adjusted")
        if p is None:
            claim["verdict"] = "not testable (too few paired seeds)"
        elif claim["kind"] == "greater":
            claim["verdict"] = "reproduced" if p <= ALPHA else "not reproduced"
        elif claim["mean_a"] >= claim["mean_b"]:
            claim["verdict"] = "reproduced"
        else:
            claim["verdict"] = "not reproduced" if p <= ALPHA else "not significantly below"
    return claim_list


def _zoo_claims(records: list[RunRecord], arch: str, suffix: str) -> list[dict]:
    """The P-VAE against the G-VAE and L-VAE with ``arch`` networks (``suffix`` names them)."""
    poisson = {"family": "poisson", "method": "mc", "arch": arch}
    found = []
    for metric, words in (
        ("active_fraction", "active fraction"),
        ("lifetime_sparsity", "lifetime sparsity"),
    ):
        for other in ("gaussian", "laplace"):
            found.append(
                _claim(
                    f"P-VAE {words} above the {_NAMES[other]}'s{suffix}",
                    f"{metric}, one-sided paired t-test over seeds ({arch}, mc)",
                    _values(records, metric, **poisson),
                    _values(records, metric, family=other, method="mc", arch=arch),
                    "greater",
                    "P",
                    _NAMES[other][0],
                )
            )
    found.append(
        _claim(
            f"more of the P-VAE's active atoms are Gabor-like than the G-VAE's{suffix}",
            f"Gabor fraction (R^2 >= 0.8) of the active atoms, one-sided paired t-test ({arch})",
            _values(records, "gabor_fraction", **poisson),
            _values(records, "gabor_fraction", family="gaussian", method="mc", arch=arch),
            "greater",
            "P",
            "G",
        )
    )
    return found


def claims(suite: Suite, results: dict[str, dict]) -> list[dict]:
    """The paper's claims that ``suite`` tests, each with its numbers, test and verdict."""
    records = _records(results)
    found: list[dict] = []
    if suite.name in ("natural16-zoo", "vanhateren16", "cifar16"):
        archs = suite.settings["archs"]
        for arch in archs:
            found += _zoo_claims(records, arch, f" (`{arch}`)" if len(archs) > 1 else "")
    elif suite.name == "natural16-rate-distortion":
        vaes = [r for r in records if r.condition.family == "poisson" and r.condition.arch == "lin|lin"]
        found.append(_monotone_claim("mse_map rises with beta", "mse_map", vaes))
        found.append(_monotone_claim("lifetime sparsity rises with beta", "lifetime_sparsity", vaes))
        found += [_gap_claim(gaps, arch) for arch, gaps in _gaps_at_beta_1(suite, results).items()]
    elif suite.name == "mnist-geometry":
        k10 = [r for r in records if _k(r, results) == 10]
        found.append(
            _claim(
                "the P-VAE with 200 labels is at least as accurate as the G-VAE with 1000 (K = 10)",
                "5-NN accuracy, P at N = 200 against G at N = 1000; one-sided paired t-test of "
                "the opposite",
                _values(k10, "knn_200", family="poisson"),
                _values(k10, "knn_1000", family="gaussian"),
                "at_least",
                "P@200",
                "G@1000",
            )
        )
        for k in suite.settings["n_latents"]:
            at_k = [r for r in records if _k(r, results) == k]
            found.append(
                _claim(
                    f"shattering dimensionality of the P-VAE at least the G-VAE's (K = {k})",
                    "mean accuracy over the 126 splits; one-sided paired t-test of the opposite",
                    _values(at_k, "shattering", family="poisson"),
                    _values(at_k, "shattering", family="gaussian"),
                    "at_least",
                    "P",
                    "G",
                )
            )
    return _decide(found)


# --- tables ----------------------------------------------------------------------------------
def _zoo_tables(suite: Suite, records: list[RunRecord]) -> list[str]:
    lines = []
    table = zoo_published(suite.data)
    for arch in suite.settings["archs"]:
        conv = not arch.startswith("lin")
        rows, sparsity_rows = [], []
        for family, method in ZOO_ROWS:
            published = table.get((family, method), {})
            match = {"family": family, "method": method, "arch": arch}
            if not _values(records, "nelbo", **match):
                continue
            nelbo_published = published.get("nelbo_conv" if conv else "nelbo")
            active_published = published.get("active_conv" if conv else "active")
            cells = [_NAMES[family], method]
            cells.append(_metric_cell(records, "nelbo", **match, published=nelbo_published))
            for metric in ("sse", "kl", "mse_map"):
                value = None if conv else published.get(metric)
                cells.append(_metric_cell(records, metric, **match, published=value))
            rows.append(cells)
            sparsity_rows.append(
                [
                    _NAMES[family],
                    method,
                    _metric_cell(records, "active_fraction", **match, published=active_published),
                    _metric_cell(records, "n_active", **match),
                    _metric_cell(records, "lifetime_sparsity", **match),
                    _metric_cell(records, "portion_zeros", **match),
                    _metric_cell(records, "gabor_fraction", **match),
                ]
            )
        lines += [f"### Losses, `{arch}`", ""]
        lines += [*_table(["model", "method", "NELBO", "SSE", "KL", "mse_map"], rows), ""]
        lines += [f"### Active latents, sparsity and Gabor-like atoms, `{arch}`", ""]
        header = ["model", "method", "active fraction", "active latents", "lifetime sparsity"]
        lines += [*_table([*header, "zeros", "Gabor fraction"], sparsity_rows), ""]
    return lines


def _rate_distortion_tables(suite: Suite, records: list[RunRecord], results: dict) -> list[str]:
    rows = []
    for beta, (mse_published, sparsity_published) in BETA_SWEEP.items():
        match = {"family": "poisson", "beta": beta, "arch": "lin|lin"}
        rows.append(
            [
                f"{beta:g}",
                _metric_cell(records, "mse_map", **match, published=mse_published),
                _metric_cell(records, "lifetime_sparsity", **match, published=sparsity_published),
            ]
        )
    lines = ["### P-VAE beta sweep (`lin|lin`)", ""]
    lines += [*_table(["beta", "mse_map", "lifetime sparsity"], rows), ""]
    coder_rows = []
    for condition in aggregate([r for r in records if r.condition.arch == "-"]):
        match = {"family": condition.family, "beta": condition.beta}
        coder_rows.append(
            [
                _NAMES.get(condition.family, condition.family),
                f"{condition.beta:g}",
                _metric_cell(records, "mse_map", **match),
                _metric_cell(records, "lifetime_sparsity", **match),
            ]
        )
    for name in ("LCA", "ISTA"):  # the paper's point of each, at a lambda it does not give
        mse, sparsity = SPARSE_CODING[name]
        coder_rows.append([f"{name}, published (van Hateren)", "—", f"{mse:.1f}", f"{sparsity:.3f}"])
    lines += ["### Sparse coding (dictionary learning on the same patches)", ""]
    lines += _table(["algorithm", "lambda", "mse_map", "lifetime sparsity"], coder_rows)
    gaps_by_arch = _gaps_at_beta_1(suite, results)
    for arch, gaps in gaps_by_arch.items():
        if not gaps:
            continue
        samples = gaps[0]["config"].get("n_samples")
        on = f", on {samples:,} validation patches" if samples else ""
        lines += ["", f"### Amortisation gap: LCA on each P-VAE dictionary (beta = 1, `{arch}`{on})", ""]
        encoder_mse = [g["metrics"]["encoder"]["mse_map"] for g in gaps]
        encoder_sparsity = [g["metrics"]["encoder"]["lifetime_sparsity"] for g in gaps]
        gap_rows = [["P-VAE encoder", "—", _cell(encoder_mse), _cell(encoder_sparsity)]]
        for index, lam in enumerate(gaps[0]["config"]["lams"]):
            points = [g["metrics"]["points"][index] for g in gaps]
            gap_rows.append(
                [
                    "LCA on its dictionary",
                    f"{lam:g}",
                    _cell([p["mse_map"] for p in points]),
                    _cell([p["lifetime_sparsity"] for p in points]),
                ]
            )
        # the published gap is the conv P-VAE's: beside it, or beside the only network run
        published_rows = (
            ("P-VAE (conv)", "P-VAE encoder, published (`conv+b|lin`, van Hateren)"),
            ("LCA on the P-VAE dictionary", "LCA on its dictionary, published"),
        )
        for name, label in published_rows if len(gaps_by_arch) == 1 or arch.startswith("conv") else ():
            mse, sparsity = SPARSE_CODING[name]
            gap_rows.append([label, "—", f"{mse:.1f}", f"{sparsity:.3f}"])
        lines += _table(["codes from", "lambda", "mse_map", "lifetime sparsity"], gap_rows)
    return [*lines, ""]


def _mnist_tables(suite: Suite, records: list[RunRecord], results: dict) -> list[str]:
    k10 = [r for r in records if _k(r, results) == 10]
    rows = []
    for family in FAMILIES:
        published = KNN_K10.get(family, (None, None, None))
        cells = [_NAMES[family]]
        for metric, value in zip(("knn_200", "knn_1000", "knn_5000"), published):
            cells.append(_metric_cell(k10, metric, family=family, published=value))
        rows.append(cells)
    lines = ["### KNN sample efficiency, K = 10 (5-NN accuracy with N labels)", ""]
    lines += [*_table(["model", "N = 200", "N = 1000", "N = 5000"], rows), ""]
    rows = []
    for family in FAMILIES:
        cells = [_NAMES[family]]
        for k in suite.settings["n_latents"]:
            at_k = [r for r in records if _k(r, results) == k]
            published = SHATTERING.get(family, {}).get(k)
            cells.append(_metric_cell(at_k, "shattering", family=family, published=published))
        rows.append(cells)
    lines += ["### Shattering dimensionality (mean accuracy over the 126 splits)", ""]
    lines += [*_table(["model", *(f"K = {k}" for k in suite.settings["n_latents"])], rows), ""]
    rows = []
    for family in FAMILIES:
        cells = [_NAMES[family]]
        for k in suite.settings["n_latents"]:
            at_k = [r for r in records if _k(r, results) == k]
            cells.append(_metric_cell(at_k, "active_fraction", family=family))
        rows.append(cells)
    lines += ["### Active fraction", ""]
    lines += _table(["model", *(f"K = {k}" for k in suite.settings["n_latents"])], rows)
    return [*lines, ""]


# --- figures ---------------------------------------------------------------------------------
#: Atoms shown per model in the side-by-side dictionaries (those of largest KL).
SHOWN_ATOMS = 64


def _dictionaries_figure(suite: Suite, results: dict, out: Path) -> Path | None:
    """The seed-0 dictionaries of each condition side by side: the atoms of largest KL."""
    from matplotlib.figure import Figure

    from ..figures import atom_mosaic
    from ..vae import load_model

    panels = []
    for job in suite.jobs:  # in the suite's (the paper's) order
        run = out / "runs" / job.name
        if job.name not in results or job.kind != "vae" or job.seed != 0:
            continue
        if not (run / "model.safetensors").is_file() or not (run / "eval" / "metrics.json").is_file():
            continue
        model = load_model(run)
        kl = np.asarray(json.loads((run / "eval" / "metrics.json").read_text())["kl_per_latent"])
        dictionary = model.decoder.dictionary.detach().numpy()  # (D, K)
        order = np.argsort(-kl)[:SHOWN_ATOMS]
        atoms = dictionary[:, order].T.reshape(len(order), *model.config.input_shape[1:])
        config = job.config["model"]
        title = f"{_NAMES[config['latent']]} {config['method']}"
        if len(suite.settings.get("archs", ())) > 1:
            title += f" {config['arch']}"
        panels.append((title, atom_mosaic(atoms, 8)))
    path = out / "figures" / "dictionaries.png"
    if not panels:  # a report regenerated from result files alone keeps the figure it had
        return path if path.is_file() else None
    columns = min(4, len(panels))
    rows = math.ceil(len(panels) / columns)
    height, width = panels[0][1].shape
    figure = Figure(figsize=(3.2 * columns, (3.2 * height / width + 0.35) * rows), layout="constrained")
    for index, (title, mosaic) in enumerate(panels):
        axis = figure.add_subplot(rows, columns, index + 1)
        axis.imshow(mosaic, cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
        axis.set_title(title, fontsize=10)
        axis.axis("off")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path


def _rate_distortion_figure(records: list[RunRecord], results: dict, out: Path) -> Path | None:
    """VAEs (beta sweep), LCA, ISTA and LCA on each P-VAE dictionary: means over seeds."""
    from ..figures import save_rate_distortion_points

    series: dict[str, list[tuple[float, float]]] = {}
    for condition, summary in aggregate(records, ["lifetime_sparsity", "mse_map"]).items():
        if len(summary) < 2:
            continue
        if condition.family != "poisson":
            label = f"{_NAMES.get(condition.family, condition.family)} (lambda sweep)"
        elif condition.arch == "lin|lin":
            label = "P-VAE encoder (beta sweep)"
        else:
            label = f"P-VAE encoder ({condition.arch})"
        series.setdefault(label, []).append(
            (summary["lifetime_sparsity"]["mean"], summary["mse_map"]["mean"])
        )
    by_source: dict[tuple[str, float], list[dict]] = {}
    for result in results.values():
        source = _gap_source(result, results) if result["kind"] == "gap" else None
        if source is not None:
            by_source.setdefault(source, []).append(result["metrics"])
    several = len({arch for arch, _ in by_source}) > 1
    for (arch, beta), gaps in sorted(by_source.items()):
        points = list(zip(*[g["points"] for g in gaps]))
        network = f" {arch}" if several else ""
        series[f"LCA on the beta = {beta:g}{network} P-VAE dictionary"] = [
            (
                float(np.mean([p["lifetime_sparsity"] for p in point])),
                float(np.mean([p["mse_map"] for p in point])),
            )
            for point in points
        ]
    if not series:  # nothing finished yet
        return None
    path = out / "figures" / "rate_distortion.png"
    return save_rate_distortion_points(series, path, "rate-distortion: means over seeds")


# --- the report ------------------------------------------------------------------------------
def _comparison_note(suite: Suite) -> str:
    """What the published numbers are, and how the runs differ from the paper's protocol."""
    sources = {
        "natural16": "the natural-image numbers are on van Hateren, of which natural16 is our "
        "offline stand-in",
        "cifar16": "only the P-VAE's NELBO is published for CIFAR16",
    }
    note = "Published numbers are the paper's (SPEC 5)"
    note += f"; {sources[suite.data]}." if suite.data in sources else "."
    if suite.scale == "small":
        note += " This is the small scale, run at the settings above"
        note += f"; {suite.protocol}." if suite.protocol else "."
        note += " Deviations from the published numbers are therefore expected."
    else:
        note += f" At paper scale our jobs follow the paper's protocol: {suite.protocol}."
    return note + " The claims are about orderings; each verdict says whether our runs support it."


def render_report(
    suite: Suite,
    results: dict[str, dict],
    failed: dict[str, str],
    out: str | Path,
    command: str,
    wall_seconds: float | None = None,
) -> str:
    """The Markdown of ``REPORT.md`` (writes its figures into ``out/figures``)."""
    out = Path(out)
    records = _records(results)
    compute = sum(result.get("seconds", 0.0) for result in results.values())
    lines = [f"# Reproduction: {suite.name} ({suite.scale} scale)", ""]
    lines += [f"{suite.description[0].upper()}{suite.description[1:]}.", ""]
    lines += ["```bash", command, "```", ""]
    lines += [f"- jobs: {len(results)} finished of {len(suite.jobs)}, {len(failed)} failed"]
    if wall_seconds is not None:
        lines += [f"- wall time of the sweep: {wall_seconds / 60:.1f} min"]
    lines += [f"- compute time of the jobs: {compute / 60:.1f} min (sum over jobs)"]
    settings = "; ".join(
        f"{key.replace('_', ' ')} {_setting(value)}"
        for key, value in suite.settings.items()
        if value is not None
    )
    lines += [f"- settings: {settings}", ""]
    lines += [_comparison_note(suite), ""]
    lines += ["Cells read `mean ± 99 % CI half-width over seeds (published; ours - published)`.", ""]
    lines += ["## Claims", ""]
    claim_rows = [
        [c["claim"], c["numbers"], c["test"], _p_value(c.get("p_adjusted")), f"**{c['verdict']}**"]
        for c in claims(suite, results)
    ]
    lines += [*_table(["claim", "ours", "test", "BH-adjusted p", "verdict"], claim_rows), ""]
    lines += ["## Tables", ""]
    if suite.name == "natural16-rate-distortion":
        lines += _rate_distortion_tables(suite, records, results)
        figure = _rate_distortion_figure(records, results, out)
        if figure is not None:
            lines += ["## Figures", "", f"![rate-distortion]({figure.relative_to(out)})", ""]
    elif suite.name == "mnist-geometry":
        lines += _mnist_tables(suite, records, results)
    else:
        lines += _zoo_tables(suite, records)
        figure = _dictionaries_figure(suite, results, out)
        if figure is not None:
            lines += ["## Figures", ""]
            lines += [
                f"Dictionaries of seed 0: the {SHOWN_ATOMS} atoms of largest KL of each model.",
                "",
            ]
            lines += [f"![dictionaries]({figure.relative_to(out)})", ""]
    blocked = [job.name for job in suite.jobs if job.after in failed and job.name not in results]
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- `{name}`: {error.splitlines()[-1]}" for name, error in failed.items()]
        lines += [f"- `{name}`: not run, the job it reads failed" for name in blocked] + [""]
    return "\n".join(lines)


def write_report(suite: Suite, out: str | Path, command: str, wall_seconds: float | None = None) -> Path:
    """Write ``out/REPORT.md`` from the result files under ``out``; returns its path."""
    from .runner import failed_jobs, read_results

    out = Path(out)
    sweep = out / "sweep.json"
    invocations = json.loads(sweep.read_text())["invocations"] if sweep.is_file() else []
    if invocations and "settings" in invocations[-1]:  # the settings the jobs ran with
        suite = replace(suite, settings=invocations[-1]["settings"])
    names = {job.name for job in suite.jobs}
    results = {name: result for name, result in read_results(out).items() if name in names}
    failed = {name: error for name, error in failed_jobs(out).items() if name not in results}
    path = out / "REPORT.md"
    path.write_text(render_report(suite, results, failed, out, command, wall_seconds))
    return path
