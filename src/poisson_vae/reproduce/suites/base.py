"""What every suite is made of: jobs, the suite at one scale, and the settings they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...latents import LATENT_FAMILIES
from ...recipes import recipe

__all__ = ["FAMILIES", "SCALES", "Job", "Suite", "SuiteDefinition"]

#: small: a laptop (each suite within about 45 minutes on 2 cores); medium (where a suite has it):
#: a few hours on 2 cores, long enough to test a claim that small cannot; paper: the paper's settings.
SCALES = ("small", "medium", "paper")

#: The latent families of the paper's tables, in its order.
FAMILIES = tuple(LATENT_FAMILIES)


@dataclass(frozen=True)
class Job:
    """One independent unit of work.

    Attributes:
        name: unique within the suite; names the run folder and the result file.
        kind: ``vae`` (``pvae train`` then ``pvae evaluate``), ``sparse`` (``pvae sparse-coding
            train`` then ``pvae evaluate``), ``gap`` (``pvae amortization-gap`` on the run of job
            ``after``) or ``gradients`` (``pvae gradients``).
        config: the run configuration (``config.json`` sections), or the gap's or the gradient
            study's options.
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


def slug(*parts: object) -> str:
    """A job name from its parts: ``poisson-lin_lin-mc-k512-beta1-s0``."""
    return "-".join(str(part).replace("|", "_").replace("+", "") for part in parts)


def vae_job(
    data: dict,
    family: str,
    method: str,
    arch: str,
    n_latents: int,
    train: dict,
    seed: int,
    model: dict | None = None,
    **evaluate,
) -> Job:
    """A VAE job: ``pvae train`` with these sections (``model``: further model options), then
    ``pvae evaluate`` with ``evaluate``."""
    beta = train.get("beta", 1.0)
    name = slug(family, arch, method, f"k{n_latents}", f"beta{beta:g}", f"s{seed}")
    config = {
        "data": data,
        "model": {
            "latent": family,
            "arch": arch,
            "n_latents": n_latents,
            "method": method,
            **(model or {}),
        },
        "train": {**train, "seed": seed, "progress": False},
    }
    return Job(name, "vae", config, seed, evaluate=evaluate)


# --- scale settings --------------------------------------------------------------------------
# small: sized so that each suite finishes within 45 minutes on 2 cores (2 workers, 1 thread each);
# measured times are in the committed reports under docs/reproduce/.
SMALL_NATURAL = {
    "seeds": (0, 1, 2),
    "n_train": 20_000,
    "n_valid": 5_000,
    "epochs": 150,  # a linear G-VAE needs about this long to settle on its ~50 directions
    "archs": ("lin|lin",),
}
PAPER_NATURAL = {
    "seeds": (0, 1, 2, 3, 4),
    "n_train": None,
    "n_valid": None,
    "epochs": None,  # the recipe's 3000
    "archs": ("lin|lin", "conv+b|lin"),
}


def protocol(data: str, source: str, networks: str, extra: str = "") -> str:
    """What the paper ran on ``source`` (its recipe for ``data``), for the report's settings line."""
    options = recipe("paper", data)
    return (
        f"the paper trained {networks} {options['epochs']:,} epochs on {source} "
        f"(batch {options['batch_size']:,}, lr {options['lr']:g}), 5 seeds{extra}"
    )


def natural_settings(scale: str) -> dict:
    """The natural-image settings of a scale (seeds, sizes, epochs, networks)."""
    return dict(SMALL_NATURAL if scale == "small" else PAPER_NATURAL)


def train_options(data: str, epochs: int | None, **extra: Any) -> dict:
    """The paper's recipe for ``data``, with the scale's epochs and warm-up."""
    options = recipe("paper", data)
    if epochs is not None:
        options["epochs"] = epochs
        options["warmup_epochs"] = min(options["warmup_epochs"], max(1, epochs // 20))
    return options | extra


def data_section(data: str, settings: dict) -> dict:
    """The ``data`` section of a job: the data set and the scale's sample counts."""
    section = {"data": data}
    for key in ("n_train", "n_valid"):
        if settings.get(key) is not None:
            section[key] = settings[key]
    return section


@dataclass(frozen=True)
class SuiteDefinition:
    """A kind of suite: how it builds its jobs at a scale, which of the paper's claims its results
    test, and the tables and figures of its report.

    Attributes:
        build: scale -> the suite.
        claims: (suite, results) -> the claims, each a dict with its numbers and test (see
            :mod:`poisson_vae.reproduce.claims`; the report decides them together).
        sections: (suite, results, out) -> the Markdown lines of the report's tables and figures
            (figures are written under ``out``).
        published_note: what the published numbers beside ours are, when that needs saying.
        source: the paper they are from.
        scales: the scales it runs at.
    """

    build: Callable[[str], Suite]
    claims: Callable[[Suite, dict[str, dict]], list[dict]]
    sections: Callable[[Suite, dict[str, dict], Path], list[str]]
    published_note: str = ""
    source: str = "Vafaii, Galor & Yates, NeurIPS 2024"
    scales: tuple[str, ...] = ("small", "paper")
