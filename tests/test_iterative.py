"""The iterative VAEs: parameter counts of the release, one step against its closed form, the KLs,
the Gaussian natural-gradient step against autograd, truncated backpropagation, the rate-distortion
distance against the published table, and the convergence record."""

from __future__ import annotations

import math

import pytest
import torch

from poisson_vae.distributions import poisson_kl
from poisson_vae.iterative import (
    IterativeState,
    IterativeVAE,
    convergence,
    linear_probe,
    rates_at_steps,
    soft_upper,
)
from poisson_vae.metrics import distance_to_ideal, per_sample_r2


@pytest.mark.parametrize(
    ("family", "n_inputs", "expected"),
    [
        ("poisson", 256, 132_353),
        ("gaussian", 256, 132_866),
        ("gaussian-relu", 256, 133_378),
        ("poisson", 784, 403_217),
    ],
)
def test_parameter_counts_are_the_releases(family: str, n_inputs: int, expected: int) -> None:
    model = IterativeVAE(family, n_inputs, 512)
    assert sum(parameter.numel() for parameter in model.parameters()) == expected


def test_a_step_with_no_dictionary_is_the_leak_alone() -> None:
    model = IterativeVAE("poisson", 16, 8).double()
    with torch.no_grad():
        model.dictionary.zero_()
    start = model.initial_state(3)
    state = model.step(torch.randn(3, 16, dtype=torch.float64), start, temperature=0.5)
    leak = -math.exp(-3.0)  # -exp(log_step) exp(log_bias) at their initial values
    expected = soft_upper(start.location + soft_upper(torch.tensor(leak), 10.0), 10.0)
    torch.testing.assert_close(state.location, expected.expand(3, -1))
    change = (state.location - start.location).detach()
    assert float((change - leak).abs().max()) < 1e-4  # the clamps barely act


def test_the_clamps_bound_the_state_and_its_step() -> None:
    torch.manual_seed(0)
    model = IterativeVAE("poisson", 16, 8, init_std=1.0).requires_grad_(False)
    model.log_step.fill_(5.0)  # huge steps
    x = torch.cat([100 * model.dictionary.sum(1, keepdim=True).T, -100 * torch.ones(1, 16)])
    for clamp, limit in ((0.0, 2.0), (1.0, 10.0)):
        state = model.initial_state(2)
        for _ in range(5):
            previous, state = state, model.step(x, state, temperature=0.0, clamp=clamp)
            change = state.location - previous.location
            # the hard floor comes before the soft upper clamp, which lowers it by < 1e-3
            assert float(state.location.max()) < limit and float(state.location.min()) > -8.001
            assert float(change.max()) < limit
        assert float(state.location.max()) > limit - 1  # the clamp was reached
        assert float(state.location.min()) < -7.999  # and the floor


def test_the_poisson_kls() -> None:
    model = IterativeVAE("poisson", 4, 6).double()
    previous = IterativeState(torch.randn(2, 6, dtype=torch.float64))
    state = IterativeState(torch.randn(2, 6, dtype=torch.float64))
    change = state.location - previous.location
    posterior = state.location.exp() * (1 + change.exp() * (change - 1))
    torch.testing.assert_close(model.kl(state, previous), posterior.sum(-1))
    assert torch.all(model.kl(previous, previous) == 0)
    model.kl_prefactor = "prior"  # the exact KL(Pois(exp u_t) || Pois(exp u_{t-1}))
    exact = poisson_kl(state.location.exp(), previous.location.exp()).sum(-1)
    torch.testing.assert_close(model.kl(state, previous), exact)


def test_the_gaussian_kl_is_torchs() -> None:
    model = IterativeVAE("gaussian", 4, 6).double()
    a, b = (
        IterativeState(torch.randn(2, 6, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64))
        for _ in range(2)
    )
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(a.location, a.log_scale.exp()),
        torch.distributions.Normal(b.location, b.log_scale.exp()),
    ).sum(-1)
    torch.testing.assert_close(model.kl(a, b), expected)


