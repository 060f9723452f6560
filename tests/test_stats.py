"""Multi-seed statistics against scipy and textbook examples."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from poisson_vae import stats
from poisson_vae.stats import (
    benjamini_hochberg,
    compare_conditions,
    confidence_interval,
    paired_t_test,
    summarise,
)

# Benjamini & Hochberg (1995), section 4: 15 p-values of a clinical trial; at q = 0.05 the procedure
# rejects the four smallest (0.0095 <= 4/15 * 0.05, while 0.0201 > 5/15 * 0.05 and no larger one passes).
BH_1995 = [
    0.0001,
    0.0004,
    0.0019,
    0.0095,
    0.0201,
    0.0278,
    0.0298,
    0.0344,
    0.0459,
    0.3240,
    0.4262,
    0.5719,
    0.6528,
    0.7590,
    1.0000,
]


@pytest.mark.parametrize("level", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("values", [[1.0, 2.0, 4.0], [0.71, 0.74, 0.69, 0.73, 0.70], list(range(12))])
def test_confidence_interval_matches_scipy(values: list[float], level: float) -> None:
    mean, half_width = confidence_interval(values, level)
    low, high = scipy_stats.t.interval(
        level, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values)
    )
    assert mean == pytest.approx(np.mean(values))
    assert (mean - half_width, mean + half_width) == pytest.approx((low, high))


def test_confidence_interval_by_hand() -> None:
    # n = 3, mean 7/3, s = sqrt(7/3), t_{0.995, 2} = 9.9248.
    mean, half_width = confidence_interval([1.0, 2.0, 4.0])
    assert mean == pytest.approx(7 / 3)
    assert half_width == pytest.approx(9.9248432 * np.sqrt(7 / 3) / np.sqrt(3), rel=1e-6)


def test_single_value_has_no_interval() -> None:
    mean, half_width = confidence_interval([0.5])
    assert mean == 0.5 and np.isnan(half_width)


@pytest.mark.parametrize("values", [[], [1.0, np.nan], [[1.0, 2.0]]])
def test_confidence_interval_refuses_bad_samples(values: list) -> None:
    with pytest.raises(ValueError, match="values"):
        confidence_interval(values)


def test_paired_t_test_matches_scipy() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=8)
    b = a + 0.3 + 0.2 * rng.normal(size=8)
    expected = scipy_stats.ttest_rel(a, b)
    assert paired_t_test(a, b) == pytest.approx((expected.statistic, expected.pvalue))


def test_paired_t_test_refuses_unpaired_samples() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        paired_t_test([1.0, 2.0, 3.0], [1.0, 2.0])


def test_identical_conditions_give_no_evidence_instead_of_nan() -> None:
    assert paired_t_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == (0.0, 1.0)


def test_bh_textbook_example() -> None:
    rejected, adjusted = benjamini_hochberg(BH_1995, alpha=0.05)
    assert rejected.tolist() == [True] * 4 + [False] * 11
    # Adjusted p_(i) = min over j >= i of p_(j) * 15 / j, worked by hand for the first five.
    assert adjusted[:5] == pytest.approx(
        [0.0001 * 15, 0.0004 * 15 / 2, 0.0019 * 5, 0.0095 * 15 / 4, 0.0201 * 3]
    )
    assert adjusted[-1] == 1.0


def test_bh_small_example_in_original_order() -> None:
    # Sorted: 0.005 * 4/1 = 0.02, 0.01 * 4/2 = 0.02, 0.03 * 4/3 = 0.04, 0.04 * 4/4 = 0.04.
    rejected, adjusted = benjamini_hochberg([0.01, 0.04, 0.03, 0.005], alpha=0.03)
    assert adjusted == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert rejected.tolist() == [True, False, False, True]


def test_bh_by_hand_equals_scipy_and_is_used_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    p_values = np.random.default_rng(1).uniform(size=40) ** 3
    assert stats._bh_adjust(p_values) == pytest.approx(scipy_stats.false_discovery_control(p_values))
    with_scipy = benjamini_hochberg(p_values, alpha=0.05)
    monkeypatch.delattr(stats.stats, "false_discovery_control")
    without_scipy = benjamini_hochberg(p_values, alpha=0.05)
    assert np.array_equal(with_scipy[0], without_scipy[0])
    assert with_scipy[1] == pytest.approx(without_scipy[1])


@pytest.mark.parametrize("p_values", [[0.1, 1.2], [np.nan], [-0.01]])
def test_bh_refuses_invalid_p_values(p_values: list[float]) -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        benjamini_hochberg(p_values)


def planted_results(n_seeds: int = 10) -> dict[str, dict[int, float]]:
    """Three conditions on shared seeds: 'better' is 0.5 above 'base', 'same' differs only by noise."""
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(size=n_seeds)
    base = seed_effect + 0.1 * rng.normal(size=n_seeds)
    same = seed_effect + 0.1 * rng.normal(size=n_seeds)
    better = seed_effect + 0.5 + 0.1 * rng.normal(size=n_seeds)
    return {
        name: {seed: float(value) for seed, value in enumerate(values)}
        for name, values in {"base": base, "same": same, "better": better}.items()
    }


def test_compare_conditions_finds_the_planted_difference_only() -> None:
    comparisons = {(c["a"], c["b"]): c for c in compare_conditions(planted_results(), alpha=0.01)}
    assert set(comparisons) == {("base", "same"), ("base", "better"), ("same", "better")}
    assert not comparisons["base", "same"]["significant"]
    assert comparisons["base", "better"]["significant"] and comparisons["same", "better"]["significant"]
    assert comparisons["base", "better"]["mean_difference"] == pytest.approx(-0.5, abs=0.1)
    assert all(c["p_adjusted"] >= c["p"] and c["n_seeds"] == 10 for c in comparisons.values())


def test_compare_conditions_pairs_by_seed_not_by_position() -> None:
    results = planted_results()
    shuffled = {**results, "better": dict(reversed(list(results["better"].items())))}
    assert compare_conditions(shuffled) == compare_conditions(results)


def test_compare_conditions_refuses_mismatched_seeds() -> None:
    results = {"pvae": {0: 0.9, 1: 0.8, 2: 0.85}, "gvae": {0: 0.7, 1: 0.75, 3: 0.72}}
    with pytest.raises(ValueError, match=r"'pvae' and 'gvae'.*\[0, 1, 2\] vs \[0, 1, 3\]"):
        compare_conditions(results)


def test_compare_conditions_names_a_condition_with_nan() -> None:
    with pytest.raises(ValueError, match="'gvae'"):
        compare_conditions({"pvae": {0: 0.9, 1: 0.8}, "gvae": {0: 0.7, 1: float("nan")}})


def test_summarise() -> None:
    summary = summarise([1.0, 2.0, 4.0])
    assert summary["n"] == 3
    assert summary["mean"] == pytest.approx(7 / 3)
    assert summary["std"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert summary["ci99_half_width"] == pytest.approx(confidence_interval([1.0, 2.0, 4.0], 0.99)[1])
    single = summarise([3.0])
    assert single["n"] == 1 and np.isnan(single["std"]) and np.isnan(single["ci99_half_width"])
