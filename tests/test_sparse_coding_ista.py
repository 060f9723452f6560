"""ISTA against scikit-learn's Lasso, plus the shared interface's stopping rule and input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Lasso

from poisson_vae.sparse_coding import ALGORITHMS, ISTA, LCA, SparseCodeResult, lasso_objective

# Tiny products: a second thread only adds waits for a busy core (milliseconds per product).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def problem(
    seed: int = 0, n_features: int = 32, n_atoms: int = 48, batch: int = 4, dtype=torch.float64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Data x (B, D) and a dictionary (D, K) of random unit-norm atoms."""
    generator = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(n_features, n_atoms, generator=generator, dtype=dtype)
    x = torch.randn(batch, n_features, generator=generator, dtype=dtype)
    return x, dictionary / dictionary.norm(dim=0)


def lasso_codes(x: torch.Tensor, dictionary: torch.Tensor, lam: float, positive: bool) -> torch.Tensor:
    """scikit-learn's Lasso, one sample at a time, on the same objective.

    Lasso minimises (1 / (2 n_samples)) ||y - X w||^2 + alpha ||w||_1; with X = Phi (D rows, so
    n_samples = D) and y = x this is (1 / D) (0.5 ||x - Phi a||^2 + (alpha D) ||a||_1): alpha = lam / D.
    """
    alpha = lam / dictionary.shape[0]
    model = Lasso(alpha=alpha, fit_intercept=False, tol=1e-12, max_iter=100_000, positive=positive)
    rows = [model.fit(dictionary.numpy(), sample).coef_.copy() for sample in x.numpy()]
    return torch.from_numpy(np.stack(rows))


@pytest.mark.parametrize("non_negative", [False, True])
def test_ista_reaches_the_lasso_minimiser(non_negative: bool) -> None:
    x, dictionary = problem()
    lam = 0.5
    method = ISTA(lam=lam, n_iterations=20_000, tol=1e-10, non_negative=non_negative)
    result = method.infer(x, dictionary)
    reference = lasso_codes(x, dictionary, lam, positive=non_negative)
    expected = lasso_objective(x, dictionary, reference, lam)
    assert result.converged and result.objective.shape == (4,)
    torch.testing.assert_close(result.objective, expected, rtol=1e-7, atol=0)
    torch.testing.assert_close(result.codes, reference, rtol=0, atol=1e-5)
    assert 0 < (reference != 0).double().mean() < 1  # the problem really is sparse


def test_non_negative_codes_are_non_negative() -> None:
    x, dictionary = problem(seed=1, dtype=torch.float32)
    codes = ISTA(lam=0.2, n_iterations=300, non_negative=True).infer(x, dictionary).codes
    assert bool((codes >= 0).all()) and bool((codes > 0).any())


def test_objective_falls_every_iteration() -> None:
    x, dictionary = problem(seed=2)
    result = ISTA(lam=0.3, n_iterations=200, tol=0, record_objective=True).infer(x, dictionary)
    assert result.objective_trace.shape == (200, 4)
    assert bool((result.objective_trace.diff(dim=0) <= 1e-12).all())
    torch.testing.assert_close(result.objective_trace[-1], result.objective)


def test_stops_early_on_an_orthonormal_dictionary() -> None:
    # With orthonormal atoms L = 1 and one step lands on the exact answer, the soft threshold of Phi^T x.
    dictionary = torch.linalg.qr(torch.randn(16, 16, generator=torch.Generator().manual_seed(3)))[0]
    x = torch.randn(5, 16, generator=torch.Generator().manual_seed(4))
    result = ISTA(lam=0.4, n_iterations=1000, tol=1e-4, check_every=10).infer(x, dictionary)
    exact = (x @ dictionary).sign() * ((x @ dictionary).abs() - 0.4).clamp_min(0)
    assert result.converged and result.n_iterations == 20
    torch.testing.assert_close(result.codes, exact)


def test_without_tol_every_iteration_runs() -> None:
    x, dictionary = problem(dtype=torch.float32)
    result = ISTA(lam=0.5, n_iterations=37, tol=0).infer(x, dictionary)
    assert isinstance(result, SparseCodeResult)
    assert result.n_iterations == 37 and not result.converged and result.objective_trace is None
    assert result.codes.dtype == torch.float32 and result.objective.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@pytest.mark.parametrize(
    ("x", "dictionary", "message"),
    [
        (torch.zeros(2, 5), torch.zeros(4, 3), "x has 5 features but the dictionary has 4 rows"),
        (torch.zeros(5), torch.zeros(5, 3), "x must be 2-D"),
        (torch.zeros(2, 5), torch.zeros(5, 3, 1), "dictionary must be 2-D"),
        (torch.zeros(2, 5, dtype=torch.int64), torch.zeros(5, 3), "x must be floating point"),
        (torch.zeros(0, 5), torch.zeros(5, 3), "x is empty"),
        (torch.full((2, 5), float("nan")), torch.zeros(5, 3), "x contains NaN"),
        (torch.zeros(2, 5), torch.full((5, 3), float("inf")), "dictionary contains NaN or infinite"),
        (torch.zeros(2, 5), torch.zeros(5, 3).double(), "x is torch.float32 but the dictionary is"),
        (np.zeros((2, 5)), torch.zeros(5, 3), "x must be a torch.Tensor"),
    ],
)
def test_bad_inputs_are_refused(name: str, x, dictionary, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ALGORITHMS[name]().infer(x, dictionary)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lam": -0.1}, "lam must be a finite number >= 0"),
        ({"lam": float("nan")}, "lam must be a finite number >= 0"),
        ({"n_iterations": 0}, "n_iterations must be an integer >= 1"),
        ({"n_iterations": 10.5}, "n_iterations must be an integer >= 1"),
        ({"tol": -1.0}, "tol must be a finite number >= 0"),
        ({"check_every": 0}, "check_every must be an integer >= 1"),
    ],
)
def test_bad_options_are_refused(name: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ALGORITHMS[name](**options)


def test_all_zero_input_converges_to_zero_codes() -> None:
    _, dictionary = problem()
    for method in (ISTA(), LCA()):
        result = method.infer(torch.zeros(3, 32, dtype=torch.float64), dictionary)
        assert result.converged and result.n_iterations == 10 and not bool(result.codes.any())
