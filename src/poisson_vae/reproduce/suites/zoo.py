"""The model zoo: every latent family with a linear decoder on whitened 16 x 16 patches.

The paper's NELBO table, its active-latent table, the dictionaries and the Gabor fractions
(natural16, van Hateren or CIFAR16 patches). Its claims: the P-VAE has more active latents, a
sparser code and more Gabor-like atoms than the G-VAE and the L-VAE.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ...figures import atom_mosaic, save_dictionary_panels
from ...runs import Run
from ...tables import table
from ...vae import load_model
from ..claims import cell, claim, display_name, records, values
from .base import (
    Suite,
    SuiteDefinition,
    data_section,
    natural_settings,
    protocol,
    train_options,
    vae_job,
)

__all__ = ["CIFAR16_ZOO", "ZOO", "ZOO_ROWS", "definition"]

#: (family, method) rows of the paper's NELBO table.
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

#: The paper's numbers (van Hateren, K = 512, linear decoder, 5 seeds): (family, method) -> metric
#: -> value; ``*_conv`` with the convolutional encoder (``conv+b|lin``); ``active`` is a fraction.
ZOO: dict[tuple[str, str], dict[str, float]] = {
    ("poisson", "mc"): {
        "nelbo": 167.2, "nelbo_conv": 163.4, "sse": 137.7, "kl": 29.5, "mse_map": 102.4,
        "active": 0.98, "active_conv": 0.82,
    },
    ("poisson", "exact"): {
        "nelbo": 168.0, "nelbo_conv": 162.4, "sse": 138.7, "kl": 29.3, "mse_map": 107.7,
        "active": 0.94, "active_conv": 1.00,
    },
    ("poisson", "straight-through"): {
        "nelbo": 179.3, "nelbo_conv": 179.4, "sse": 158.3, "kl": 21.0, "mse_map": 135.4,
        "active": 0.97, "active_conv": 1.00,
    },
    ("gaussian", "mc"): {
        "nelbo": 160.3, "nelbo_conv": 154.4, "sse": 122.7, "kl": 37.6, "mse_map": 82.3,
        "active": 0.22, "active_conv": 0.25,
    },
    ("laplace", "mc"): {
        "nelbo": 167.3, "nelbo_conv": 159.2, "sse": 126.9, "kl": 40.4, "mse_map": 91.2,
        "active": 0.19, "active_conv": 0.22,
    },
    ("categorical", "mc"): {
        "nelbo": 170.5, "nelbo_conv": 171.9, "sse": 165.0, "kl": 5.5, "mse_map": 157.7,
        "active": 1.00, "active_conv": 1.00,
    },
    ("gaussian-relu", "mc"): {
        "nelbo": 169.3, "nelbo_conv": 160.9, "mse_map": 72.7, "active": 0.11, "active_conv": 0.23,
    },
    ("gaussian-exp", "mc"): {
        "nelbo": 176.6, "nelbo_conv": 164.2, "mse_map": 157.5, "active": 0.09, "active_conv": 0.53,
    },
}  # fmt: skip

#: CIFAR16: only the P-VAE's NELBO is published.
CIFAR16_ZOO: dict[tuple[str, str], dict[str, float]] = {
    ("poisson", "mc"): {"nelbo": 167.3, "nelbo_conv": 162.9},
}

#: What the paper trained on, for each data set a zoo suite runs on.
_SOURCES = {
    "natural16": "van Hateren patches",
    "vanhateren16": "van Hateren patches",
    "cifar16": "CIFAR-10 patches",
}
_NOTES = {
    "natural16": "the natural-image numbers are on van Hateren, of which natural16 is our offline "
    "stand-in",
    "vanhateren16": "",
    "cifar16": "only the P-VAE's NELBO is published for CIFAR16",
}
#: Atoms shown per model in the side-by-side dictionaries (those of largest KL).
SHOWN_ATOMS = 64


def _build(data: str, scale: str) -> Suite:
    settings = natural_settings(scale)
    section = data_section(data, settings)
    train = train_options(data, settings["epochs"])
    jobs = [
        vae_job(section, family, method, arch, 512, train, seed, geometry=False, gabor=True)
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
        protocol(data, _SOURCES[data], "`lin|lin` and `conv+b|lin` networks"),
    )


def _claims(suite: Suite, results: dict[str, dict]) -> list[dict]:
    """For each network: the P-VAE against the G-VAE and L-VAE (active fraction, sparsity) and
    its Gabor fraction against the G-VAE's."""
    found = records(results)
    archs = suite.settings["archs"]
    stated = []
    for arch in archs:
        suffix = f" (`{arch}`)" if len(archs) > 1 else ""
        poisson = {"family": "poisson", "method": "mc", "arch": arch}
        for metric, words in (
            ("active_fraction", "active fraction"),
            ("lifetime_sparsity", "lifetime sparsity"),
        ):
            for other in ("gaussian", "laplace"):
                stated.append(
                    claim(
                        f"P-VAE {words} above the {display_name(other)}'s{suffix}",
                        f"{metric}, one-sided paired t-test over seeds ({arch}, mc)",
                        values(found, metric, **poisson),
                        values(found, metric, family=other, method="mc", arch=arch),
                        "greater",
                        "P",
                        display_name(other)[0],
                    )
                )
        stated.append(
            claim(
                f"more of the P-VAE's active atoms are Gabor-like than the G-VAE's{suffix}",
                f"Gabor fraction (R^2 >= 0.8) of the active atoms, one-sided paired t-test ({arch})",
                values(found, "gabor_fraction", **poisson),
                values(found, "gabor_fraction", family="gaussian", method="mc", arch=arch),
                "greater",
                "P",
                "G",
            )
        )
    return stated


