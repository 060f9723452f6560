"""The Poisson gradient estimators: each against the exact gradient of a linear decoder's error.

The toy problem: B = 3 rows, D = 5 pixels, K = 6 latents, rates log-uniform on [0.3, 3]. Its exact
gradient with respect to the log-rates is in closed form (``SquaredError.gradient``, itself checked
against autograd). Each Monte Carlo test replicates the rows R times in one call and compares the
mean gradient over replicas with its target coordinate by coordinate, within N_SE standard errors of
the mean: 18 coordinates per test, so a correct estimator fails one by chance with probability about
18 x 6e-7 (the seeds are fixed, so a pass is reproducible).
"""

from __future__ import annotations

import importlib.util

import pytest
import torch

from poisson_vae.distributions import INDICATORS, relaxed_moments
from poisson_vae.gradients import (
    EAT,
    ESTIMATORS,
    Exact,
    GumbelSoftmax,
    MeasureValued,
    ScoreFunction,
    SquaredError,
    VarGrad,
    gsm_support,
    make_estimator,
)

N_SE = 5.0
SAMPLERS = ["fused", "torch"] + (["triton"] if importlib.util.find_spec("triton") else [])


def toy(replicas: int = 1, dtype: torch.dtype = torch.float64) -> tuple[SquaredError, torch.Tensor]:
    """The toy problem with its rows repeated ``replicas`` times: (objective, (R * 3, 6) rates)."""
    generator = torch.Generator().manual_seed(0)
    dictionary = torch.randn(5, 6, generator=generator, dtype=torch.float64) / 2
    x = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    rate = torch.exp(torch.rand(3, 6, generator=generator, dtype=torch.float64) * 2.3 - 1.2)
    objective = SquaredError(x.repeat(replicas, 1).to(dtype), dictionary.to(dtype))
    return objective, rate.repeat(replicas, 1).to(dtype)


def log_rate_gradients(
    estimator, objective, rate: torch.Tensor, temperature: float = 0.0, seed: int = 1, **kwargs
) -> torch.Tensor:
    """Per-row gradients of the estimator's loss with respect to the log-rates, (B, K)."""
    log_rate = rate.log().requires_grad_()
    generator = torch.Generator(kwargs.pop("device", "cpu")).manual_seed(seed)
    loss, _ = estimator.loss(log_rate.exp(), objective, temperature, generator)
    (gradient,) = torch.autograd.grad(loss.sum(), log_rate)
    return gradient


def assert_mean_gradient(gradients: torch.Tensor, target: torch.Tensor, what: str) -> None:
    """Mean over replicas of (R * 3, K) gradients against a (3, K) target, within N_SE errors."""
    per_replica = gradients.double().view(-1, *target.shape)
    mean = per_replica.mean(0)
    error = per_replica.std(0) / per_replica.shape[0] ** 0.5
    worst = float(((mean - target).abs() / error.clamp_min(1e-12)).max())
    assert worst <= N_SE, f"{what}: mean gradient {worst:.1f} standard errors from its target"


def test_the_exact_gradient_is_autograd_of_the_closed_form() -> None:
    objective, rate = toy()
    gradient = log_rate_gradients(Exact(), objective, rate)
    torch.testing.assert_close(gradient, objective.gradient(rate))
    # and the closed form is E f: a Monte Carlo mean of f over exact draws agrees
    draws = torch.poisson(rate.expand(200_000, *rate.shape), generator=torch.Generator().manual_seed(2))
    losses = objective(draws)
    expected = objective.expected(rate, rate)
    error = losses.std(0) / 200_000**0.5
    assert bool(((losses.mean(0) - expected).abs() <= N_SE * error).all())


