"""Tests of REPORT.md: published numbers beside ours, and verdicts computed from the results."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from poisson_vae.files import write_json
from poisson_vae.reproduce import claims as claim_tests
from poisson_vae.reproduce.report import claims, render_report, write_report
from poisson_vae.reproduce.runner import RESULTS
from poisson_vae.reproduce.suites import build_suite
from poisson_vae.reproduce.suites.base import slug as _slug
from poisson_vae.reproduce.suites.rate_distortion import matched_mse


def vae_result(
    family: str,
    seed: int,
    metrics: dict,
    method: str = "mc",
    beta: float = 1.0,
    k: int = 512,
    data: str = "natural16",
) -> tuple[str, dict]:
    arch = "lin|lin" if data != "mnist" else "lin+b|lin+b"
    name = _slug(family, arch, method, f"k{k}", f"beta{beta:g}", f"s{seed}")  # the suites' names
    config = {
        "data": {"data": data},
        "model": {
            "latent": family,
            "arch": arch,
            "method": method,
            "n_latents": k,
        },
        "train": {"beta": beta, "seed": seed},
    }
    return name, {
        "job": name,
        "kind": "vae",
        "seed": seed,
        "after": None,
        "config": config,
        "metrics": metrics,
        "seconds": 10.0,
    }


def zoo_results(p_active: float, g_active: float) -> dict:
    rng = np.random.default_rng(0)
    results = {}
    for seed in range(3):
        for family, active, sparsity, gabor in (
            ("poisson", p_active, 0.9, 0.4),
            ("gaussian", g_active, 0.4, 0.0),
            ("laplace", g_active, 0.45, 0.0),
        ):
            noise = rng.normal(scale=0.005)
            metrics = {
                "nelbo": 130.0 + seed, "sse": 100.0, "kl": 30.0, "mse_map": 40.0,
                "active_fraction": active + noise, "n_active": 512 * active,
                "lifetime_sparsity": sparsity + noise, "portion_zeros": 0.8,
                "gabor_fraction": gabor + noise,
            }  # fmt: skip
            name, result = vae_result(family, seed, metrics)
            results[name] = result
    return results


def test_zoo_report_puts_published_numbers_beside_ours(tmp_path: Path) -> None:
    suite = build_suite("natural16-zoo", "small")
    text = render_report(
        suite, zoo_results(1.0, 0.1), {}, tmp_path, "pvae reproduce natural16-zoo", 600.0
    )
    # NELBO over seeds 130, 131, 132: mean 131.0, published 167.2, deviation -36.2.
    assert "| P-VAE | mc | 131.0 ± 5.7 (167.2; -36.2) |" in text
    assert "(0.220; " in text  # the G-VAE's published active fraction
    assert "wall time of the sweep: 10.0 min" in text
    assert text.count("**reproduced**") == 5


def test_cifar16_report_shows_cifar16s_published_numbers(tmp_path: Path) -> None:
    suite = replace(build_suite("natural16-zoo", "small"), name="cifar16", data="cifar16")
    text = render_report(suite, zoo_results(1.0, 0.1), {}, tmp_path, "pvae reproduce cifar16")
    assert "| P-VAE | mc | 131.0 ± 5.7 (167.3; -36.3) |" in text
    assert "(0.220; " not in text and "(160.3; " not in text  # no van Hateren numbers
    assert "only the P-VAE's NELBO is published for CIFAR16" in text


def test_paper_scale_claims_for_each_network(tmp_path: Path) -> None:
    suite = build_suite("natural16-zoo", "paper")
    found = {c["claim"]: c for c in claims(suite, zoo_results(1.0, 0.1))}
    assert found["P-VAE active fraction above the G-VAE's (`lin|lin`)"]["verdict"] == "reproduced"
    conv = found["P-VAE active fraction above the G-VAE's (`conv+b|lin`)"]
    assert conv["verdict"] == "not testable (too few paired seeds)"  # no conv runs here
    text = render_report(suite, zoo_results(1.0, 0.1), {}, tmp_path, "x")
    assert "At paper scale our jobs follow the paper's protocol" in text


def test_claims_fail_when_the_data_say_so() -> None:
    suite = build_suite("natural16-zoo", "small")
    found = {c["claim"]: c for c in claims(suite, zoo_results(0.1, 1.0))}
    claim = found["P-VAE active fraction above the G-VAE's"]
    assert claim["verdict"] == "not reproduced"
    assert "P 0.10" in claim["numbers"] and "G 1.00" in claim["numbers"]
    assert found["P-VAE lifetime sparsity above the G-VAE's"]["verdict"] == "reproduced"


def test_at_least_claims_have_three_verdicts() -> None:
    suite = build_suite("mnist-geometry", "small")

    def results(p200: list[float], g1000: list[float]) -> dict:
        out = {}
        for seed, (p, g) in enumerate(zip(p200, g1000)):
            for family, value in (("poisson", p), ("gaussian", g)):
                metrics = {"knn_200": value, "knn_1000": value, "knn_5000": value, "shattering": value}
                name, result = vae_result(family, seed, metrics, k=10, data="mnist")
                out[name] = result
        return out

    def verdict(p200, g1000) -> str:
        return claims(suite, results(p200, g1000))[0]["verdict"]

    assert verdict([0.82, 0.81, 0.83], [0.80, 0.80, 0.81]) == "reproduced"
    assert verdict([0.79, 0.82, 0.80], [0.80, 0.81, 0.81]) == "not significantly below"
    assert verdict([0.60, 0.61, 0.605], [0.80, 0.81, 0.802]) == "not reproduced"


def rate_distortion_results(mse_by_beta: dict[float, float], gap_lca: float) -> dict:
    results = {}
    for seed in range(3):
        for beta, mse in mse_by_beta.items():
            metrics = {"mse_map": mse + seed, "lifetime_sparsity": 0.3 + beta / 10 + seed / 100}
            name, result = vae_result("poisson", seed, metrics, beta=beta)
            results[name] = result
            points = [
                {"lam": 0.3, "mse_map": gap_lca + seed * 0.5, "lifetime_sparsity": 0.99},
                {"lam": 1.0, "mse_map": 500.0, "lifetime_sparsity": 0.999},
            ]
            encoder = {"source": "VAE encoder", "mse_map": mse + seed, "lifetime_sparsity": 0.9}
            results[f"gap-{name}"] = {
                "job": f"gap-{name}", "kind": "gap", "seed": seed, "after": name,
                "config": {"lams": [0.3, 1.0]}, "metrics": {"encoder": encoder, "points": points},
            }  # fmt: skip
    return results


def test_rate_distortion_claims() -> None:
    suite = build_suite("natural16-rate-distortion", "small")
    rising = {0.01: 3.0, 0.4: 50.0, 1.0: 100.0, 1.5: 130.0, 4.0: 230.0}
    found = claims(suite, rate_distortion_results(rising, gap_lca=60.0))
    assert [c["verdict"] for c in found] == ["reproduced", "reproduced", "reproduced"]
    assert "encoder 101.0 vs LCA 60.5" in found[2]["numbers"]
    bumpy = {**rising, 1.5: 90.0}
    found = claims(suite, rate_distortion_results(bumpy, gap_lca=150.0))
    assert found[0]["verdict"] == "not reproduced" and found[2]["verdict"] == "not reproduced"


def test_gap_claim_leaves_out_a_seed_it_cannot_match() -> None:
    suite = build_suite("natural16-rate-distortion", "small")
    results = rate_distortion_results({1.0: 100.0}, gap_lca=60.0)
    gap = next(r for r in results.values() if r["kind"] == "gap" and r["seed"] == 2)
    for point in gap["metrics"]["points"]:
        point["lifetime_sparsity"] = 0.5  # LCA never as sparse as the encoder (0.9)
    claim = claims(suite, results)[2]
    assert claim["n"] == 2 and claim["verdict"] == "reproduced"
    assert "left out, no LCA point as sparse as the encoder: seed 2" in claim["numbers"]


def test_gap_claim_is_untestable_not_missing_before_its_jobs_finish() -> None:
    suite = build_suite("natural16-rate-distortion", "paper")
    results = rate_distortion_results({1.0: 100.0}, gap_lca=60.0)  # lin|lin runs only
    found = {c["claim"]: c for c in claims(suite, results)}
    conv = next(text for text in found if "amortisation gap, `conv+b|lin`" in text)
    assert found[conv]["verdict"] == "not testable (too few paired seeds)"


def test_gap_jobs_of_a_failed_vae_are_listed_as_not_run(tmp_path: Path) -> None:
    suite = build_suite("natural16-rate-distortion", "small")
    vae = next(job for job in suite.jobs if job.kind == "vae")
    text = render_report(suite, {}, {vae.name: "Traceback\nValueError: boom"}, tmp_path, "x")
    assert f"- `{vae.name}`: ValueError: boom" in text
    assert f"- `gap-{vae.name}`: not run, the job it reads failed" in text


def test_matched_mse_interpolates_between_the_bracketing_lambdas() -> None:
    sweep = [
        {"mse_map": 9.2, "lifetime_sparsity": 0.958},
        {"mse_map": 23.7, "lifetime_sparsity": 0.975},
        {"mse_map": 76.8, "lifetime_sparsity": 0.988},
        {"mse_map": 260.7, "lifetime_sparsity": 1.0},
    ]
    assert matched_mse(sweep, 0.978) == pytest.approx(23.7 + 3 / 13 * (76.8 - 23.7))
    assert matched_mse(sweep, 0.988) == pytest.approx(76.8)  # on a point
    assert matched_mse(sweep, 0.5) == pytest.approx(9.2)  # every point sparser: the best of them
    assert matched_mse(sweep[:2], 0.98) == float("inf")  # no point as sparse
    # a sparser point with lower error wins over the interpolation
    assert matched_mse([*sweep[:2], {"mse_map": 5.0, "lifetime_sparsity": 0.99}], 0.97) == 5.0


def test_rate_distortion_report_has_the_combined_figure(tmp_path: Path) -> None:
    suite = build_suite("natural16-rate-distortion", "small")
    rising = {0.01: 3.0, 0.4: 50.0, 1.0: 100.0, 1.5: 130.0, 4.0: 230.0}
    text = render_report(suite, rate_distortion_results(rising, 60.0), {}, tmp_path, "x")
    assert "![rate-distortion](figures/rate_distortion.png)" in text
    assert (tmp_path / "figures" / "rate_distortion.png").stat().st_size > 10_000
    assert "| 1 | 101.0 ± " in text and "(102.4; " in text
    assert "| LCA on its dictionary, published | — | 68.0 | 0.930 |" in text  # beside ours
    assert "| ISTA, published (van Hateren) | — | 86.9 | 0.961 |" in text


def test_rate_distortion_figure_draws_every_sweep_apart(tmp_path: Path, drawn: dict) -> None:
    suite = build_suite("natural16-rate-distortion", "small")
    rising = {0.01: 3.0, 0.4: 50.0, 1.0: 100.0, 1.5: 130.0, 4.0: 230.0}
    render_report(suite, rate_distortion_results(rising, 60.0), {}, tmp_path, "x")
    axis = drawn[tmp_path / "figures" / "rate_distortion.png"].axes[0]
    names = [text.get_text() for text in axis.figure.legends[0].get_texts()]
    assert names == [
        "P-VAE encoder (beta sweep)",
        *(f"LCA on the beta = {beta:g} P-VAE dictionary" for beta in rising),
    ]
    sweep = axis.containers[0].lines[0].get_xydata()
    assert np.allclose(sweep, [[0.3 + beta / 10 + 0.01, mse + 1] for beta, mse in rising.items()])
    styles = {
        (c.lines[0].get_color(), c.lines[0].get_marker(), c.lines[0].get_linestyle())
        for c in axis.containers
    }
    assert len(styles) == 6  # the five overlapping gap curves stay apart
    labels = {text.get_text() for text in axis.texts}
    assert {"β=0.01", "β=4", "λ=0.3", "λ=1"} <= labels


def test_mnist_report_plots_knn_against_labels_for_every_k(tmp_path: Path, drawn: dict) -> None:
    suite = build_suite("mnist-geometry", "small")
    results = {}
    for k in (10, 50):
        for seed in range(3):
            for family, base in (("poisson", 0.8), ("gaussian", 0.7)):
                metrics = {f"knn_{n}": base + n / 1e5 + seed / 100 for n in (200, 1000, 5000)}
                name, result = vae_result(family, seed, metrics, k=k, data="mnist")
                results[name] = result
    text = render_report(suite, results, {}, tmp_path, "x")
    assert "![KNN accuracy against the number of labels](figures/knn.png)" in text
    axes = drawn[tmp_path / "figures" / "knn.png"].axes
    assert [axis.get_title() for axis in axes] == ["K = 10", "K = 50"]  # no runs of K = 100 yet
    poisson, gaussian = axes[1].lines  # the paper's order of families
    assert poisson.get_xdata().tolist() == [200, 1000, 5000]
    assert np.allclose(poisson.get_ydata(), [0.81 + n / 1e5 for n in (200, 1000, 5000)])
    assert np.allclose(gaussian.get_ydata(), [0.71 + n / 1e5 for n in (200, 1000, 5000)])


def test_mnist_report_shows_the_claim_over_training(tmp_path: Path, drawn: dict) -> None:
    suite = build_suite("mnist-geometry", "medium")
    results = {}
    for seed in range(3):
        for family, base in (("poisson", 0.6), ("gaussian", 0.7)):
            metrics = {f"knn_{n}": base for n in (200, 1000, 5000)}
            for epoch in (1, 2, 3):  # the P-VAE catches up: 0.6, 0.7, 0.8 against 0.7 throughout
                metrics[f"knn_200_e{epoch}"] = base + (epoch - 1) * (family == "poisson") / 10
                metrics[f"knn_1000_e{epoch}"] = base + seed / 100
            name, result = vae_result(family, seed, metrics, k=10, data="mnist")
            results[name] = result
    text = render_report(suite, results, {}, tmp_path, "x")
    assert "![5-NN accuracy over training](figures/knn_over_training.png)" in text
    assert "| 3 | 0.800 ± 0.000 | 0.710 ± 0.057 |" in text
    axes = drawn[tmp_path / "figures" / "knn_over_training.png"].axes
    assert [axis.get_title() for axis in axes] == ["N = 200", "N = 1000"]
    poisson = axes[0].lines[0]
    assert poisson.get_xdata().tolist() == [1, 2, 3]
    assert np.allclose(poisson.get_ydata(), [0.6, 0.7, 0.8])
    assert axes[0].get_xlabel() == "training epochs"
    # a medium scale is not the paper's protocol, and the report says which networks it trained
    assert "This is the medium scale, run at the settings above" in text
    assert "At paper scale" not in text and "without the residual blocks' LayerNorm" in text
    # the small scale recorded no curve: no such section
    small = render_report(build_suite("mnist-geometry", "small"), {}, {}, tmp_path / "s", "x")
    assert "over training" not in small


def test_report_regenerates_from_result_files_alone(tmp_path: Path) -> None:
    suite = build_suite("natural16-zoo", "small")
    synthetic = list(zoo_results(1.0, 0.1).values())
    jobs = [job for job in suite.jobs if job.config["model"]["method"] == "mc"][: len(synthetic)]
    for job, result in zip(jobs, synthetic):
        config = {**job.config, "model": result["config"]["model"]}
        write_json(tmp_path / RESULTS / f"{job.name}.json", result | {"job": job.name, "config": config})
    write_json(tmp_path / RESULTS / "not-of-this-suite.json", synthetic[0])
    path = write_report(suite, tmp_path, "pvae reproduce natural16-zoo --report-only")
    assert "jobs: 9 finished of 24, 0 failed" in path.read_text()


@pytest.mark.parametrize("values", [[1.0, 1.0, 1.0], [2.0, 3.0, 4.0]])
def test_one_sided_p(values: list[float]) -> None:
    a, b = np.array(values), np.zeros(3)
    assert claim_tests._one_sided_p(a, b) < 0.05
    assert claim_tests._one_sided_p(b, a) > 0.95
