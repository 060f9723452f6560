"""The Poisson latent family."""

from __future__ import annotations

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