@pytest.mark.parametrize(
    "estimator",
    [
        ScoreFunction(n_samples=4, baseline="loo"),
        ScoreFunction(n_samples=1, baseline="none"),
        VarGrad(n_samples=4),
        MeasureValued(),
    ],
    ids=repr,
)
def test_unbiased_estimators_average_to_the_exact_gradient(estimator) -> None:
    assert estimator.unbiased
    objective, rate = toy(replicas=40_000)
    target = toy()[0].gradient(toy()[1])
    gradients = log_rate_gradients(estimator, objective, rate)
    assert_mean_gradient(gradients, target, repr(estimator))


def test_the_leave_in_mean_baseline_is_biased_by_s_minus_one_over_s() -> None:
    """The gradient-analysis code's baseline includes the sample itself: E = (S - 1) / S g*."""
    estimator = ScoreFunction(n_samples=2, baseline="mean")
    assert not estimator.unbiased
    objective, rate = toy(replicas=40_000)
    target = toy()[0].gradient(toy()[1])
    gradients = log_rate_gradients(estimator, objective, rate)
    assert_mean_gradient(gradients, target / 2, "score, mean baseline, S = 2")


def test_the_estimate_is_the_expected_loss_for_every_estimator() -> None:
    """Whatever the gradient, the loss's value estimates E f (within Monte Carlo error)."""
    objective, rate = toy(replicas=20_000)
    expected = toy()[0].expected(toy()[1], toy()[1])
    for name in ("score", "vargrad", "mvd", "exact"):
        loss, _ = make_estimator(name).loss(rate, objective, generator=torch.Generator().manual_seed(3))
        per_replica = loss.detach().view(-1, 3)
        error = per_replica.std(0) / per_replica.shape[0] ** 0.5 + 1e-9
        assert bool(((per_replica.mean(0) - expected).abs() <= N_SE * error).all()), name


def test_vargrad_is_the_leave_one_out_score_estimator_for_a_fixed_loss() -> None:
    objective, rate = toy(replicas=10)
    loo = log_rate_gradients(ScoreFunction(n_samples=5, baseline="loo"), objective, rate, seed=4)
    vargrad = log_rate_gradients(VarGrad(n_samples=5), objective, rate, seed=4)
    torch.testing.assert_close(vargrad, loo)


def test_the_measure_valued_derivative_of_any_loss_matches_its_linear_fast_path() -> None:
    """For a general f the MVD evaluates f at z + e_k for every k (K + 1 evaluations); for a
    SquaredError it uses one matrix product. The same draw gives the same gradient."""
    objective, rate = toy(replicas=10)
    fast = log_rate_gradients(MeasureValued(), objective, rate, seed=5)
    general = log_rate_gradients(MeasureValued(), lambda z: objective(z), rate, seed=5)
    torch.testing.assert_close(general, fast)
    assert MeasureValued().evaluations(512) == 513


def test_score_estimators_also_train_what_the_loss_depends_on() -> None:
    """The loss's gradient with respect to the decoder is the plain gradient at the draws."""
    objective, rate = toy(replicas=3)
    dictionary = objective.dictionary.clone().requires_grad_()
    f = SquaredError(objective.x, dictionary)
    generator = torch.Generator().manual_seed(6)
    loss, _ = ScoreFunction(n_samples=3).loss(rate, f, generator=generator)
    (gradient,) = torch.autograd.grad(loss.sum(), dictionary)
    draws = torch.poisson(rate.expand(3, *rate.shape), generator=torch.Generator().manual_seed(6))
    (reference,) = torch.autograd.grad(f(draws).mean(0).sum(), dictionary)
    torch.testing.assert_close(gradient, reference)


