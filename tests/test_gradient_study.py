"""The gradient-quality metrics: each against a case whose value is known in closed form."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from scipy import stats

from poisson_vae import gradient_study
from poisson_vae.gradient_study import (
    GRADIENT_METRICS,
    REPORTED,
    gradient_statistics,
    run_study,
    sample_gradients,
    study_problem,
    summarise,
    wasserstein_to_poisson,
)
from poisson_vae.gradients import Exact, MeasureValued, SquaredError


def toy() -> tuple[SquaredError, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    dictionary = torch.randn(5, 6, generator=generator, dtype=torch.float64) / 2
    x = torch.randn(4, 5, generator=generator, dtype=torch.float64)
    rate = torch.exp(torch.rand(4, 6, generator=generator, dtype=torch.float64) * 2.3 - 1.2)
    return SquaredError(x, dictionary), rate


def test_the_hessian_is_autograds_hessian_of_the_expected_loss() -> None:
    objective, rate = toy()
    for row in range(rate.shape[0]):
        single = SquaredError(objective.x[row : row + 1], objective.dictionary)

        def expected(log_rate: torch.Tensor) -> torch.Tensor:
            lam = log_rate.exp().unsqueeze(0)
            return single.expected(lam, lam).sum()  # noqa: B023 - used at once

        reference = torch.autograd.functional.hessian(expected, rate[row].log())
        torch.testing.assert_close(objective.hessian(rate)[row], reference)


def test_metrics_of_gradients_with_a_known_bias_and_noise() -> None:
    """g_n = g* + b + noise, noise ~ N(0, s^2 I), N = 40,000: every metric has a closed form (H = I
    for the energies), reached within a few standard errors."""
    generator = torch.Generator().manual_seed(1)
    exact = torch.randn(4, 6, generator=generator, dtype=torch.float64)
    offset = 0.3 * torch.randn(4, 6, generator=generator, dtype=torch.float64)
    scale = 0.5
    noise = scale * torch.randn(40_000, 4, 6, generator=generator, dtype=torch.float64)
    statistics = gradient_statistics(exact + offset + noise, exact, torch.eye(6).expand(4, 6, 6))
    norm2 = exact.pow(2).sum(-1)
    torch.testing.assert_close(
        statistics["bias"], offset.norm(dim=-1) / norm2.sqrt(), rtol=0.02, atol=0.005
    )
    torch.testing.assert_close(statistics["variance"], 6 * scale**2 / norm2, rtol=0.02, atol=0)
    torch.testing.assert_close(statistics["snr"], norm2 / (6 * scale**2), rtol=0.02, atol=0)
    cos = torch.nn.functional.cosine_similarity(exact + offset, exact, dim=-1)
    torch.testing.assert_close(statistics["cos"], cos, rtol=0.01, atol=0.005)
    torch.testing.assert_close(statistics["signal_energy"], norm2)
    torch.testing.assert_close(
        statistics["bias_energy"], offset.pow(2).sum(-1) / norm2, rtol=0.05, atol=0.005
    )
    torch.testing.assert_close(statistics["noise_energy"], 6 * scale**2 / norm2, rtol=0.02, atol=0)
    assert bool((statistics["cos_sample"] < statistics["cos"]).all())  # noise spreads the directions
    assert set(summarise(statistics)) == set(GRADIENT_METRICS)


def test_the_exact_estimator_has_no_bias_and_no_noise_and_the_mvd_no_bias() -> None:
    objective, rate = toy()
    exact = objective.gradient(rate)
    hessian = objective.hessian(rate)
    statistics = gradient_statistics(sample_gradients(Exact(), objective, rate, 3), exact, hessian)
    assert float(statistics["bias"].max()) < 1e-12 and float(statistics["variance"].max()) < 1e-12
    assert float(statistics["cos"].min()) == pytest.approx(1.0)
    mvd = sample_gradients(
        MeasureValued(), objective, rate, 20_000, generator=torch.Generator().manual_seed(2)
    )
    statistics = gradient_statistics(mvd, exact, hessian)
    # unbiased: the measured bias is the mean's own noise, sqrt(variance / N), not more
    assert bool((statistics["bias"] < 4 * (statistics["variance"] / 20_000).sqrt()).all())


def test_energies_are_left_out_where_the_hessian_gives_no_signal() -> None:
    exact = torch.ones(2, 3, dtype=torch.float64)
    hessian = torch.stack([torch.eye(3), -torch.eye(3)]).double()  # the second row: indefinite
    statistics = gradient_statistics(exact + torch.randn(10, 2, 3, dtype=torch.float64), exact, hessian)
    assert float(statistics["signal_energy"][1]) == -3.0
    assert math.isnan(float(statistics["bias_energy"][1])) and math.isnan(
        float(statistics["noise_energy"][1])
    )
    assert math.isfinite(summarise(statistics)["bias_energy"][0])


@pytest.mark.parametrize("rate", [0.5, 4.0, 60.0])
def test_the_wasserstein_distance_to_the_poisson_law(rate: float) -> None:
    """The law's own quantiles are at distance 0 and, shifted by one count, at 1 / sqrt(rate);
    exact draws are close (no two-sample floor); draws relaxed by a shift of 0.3 are 0.3 away."""
    levels = (torch.arange(10_000, dtype=torch.float64) + 0.5) / 10_000
    quantiles = torch.from_numpy(stats.poisson.ppf(levels.numpy(), rate))
    assert wasserstein_to_poisson(quantiles, rate) == 0.0
    assert wasserstein_to_poisson(quantiles + 1, rate) == pytest.approx(1 / math.sqrt(rate))
    draws = torch.poisson(torch.full((100_000,), rate), generator=torch.Generator().manual_seed(3))
    assert wasserstein_to_poisson(draws, rate) < 0.02
    assert wasserstein_to_poisson(draws + 0.3, rate) == pytest.approx(0.3 / math.sqrt(rate), abs=0.02)


def test_a_study_writes_its_cells_report_and_figures_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    estimators = ["eat-cubic", "mvd", "score-loo"]
    options = {"rates": [0.5, 5.0], "temperatures": [0.1, 0.5], "n_samples": 200, "rows": 2}
    results = run_study(tmp_path, estimators, latents=8, **options)
    # temperature-free estimators run once per rate
    assert len(results) == 4 + 2 + 2
    assert len((tmp_path / "cells.jsonl").read_text().splitlines()) == 8
    report = (tmp_path / "REPORT.md").read_text()
    assert "| eat-cubic |" in report and "| mvd |" in report
    for metric in REPORTED:
        assert (tmp_path / f"{metric}.png").is_file()
    # the cubic's bias is its closed form, -(1 - beta) lambda_k d_k relative to g*: measured within
    # its own noise; the MVD has none beyond that noise
    objective = study_problem(2, 8)
    cell = next(
        r
        for r in results
        if r["estimator"] == "eat-cubic" and r["rate"] == 5.0 and r["temperature"] == 0.5
    )
    rate = torch.full((2, 8), 5.0, dtype=torch.float64)
    objective = SquaredError(objective.x.double(), objective.dictionary.double())
    exact = objective.gradient(rate)
    closed = (9 * 0.5 / 35) * rate * objective.dictionary.pow(2).sum(0)
    expected = float((closed.norm(dim=-1) / exact.norm(dim=-1)).mean())
    noise = 4 * math.sqrt(cell["variance_mean"] / 200)
    assert cell["bias_mean"] == pytest.approx(expected, abs=noise)
    mvd = next(r for r in results if r["estimator"] == "mvd" and r["rate"] == 5.0)
    assert mvd["temperature"] is None and mvd["bias_mean"] < 4 * math.sqrt(mvd["variance_mean"] / 200)
    assert math.isfinite(cell["w1"]) and math.isnan(mvd["w1"])
    # a kill mid-write leaves a cut line: the next run recomputes that cell only
    lines = (tmp_path / "cells.jsonl").read_text().splitlines()
    (tmp_path / "cells.jsonl").write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    computed = []
    original = gradient_study.study_cell
    monkeypatch.setattr(
        gradient_study, "study_cell", lambda *a, **k: computed.append(a) or original(*a, **k)
    )
    assert len(run_study(tmp_path, estimators, latents=8, **options)) == 8
    assert len(computed) == 1


def test_pvae_gradients_runs_and_refuses_unknown_estimators(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from poisson_vae.cli import main

    out = tmp_path / "study"
    argv = ["gradients", "--out", str(out), "--estimators", "mvd,eat-sigmoid", "--rates", "1"]
    argv += ["--temperatures", "0.1", "--n-samples", "5", "--rows", "2", "--latents", "4"]
    assert main(argv) == 0
    assert (out / "REPORT.md").is_file()
    assert main(["gradients", "--out", str(out), "--estimators", "reinforce"]) == 2
    assert "--estimators: unknown reinforce" in capsys.readouterr().err
