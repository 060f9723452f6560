"""Sparsity and active-latent metrics on codes with known answers."""

from __future__ import annotations

import pytest
import torch

from poisson_vae.metrics import (
    active_latents,
    evaluate_model,
    lifetime_sparsity,
    population_sparsity,
    reconstruction_shares,
    used_directions,
)


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
    torch.manual_seed(0)
    kl = torch.cat([torch.full((40,), 0.5), torch.full((472,), 1e-5)]) * (1 + 0.1 * torch.rand(512))
    share = torch.cat([torch.full((40,), 1.0), torch.full((472,), 1e-6)]) * (1 + 0.1 * torch.rand(512))
    active, threshold = active_latents(kl, share)
    assert int(active.sum()) == 40 and bool(active[:40].all()) and threshold is not None


def test_smoothly_spread_code_is_all_active() -> None:
    # An overcomplete P-VAE-like code: KL and shares spread over two decades, no gap.
    torch.manual_seed(1)
    kl, share = 10 ** (-2 * torch.rand(512)), 10 ** (-2 * torch.rand(512))
    active, threshold = active_latents(kl, share)
    assert bool(active.all()) and threshold is None


def test_zero_kl_or_zero_share_alone_makes_a_latent_inactive() -> None:
    kl = torch.tensor([1.0, 0.8, 1.2, 0.0, 0.9])
    share = torch.tensor([1.0, 1.1, 0.9, 1.0, 0.0])
    active, _ = active_latents(kl, share)
    assert active.tolist() == [True, True, True, False, False]


def test_a_fully_collapsed_model_has_no_active_latent() -> None:
    # No gap among equal scores: without the absolute floor every latent would count as active.
    for kl, share in (
        (torch.zeros(64), torch.zeros(64)),
        (torch.full((64,), 1e-7), torch.full((64,), 1e-9)),
    ):
        active, _ = active_latents(kl, share)
        assert not bool(active.any())


@pytest.mark.parametrize(("latent", "expected"), [("poisson", 64), ("gaussian", 20)])
def test_only_continuous_codes_are_bounded_by_the_directions_they_use(
    latent: str, expected: int
) -> None:
    """64 atoms in a 20-dimensional subspace, every latent moved by the data: an overcomplete
    discrete code uses all 64, while a continuous code's count is its 20 directions."""
    from poisson_vae import ModelConfig, build_vae

    generator = torch.Generator().manual_seed(3)
    torch.manual_seed(0)  # the encoder's initial weights
    model = build_vae(ModelConfig(latent=latent, arch="lin|lin", n_latents=64))
    basis = torch.linalg.qr(torch.randn(256, 20, generator=generator))[0]
    atoms = basis @ torch.randn(20, 64, generator=generator)
    with torch.no_grad():
        model.decoder.linear.weight.copy_(atoms / atoms.norm(dim=0))  # latents alike: no gap
        if latent == "poisson":
            model.latent.prior_log_rate.fill_(-1.0)
    metrics = evaluate_model(model, torch.randn(2000, 1, 16, 16, generator=generator))
    assert metrics["n_directions"] == 20
    assert metrics["n_active"] == expected


def test_reconstruction_shares_ignore_dropout_and_keep_the_models_mode() -> None:
    from poisson_vae import ModelConfig, build_vae

    torch.manual_seed(4)
    model = build_vae(ModelConfig(latent="poisson", arch="mlp|mlp", n_latents=8))
    x = torch.randn(200, 1, 16, 16)
    model.train()
    in_training = reconstruction_shares(model, x)
    assert model.training
    model.eval()
    assert torch.equal(in_training, reconstruction_shares(model, x))
    assert not model.training