@pytest.mark.parametrize("backend", SAMPLERS)
@pytest.mark.parametrize("indicator", sorted(INDICATORS))
def test_eat_averages_to_the_gradient_of_its_relaxed_objective(indicator: str, backend: str) -> None:
    """EAT is unbiased for the relaxation, not for the Poisson law: its mean gradient is that of
    the relaxed objective in closed form (untruncated walks: compact indicators always, the
    sigmoid with truncate=False). For a compact indicator at temperature <= 1 the bias is
    -(1 - beta) lambda_k d_k, beta = the variance factor of the relaxation."""
    temperature = 0.3
    estimator = EAT(indicator, truncate=False, backend=backend)
    objective, rate = toy(replicas=20_000, dtype=torch.float32)
    device = "cuda" if backend == "triton" and torch.cuda.is_available() else "cpu"
    objective = SquaredError(objective.x.to(device), objective.dictionary.to(device))
    gradients = log_rate_gradients(
        estimator, objective, rate.to(device), temperature, device=device
    ).cpu()
    small, small_rate = toy()
    log_rate = small_rate.log().requires_grad_()
    relaxed = small.relaxed(log_rate.exp(), temperature, indicator)
    (target,) = torch.autograd.grad(relaxed.sum(), log_rate)
    assert_mean_gradient(gradients, target, f"EAT {indicator} ({backend})")
    if indicator != "sigmoid":
        beta = float(relaxed_moments(1.0, temperature, indicator)[1])
        bias = -(1 - beta) * small_rate * small.dictionary.pow(2).sum(0)
        torch.testing.assert_close(target - small.gradient(small_rate), bias)


def test_gsm_is_pathwise_and_tends_to_the_truncated_poisson_mean() -> None:
    rate = torch.full((50_000, 1), 2.0, dtype=torch.float64)
    size = gsm_support(rate, "harness")
    assert size == int(2 + 4 * 2**0.5 + 5)
    identity = lambda z: z.sum(-1)  # noqa: E731 - f(z) = z
    z = GumbelSoftmax().loss(rate, identity, 0.02, torch.Generator().manual_seed(7))[1]
    k = torch.arange(size, dtype=torch.float64)
    pmf = torch.exp(k * torch.tensor(2.0).log() - torch.lgamma(k + 1))
    mean = float((k * pmf).sum() / pmf.sum())
    assert float(z.mean()) == pytest.approx(mean, abs=N_SE * float(z.std()) / 50_000**0.5 + 0.01)
    # the gradient is the derivative of the relaxed sample at fixed Gumbel noise
    single = torch.tensor([[1.3]], dtype=torch.float64, requires_grad=True)
    value, _ = GumbelSoftmax(support=8).loss(single, identity, 0.5, torch.Generator().manual_seed(8))
    (gradient,) = torch.autograd.grad(value.sum(), single)
    step = 1e-6
    shifted = [
        GumbelSoftmax(support=8).loss(
            single.detach() + h, identity, 0.5, torch.Generator().manual_seed(8)
        )[0]
        for h in (step, -step)
    ]
    assert float(gradient) == pytest.approx(float((shifted[0] - shifted[1]) / (2 * step)), rel=1e-5)


def test_the_registry_builds_every_estimator_and_refuses_unknown_names() -> None:
    assert set(ESTIMATORS) == {"eat", "gsm", "score", "vargrad", "mvd", "exact"}
    objective, rate = toy()
    for name in ESTIMATORS:
        estimator = make_estimator(name)
        loss, z = estimator.loss(
            rate.float(), SquaredError(objective.x.float(), objective.dictionary.float()), 0.2
        )
        assert loss.shape == (3,) and bool(torch.isfinite(loss).all())
        assert z is None or z.shape == rate.shape
    with pytest.raises(ValueError, match="unknown gradient estimator 'reinforce'"):
        make_estimator("reinforce")
    with pytest.raises(ValueError, match="needs the loss in closed form"):
        Exact().loss(rate, lambda z: z.sum(-1))
    with pytest.raises(ValueError, match="needs n_samples >= 2"):
        ScoreFunction(n_samples=1)
    with pytest.raises(ValueError, match="unknown gsm support rule"):
        GumbelSoftmax(support="std_ratio")
    with pytest.raises(ValueError, match="temperature > 0"):
        EAT().loss(rate, objective, 0.0)
