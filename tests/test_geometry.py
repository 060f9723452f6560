"""KNN sample efficiency and shattering dimensionality on planted codes, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from poisson_vae import geometry
from poisson_vae.geometry import (
    balanced_splits,
    draw_pool_subsets,
    knn_predict_subsets,
    knn_sample_efficiency,
    shattering_dimensionality,
)


def clustered_codes(
    n_samples: int, n_features: int, n_classes: int = 10, spread: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(n_samples, n_features) Gaussian codes around a random mean per class, and (n_samples,) labels."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(n_classes, n_features))
    labels = rng.integers(0, n_classes, n_samples)
    return means[labels] + spread * rng.normal(size=(n_samples, n_features)), labels


def sklearn_predictions(
    pool: np.ndarray, labels: np.ndarray, evaluation: np.ndarray, subset: np.ndarray
):
    return KNeighborsClassifier(n_neighbors=5).fit(pool[subset], labels[subset]).predict(evaluation)


# --- KNN sample efficiency ----------------------------------------------------------------------------


def test_draws_are_without_replacement_and_the_whole_pool_is_drawn_once() -> None:
    draws = draw_pool_subsets(5000, 200, n_draws=100, seed=0)
    assert len(draws) == 100
    assert all(len(np.unique(d)) == 200 and d.min() >= 0 and d.max() < 5000 for d in draws)
    assert len({d.tobytes() for d in draws}) == 100
    whole = draw_pool_subsets(5000, 5000, n_draws=100, seed=0)
    assert len(whole) == 1 and np.array_equal(whole[0], np.arange(5000))


def test_draws_of_one_size_do_not_depend_on_the_other_sizes() -> None:
    features, labels = clustered_codes(400, 4)
    alone = knn_sample_efficiency(features, labels, sizes=(50,), n_draws=5)
    together = knn_sample_efficiency(features, labels, sizes=(20, 50, 200), n_draws=5)
    assert alone[50] == together[50]


def test_protocol_halves_the_test_set_and_equals_sklearn_on_each_draw() -> None:
    features, labels = clustered_codes(1001, 6, spread=2.0)
    result = knn_sample_efficiency(features, labels, sizes=(20, 100, 500), n_draws=4, seed=3)
    assert [result[n]["n_draws"] for n in (20, 100, 500)] == [4, 4, 1]
    # First half (500) is the pool, the rest (501) is evaluated.
    pool, evaluation = features[:500], features[500:]
    for size in (20, 100, 500):
        assert len(result[size]["accuracies"]) == result[size]["n_draws"]
        for draw, subset in enumerate(draw_pool_subsets(500, size, 4, seed=3)):
            expected = np.mean(
                sklearn_predictions(pool, labels[:500], evaluation, subset) == labels[500:]
            )
            assert result[size]["accuracies"][draw] == expected
    accuracies = result[100]["accuracies"]
    assert result[100]["mean"] == pytest.approx(np.mean(accuracies))
    assert result[100]["std"] == pytest.approx(np.std(accuracies))
    assert (result[100]["min"], result[100]["max"]) == (min(accuracies), max(accuracies))
    assert result[500]["std"] == 0.0


@pytest.mark.parametrize("scan_factor", [None, 1, 2])
def test_fast_path_predictions_equal_sklearn(
    scan_factor: int | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Random labels make many 2-2-1 vote ties; the offset tests the centring; scan_factor shrinks
    # the presorted scan so that most rows (1) or some rows (2) take the full-search fallback.
    if scan_factor is not None:
        monkeypatch.setattr(
            geometry, "_scan_length", lambda size, pool_size, k: min(pool_size, scan_factor * k)
        )
    rng = np.random.default_rng(5)
    pool, evaluation = rng.normal(size=(600, 8)) + 50.0, rng.normal(size=(300, 8)) + 50.0
    labels = rng.choice([3, 7, 11, 20], size=600)
    subsets = [*draw_pool_subsets(600, 5, 2, 0), *draw_pool_subsets(600, 60, 3, 0), np.arange(600)]
    predicted = knn_predict_subsets(pool, labels, evaluation, subsets)
    assert predicted.shape == (len(subsets), 300)
    for subset, prediction in zip(subsets, predicted):
        assert np.array_equal(prediction, sklearn_predictions(pool, labels, evaluation, subset))


def test_distance_ties_go_to_the_lower_pool_index() -> None:
    # Integer codes with many equal distances: compare with a stable full sort per row.
    rng = np.random.default_rng(2)
    pool, evaluation = rng.integers(0, 3, size=(300, 3)), rng.integers(0, 3, size=(50, 3))
    labels = rng.integers(0, 4, 300)
    subsets = draw_pool_subsets(300, 40, 3, seed=1)
    predicted = knn_predict_subsets(pool, labels, evaluation, subsets)
    for subset, prediction in zip(subsets, predicted):
        distances = ((evaluation[:, None, :] - pool[None, subset, :]) ** 2).sum(-1)
        nearest = subset[np.argsort(distances, axis=1, kind="stable")[:, :5]]
        votes = (labels[nearest][:, :, None] == np.arange(4)).sum(1)
        assert np.array_equal(prediction, votes.argmax(1))


def test_knn_refuses_sizes_beyond_the_pool() -> None:
    features, labels = clustered_codes(101, 3)
    knn_sample_efficiency(features, labels, sizes=(50,), n_draws=2)
    with pytest.raises(ValueError, match="exceeds the labelled pool of 50"):
        knn_sample_efficiency(features, labels, sizes=(20, 51))
    with pytest.raises(ValueError, match="smaller than n_neighbors"):
        knn_sample_efficiency(features, labels, sizes=(3,))
    with pytest.raises(ValueError, match="index the pool of 50"):
        knn_predict_subsets(features[:50], labels[:50], features[50:], [np.arange(45, 51)])


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.zeros(10), np.zeros(10), "must be 2-D"),
        (np.full((10, 2), np.nan), np.zeros(10), "20 NaN/inf values"),
        (np.zeros((10, 2)), np.zeros(9), "has 9 entries but features_test has 10 rows"),
        (np.zeros((10, 2)), np.full(10, np.nan), "NaN/inf labels"),
    ],
)
def test_knn_refuses_bad_input(features: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        knn_sample_efficiency(features, labels, sizes=(5,))


# --- shattering dimensionality ------------------------------------------------------------------------


def test_ten_classes_have_126_distinct_balanced_splits() -> None:
    splits = balanced_splits(range(10))
    assert len(splits) == 126
    assert len({frozenset([frozenset(g), frozenset(r)]) for g, r in splits}) == 126
    for group, rest in splits:
        assert len(group) == len(rest) == 5 and 0 in group
        assert sorted(group + rest) == list(range(10))


def test_splits_generalise_to_2m_classes_and_refuse_odd_counts() -> None:
    assert balanced_splits(["a", "b"]) == [(("a",), ("b",))]
    assert balanced_splits([1, 2, 3, 4]) == [((1, 2), (3, 4)), ((1, 3), (2, 4)), ((1, 4), (2, 3))]
    with pytest.raises(ValueError, match="even number"):
        balanced_splits(range(9))
    with pytest.raises(ValueError, match="distinct"):
        balanced_splits([1, 1, 2, 3])


def one_hot_codes(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Linearly separable codes: each class lights its own unit, plus small noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), n_per_class)
    return 3.0 * np.eye(10)[labels] + 0.1 * rng.normal(size=(len(labels), 10)), labels


def test_planted_separable_code_shatters_perfectly() -> None:
    result = shattering_dimensionality(*one_hot_codes(30, 0), *one_hot_codes(20, 1))
    assert result["n_splits"] == 126 and len(result["splits"]) == 126
    assert result["mean"] == 1.0 and result["std"] == 0.0
    assert all(split["converged"] for split in result["splits"])
    assert result["splits"][0]["group"] == (0, 1, 2, 3, 4)


def test_random_code_shatters_at_chance() -> None:
    rng = np.random.default_rng(0)
    result = shattering_dimensionality(
        rng.normal(size=(1000, 10)),
        rng.integers(0, 10, 1000),
        rng.normal(size=(2000, 10)),
        rng.integers(0, 10, 2000),
    )
    assert result["mean"] == pytest.approx(0.5, abs=0.05)


def test_shattering_on_a_subset_of_classes_does_not_depend_on_n_jobs() -> None:
    train, test = clustered_codes(800, 5, seed=1), clustered_codes(400, 5, seed=2)
    serial = shattering_dimensionality(*train, *test, classes=(2, 5, 7, 9))
    parallel = shattering_dimensionality(*train, *test, classes=(2, 5, 7, 9), n_jobs=2)
    assert serial["n_splits"] == 3 and serial == parallel
    assert [s["group"] for s in serial["splits"]] == [(2, 5), (2, 7), (2, 9)]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"features_test": np.zeros((50, 3))}, "features_train has 10 features but features_test has 3"),
        ({"labels_test": np.zeros(50)}, r"labels_test has no sample of classes \[1, 2"),
        ({"features_train": np.full((100, 10), np.inf)}, "1000 NaN/inf values"),
        ({"classes": range(3)}, "even number"),
        ({"labels_train": np.zeros(99)}, "has 99 entries"),
    ],
)
def test_shattering_refuses_bad_input(change: dict, message: str) -> None:
    train, test = one_hot_codes(10, 0), one_hot_codes(5, 1)
    arguments = {
        "features_train": train[0],
        "labels_train": train[1],
        "features_test": test[0],
        "labels_test": test[1],
        **change,
    }
    with pytest.raises(ValueError, match=message):
        shattering_dimensionality(**arguments)
