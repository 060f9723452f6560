"""LCA: the soft-threshold fixed point is the Lasso minimiser; the hard-threshold energy falls."""

from __future__ import annotations

import pytest
import torch

from poisson_vae.sparse_coding import FISTA, LCA

# Tiny products: a second thread only adds waits for a busy core (milliseconds per product).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def problem(
    seed: int = 0, batch: int = 8, dtype=torch.float64, device: str = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Data x (B, 32) and a dictionary (32, 48) of random unit-norm atoms."""
    generator = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(32, 48, generator=generator, dtype=dtype)
    x = torch.randn(batch, 32, generator=generator, dtype=dtype)
    return x.to(device), (dictionary / dictionary.norm(dim=0)).to(device)


@pytest.mark.parametrize("non_negative", [False, True])
def test_soft_fixed_point_satisfies_the_lasso_optimality_conditions(non_negative: bool) -> None:
    x, dictionary = problem()
    lam = 0.5
    options = {"lam": lam, "n_iterations": 20_000, "tol": 1e-10, "non_negative": non_negative}
    result = LCA(**options).infer(x, dictionary)
    assert result.converged
    codes = result.codes
    correlation = (x - codes @ dictionary.T) @ dictionary  # (B, K): Phi_k^T (x - Phi a)
    active = codes != 0
    assert 0 < float(active.double().mean()) < 1
    # Active atoms: Phi_k^T r = lam sign(a_k). Inactive: |Phi_k^T r| <= lam, or Phi_k^T r <= lam when
    # the codes are constrained to be non-negative.
    torch.testing.assert_close(correlation[active], lam * codes[active].sign(), rtol=0, atol=1e-6)
    inactive = correlation[~active] if non_negative else correlation[~active].abs()
    assert float(inactive.max()) <= lam + 1e-6
    minimum = FISTA(**options).infer(x, dictionary)
    torch.testing.assert_close(result.objective, minimum.objective, rtol=1e-8, atol=0)


@pytest.mark.parametrize("non_negative", [False, True])
def test_hard_threshold_energy_never_rises(non_negative: bool) -> None:
    x, dictionary = problem(seed=1, batch=16, dtype=torch.float32)
    lam = 0.5
    options = {"n_iterations": 600, "tol": 0, "non_negative": non_negative, "record_objective": True}
    result = LCA(lam=lam, threshold="hard", **options).infer(x, dictionary)
    trace = result.objective_trace
    assert trace.shape == (600, 16)
    # Non-increasing up to float32 rounding of an energy of order 10.
    assert float(trace.diff(dim=0).max()) <= 1e-5 * float(trace[0].max())
    assert bool((trace[-1] < 0.5 * x.pow(2).sum(1)).all())
    # The energy is the squared error plus lam^2 / 2 per active atom, and codes are 0 or beyond lam.
    codes = result.codes
    active = codes != 0
    energy = 0.5 * (x - codes @ dictionary.T).pow(2).sum(1) + 0.5 * lam**2 * active.sum(1)
    torch.testing.assert_close(result.objective, energy)
    assert bool((codes[active].abs() > lam).all())
    if non_negative:
        assert bool((codes >= 0).all())


def test_non_negative_soft_codes_are_non_negative() -> None:
    x, dictionary = problem(seed=2, dtype=torch.float32)
    codes = LCA(lam=0.2, n_iterations=300, non_negative=True).infer(x, dictionary).codes
    assert bool((codes >= 0).all()) and bool((codes > 0).any())


def test_stops_early_on_an_easy_problem() -> None:
    x, dictionary = problem(seed=3, dtype=torch.float32)
    result = LCA(lam=1.0, n_iterations=5000, tol=1e-4).infer(x, dictionary)
    assert result.converged and result.n_iterations < 1000


@pytest.mark.parametrize("dt", [None, 0.01])
def test_a_code_still_at_zero_while_its_potentials_rise_is_not_converged(dt: float | None) -> None:
    # A large threshold: every potential starts far below it, so the codes are all zero for the
    # first checks while the potentials still climb towards Phi^T x (whose largest entry exceeds
    # lam, so zero is not the minimiser). The old rule, on the codes, stopped there with zeros.
    x, dictionary = problem(seed=6, batch=4)
    lam = 0.8 * float((x @ dictionary).abs().max())
    options = {"lam": lam, "n_iterations": 200_000, "tol": 1e-9}
    result = LCA(dt=dt, **options).infer(x, dictionary)
    minimum = FISTA(**options).infer(x, dictionary)
    assert result.converged and bool((minimum.codes != 0).any())
    assert bool((result.codes != 0).any()) and result.n_iterations > 10
    torch.testing.assert_close(result.objective, minimum.objective, rtol=1e-6, atol=0)


def test_each_sample_stops_on_its_own() -> None:
    x, dictionary = problem(seed=7, batch=12)
    lca = LCA(lam=0.5, n_iterations=5000, tol=1e-5)
    together = lca.infer(x, dictionary).codes
    alone = torch.cat([lca.infer(x[i : i + 1], dictionary).codes for i in range(len(x))])
    torch.testing.assert_close(together, alone, rtol=1e-12, atol=1e-12)


def test_only_the_step_ratio_matters() -> None:
    x, dictionary = problem(seed=4)
    slow = LCA(lam=0.5, n_iterations=50, tol=0, tau=100.0, dt=10.0).infer(x, dictionary)
    fast = LCA(lam=0.5, n_iterations=50, tol=0, tau=10.0, dt=1.0).infer(x, dictionary)
    torch.testing.assert_close(slow.codes, fast.codes)


def correlated_problem(seed: int = 6) -> tuple[torch.Tensor, torch.Tensor]:
    """Data x (8, 32) and 64 unit-norm atoms sharing a common direction: L = ||Phi||_2^2 ~ 58."""
    generator = torch.Generator().manual_seed(seed)
    atoms = torch.randn(32, 1, generator=generator, dtype=torch.float64) + 0.3 * torch.randn(
        32, 64, generator=generator, dtype=torch.float64
    )
    return torch.randn(8, 32, generator=generator, dtype=torch.float64), atoms / atoms.norm(dim=0)


def test_the_default_step_is_stable_for_correlated_atoms() -> None:
    x, dictionary = correlated_problem()
    lipschitz = float(torch.linalg.matrix_norm(dictionary, ord=2)) ** 2
    assert lipschitz > 20  # eta = 1 / 10 is above the stability limit 2 / L
    with pytest.raises(FloatingPointError):
        LCA(lam=0.1, n_iterations=2000, tol=0, dt=1.0).infer(x, dictionary)
    lca = LCA(lam=0.1, n_iterations=20_000, tol=0)
    assert lca.step(dictionary) == pytest.approx(1 / lipschitz)
    result = lca.infer(x, dictionary)
    # Stable, and on its way to the minimiser (slowly: the problem is badly conditioned; 20,000
    # steps leave it 6e-4 above, and it converges to 1e-7 in about 120,000)
    minimum = FISTA(lam=0.1, n_iterations=20_000, tol=0).infer(x, dictionary)
    torch.testing.assert_close(result.objective, minimum.objective, rtol=2e-3, atol=0)
    # With well-conditioned random atoms the default is the 1 / 10 of dt = 1, tau = 10.
    assert LCA().step(problem()[1]) == 0.1


def test_too_large_a_step_is_reported() -> None:
    x, dictionary = problem(seed=5, dtype=torch.float32)
    with pytest.raises(FloatingPointError, match="lower dt / tau"):
        LCA(lam=0.1, n_iterations=1000, tol=0, tau=1.0, dt=3.0).infer(x, dictionary)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"tau": 0.0}, "tau must be a finite number > 0"),
        ({"dt": -1.0}, "dt must be a finite number > 0 or None"),
        ({"threshold": "firm"}, r"threshold must be one of \('soft', 'hard'\)"),
    ],
)
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LCA(**options)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    x, dictionary = problem(seed=6, dtype=torch.float32)
    method = LCA(lam=0.5, n_iterations=200, tol=0)
    on_cpu = method.infer(x, dictionary)
    on_gpu = method.infer(x.cuda(), dictionary.cuda())
    assert on_gpu.codes.device.type == "cuda" and on_gpu.objective.device.type == "cuda"
    torch.testing.assert_close(on_gpu.codes.cpu(), on_cpu.codes, rtol=1e-4, atol=1e-4)
