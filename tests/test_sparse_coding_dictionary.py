"""Dictionary learning recovers a planted dictionary; one update keeps atoms at unit norm."""

from __future__ import annotations

import pytest
import torch

from poisson_vae.sparse_coding import (
    FISTA,
    SparseCodeResult,
    dictionary_step,
    initial_dictionary,
    learn_dictionary,
)

# Tiny products: a second thread only adds waits for a busy core (milliseconds per product).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted_problem(
    n_features: int = 16, n_atoms: int = 24, n_samples: int = 2000, n_active: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """A unit-norm dictionary (D, K) and samples (N, D) that each mix ``n_active`` of its atoms.

    Coefficients have random signs and magnitudes in [0.5, 1.5); a little Gaussian noise is added.
    """
    generator = torch.Generator().manual_seed(seed)
    dictionary = torch.randn(n_features, n_atoms, generator=generator)
    dictionary = dictionary / dictionary.norm(dim=0)
    support = torch.rand(n_samples, n_atoms, generator=generator).argsort(1)[:, :n_active]
    signs = torch.randint(2, (n_samples, n_active), generator=generator) * 2 - 1
    values = (0.5 + torch.rand(n_samples, n_active, generator=generator)) * signs
    codes = torch.zeros(n_samples, n_atoms).scatter_(1, support, values)
    noise = 0.01 * torch.randn(n_samples, n_features, generator=generator)
    return dictionary, codes @ dictionary.T + noise


def test_learning_recovers_the_planted_atoms() -> None:
    planted, data = planted_problem()
    objectives: list[float] = []

    def record(step: int, dictionary: torch.Tensor, result: SparseCodeResult) -> None:
        objectives.append(float(result.objective.mean()))

    method = FISTA(lam=0.1, n_iterations=100, tol=1e-3)
    learned = learn_dictionary(
        data, 24, method, n_steps=300, batch_size=256, lr=3.0, seed=0, callback=record
    )
    assert learned.shape == (16, 24) and learned.dtype == torch.float32
    torch.testing.assert_close(learned.norm(dim=0), torch.ones(24))
    best_match = (planted.T @ learned).abs().max(dim=1).values  # (K,) best |cosine| per planted atom
    assert float((best_match > 0.9).double().mean()) >= 0.9
    assert len(objectives) == 300
    assert sum(objectives[-20:]) < 0.8 * sum(objectives[:20])


def test_learning_is_reproducible_with_a_seed() -> None:
    _, data = planted_problem(n_samples=300)
    method = FISTA(lam=0.1, n_iterations=20)
    first = learn_dictionary(data, 8, method, n_steps=5, batch_size=32, seed=7, init="data")
    second = learn_dictionary(data, 8, method, n_steps=5, batch_size=32, seed=7, init="data")
    other = learn_dictionary(data, 8, method, n_steps=5, batch_size=32, seed=8, init="data")
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert not torch.equal(first, other)


def test_one_step_lowers_the_error_and_keeps_unit_atoms() -> None:
    _, data = planted_problem(n_samples=256, seed=1)
    start = initial_dictionary(data, 24, generator=torch.Generator().manual_seed(0))
    codes = FISTA(lam=0.1, n_iterations=100).infer(data, start).codes
    before = start.clone()
    updated = dictionary_step(start, data, codes, lr=0.05)
    torch.testing.assert_close(start, before, rtol=0, atol=0)  # the input is left alone
    torch.testing.assert_close(updated.norm(dim=0), torch.ones(24))

    def error(dictionary: torch.Tensor) -> float:
        return float((data - codes @ dictionary.T).pow(2).sum())

    assert error(updated) < error(start)


def test_initial_dictionaries_have_unit_atoms() -> None:
    _, data = planted_problem(n_samples=50)
    for init in ("random", "data"):
        atoms = initial_dictionary(data.double(), 20, init, torch.Generator().manual_seed(0))
        assert atoms.shape == (16, 20) and atoms.dtype == torch.float64
        torch.testing.assert_close(atoms.norm(dim=0), torch.ones(20, dtype=torch.float64))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_atoms": 0}, "n_atoms must be an integer >= 1"),
        ({"n_steps": -1}, "n_steps must be an integer >= 0"),
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"lr": 0.0}, "lr must be > 0"),
        ({"init": "zeros"}, r"init must be one of \('random', 'data'\)"),
        ({"n_atoms": 100, "init": "data"}, "init='data' needs at least n_atoms=100 samples, got 50"),
        ({"data": torch.zeros(50)}, "data must be 2-D"),
        ({"data": torch.full((50, 16), float("nan"))}, "data contains NaN"),
    ],
)
def test_bad_arguments_are_refused(options: dict, message: str) -> None:
    _, data = planted_problem(n_samples=50)
    arguments = {"data": data, "n_atoms": 8, "method": FISTA(), "n_steps": 1} | options
    with pytest.raises(ValueError, match=message):
        learn_dictionary(**arguments)


def test_step_refuses_codes_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"codes must be \(B, K\) = \(4, 3\), got \(4, 5\)"):
        dictionary_step(torch.zeros(6, 3), torch.zeros(4, 6), torch.zeros(4, 5), lr=0.1)
