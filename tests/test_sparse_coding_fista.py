"""FISTA against scikit-learn's SparseCoder (coordinate descent) on the same Lasso objective."""

from __future__ import annotations

import pytest
import torch
from sklearn.decomposition import SparseCoder

from poisson_vae.sparse_coding import FISTA, ISTA, lasso_objective

# Tiny products: a second thread only adds waits for a busy core (milliseconds per product).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def problem(seed: int = 0, dtype=torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Data x (6, 32) and a dictionary (32, 48) of random unit-norm atoms."""
    generator = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(32, 48, generator=generator, dtype=dtype)
    return torch.randn(6, 32, generator=generator, dtype=dtype), dictionary / dictionary.norm(dim=0)


def sparse_coder_codes(
    x: torch.Tensor, dictionary: torch.Tensor, lam: float, positive: bool
) -> torch.Tensor:
    """scikit-learn's codes for 0.5 ||x - Phi a||^2 + lam ||a||_1.

    SparseCoder takes atoms as rows; with ``lasso_cd``, ``sparse_encode`` divides ``transform_alpha``
    by n_features (D) and fits Lasso(alpha, fit_intercept=False, tol=1e-8) to y = x with X = Phi,
    which minimises (1 / (2 D)) ||x - Phi a||^2 + (alpha / D) ||a||_1, our objective over D: so
    ``transform_alpha = lam`` exactly.
    """
    coder = SparseCoder(
        dictionary=dictionary.T.numpy(),
        transform_algorithm="lasso_cd",
        transform_alpha=lam,
        transform_max_iter=100_000,
        positive_code=positive,
    )
    return torch.from_numpy(coder.transform(x.numpy()))


@pytest.mark.parametrize("non_negative", [False, True])
def test_fista_matches_scikit_learn(non_negative: bool) -> None:
    x, dictionary = problem()
    lam = 0.4
    method = FISTA(lam=lam, n_iterations=20_000, tol=1e-10, non_negative=non_negative)
    result = method.infer(x, dictionary)
    reference = sparse_coder_codes(x, dictionary, lam, positive=non_negative)
    expected = lasso_objective(x, dictionary, reference, lam)
    assert result.converged
    # scikit-learn stops at a duality gap of 1e-8 (relative), so it may sit a hair above the minimum.
    torch.testing.assert_close(result.objective, expected, rtol=1e-6, atol=0)
    assert bool((result.objective <= expected + 1e-9).all())
    torch.testing.assert_close(result.codes, reference, rtol=0, atol=1e-3)


def test_non_negative_codes_are_non_negative() -> None:
    x, dictionary = problem(seed=1, dtype=torch.float32)
    codes = FISTA(lam=0.2, n_iterations=300, non_negative=True).infer(x, dictionary).codes
    assert bool((codes >= 0).all()) and bool((codes > 0).any())


def test_momentum_beats_ista_on_a_short_budget() -> None:
    x, dictionary = problem(seed=2)
    lam = 0.1  # a weak penalty: many active atoms, an ill-conditioned problem where momentum pays
    minimum = FISTA(lam=lam, n_iterations=20_000, tol=1e-10).infer(x, dictionary).objective
    fista = FISTA(lam=lam, n_iterations=50, tol=0).infer(x, dictionary).objective
    ista = ISTA(lam=lam, n_iterations=50, tol=0).infer(x, dictionary).objective
    assert float((fista - minimum).sum()) < 0.5 * float((ista - minimum).sum())


def test_stops_early_on_an_easy_problem() -> None:
    x, dictionary = problem(seed=3, dtype=torch.float32)
    result = FISTA(lam=1.0, n_iterations=5000, tol=1e-4).infer(x, dictionary)
    assert result.converged and result.n_iterations < 5000
    assert result.n_iterations % 10 == 0  # checked every check_every = 10 iterations


@pytest.mark.parametrize("tol", [0.0, 1e-3])
def test_objective_trace_reaches_the_final_objective(tol: float) -> None:
    x, dictionary = problem(seed=4)
    result = FISTA(lam=0.3, n_iterations=40, tol=tol, record_objective=True).infer(x, dictionary)
    assert result.objective_trace.shape == (result.n_iterations, 6)
    assert result.n_iterations == 40 or tol > 0
    torch.testing.assert_close(result.objective_trace[-1], result.objective)
    assert bool((result.objective_trace[-1] < result.objective_trace[0]).all())


def test_restarts_reach_the_minimum_in_fewer_iterations() -> None:
    x, dictionary = problem(seed=5)
    lam = 0.1  # many active atoms: plain FISTA's momentum oscillates around the minimum
    minimum = FISTA(lam=lam, n_iterations=20_000, tol=1e-12).infer(x, dictionary).objective
    runs = {
        restart: FISTA(lam=lam, n_iterations=20_000, tol=1e-8, restart=restart).infer(x, dictionary)
        for restart in (True, False)
    }
    for result in runs.values():
        assert result.converged
        torch.testing.assert_close(result.objective, minimum, rtol=1e-6, atol=0)
    assert runs[True].n_iterations < 0.7 * runs[False].n_iterations


@pytest.mark.parametrize("restart", [True, False])
def test_each_sample_stops_on_its_own(restart: bool) -> None:
    x, dictionary = problem(seed=8)
    x = x * torch.logspace(-1, 1, len(x), dtype=x.dtype)[:, None]  # samples settle at other times
    fista = FISTA(lam=0.3, n_iterations=5000, tol=1e-6, restart=restart)
    together = fista.infer(x, dictionary)
    alone = torch.cat([fista.infer(x[i : i + 1], dictionary).codes for i in range(len(x))])
    torch.testing.assert_close(together.codes, alone, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("non_negative", "rows"), [(False, 64), (True, 64), (False, 1500)])
def test_the_compiled_pass_is_the_torch_one(
    non_negative: bool, rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On any number of threads (1500 rows of 50 atoms: chunks on two threads)."""
    from poisson_vae.sparse_coding import fista

    generator = torch.Generator().manual_seed(3)
    dictionary = torch.randn(30, 50, generator=generator, dtype=torch.float64)
    dictionary /= dictionary.norm(dim=0)
    x = torch.randn(rows, 30, generator=generator, dtype=torch.float64)
    method = FISTA(
        lam=0.2, n_iterations=300, tol=1e-10, non_negative=non_negative, record_objective=True
    )
    compiled = method.infer(x, dictionary)
    monkeypatch.setattr(fista, "_FUSED_DEVICES", ())
    reference = method.infer(x, dictionary)
    assert torch.allclose(compiled.codes, reference.codes, rtol=0, atol=1e-12)
    assert compiled.n_iterations == reference.n_iterations
    assert torch.allclose(compiled.objective_trace, reference.objective_trace, rtol=1e-12)
