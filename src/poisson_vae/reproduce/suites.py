"""The experiments behind the paper's tables and figures, as lists of independent jobs.

A suite is a grid of jobs at one *scale*: ``small`` (fewer epochs and samples, 3 seeds, cheaper
networks where named; each suite within 45 minutes on a 2-core CPU) or ``paper`` (the paper's
recipes, networks and 5 seeds). Each job is a plain description, a :class:`Job`, that
:func:`poisson_vae.reproduce.runner.run_job` turns into a training run, a sparse-coding run or an
amortisation-gap measurement, and then into one small JSON file of metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ..data import dataset_availability
from ..errors import ConfigError, braces
from ..recipes import recipe

__all__ = ["SCALES", "SUITES", "Job", "Suite", "build_suite"]

SCALES = ("small", "paper")

#: The latent families of the paper's tables, in its order.
FAMILIES = ("poisson", "gaussian", "laplace", "categorical", "gaussian-relu", "gaussian-exp")
#: (family, method) rows of SPEC 5's NELBO table.
ZOO_ROWS = (
    ("poisson", "mc"),
    ("poisson", "exact"),
    ("poisson", "straight-through"),
    ("gaussian", "mc"),
    ("laplace", "mc"),
    ("categorical", "mc"),
    ("gaussian-relu", "mc"),
    ("gaussian-exp", "mc"),
)
BETAS = (0.01, 0.4, 1.0, 1.5, 4.0)
# On natural16 (512 atoms), LCA at lambda 0.3 / 1 / 3 gives mse_map 2.6 / 14 / 61 at lifetime
# sparsity 0.93 / 0.97 / 0.99: the range of the beta sweep (the beta = 1 P-VAE: 65 at 0.97).
CODER_LAMS = (0.3, 1.0, 3.0)
GAP_LAMS = (0.3, 1.0, 3.0, 10.0)
GAP_SAMPLES = 2000  # validation patches the amortisation gap is measured on
MNIST_LATENTS = (10, 50, 100)


@dataclass(frozen=True)
class Job:
    """One independent unit of work.

    Attributes:
        name: unique within the suite; names the run folder and the result file.
        kind: ``vae`` (``pvae train`` then ``pvae evaluate``), ``sparse`` (``pvae sparse-coding
            train`` then ``pvae evaluate``) or ``gap`` (``pvae amortization-gap`` on the run of job
            ``after``).
        config: the run configuration (``config.json`` sections), or the gap's options.
        seed: the seed, for pairing conditions in the report.
        after: the job whose run a ``gap`` job reads; it runs in a later phase.
        evaluate: options of :func:`poisson_vae.evaluation.evaluate_run`.
    """

    name: str
    kind: str
    config: dict[str, Any]
    seed: int
    after: str | None = None
    evaluate: dict[str, bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Suite:
    """A suite at one scale: its jobs and what the report says about how they were run."""

    name: str
    scale: str
    data: str
    jobs: tuple[Job, ...]
    settings: dict[str, Any]
    description: str
    protocol: str = ""  # what the paper ran, for the report's comparison with the settings


def _slug(*parts: object) -> str:
    return "-".join(str(part).replace("|", "_").replace("+", "") for part in parts)


def _vae_job(
    data: dict, family: str, method: str, arch: str, n_latents: int, train: dict, seed: int, **evaluate
) -> Job:
    beta = train.get("beta", 1.0)
    name = _slug(family, arch, method, f"k{n_latents}", f"beta{beta:g}", f"s{seed}")
    config = {
        "data": data,
        "model": {"latent": family, "arch": arch, "n_latents": n_latents, "method": method},
        "train": {**train, "seed": seed, "progress": False},
    }
    return Job(name, "vae", config, seed, evaluate=evaluate)


# --- scale settings --------------------------------------------------------------------------
# small: sized so that each suite finishes within 45 minutes on 2 cores (2 workers, 1 thread each);
# measured times are in the committed reports under docs/reproduce/.
_SMALL_NATURAL = {
    "seeds": (0, 1, 2),
    "n_train": 20_000,
    "n_valid": 5_000,
    "epochs": 150,  # a linear G-VAE needs about this long to settle on its ~50 directions
    "archs": ("lin|lin",),
}
_PAPER_NATURAL = {
    "seeds": (0, 1, 2, 3, 4),
    "n_train": None,
    "n_valid": None,
    "epochs": None,  # the recipe's 3000
    "archs": ("lin|lin", "conv+b|lin"),
}
# lr: on natural16 with 512 atoms (LCA, lambda 0.3, 80 updates) mse_map is 3.2 at the CLI's default
# lr 0.1, 2.8 at 0.3, 2.6 at 1 and 2.7 at 3, at the same lifetime sparsity.
_SMALL_CODER = {"epochs": 2, "n_iterations": 200, "lr": 1.0}
_PAPER_CODER = {"epochs": 50, "n_iterations": 900, "lr": 1.0}
_SMALL_MNIST = {
    "seeds": (0, 1, 2),
    "epochs": 10,
    "arch": "lin+b|lin+b",
    # The 126 classifiers on all 60,000 digits took up to 270 s of a K = 100 run (against 30 s of
    # training); on 5,000 evenly spaced digits, about 20 s.
    "shattering_samples": 5_000,
}
_PAPER_MNIST = {
    "seeds": (0, 1, 2, 3, 4),
    "epochs": None,
    "arch": "conv+b|conv+b",
    "shattering_samples": None,
}


def _protocol(data: str, networks: str, extra: str = "") -> str:
    """What the paper ran for ``data`` (its recipe, SPEC 2), for the report's settings line."""
    source = {"natural16": "van Hateren patches", "vanhateren16": "van Hateren patches"}
    options = recipe("paper", data)
    return (
        f"the paper trained {networks} {options['epochs']:,} epochs on "
        f"{source.get(data, data.upper() if data == 'mnist' else 'CIFAR-10 patches')} "
        f"(batch {options['batch_size']:,}, lr {options['lr']:g}), 5 seeds{extra}"
    )


