"""``pvae evaluate``: the paper's metrics, figures, Gabor analysis and geometry of a trained run.

Evaluation reads only the run's configuration, weights and training logs (through
:class:`~poisson_vae.runs.Run`) and the dataset registry; it needs neither a GPU nor the training
engine's state. It writes the run's ``eval/metrics.json`` (written last, so its presence means the
evaluation finished), ``eval/report.md`` and PNG figures beside them (a VAE's training curves among
them).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from .config import SEED, RunConfig
from .figures import (
    save_dictionary_figure,
    save_gabor_figure,
    save_histogram,
    save_kl_figure,
    save_reconstructions,
    save_sample_grid,
    save_training_curves,
)
from .files import write_json, write_text
from .iterative import (
    EVALUATION_STEPS,
    PROBE_STEPS,
    IterativeVAE,
    evaluate_iterative,
    linear_probe,
    save_iterative_figures,
)
from .metrics import ACTIVE_RULE, active_latents, evaluate_model
from .nets import LinearDecoder
from .runs import Run, TrainingHistory, check_output_path
from .tables import number, table
from .vae import VAE, load_model

__all__ = ["evaluate_run", "representation_features"]

KNN_SIZES = (200, 1000, 5000)


@torch.no_grad()
def representation_features(
    model: VAE | IterativeVAE, data: np.ndarray, batch_size: int = 2000
) -> np.ndarray:
    """(N, K) the deterministic read-out features (P-VAE: log dr; G/L-VAE: mean; C: logits; an
    iterative VAE: the posterior mean after its training horizon, a P-VAE's firing rates)."""
    model.eval()
    device = next(model.parameters()).device
    features = []
    for start in range(0, len(data), batch_size):
        x = torch.as_tensor(data[start : start + batch_size]).to(device)
        if isinstance(model, IterativeVAE):  # the firing rates after the training horizon
            features.append(model.posterior_mean(model.infer(x)).double().cpu())
        else:
            features.append(model.encode(x).features.double().cpu())
    return torch.cat(features).numpy()


def _gabor(dictionary: torch.Tensor, active: torch.Tensor, shape: tuple[int, ...], out: Path) -> dict:
    """Gabor fits of the active atoms of a (D, K) dictionary, and their figure; none (and why)
    when there is no active atom or the atoms are too small for a 2-D Gabor."""
    from .gabor import MIN_SIDE, fit_gabors, gabor_summary

    atoms = dictionary.detach().cpu().T[active].reshape(-1, *shape).double()
    if len(atoms) == 0:
        return {"n": 0, "fraction_gabor": None}
    if min(shape) < MIN_SIDE:
        return {"n": 0, "fraction_gabor": None, "skipped": f"atoms smaller than {MIN_SIDE}x{MIN_SIDE}"}
    fit = fit_gabors(atoms)
    save_gabor_figure(atoms, fit.fitted, fit.r2, out / "gabor_fits.png")
    return gabor_summary(fit)


#: Training samples the linear probe of an iterative VAE is fit on by default (inference on all of
#: MNIST's 60,000 for 1000 steps takes about half an hour on 2 CPU cores).
PROBE_SAMPLES = 10_000


def _evenly(images: np.ndarray, labels: np.ndarray, n: int | None) -> tuple[np.ndarray, np.ndarray]:
    """``n`` evenly spaced samples and their labels (all when ``n`` is None or not fewer)."""
    if n is None or n >= len(images):
        return images, labels
    keep = np.linspace(0, len(images) - 1, n).round().astype(int)
    return images[keep], labels[keep]


def _geometry(
    model: VAE | IterativeVAE, splits: dict, seed: int, shattering_samples: int | None = None
) -> dict:
    from .geometry import knn_sample_efficiency, shattering_dimensionality

    # evenly spaced: the classifiers' cost grows with the samples (126 fits)
    train_images, train_labels = _evenly(splits["train"], splits["train_labels"], shattering_samples)
    train, valid = (
        representation_features(model, train_images),
        representation_features(model, splits["valid"]),
    )
    pool = len(valid) // 2
    sizes = sorted({size for size in KNN_SIZES if size < pool} | {pool})
    knn = knn_sample_efficiency(valid, splits["valid_labels"], sizes=sizes, seed=seed)
    classes = np.unique(train_labels)
    result = {
        "knn": {
            str(size): {k: v for k, v in row.items() if k != "accuracies"} for size, row in knn.items()
        }
    }
    if len(classes) % 2 == 0:
        shattering = shattering_dimensionality(
            train, train_labels, valid, splits["valid_labels"], classes=classes
        )
        result["shattering"] = {k: v for k, v in shattering.items() if k != "splits"}
        result["shattering"]["train_samples"] = len(train)
    return result


def evaluate_run(
    run: str | Path,
    geometry: bool = True,
    gabor: bool = True,
    seed: int | None = None,
    shattering_samples: int | None = None,
    out: str | Path | None = None,
    n_steps: int = EVALUATION_STEPS,
    probe_samples: int | None = PROBE_SAMPLES,
) -> dict:
    """Evaluate a finished run and write its ``eval`` folder (or ``out``).

    Args:
        run: run directory of ``pvae train``.
        geometry: KNN sample efficiency and shattering dimensionality when the data has labels.
        gabor: fit Gabors to the active atoms of a linear decoder.
        seed: seed of the hard samples and KNN draws (default: the run's seed).
        shattering_samples: train the shattering classifiers on this many evenly spaced training
            samples (default: all, as the paper; fewer for quick sweeps).
        out: the folder to write into (default: the run's ``eval`` folder, which ``pvae compare``
            reads).
        n_steps: steps of inference of an iterative VAE (its metrics are those of the last step;
            the convergence record has every step).
        probe_samples: an iterative VAE on labelled data: fit the linear probe of its firing
            rates (:func:`~poisson_vae.iterative.linear_probe`) on this many evenly spaced
            training samples (None: all, as the release).

    Returns:
        The metrics written to ``RUN/eval/metrics.json``.
    """
    run = Run(run)
    if seed is not None:
        SEED("seed", seed)
    own = out is None or Path(out).resolve() == run.eval_dir.resolve()
    out = run.eval_dir if own else check_output_path(out)
    if run.kind == "sparse-coding":
        return _evaluate_sparse_run(run, gabor, out)
    config = run.config(RunConfig)
    model = load_model(run.directory)
    seed = config.train.seed if seed is None else seed
    out.mkdir(parents=True, exist_ok=True)
    (out / Run.METRICS).unlink(missing_ok=True)
    started = time.perf_counter()
    splits = config.data.load()
    valid = splits["valid"]
    if isinstance(model, IterativeVAE):
        metrics = _evaluate_iterative_run(run, config, model, valid, seed, n_steps, out)
    else:
        metrics = _evaluate_amortized_run(run, config, model, splits, seed, gabor, out)
    if geometry and "train_labels" in splits and "valid_labels" in splits:
        metrics |= _geometry(model, splits, seed, shattering_samples)
        if isinstance(model, IterativeVAE):
            train, labels = _evenly(splits["train"], splits["train_labels"], probe_samples)
            steps = tuple(sorted({step for step in PROBE_STEPS if step < n_steps} | {n_steps}))
            metrics["linear_probe"] = linear_probe(
                model, train, labels, valid, splits["valid_labels"], steps, seed
            )
    identity = {"run": str(run.directory), "data": config.data.data, "latent": config.model.latent}
    identity |= {"arch": config.model.arch, "method": config.model.method}
    identity |= {"seed": config.train.seed, "beta": config.train.beta, "epochs": config.train.epochs}
    if isinstance(model, IterativeVAE):
        identity |= {"inference": "iterative", "training_steps": config.model.n_steps}
    metrics = identity | metrics | {"seconds": time.perf_counter() - started}
    return _write(out, metrics)


def _evaluate_iterative_run(
    run: Run,
    config: RunConfig,
    model: IterativeVAE,
    valid: np.ndarray,
    seed: int,
    n_steps: int,
    out: Path,
) -> dict:
    """The metrics and figures of an iterative VAE (convergence, dictionary, reconstructions from
    the posterior mean after ``n_steps``, training curves): its metrics."""
    metrics = _model_metrics(run, model, valid, seed, n_steps)
    label = f"{config.model.latent} iterative (T = {config.model.n_steps})"
    save_iterative_figures(model, metrics, out, label)
    with torch.no_grad():
        x = torch.as_tensor(valid[:32])
        state = model.infer(x, n_steps, generator=torch.Generator().manual_seed(seed))
        save_reconstructions(x, model.decode_point(state).view_as(x), out / "reconstructions.png")
    history = run.training_history()
    save_training_curves(history.columns, out / Run.CURVES, f"{label}: training", history.resumed_at)
    return metrics


def _evaluate_amortized_run(
    run: Run, config: RunConfig, model: VAE, splits: dict, seed: int, gabor: bool, out: Path
) -> dict:
    """The metrics and figures of an amortised VAE (and its Gabor fits): its metrics."""
    valid = splits["valid"]
    metrics = _model_metrics(run, model, valid, seed)
    kl, active = torch.tensor(metrics["kl_per_latent"]), torch.tensor(metrics["active"])
    label = f"{config.model.latent} {config.model.arch} ({config.model.method})"
    save_kl_figure(kl, active, out / "kl_per_latent.png", title=f"{label}: KL per latent")
    with torch.no_grad():
        x = torch.as_tensor(valid[:2000])
        code = model.encode(x)
        z = model.latent.rsample(code, 0.0, generator=torch.Generator().manual_seed(seed))
        save_histogram(z, out / "code_histogram.png", "latent value (hard sample)", f"{label}: code")
        save_reconstructions(x[:32], model.decode_point(code)[:32], out / "reconstructions.png")
        prior = model.latent.prior_sample(64, generator=torch.Generator().manual_seed(seed))
        save_sample_grid(model.decode(prior), out / Run.SAMPLES)
    history = run.training_history()
    save_training_curves(history.columns, out / Run.CURVES, f"{label}: training", history.resumed_at)
    curve = _knn_curve(history)
    if curve:
        metrics["knn_curve"] = curve
    shape = tuple(config.model.input_shape[1:])
    if isinstance(model.decoder, LinearDecoder):
        order = torch.argsort(kl, descending=True)
        save_dictionary_figure(
            model.decoder.dictionary, shape, out / Run.FIGURE, order, f"{label}: atoms by KL"
        )
        if gabor:
            metrics["gabor"] = _gabor(model.decoder.dictionary, active, shape, out)
    return metrics


def _knn_curve(history: TrainingHistory) -> dict[str, list]:
    """The 5-NN accuracies a run recorded at its validations (``train.knn_curve``):
    ``{"epoch": [...], "200": [...], "1000": [...]}``, or empty when it recorded none."""
    columns = {
        name.removeprefix("val/knn_"): points
        for name, points in history.columns.items()
        if name.startswith("val/knn_")
    }
    if not columns:
        return {}
    steps = next(iter(columns.values()))[:, 0]
    curve = {"epoch": [history.epochs[int(step)] for step in steps]}
    return curve | {size: points[:, 1].tolist() for size, points in columns.items()}


def _model_metrics(
    run: Run,
    model: VAE | IterativeVAE,
    valid: np.ndarray,
    seed: int,
    n_steps: int = EVALUATION_STEPS,
) -> dict:
    """The validation metrics (:func:`~poisson_vae.metrics.evaluate_model`, or
    :func:`~poisson_vae.iterative.evaluate_iterative` over ``n_steps``): those the finished run
    recorded when they were computed with this seed on these samples (and steps), else anew."""
    iterative = isinstance(model, IterativeVAE)
    if run.finished:
        recorded = run.metrics()
        same = recorded.get("seed") == seed and recorded.get("n_samples") == len(valid)
        same &= recorded.get("n_steps") == n_steps if iterative else "active" in recorded
        if same:
            return {key: value for key, value in recorded.items() if key not in _SUMMARY}
    if iterative:
        return evaluate_iterative(model, valid, n_steps, seed=seed)
    return evaluate_model(model, valid, seed=seed)


#: What a run's metrics.json says about the run rather than its model's metrics.
_SUMMARY = ("data", "latent", "arch", "method", "epochs", "seed")


def _write(out: Path, metrics: dict) -> dict:
    """The report, then the metrics (last: their presence means the evaluation finished)."""
    write_text(out / "report.md", render_report(metrics))
    write_json(out / Run.METRICS, metrics)
    return metrics


def _evaluate_sparse_run(run: Run, gabor: bool, out: Path) -> dict:
    """The same metrics and figures for a ``pvae sparse-coding train`` run (no KL: the L1 cost)."""
    from .sparse_coding.training import code_metrics, inference_method, load_run

    started = time.perf_counter()
    config, dictionary = load_run(run.directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / Run.METRICS).unlink(missing_ok=True)
    valid = config.data.load()["valid"]
    metrics = code_metrics(
        torch.from_numpy(valid).flatten(1).float(), dictionary, inference_method(config.sparse_coding)
    )
    cost = torch.tensor(metrics["cost_per_atom"])
    active, _ = active_latents(cost, torch.tensor(metrics["share_per_latent"]))
    coder = config.sparse_coding
    label = coder.label
    shape = tuple(valid.shape[-2:])
    order = torch.argsort(cost, descending=True)
    save_dictionary_figure(dictionary, shape, out / Run.FIGURE, order, f"{label}: atoms by use")
    if gabor:
        metrics["gabor"] = _gabor(dictionary, active, shape, out)
    identity = {"run": str(run.directory), "data": config.data.data, "latent": coder.algorithm}
    identity |= {"arch": "-"}
    hard = "hard threshold, " if coder.threshold == "hard" else ""
    identity |= {"method": f"{hard}lambda {coder.lam:g}", "seed": coder.seed, "beta": None}
    identity |= {"epochs": coder.epochs}
    return _write(out, identity | metrics | {"seconds": time.perf_counter() - started})


def _format(value: object) -> str:
    if value is None:
        return "undefined"
    return number(value) if isinstance(value, float) else str(value)


_COLUMNS = (
    ("nelbo", "NELBO"),
    ("sse", "SSE"),
    ("kl", "KL"),
    ("mse_map", "mse_map"),
    ("r2", "R^2"),
    ("r2_mean", "R^2 (mean per sample)"),
    ("r2_map", "R^2 of the posterior mean"),
    ("portion_zeros", "zeros"),
    ("distance", "distance to ideal"),
    ("lifetime_sparsity", "lifetime sparsity"),
    ("population_sparsity", "population sparsity"),
)


#: What the report's two R^2 columns mean, for a reader who sees a hugely negative mean.
_R2_NOTE = (
    "R^2 is pooled: one minus the total squared error over the total energy of the samples about "
    "their own means. Its mean per sample averages each sample's own ratio, which a nearly flat "
    "sample (little energy to explain) drives far below zero."
)


def render_report(metrics: dict) -> str:
    """The Markdown report of one evaluated run (``RUN/eval/report.md``)."""
    active = "n_active" in metrics
    lines = [
        f"# Evaluation of `{metrics['run']}`",
        "",
        f"{metrics['latent']} `{metrics['arch']}`, "
        f"{'iterative inference' if 'convergence' in metrics else 'method ' + metrics['method']}, "
        f"data {metrics['data']}, "
        f"seed {metrics['seed']}, beta {metrics['beta']}, {metrics['epochs']} epochs; "
        f"{metrics['n_samples']} validation samples.",
        "",
        *table(
            [*(name for key, name in _COLUMNS if key in metrics), *(["active"] if active else [])],
            [
                [
                    *(_format(metrics[key]) for key, _ in _COLUMNS if key in metrics),
                    *([f"{metrics['n_active']} ({metrics['active_fraction']:.2f})"] if active else []),
                ]
            ],
        ),
        "",
    ]
    if "r2_mean" in metrics:
        lines += [_R2_NOTE, ""]
    if active:
        lines += [f"Active latents: {metrics.get('active_rule', ACTIVE_RULE)}.", ""]
    if "convergence" in metrics:
        lines += [
            f"After {metrics['n_steps']} steps of inference ({metrics['training_steps']} in "
            "training); NELBO and KL over the training horizon.",
            "",
            "![convergence](convergence.png) ![dictionary](dictionary.png)",
            "",
            "![reconstructions](reconstructions.png)",
            "",
            f"![training curves]({Run.CURVES})",
        ]
        if "linear_probe" in metrics:
            probe = metrics["linear_probe"]
            rows = [
                [str(step), f"{accuracy:.4f}"]
                for step, accuracy in zip(probe["step"], probe["accuracy"])
            ]
            lines += ["", "Linear probe of the firing rates (logistic regression, validation accuracy):"]
            lines += ["", *table(["step", "accuracy"], rows)]
    if "kl_per_latent" in metrics:
        lines += [
            "![KL per latent](kl_per_latent.png) ![code histogram](code_histogram.png)",
            "",
            "![reconstructions](reconstructions.png)",
            "",
            "![samples from the prior](samples.png)",
            "",
            f"![training curves]({Run.CURVES})",
        ]
    if "gabor" in metrics and metrics["gabor"].get("n"):
        gabor = metrics["gabor"]
        lines += [
            "",
            "## Dictionary and Gabor fits",
            "",
            f"{gabor['n_gabor']} of {gabor['n']} active atoms ({gabor['fraction_gabor']:.2f}) fit a 2-D "
            f"Gabor with R^2 >= {gabor['threshold']} (median R^2 {gabor['r2_median']:.2f}).",
            "",
            "![dictionary](dictionary.png)",
            "",
            "![Gabor fits](gabor_fits.png)",
        ]
    if "knn" in metrics:
        sizes = list(metrics["knn"])
        lines += [
            "",
            "## Representation geometry",
            "",
            *table(
                [*(f"KNN N = {size}" for size in sizes), "shattering"],
                [
                    [
                        *(
                            f"{metrics['knn'][s]['mean']:.3f} ± {metrics['knn'][s]['std']:.3f}"
                            for s in sizes
                        ),
                        number(metrics.get("shattering", {}).get("mean"), 3),
                    ]
                ],
            ),
        ]
    lines += ["", f"Evaluated in {metrics['seconds']:.1f} s.", ""]
    return "\n".join(lines)
