"""The results model's flat metrics: plain numbers kept, the rest left out, and an iterative VAE's
convergence record flattened at the kept steps."""

from __future__ import annotations

import math

from poisson_vae.results import CONVERGENCE_STEPS, flat_metrics


def test_flat_metrics_keep_finite_numbers_and_knn_means() -> None:
    document = {"nelbo": 3.0, "r2_mean": 0.5, "sse": math.nan, "active": [True], "seed": 1}
    document |= {"knn": {"200": {"mean": 0.8}}, "shattering": {"mean": 0.7}, "distance": True}
    assert flat_metrics(document) == {"nelbo": 3.0, "r2_mean": 0.5, "knn_200": 0.8, "shattering": 0.7}


def test_an_iterative_convergence_record_is_kept_at_its_steps() -> None:
    steps = list(range(1, 301))
    record = {"step": steps, "r2": [s / 1000 for s in steps], "r2_pooled": [s / 500 for s in steps]}
    record |= {"portion_zeros": [0.5] * 300, "step_norm": [1.0] * 300, "kl": [2.0] * 300}
    flat = flat_metrics({"convergence": record, "r2": 0.4})
    kept = [step for step in CONVERGENCE_STEPS if step <= 300]
    assert flat["r2_t16"] == 0.016 and flat["r2_pooled_t250"] == 0.5
    assert {key for key in flat if key.startswith("step_norm_t")} == {f"step_norm_t{s}" for s in kept}
    assert not any(key.startswith("kl_t") or key.startswith("distance_t") for key in flat)  # absent
    assert flat["r2"] == 0.4


def test_compare_lists_the_final_knn_accuracies_not_the_curve() -> None:
    from types import SimpleNamespace

    from poisson_vae.results import metric_order

    metrics = {"nelbo": 1.0, "knn_1000": 0.9, "knn_200": 0.8, "knn_200_e3": 0.7, "knn_1000_e3": 0.6}
    assert metric_order([SimpleNamespace(metrics=metrics)]) == ["nelbo", "knn_200", "knn_1000"]
