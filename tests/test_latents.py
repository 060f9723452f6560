"""The Poisson latent family."""

from __future__ import annotations

import math

import pytest
import torch

from poisson_vae.distributions import poisson_kl
from poisson_vae.latents import PoissonLatent, build_latent, soft_upper_clamp


def test_soft_upper_clamp_is_smooth_min() -> None:
    x = torch.tensor([-20.0, 0.0, 10.0, 30.0])
    y = soft_upper_clamp(x, 10.0)
    assert float(y[0]) == pytest.approx(-20.0, abs=1e-4)
    assert float(y[2]) == pytest.approx(10 - torch.log(torch.tensor(2.0)).item())
    assert float(y[3]) == pytest.approx(10.0, abs=1e-6)


def test_kl_is_the_poisson_kl_of_posterior_and_prior_below_the_cap() -> None:
    """The KL uses the unclamped prior log-rate; the soft rate cap moves the posterior log-rate
    by softplus(5.3 - log rate) - (5.3 - log rate) < 1e-3 here (log rate <= -2): they agree to 1e-3."""
    latent = PoissonLatent(6)
    with torch.no_grad():
        latent.prior_log_rate.fill_(-5.0)
    residual = torch.linspace(-3, 3, 6).unsqueeze(0)
    code = latent(residual)
    expected = poisson_kl(code.mean, latent.prior_rate)
    assert torch.allclose(code.kl, expected, rtol=1e-3, atol=1e-7)


def test_zero_residual_costs_nothing() -> None:
    code = PoissonLatent(5)(torch.zeros(2, 5))
    assert torch.allclose(code.kl, torch.zeros(2, 5), atol=1e-8)


def test_prior_sample_is_integer_counts() -> None:
    latent = PoissonLatent(7)
    counts = latent.prior_sample(11, generator=torch.Generator().manual_seed(0))
    assert counts.shape == (11, 7) and torch.equal(counts, counts.round())


def test_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown latent family 'beta'"):
        build_latent("beta", 4)


# --- every family ---------------------------------------------------------------------------

FAMILIES = ["poisson", "gaussian", "gaussian-relu", "gaussian-exp", "laplace", "categorical"]


def _code(family: str, k: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    latent = build_latent(family, k)
    output = torch.randn(1, latent.params_per_latent * k, generator=generator)
    return latent, latent(output)


def _mean_and_error(x: torch.Tensor) -> tuple[float, float]:
    x = x.double()
    return float(x.mean()), float(x.std() / x.numel() ** 0.5)


@pytest.mark.parametrize("family", ["gaussian", "laplace"])
def test_continuous_kl_matches_monte_carlo(family: str) -> None:
    from torch.distributions import Laplace, Normal

    latent, code = _code(family)
    scale = code.variance.sqrt() if family == "gaussian" else (code.variance / 2).sqrt()
    kind = Normal if family == "gaussian" else Laplace
    q, p = kind(code.mean, scale), kind(torch.zeros_like(code.mean), torch.ones_like(scale))
    generator = torch.Generator().manual_seed(1)
    z = torch.stack([latent.rsample(code, 1.0, generator=generator)[0] for _ in range(40_000)])
    log_ratio = (q.log_prob(z) - p.log_prob(z)).detach()
    for k in range(6):
        estimate, error = _mean_and_error(log_ratio[:, k])
        assert float(code.kl[0, k]) == pytest.approx(estimate, abs=4 * error + 1e-6)


def test_categorical_kl_matches_monte_carlo() -> None:
    latent, code = _code("categorical", k=8)
    generator = torch.Generator().manual_seed(2)
    samples = torch.stack([latent.rsample(code, 0.0, generator=generator)[0] for _ in range(40_000)])
    category = samples.argmax(1)
    log_ratio = code.params[0, category] + torch.log(torch.tensor(8.0))
    estimate, error = _mean_and_error(log_ratio.detach())
    assert float(code.kl.sum()) == pytest.approx(estimate, abs=4 * error)
    # the hard samples follow the posterior probabilities
    frequencies = torch.bincount(category, minlength=8).double() / len(category)
    assert torch.allclose(frequencies, code.mean[0].double().detach(), atol=0.01)


def test_categorical_samples_are_one_hot_when_hard_and_relaxed_otherwise() -> None:
    torch.manual_seed(0)  # a relaxed sample can round to exactly 1 in float32 for some draws
    latent, code = _code("categorical", k=5)
    hard = latent.rsample(code, 0.0)
    assert torch.equal(hard.sum(1), torch.ones(1)) and set(hard.flatten().tolist()) <= {0.0, 1.0}
    soft = latent.rsample(code, 0.5)
    assert float(soft.sum()) == pytest.approx(1.0, abs=1e-5) and float(soft.max()) < 1
    straight = latent.rsample(code, 0.5, straight_through=True)
    assert set(straight.detach().flatten().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("family", ["gaussian-relu", "gaussian-exp"])
def test_non_negative_variants_transform_the_sample_not_the_kl(family: str) -> None:
    latent, code = _code(family)
    _, plain = _code("gaussian")
    assert torch.allclose(code.kl, plain.kl)
    assert bool((latent.rsample(code, 1.0) >= 0).all())
    assert not latent.supports_exact


@pytest.mark.parametrize("family", FAMILIES)
def test_prior_samples_have_the_latent_shape(family: str) -> None:
    latent = build_latent(family, 7)
    assert latent.prior_sample(4, generator=torch.Generator().manual_seed(0)).shape == (4, 7)


@pytest.mark.parametrize("family", FAMILIES)
def test_families_move_between_devices_and_dtypes(family: str) -> None:
    latent = build_latent(family, 3)
    # nn.Module.cpu/.to/.double call Module._apply on every submodule (Lightning does at teardown).
    moved = latent.cpu().to(torch.float64).float()
    assert moved is latent
    assert latent.prior_sample(2, generator=torch.Generator().manual_seed(0)).shape == (2, 3)


def test_exp_variant_stays_finite_for_wide_posteriors() -> None:
    latent = build_latent("gaussian-exp", 4)
    code = latent(torch.tensor([[0.0, 50.0, -50.0, 3.0, 0.0, 0.0, 0.0, 5.0]]))  # means, log sigmas
    samples = latent.rsample(code, 1.0, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(samples).all() and bool((samples > 0).all())
    assert float(samples.max()) <= math.exp(10.0)
    # well below the cap it is exp itself
    assert float(latent.point(code)[0, 0]) == pytest.approx(1.0, rel=1e-4)