@pytest.mark.parametrize("family", ["gaussian", "gaussian-relu"])
def test_the_gaussian_step_is_the_natural_gradient(family: str) -> None:
    """The step before its clamps: -Fisher^{-1} x the gradient of the reconstruction NLL (at the
    same noise), minus the drive b on the mean; the clamps are near the identity at these sizes."""
    torch.manual_seed(0)
    model = IterativeVAE(family, 10, 5, init_std=0.05).double()
    with torch.no_grad():
        model.decoder_log_scale.fill_(0.3)
        model.log_step.copy_(torch.tensor([-3.0, -2.0]))
        if model.log_gain is not None:
            model.log_gain.fill_(0.2)
    x = torch.randn(3, 10, dtype=torch.float64)
    state = IterativeState(
        0.5 * torch.randn(3, 5, dtype=torch.float64), -0.5 + 0.1 * torch.randn(3, 5, dtype=torch.float64)
    )
    generator = torch.Generator().manual_seed(1)
    new = model.step(x, state, temperature=1.0, generator=generator)
    noise = torch.randn(3, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    mean = state.location.clone().requires_grad_()
    log_scale = state.log_scale.clone().requires_grad_()
    code = model.activation(mean + log_scale.exp() * noise)
    nll = 0.5 * ((x - code @ model.dictionary.T) ** 2 / model.decoder_variance()).sum()
    grad_mean, grad_log_scale = torch.autograd.grad(nll, (mean, log_scale))
    steps = model.log_step.detach().exp()
    sigma2 = state.log_scale.exp() ** 2
    expected_mean = steps[0] * (-sigma2 * grad_mean - model.log_bias.detach().exp())
    expected_log_scale = steps[1] * (-0.5 * grad_log_scale)  # Fisher 2 for log sigma

    def unclamped(value: torch.Tensor, start: torch.Tensor, state_limit: float, step_limit: float):
        inner = state_limit * torch.atanh(value / state_limit) - start
        return step_limit * torch.atanh(inner / step_limit)

    torch.testing.assert_close(
        unclamped(new.location.detach(), state.location, 7.0, 7.0), expected_mean.detach()
    )
    torch.testing.assert_close(
        unclamped(new.log_scale.detach(), state.log_scale, 2.0, 3.0), expected_log_scale.detach()
    )


def test_spikes_are_counts_at_evaluation_and_relaxed_with_a_gradient_in_training() -> None:
    model = IterativeVAE("poisson", 16, 8)
    with torch.no_grad():
        model.initial.fill_(1.0)
    hard, _ = model.sample(model.initial_state(50), temperature=0.0)
    assert torch.equal(hard, hard.round()) and float(hard.max()) > 1
    terms = model(torch.randn(5, 16), n_steps=3, temperature=0.5)
    terms.loss(1.0).backward()
    for name in ("dictionary", "log_step", "log_bias", "initial", "decoder_log_scale"):
        assert float(getattr(model, name).grad.abs().sum()) > 0, name


def test_truncated_backpropagation_keeps_the_path_to_the_prior() -> None:
    torch.manual_seed(0)
    model = IterativeVAE("poisson", 16, 8, init_std=0.3)
    x = torch.randn(6, 16)

    def gradients(truncation: int | None) -> dict[str, torch.Tensor]:
        model.zero_grad()
        generator = torch.Generator().manual_seed(3)
        model(x, 6, 0.5, truncation=truncation, generator=generator).loss(2.0).backward()
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    full, whole, truncated = gradients(None), gradients(6), gradients(2)
    for name in full:
        torch.testing.assert_close(whole[name], full[name])  # a block of all steps cuts nothing
    assert not torch.allclose(truncated["dictionary"], full["dictionary"])
    assert float(truncated["initial"].abs().sum()) > 0


def test_distance_to_ideal_matches_the_published_rate_distortion_rows() -> None:
    # (portion of zeros, R^2, R^2 from rates, d, d_map): rows of the release's rate-distortion table
    rows = [
        (0.723, 0.863, 0.924, 0.309, 0.287),
        (0.816, 0.773, 0.858, 0.292, 0.233),
        (0.775, 0.827, 0.917, 0.284, 0.240),
        (0.630, 0.941, 0.977, 0.374, 0.370),
    ]
    for zeros, r2, r2_map, d, d_map in rows:
        assert distance_to_ideal(r2, zeros) == pytest.approx(d, abs=2e-3)
        assert distance_to_ideal(r2_map, zeros) == pytest.approx(d_map, abs=2e-3)


def test_per_sample_r2_is_each_samples_own() -> None:
    x, reconstruction = torch.randn(7, 20, dtype=torch.float64), torch.randn(7, 20, dtype=torch.float64)
    sse = (x - reconstruction).pow(2).sum(1)
    energy = (x - x.mean(1, keepdim=True)).pow(2).sum(1)
    for i in range(7):
        expected = 1 - float(sse[i]) / (float(energy[i]) + 1.19e-7)
        assert float(per_sample_r2(sse, energy)[i]) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("family", ["poisson", "gaussian", "gaussian-relu"])
def test_convergence_records_every_step(family: str) -> None:
    model = IterativeVAE(family, 16, 8, init_std=0.2)
    result = convergence(model, torch.randn(10, 16), n_steps=12)
    assert result["step"] == list(range(1, 13))
    for key in ("r2", "mse", "portion_zeros", "kl", "step_norm", "distance"):
        assert len(result[key]) == 12 and all(math.isfinite(value) for value in result[key])
    last = len(result["r2"]) - 1
    assert result["distance"][last] == pytest.approx(
        distance_to_ideal(result["r2"][last], result["portion_zeros"][last])
    )
    assert (result["portion_zeros"][last] == 0) is (family == "gaussian")
    x = torch.randn(10, 16)  # the pooled R^2: one minus the total error over the total energy
    pooled = convergence(model, x, n_steps=3, generator=torch.Generator().manual_seed(0))
    energy = float((x - x.mean(1, keepdim=True)).pow(2).sum())
    expected = [1 - mse * 10 / energy for mse in pooled["mse"]]
    assert pooled["r2_pooled"] == pytest.approx(expected, abs=1e-5)  # float32 sums
    assert math.isfinite(result["r2_map"]) and math.isfinite(result["distance_map"])
    assert model.training  # left as it was


def test_the_linear_probe_reads_the_class_from_the_rates() -> None:
    # two classes, +pattern and -pattern with noise; atom 0 is the pattern, atom 1 its negative:
    # each class drives its own latent, so the rates after a few steps tell the classes apart
    generator = torch.Generator().manual_seed(0)
    pattern = torch.randn(16, generator=generator)
    pattern = pattern / pattern.norm()
    labels = torch.arange(400) % 2
    noise = 0.3 * torch.randn(400, 16, generator=generator)
    x = ((1 - 2 * labels[:, None]) * 3 * pattern + noise).double()
    model = IterativeVAE("poisson", 16, 2, init_std=0.0)
    with torch.no_grad():  # a small step: an untrained unit step overshoots and oscillates
        model.dictionary.copy_(torch.stack([pattern, -pattern], 1))
        model.log_step.fill_(math.log(0.2))
    model = model.double()
    x, y = x.numpy(), labels.numpy()
    probe = linear_probe(model, x[:200], y[:200], x[200:], y[200:], steps=(1, 10), seed=0)
    assert probe["step"] == [1, 10]
    assert probe["accuracy"][-1] > 0.95  # chance: 0.5
    rates = rates_at_steps(model, x[:4], (10,))[10]
    assert rates.shape == (4, 2) and (rates[0, 0] > rates[0, 1]) and (rates[1, 1] > rates[1, 0])