def _planted_gaussian_vae(n_signal: int = 50, n_latents: int = 512, n_samples: int = 3000):
    """A linear G-VAE whose data and decoder live in ``n_signal`` directions.

    Signal latents read their source with a tight posterior (sigma 0.1, KL of nats); the other
    latents move a little with the data (KL 0.04-0.17 nats, like a real G-VAE's) and have small
    atoms. KL alone does not separate them; with the reconstruction shares the rule must.
    """
    from poisson_vae import ModelConfig, build_vae

    generator = torch.Generator().manual_seed(2)
    pixels = 256
    basis = torch.linalg.qr(torch.randn(pixels, n_signal, generator=generator))[0]  # (D, S)
    scales = 3 / torch.arange(1, n_signal + 1).sqrt()
    sources = torch.randn(n_samples, n_signal, generator=generator) * scales
    x = sources @ basis.T + 0.05 * torch.randn(n_samples, pixels, generator=generator)
    model = build_vae(ModelConfig(latent="gaussian", arch="lin+b|lin", n_latents=n_latents))
    with torch.no_grad():
        weight = model.encoder.linear.weight  # (2K, D): means, then log sigmas
        bias = model.encoder.linear.bias
        weight.zero_()
        bias.zero_()
        weight[:n_signal] = basis.T  # mean_k = source_k
        # other latents: means ~ N(0, s^2) with s^2 in [0.08, 0.34], so KL = s^2 / 2 in [0.04, 0.17]
        directions = torch.randn(n_latents - n_signal, pixels, generator=generator)
        spread = (torch.rand(n_latents - n_signal, generator=generator) * 0.26 + 0.08).sqrt()
        data_scale = x.std(0).mean()
        weight[n_signal:n_latents] = directions / directions.norm(dim=1, keepdim=True)
        weight[n_signal:n_latents] *= (spread / data_scale)[:, None]
        bias[n_latents : n_latents + n_signal] = -2.3  # sigma 0.1 for signal latents
        decoder = model.decoder.linear.weight  # (D, K)
        decoder.normal_(0, 0.003, generator=generator)
        decoder[:, :n_signal] = basis
    return model, x.view(-1, 1, 16, 16)


def test_planted_gaussian_code_with_diffuse_kl_reports_its_50_signal_latents() -> None:
    model, x = _planted_gaussian_vae()
    with torch.no_grad():
        kl = model.encode(x).kl.mean(0)
    noise_kl = kl[50:]
    assert float(noise_kl.min()) > 0.005 and float(noise_kl.max()) < 0.5  # diffuse, small, not zero
    assert int((kl > 0.01).sum()) > 400  # a fixed KL cut-off calls nearly all of them active
    active, _ = active_latents(kl, reconstruction_shares(model, x))
    assert abs(int(active.sum()) - 50) <= 5
    assert int(active[:50].sum()) >= 45


def test_signal_spread_over_every_latent_is_counted_in_directions() -> None:
    # A rotation-invariant G-VAE can mix its 50 signal directions into all 512 latents: every
    # latent then has a little KL and a little share, and only the directions reveal the 50.
    model, x = _planted_gaussian_vae()
    generator = torch.Generator().manual_seed(5)
    rotation = torch.linalg.qr(torch.randn(512, 512, generator=generator, dtype=torch.float64))[
        0
    ].float()
    with torch.no_grad():
        means = model.encoder.linear.weight[:512].clone()
        model.encoder.linear.weight[:512] = rotation @ means
        model.encoder.linear.bias[512:] = -0.2  # every latent equally tight
        model.decoder.linear.weight.copy_(model.decoder.linear.weight @ rotation.T)
    metrics = evaluate_model(model, x)
    kl = torch.tensor(metrics["kl_per_latent"])
    assert float(kl.max() / kl.min()) < 20  # diffuse: no latent stands out
    active, _ = active_latents(kl, torch.tensor(metrics["share_per_latent"]))
    assert int(active.sum()) > 400  # per latent, nearly all look used ...
    assert abs(metrics["n_directions"] - 50) <= 5  # ... but the reconstructions use 50 directions
    assert abs(metrics["n_active"] - 50) <= 5


def test_used_directions_of_known_spectra() -> None:
    assert used_directions(torch.cat([torch.ones(7), torch.full((20,), 1e-4)])) == 7
    assert used_directions(torch.logspace(0, -2, 100)) is None  # smooth decay: no gap
    assert used_directions(torch.cat([torch.ones(30), torch.zeros(10)])) == 30  # rank 30


def test_reconstruction_shares_closed_form_equals_ablation() -> None:
    from poisson_vae import ModelConfig, build_vae

    torch.manual_seed(3)
    model = build_vae(ModelConfig(latent="laplace", n_latents=12, init_std=0.3))
    x = torch.randn(400, 1, 16, 16)
    shares = reconstruction_shares(model, x)
    with torch.no_grad():
        point = model.latent.point(model.encode(x))
        base = (x - model.decoder(point)).flatten(1).pow(2).sum(1).mean()
        for k in range(12):
            held = point.clone()
            held[:, k] = point[:, k].mean()
            rise = (x - model.decoder(held)).flatten(1).pow(2).sum(1).mean() - base
            assert float(shares[k]) == pytest.approx(max(float(rise), 0.0), rel=1e-3, abs=1e-4)