def _natural_settings(scale: str) -> dict:
    return dict(_SMALL_NATURAL if scale == "small" else _PAPER_NATURAL)


def _train_options(data: str, epochs: int | None, **extra: Any) -> dict:
    """The paper's recipe for ``data``, with the scale's epochs and warm-up."""
    options = recipe("paper", data)
    if epochs is not None:
        options["epochs"] = epochs
        options["warmup_epochs"] = min(options["warmup_epochs"], max(1, epochs // 20))
    return options | extra


def _data_section(data: str, settings: dict) -> dict:
    section = {"data": data}
    for key in ("n_train", "n_valid"):
        if settings.get(key) is not None:
            section[key] = settings[key]
    return section


def _zoo(data: str, scale: str) -> Suite:
    settings = _natural_settings(scale)
    data_section = _data_section(data, settings)
    train = _train_options(data, settings["epochs"])
    jobs = [
        _vae_job(data_section, family, method, arch, 512, train, seed, geometry=False, gabor=True)
        for arch in settings["archs"]
        for family, method in ZOO_ROWS
        if not (method == "exact" and not arch.endswith("|lin"))
        for seed in settings["seeds"]
    ]
    settings |= {"epochs": train["epochs"], "n_latents": 512}
    return Suite(
        f"{data}-zoo" if data == "natural16" else data,
        scale,
        data,
        tuple(jobs),
        settings,
        "every latent family of the paper with a linear decoder on whitened 16x16 patches: the "
        "NELBO table, the active-latent table, the dictionaries and the Gabor fractions",
        _protocol(data, "`lin|lin` and `conv+b|lin` networks"),
    )


def _rate_distortion(scale: str) -> Suite:
    data = "natural16"
    settings = _natural_settings(scale)
    if scale == "small":  # 15 VAEs, 18 dictionaries and 15 gap jobs within the 45 minutes
        settings["epochs"] = 60
    # The beta sweep is the paper's lin|lin one; its amortisation gap is the conv P-VAE's (beta 1).
    settings["archs"] = ("lin|lin",)
    if scale == "paper":
        settings["gap_archs"] = ("lin|lin", "conv+b|lin")
    data_section = _data_section(data, settings)
    coder = _SMALL_CODER if scale == "small" else _PAPER_CODER
    recipe_options = _train_options(data, settings["epochs"])
    vaes = [("lin|lin", beta) for beta in BETAS]
    if scale == "paper":
        vaes.append(("conv+b|lin", 1.0))
    jobs: list[Job] = []
    for arch, beta in vaes:
        train = recipe_options | {"beta": beta}
        for seed in settings["seeds"]:
            vae = _vae_job(
                data_section, "poisson", "mc", arch, 512, train, seed, geometry=False, gabor=False
            )
            jobs.append(vae)
            gap = {"algorithm": "lca", "lams": list(GAP_LAMS), "n_samples": GAP_SAMPLES, "seed": seed}
            jobs.append(Job(f"gap-{vae.name}", "gap", gap, seed, after=vae.name))
    for algorithm in ("lca", "ista"):
        for lam in CODER_LAMS:
            for seed in settings["seeds"]:
                sparse = {
                    "algorithm": algorithm,
                    "n_atoms": 512,
                    "lam": lam,
                    "n_iterations": coder["n_iterations"],
                    "epochs": coder["epochs"],
                    "lr": coder["lr"],
                    "non_negative": False,
                    "seed": seed,
                    "progress": False,
                }
                config = {"data": data_section, "sparse_coding": sparse}
                name = _slug(algorithm, f"lam{lam:g}", f"s{seed}")
                jobs.append(Job(name, "sparse", config, seed, evaluate={"gabor": False}))
    settings |= {"epochs": recipe_options["epochs"], "coder": coder}
    settings |= {"betas": BETAS, "coder_lams": CODER_LAMS, "gap_lams": GAP_LAMS}
    return Suite(
        "natural16-rate-distortion",
        scale,
        data,
        tuple(jobs),
        settings,
        "a P-VAE beta sweep, LCA and ISTA dictionary learning at several lambdas, and LCA inference "
        "on each P-VAE dictionary: the rate-distortion figure and the amortisation gap",
        _protocol(data, "`lin|lin` P-VAEs", "; its amortisation gap is the `conv+b|lin` P-VAE's"),
    )


def _mnist(scale: str) -> Suite:
    data = "mnist"
    settings = dict(_SMALL_MNIST if scale == "small" else _PAPER_MNIST)
    train = _train_options(data, settings["epochs"])
    jobs = [
        _vae_job(
            {"data": data},
            family,
            "mc",
            settings["arch"],
            k,
            train,
            seed,
            geometry=True,
            gabor=False,
            shattering_samples=settings["shattering_samples"],
        )
        for k in MNIST_LATENTS
        for family in FAMILIES
        for seed in settings["seeds"]
    ]
    settings |= {"epochs": train["epochs"], "n_latents": MNIST_LATENTS}
    return Suite(
        "mnist-geometry",
        scale,
        data,
        tuple(jobs),
        settings,
        "every latent family on MNIST with K in {10, 50, 100}: KNN sample efficiency and "
        "shattering dimensionality",
        _protocol(data, "`conv+b|conv+b` networks"),
    )


SUITES = {
    "natural16-zoo": lambda scale: _zoo("natural16", scale),
    "natural16-rate-distortion": _rate_distortion,
    "mnist-geometry": _mnist,
    "vanhateren16": lambda scale: _zoo("vanhateren16", scale),
    "cifar16": lambda scale: _zoo("cifar16", scale),
}


def build_suite(name: str, scale: str, data_dir: str | None = None) -> Suite:
    """The jobs of suite ``name`` at ``scale``.

    Raises:
        ValueError: an unknown suite or scale, or a suite whose data is absent (one line that says
            how to supply it).
    """
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    if scale not in SCALES:
        raise ConfigError(
            f"{{0}} must be one of {', '.join(SCALES)}, got {braces(repr(scale))}", "scale"
        )
    suite = SUITES[name](scale)
    if data_dir is not None:
        jobs = []
        for job in suite.jobs:
            config = dict(job.config)
            if "data" in config:
                config["data"] = {**config["data"], "data_dir": str(data_dir)}
            jobs.append(replace(job, config=config))
        suite = replace(suite, jobs=tuple(jobs))
    reason = dataset_availability(suite.data, data_dir)
    if reason is not None:
        raise reason.within(
            f"suite {name} needs the {suite.data} data, which is absent (",
            "); see `pvae data list` for how to supply it",
        )
    return suite
