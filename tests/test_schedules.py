"""Learning-rate, beta and temperature schedules."""

from __future__ import annotations

import itertools

import pytest

from poisson_vae.schedules import learning_rate_factor, linear_ramp


def test_linear_ramp() -> None:
    assert linear_ramp(0, 100, 1.0, 0.05) == 1.0
    assert linear_ramp(50, 100, 1.0, 0.05) == pytest.approx(0.525)
    assert linear_ramp(100, 100, 1.0, 0.05) == 0.05
    assert linear_ramp(500, 100, 1.0, 0.05) == 0.05
    assert linear_ramp(3, 0, 1.0, 0.05) == 0.05


def test_learning_rate_warms_up_then_decays_by_cosine_to_the_floor() -> None:
    factors = [learning_rate_factor(step, 10, 111, 0.002) for step in range(111)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert factors[10] == pytest.approx(1.0)
    assert factors[60] == pytest.approx((1 + 0.002) / 2, rel=1e-3)
    assert factors[-1] == pytest.approx(0.002)
    decay = factors[10:]
    assert all(a >= b for a, b in itertools.pairwise(decay))


def test_beta_is_held_before_its_ramp() -> None:
    assert linear_ramp(5, 100, 1e-4, 1.0, hold_steps=10) == 1e-4
    assert linear_ramp(10, 100, 1e-4, 1.0, hold_steps=10) == 1e-4
    assert linear_ramp(55, 100, 0.0, 1.0, hold_steps=10) == pytest.approx(0.5)
    assert linear_ramp(100, 100, 0.0, 1.0, hold_steps=10) == 1.0


def test_cosine_with_two_restarts() -> None:
    total, warmup = 10 + 3 * 30 + 1, 10
    factors = [learning_rate_factor(step, warmup, total, 0.01, restarts=2) for step in range(total)]
    for start in (10, 40, 70):  # each cycle starts at the peak ...
        assert factors[start] == pytest.approx(1.0)
        cycle = factors[start : start + 30]
        assert all(a >= b for a, b in itertools.pairwise(cycle))  # ... and decays
        assert cycle[15] == pytest.approx((1 + 0.01) / 2, rel=1e-3)
    assert factors[39] < 0.02 and factors[-1] == pytest.approx(0.01)
