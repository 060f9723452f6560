"""Tests of the suites of `pvae reproduce`: their grids at both scales and refusing absent data."""

from __future__ import annotations

from pathlib import Path

import pytest

from poisson_vae.reproduce import suites
from poisson_vae.reproduce.suites import SUITES, build_suite, rate_distortion, zoo


@pytest.mark.parametrize("scale", ["small", "paper"])
@pytest.mark.parametrize(
    "name",
    ["natural16-zoo", "natural16-rate-distortion", "natural16-large-rate-distortion", "mnist-geometry"],
)
def test_suites_build_with_unique_names_and_known_dependencies(name: str, scale: str) -> None:
    suite = build_suite(name, scale)
    names = [job.name for job in suite.jobs]
    assert len(names) == len(set(names))
    vaes = {job.name for job in suite.jobs if job.kind == "vae"}
    assert all(job.after in vaes for job in suite.jobs if job.kind == "gap")
    seeds = {job.seed for job in suite.jobs}
    assert seeds == ({0, 1, 2} if scale == "small" else {0, 1, 2, 3, 4})


def test_natural16_zoo_grid() -> None:
    small, paper = build_suite("natural16-zoo", "small"), build_suite("natural16-zoo", "paper")
    rows = {(j.config["model"]["latent"], j.config["model"]["method"]) for j in small.jobs}
    assert rows == set(zoo.ZOO_ROWS)
    assert len(small.jobs) == len(zoo.ZOO_ROWS) * 3
    assert {j.config["model"]["arch"] for j in small.jobs} == {"lin|lin"}
    assert {j.config["model"]["arch"] for j in paper.jobs} == {"lin|lin", "conv+b|lin"}
    assert {j.config["train"]["epochs"] for j in paper.jobs} == {3000}  # the paper's recipe
    assert all(j.config["model"]["n_latents"] == 512 for j in paper.jobs)
    assert all(j.evaluate == {"geometry": False, "gabor": True} for j in small.jobs)


def test_rate_distortion_grid() -> None:
    suite = build_suite("natural16-rate-distortion", "small")
    betas = {j.config["train"]["beta"] for j in suite.jobs if j.kind == "vae"}
    assert betas == set(rate_distortion.BETAS)
    coders = {
        (j.config["sparse_coding"]["algorithm"], j.config["sparse_coding"]["lam"])
        for j in suite.jobs
        if j.kind == "sparse"
    }
    assert coders == {(a, lam) for a in ("lca", "ista") for lam in rate_distortion.CODER_LAMS}
    assert sum(j.kind == "gap" for j in suite.jobs) == len(rate_distortion.BETAS) * 3
    assert {j.config["model"]["arch"] for j in suite.jobs if j.kind == "vae"} == {"lin|lin"}
    # the paper's amortisation gap is the conv P-VAE's: at paper scale it is trained (beta 1) too
    paper = build_suite("natural16-rate-distortion", "paper")
    conv = [j for j in paper.jobs if j.kind == "vae" and j.config["model"]["arch"] == "conv+b|lin"]
    assert {j.config["train"]["beta"] for j in conv} == {1.0} and len(conv) == 5
    assert {f"gap-{j.name}" for j in conv} <= {j.name for j in paper.jobs if j.kind == "gap"}


def test_the_large_rate_distortion_sweep_trains_its_vaes_on_ten_times_the_patches() -> None:
    large = build_suite("natural16-large-rate-distortion", "small")
    small = build_suite("natural16-rate-distortion", "small")
    vaes = {j.kind: j.config["data"] for j in large.jobs if j.kind in ("vae", "sparse")}
    assert vaes["vae"] == {"data": "natural16-large", "n_train": 200_000, "n_valid": 5000}
    assert vaes["sparse"] == {"data": "natural16-large", "n_train": 20_000, "n_valid": 5000}
    assert [j.name for j in large.jobs] == [j.name for j in small.jobs]  # the same grid
    assert {j.config["data"]["n_train"] for j in small.jobs if j.kind == "vae"} == {20_000}
    assert large.name == "natural16-large-rate-distortion"


def test_mnist_grid_names_its_cheaper_small_network() -> None:
    small, paper = build_suite("mnist-geometry", "small"), build_suite("mnist-geometry", "paper")
    assert small.settings["arch"] == "lin+b|lin+b" and paper.settings["arch"] == "conv+b|conv+b"
    ks = {j.config["model"]["n_latents"] for j in small.jobs}
    assert ks == {10, 50, 100}
    assert {j.config["model"]["latent"] for j in small.jobs} == set(suites.FAMILIES)
    assert all(j.evaluate["geometry"] for j in small.jobs)
    # the jobs evaluate with the settings the report states
    assert {j.evaluate["shattering_samples"] for j in small.jobs} == {
        small.settings["shattering_samples"]
    }
    assert {j.evaluate["shattering_samples"] for j in paper.jobs} == {None}


def test_mnist_medium_scale_records_the_knn_curve_of_non_linear_networks() -> None:
    medium = build_suite("mnist-geometry", "medium")
    assert {j.config["model"]["arch"] for j in medium.jobs} == {medium.settings["arch"]}
    assert "lin" not in medium.settings["arch"].replace("+b", "").split("|")
    assert {j.config["model"]["n_latents"] for j in medium.jobs} == {10}
    # without the blocks' LayerNorm (with it the P-VAE silences its latents); other scales keep it
    assert {j.config["model"]["layer_norm"] for j in medium.jobs} == {False}
    small = build_suite("mnist-geometry", "small")
    assert all("layer_norm" not in j.config["model"] for j in small.jobs)
    assert {j.config["model"]["latent"] for j in medium.jobs} == set(suites.FAMILIES)
    assert {j.seed for j in medium.jobs} == {0, 1, 2}
    assert all(
        j.config["train"]["knn_curve"] and j.config["train"]["val_every"] == 1 for j in medium.jobs
    )
    assert "K in {10}" in medium.description
    assert "without the residual blocks' LayerNorm" in medium.description
    assert "LayerNorm" not in build_suite("mnist-geometry", "small").description
    with pytest.raises(ValueError, match="suite natural16-zoo has no medium scale; scale must be one"):
        build_suite("natural16-zoo", "medium")


@pytest.mark.parametrize("name", ["vanhateren16", "cifar16"])
def test_absent_data_is_refused_in_one_line(name: str, tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=f"suite {name} needs the {name} data, which is absent"
    ) as error:
        build_suite(name, "small", data_dir=str(tmp_path))
    assert "\n" not in str(error.value)


def test_data_dir_reaches_every_job(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(suites, "dataset_availability", lambda name, data_dir=None: None)
    suite = build_suite("vanhateren16", "small", data_dir=str(tmp_path))
    assert {job.config["data"]["data_dir"] for job in suite.jobs} == {str(tmp_path)}
    assert {job.config["data"]["data"] for job in suite.jobs} == {"vanhateren16"}


def test_unknown_suite_and_scale() -> None:
    with pytest.raises(ValueError, match="unknown suite 'nope'; choose one of natural16-zoo"):
        build_suite("nope", "small")
    with pytest.raises(ValueError, match="scale must be one of small, medium, paper, got 'huge'"):
        build_suite("natural16-zoo", "huge")
    assert set(SUITES) >= {"natural16-zoo", "natural16-rate-distortion", "mnist-geometry"}