def _tables(suite: Suite, results: dict[str, dict]) -> list[str]:
    found = records(results)
    published_table = CIFAR16_ZOO if suite.data == "cifar16" else ZOO
    lines = []
    for arch in suite.settings["archs"]:
        conv = not arch.startswith("lin")
        rows, sparsity_rows = [], []
        for family, method in ZOO_ROWS:
            published = published_table.get((family, method), {})
            match = {"family": family, "method": method, "arch": arch}
            if not values(found, "nelbo", **match):
                continue
            cells = [display_name(family), method]
            cells.append(cell(found, "nelbo", published.get("nelbo_conv" if conv else "nelbo"), **match))
            for metric in ("sse", "kl", "mse_map"):
                cells.append(cell(found, metric, None if conv else published.get(metric), **match))
            rows.append(cells)
            active = published.get("active_conv" if conv else "active")
            sparsity_rows.append(
                [
                    display_name(family),
                    method,
                    cell(found, "active_fraction", active, **match),
                    *(
                        cell(found, metric, **match)
                        for metric in (
                            "n_active",
                            "lifetime_sparsity",
                            "portion_zeros",
                            "gabor_fraction",
                        )
                    ),
                ]
            )
        lines += [f"### Losses, `{arch}`", ""]
        lines += [*table(["model", "method", "NELBO", "SSE", "KL", "mse_map"], rows), ""]
        lines += [f"### Active latents, sparsity and Gabor-like atoms, `{arch}`", ""]
        header = ["model", "method", "active fraction", "active latents", "lifetime sparsity"]
        lines += [*table([*header, "zeros", "Gabor fraction"], sparsity_rows), ""]
    return lines


def _dictionaries_figure(suite: Suite, results: dict, out: Path) -> Path | None:
    """The seed-0 dictionaries of each condition side by side: the atoms of largest KL."""
    panels = []
    for job in suite.jobs:  # in the suite's (the paper's) order
        run = Run(out / "runs" / job.name)
        if job.name not in results or job.kind != "vae" or job.seed != 0:
            continue
        if not run.weights_path.is_file() or not run.evaluated:
            continue
        model = load_model(run.directory)
        kl = np.asarray(json.loads(run.eval_metrics_path.read_text())["kl_per_latent"])
        dictionary = model.decoder.dictionary.detach().numpy()  # (D, K)
        order = np.argsort(-kl)[:SHOWN_ATOMS]
        atoms = dictionary[:, order].T.reshape(len(order), *model.config.input_shape[1:])
        config = job.config["model"]
        title = f"{display_name(config['latent'])} {config['method']}"
        if len(suite.settings.get("archs", ())) > 1:
            title += f" {config['arch']}"
        panels.append((title, atom_mosaic(atoms, 8)))
    path = out / "figures" / "dictionaries.png"
    if not panels:  # a report regenerated from result files alone keeps the figure it had
        return path if path.is_file() else None
    return save_dictionary_panels(panels, path)


def _sections(suite: Suite, results: dict[str, dict], out: Path) -> list[str]:
    lines = _tables(suite, results)
    figure = _dictionaries_figure(suite, results, out)
    if figure is not None:
        lines += ["## Figures", ""]
        lines += [f"Dictionaries of seed 0: the {SHOWN_ATOMS} atoms of largest KL of each model.", ""]
        lines += [f"![dictionaries]({figure.relative_to(out)})", ""]
    return lines


def definition(data: str) -> SuiteDefinition:
    """The zoo suite on ``data`` (natural16, vanhateren16 or cifar16)."""
    return SuiteDefinition(
        build=lambda scale: _build(data, scale),
        claims=_claims,
        sections=_sections,
        published_note=_NOTES[data],
    )
