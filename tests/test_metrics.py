"""Sparsity and active-latent metrics on codes with known answers."""

from __future__ import annotations

import pytest
import torch

from poisson_vae.metrics import active_latents, lifetime_sparsity, population_sparsity


def test_identity_code_is_perfectly_sparse() -> None:
    z = torch.eye(20)
    assert lifetime_sparsity(z) == pytest.approx(1.0)
    assert population_sparsity(z) == pytest.approx(1.0)


def test_constant_code_is_dense() -> None:
    z = torch.full((30, 10), 3.0)
    assert lifetime_sparsity(z) == pytest.approx(0.0, abs=1e-12)
    assert population_sparsity(z) == pytest.approx(0.0, abs=1e-12)


def test_all_zero_latents_and_samples_score_one() -> None:
    z = torch.zeros(5, 4)
    assert lifetime_sparsity(z) == 1.0 and population_sparsity(z) == 1.0


def test_signed_codes_use_magnitudes() -> None:
    z = torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    assert lifetime_sparsity(z) == pytest.approx(0.0, abs=1e-12)


def test_half_active_latent() -> None:
    # One latent active in half of N samples: 1 - (N/2)^2 / (N * N/2) = 1/2, over 1 - 1/N.
    z = torch.zeros(10, 1)
    z[:5] = 1
    assert lifetime_sparsity(z) == pytest.approx(0.5 / 0.9)


def test_active_latents_split_at_a_wide_gap() -> None:
    kl = torch.cat([torch.full((40,), 0.5), torch.full((472,), 1e-5)])
    kl = kl + torch.rand(512) * 1e-6
    active = active_latents(kl)
    assert int(active.sum()) == 40 and bool(active[:40].all())


def test_no_gap_means_all_active() -> None:
    assert bool(active_latents(torch.linspace(0.04, 0.17, 512)).all())
