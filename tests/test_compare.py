"""Comparison of evaluated runs: loading, aggregation over seeds, paired tests, Markdown and figure."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from poisson_vae.compare import (
    check_seeds,
    compare,
    paired_tests,
    render_markdown,
    save_rate_distortion_figure,
)
from poisson_vae.results import Condition, aggregate, load_runs

BASE = {
    "nelbo": 100.0,
    "sse": 60.0,
    "kl": 40.0,
    "mse_map": 0.2,
    "r2": 0.8,
    "portion_zeros": 0.9,
    "lifetime_sparsity": 0.7,
    "population_sparsity": 0.6,
    "n_active": 100,
    "active_fraction": 0.2,
}
# Seed-to-seed noise shared by all conditions, so that paired differences are exact.
NOISE = np.array([0.3, -1.2, 0.8, -0.4, 0.5])


def write_run(
    root: Path,
    name: str,
    seed: int,
    latent: str = "poisson",
    beta: float = 1.0,
    data: str = "natural16",
    evaluated: bool = True,
    **metrics: object,
) -> Path:
    """A fake run directory with config.json and (when ``evaluated``) eval/metrics.json."""
    directory = root / name
    (directory / "eval").mkdir(parents=True)
    config = {
        "data": {"data": data},
        "model": {"latent": latent, "arch": "lin|lin", "method": "mc", "n_latents": 512},
        "train": {"seed": seed, "beta": beta, "epochs": 10},
    }
    (directory / "config.json").write_text(json.dumps(config))
    if evaluated:
        (directory / "eval" / "metrics.json").write_text(json.dumps({**BASE, **metrics}))
    return directory


def two_conditions(root: Path, shift: float, seeds: tuple[int, ...] = (0, 1, 2, 3, 4)) -> list[Path]:
    """Poisson and Gaussian runs over ``seeds``; Gaussian nelbo is Poisson's plus ``shift``."""
    directories = []
    for latent, offset in (("poisson", 0.0), ("gaussian", shift)):
        for seed in seeds:
            # The difference varies a little by seed (the reversed noise sums to 0 over 5 seeds).
            nelbo = (
                100.0 + NOISE[seed % len(NOISE)] + offset * (1 + 0.05 * NOISE[::-1][seed % len(NOISE)])
            )
            directories.append(write_run(root, f"{latent}-{seed}", seed, latent, nelbo=nelbo))
    return directories


def test_condition_label() -> None:
    assert (
        Condition("natural16", "poisson", "lin|lin", "mc", beta=1.0).label == "poisson lin|lin mc beta=1"
    )
    assert Condition("natural16", "lca", "-", "-", lam=0.5).label == "lca lam=0.5"
    sized = Condition("mnist", "poisson", "lin|lin", "mc", beta=1.0, n_latents=10, epochs=30)
    assert sized.label == "poisson lin|lin mc K=10 beta=1 (30 epochs)"
    assert sized.sweep_label == "poisson lin|lin mc K=10 (30 epochs)" and sized.weight_label == "β=1"
    assert Condition("natural16", "lca", "-", "-", lam=0.5).weight_label == "λ=0.5"


def test_runs_with_other_sizes_or_schedules_are_other_conditions(tmp_path: Path) -> None:
    runs = []
    for name, n_latents, epochs in (("k10", 10, 30), ("k50", 50, 30), ("long", 10, 60)):
        directory = write_run(tmp_path, name, seed=0)
        config = json.loads((directory / "config.json").read_text())
        config["model"]["n_latents"], config["train"]["epochs"] = n_latents, epochs
        (directory / "config.json").write_text(json.dumps(config))
        runs.append(directory)
    assert len({run.condition for run in load_runs(runs)}) == 3


def test_a_p_vae_with_another_soft_indicator_is_another_condition(tmp_path: Path) -> None:
    runs = []
    for indicator in ("sigmoid", "cubic"):
        directory = write_run(tmp_path, indicator, seed=0)
        config = json.loads((directory / "config.json").read_text())
        config["model"]["indicator"] = indicator
        (directory / "config.json").write_text(json.dumps(config))
        runs.append(directory)
    sigmoid, cubic = load_runs(runs)
    assert sigmoid.condition.method == "mc" and cubic.condition.method == "mc-cubic"
    assert "lin|lin mc-cubic K=512" in cubic.condition.label


def test_an_iterative_vae_is_another_condition(tmp_path: Path) -> None:
    directory = write_run(tmp_path, "iterative", seed=0)
    config = json.loads((directory / "config.json").read_text())
    config["model"] |= {"inference": "iterative", "n_steps": 16}
    (directory / "config.json").write_text(json.dumps(config))
    amortized = write_run(tmp_path, "amortized", seed=0)
    iterative, encoder = load_runs([directory, amortized])
    assert iterative.condition.method == "iterative-T16" and encoder.condition.method == "mc"


def test_aggregate_matches_scipy_t_interval(tmp_path: Path) -> None:
    values = [1.0, 1.5, 0.7, 1.2]
    runs = load_runs(write_run(tmp_path, f"r{seed}", seed, nelbo=v) for seed, v in enumerate(values))
    summary = aggregate(runs, ["nelbo"])[runs[0].condition]["nelbo"]
    low, high = scipy_stats.t.interval(
        0.99, len(values) - 1, loc=np.mean(values), scale=scipy_stats.sem(values)
    )
    assert summary["mean"] == pytest.approx(np.mean(values))
    assert summary["ci99_half_width"] == pytest.approx((high - low) / 2)
    assert summary["n"] == 4 and summary["seeds"] == [0, 1, 2, 3]


def test_load_runs_reads_condition_and_nested_metrics(tmp_path: Path) -> None:
    knn = {"200": {"mean": 0.5, "std": 0.1}, "1000": {"mean": 0.6, "std": 0.1}}
    directory = write_run(
        tmp_path, "r", 3, beta=0.5, knn=knn, gabor={"fraction_gabor": 0.4}, shattering={"mean": 0.9}
    )
    (run,) = load_runs([directory])
    assert run.condition == Condition(
        "natural16", "poisson", "lin|lin", "mc", beta=0.5, n_latents=512, epochs=10
    )
    assert run.seed == 3
    assert run.metrics["knn_200"] == 0.5 and run.metrics["knn_1000"] == 0.6
    assert run.metrics["gabor_fraction"] == 0.4 and run.metrics["shattering"] == 0.9


def test_sparse_coding_run_is_its_own_condition(tmp_path: Path) -> None:
    directory = tmp_path / "lca"
    (directory / "eval").mkdir(parents=True)
    config = {
        "sparse_coding": {"algorithm": "lca", "lam": 0.5, "seed": 1},
        "data": {"data": "natural16"},
    }
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "eval" / "metrics.json").write_text(json.dumps({"mse_map": 0.3, "portion_zeros": 0.95}))
    (run,) = load_runs([directory])
    assert run.condition == Condition("natural16", "lca", "-", "-", lam=0.5) and run.seed == 1
    markdown = render_markdown([run])
    assert "lca lam=0.5" in markdown and "—" in markdown  # missing NELBO shows a dash


def test_hard_threshold_lca_is_another_condition(tmp_path: Path) -> None:
    runs = []
    for threshold in ("soft", "hard"):
        directory = tmp_path / threshold
        (directory / "eval").mkdir(parents=True)
        coder = {"algorithm": "lca", "lam": 0.5, "seed": 0, "threshold": threshold}
        (directory / "config.json").write_text(
            json.dumps({"sparse_coding": coder, "data": {"data": "natural16"}})
        )
        (directory / "eval" / "metrics.json").write_text(json.dumps({"mse_map": 0.3}))
        runs.append(directory)
    soft, hard = load_runs(runs)  # the same seed, yet not a repeated condition
    assert soft.condition.label == "lca lam=0.5" and hard.condition.label == "lca hard lam=0.5"


def test_planted_difference_is_significant_and_null_is_not(tmp_path: Path) -> None:
    planted = load_runs(two_conditions(tmp_path / "planted", shift=5.0))
    (row,) = paired_tests(planted, "nelbo")
    assert row["significant"] and row["mean_difference"] == pytest.approx(-5.0)
    assert row["a"] == "poisson lin|lin mc K=512 beta=1 (10 epochs)" and row["data"] == "natural16"

    rng = np.random.default_rng(0)
    null = load_runs(two_conditions(tmp_path / "null", shift=0.0))
    null = [
        type(run)(run.directory, run.condition, run.seed, {**run.metrics, "nelbo": rng.normal()})
        for run in null
    ]
    (row,) = paired_tests(null, "nelbo")
    assert not row["significant"] and row["p_adjusted"] > 0.01


def test_conditions_on_different_data_are_not_compared(tmp_path: Path) -> None:
    directories = [write_run(tmp_path, f"a{s}", s, nelbo=100 + s) for s in range(3)]
    directories += [write_run(tmp_path, f"b{s}", s, "gaussian", data="mnist", nelbo=s) for s in (0, 7)]
    runs = load_runs(directories)
    check_seeds(runs)  # different seeds on different data sets are fine
    assert paired_tests(runs, "nelbo") == []


def test_mismatched_seeds_refused_when_strict(tmp_path: Path) -> None:
    directories = two_conditions(tmp_path / "runs", shift=1.0, seeds=(0, 1))
    directories[-1] = write_run(tmp_path / "runs", "gaussian-extra", 2, "gaussian")
    directories = [d for d in directories if d.name != "gaussian-1"]
    message = (
        "conditions 'poisson lin|lin mc K=512 beta=1 (10 epochs)' and "
        "'gaussian lin|lin mc K=512 beta=1 (10 epochs)' on natural16 were run "
        "with different seeds: [0, 1] vs [0, 2]; paired tests need the same seeds"
    )
    with pytest.raises(ValueError, match=re.escape(message)) as error:
        compare(directories, tmp_path / "out")
    assert "\n" not in str(error.value) and "set unpaired" in str(error.value)
    with pytest.raises(ValueError, match="paired tests of nelbo"):
        paired_tests(load_runs(directories), "nelbo")

    path = compare(directories, tmp_path / "out", unpaired=True)
    markdown = path.read_text()
    assert "## NELBO" in markdown and message in markdown
    assert (tmp_path / "out" / "rate_distortion.png").stat().st_size > 0
    assert "](rate_distortion.png)" in markdown  # the report shows the figure it sits beside


def test_missing_eval_refused(tmp_path: Path) -> None:
    directory = write_run(tmp_path, "r", 0, evaluated=False)
    with pytest.raises(ValueError, match=r"has no eval/metrics.json: run `pvae evaluate .*` first"):
        load_runs([directory])


def test_corrupt_json_names_the_file(tmp_path: Path) -> None:
    directory = write_run(tmp_path, "r", 0)
    (directory / "eval" / "metrics.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"metrics\.json is not valid JSON") as error:
        load_runs([directory])
    assert "\n" not in str(error.value)


def test_duplicate_condition_and_seed_refused(tmp_path: Path) -> None:
    first, second = write_run(tmp_path, "first", 0), write_run(tmp_path, "second", 0)
    with pytest.raises(ValueError, match="seed 0") as error:
        load_runs([first, second])
    assert str(first) in str(error.value) and str(second) in str(error.value)


def test_markdown_tables(tmp_path: Path) -> None:
    runs = load_runs(two_conditions(tmp_path, shift=5.0, seeds=(0, 1, 2)))
    markdown = render_markdown(runs)
    header = "| data | condition | n seeds | NELBO | SSE | KL | MSE (MAP) |"
    assert header in markdown
    assert r"| natural16 | poisson lin\|lin mc K=512 beta=1 (10 epochs) | 3 |" in markdown
    assert "lifetime sparsity" in markdown and "active fraction" in markdown
    assert "Gabor fraction" not in markdown and "KNN" not in markdown and "Shattering" not in markdown
    for metric in ("nelbo", "mse_map", "lifetime_sparsity", "active_fraction"):
        assert f"### {metric}" in markdown
    assert "BH-adjusted p" in markdown and "| yes |" in markdown


def test_markdown_knn_gabor_and_shattering_only_when_present(tmp_path: Path) -> None:
    knn = {n: {"mean": 0.5, "std": 0.0} for n in ("5000", "200", "1000")}
    run = write_run(tmp_path, "r", 0, knn=knn, gabor={"fraction_gabor": 0.4}, shattering={"mean": 0.8})
    markdown = render_markdown(load_runs([run]))
    assert "| data | condition | N=200 | N=1000 | N=5000 |" in markdown
    assert "Gabor fraction" in markdown and "## Shattering" in markdown
    # One condition, one seed: the tests section says so instead of a table.
    assert "Not tested: no data set has 2 or more conditions with nelbo." in markdown
    assert "BH-adjusted p" not in markdown


def test_one_seed_per_condition_is_reported(tmp_path: Path) -> None:
    runs = load_runs(two_conditions(tmp_path, shift=1.0, seeds=(0,)))
    assert (
        "Not tested: paired tests of nelbo on natural16: a paired comparison needs at least 2 seeds"
        in (render_markdown(runs))
    )


def test_rate_distortion_figure_written(tmp_path: Path) -> None:
    runs = load_runs(two_conditions(tmp_path / "runs", shift=1.0, seeds=(0, 1, 2)))
    path = save_rate_distortion_figure(runs, tmp_path / "fig" / "rd.png")
    assert path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"


def test_a_beta_sweep_is_one_curve_of_labelled_means_with_seed_bars(tmp_path: Path, drawn: dict) -> None:
    directories = []
    for beta in (4.0, 0.5, 1.0):  # listed out of order: the curve runs by beta
        for seed in (0, 1, 2):
            sparsity, mse = 0.9 + beta / 50 + seed / 1000, 10 * beta + seed
            metrics = {"lifetime_sparsity": sparsity, "mse_map": mse}
            directories.append(write_run(tmp_path, f"b{beta}-{seed}", seed, beta=beta, **metrics))
    directories += [write_run(tmp_path, f"g{seed}", seed, "gaussian") for seed in (0, 1, 2)]
    save_rate_distortion_figure(load_runs(directories), tmp_path / "rd.png")
    axis = drawn[tmp_path / "rd.png"].axes[0]
    sweep, gaussian = axis.containers
    means = [[0.9 + beta / 50 + 0.001, 10 * beta + 1] for beta in (0.5, 1.0, 4.0)]
    assert np.allclose(sweep.lines[0].get_xydata(), means)
    half = scipy_stats.t.ppf(0.995, 2) * np.std([0, 1, 2], ddof=1) / np.sqrt(3)
    assert np.allclose(
        [s[:, 1] for s in sweep.lines[2][1].get_segments()], [[y - half, y + half] for _, y in means]
    )
    assert np.allclose(gaussian.lines[0].get_xydata(), [[0.7, 0.2]])  # BASE: one condition, one point
    assert sorted(text.get_text() for text in axis.texts) == ["β=0.5", "β=1", "β=1", "β=4"]
    legend = [text.get_text() for text in axis.figure.legends[0].get_texts()]
    assert legend == ["poisson lin|lin mc K=512 (10 epochs)", "gaussian lin|lin mc K=512 (10 epochs)"]


def test_knn_accuracy_against_labels_per_condition(tmp_path: Path, drawn: dict) -> None:
    directories = []
    for latent, shift in (("poisson", 0.1), ("gaussian", 0.0)):
        for seed in (0, 1, 2):
            knn = {
                n: {"mean": accuracy + shift + seed / 100}
                for n, accuracy in (("1000", 0.7), ("200", 0.5))
            }
            directories.append(
                write_run(tmp_path, f"{latent}{seed}", seed, latent, data="mnist", knn=knn)
            )
    compare(directories, tmp_path / "out")
    assert (
        "![KNN accuracy against the number of labels](knn.png)"
        in (tmp_path / "out" / "COMPARE.md").read_text()
    )
    (axis,) = drawn[tmp_path / "out" / "knn.png"].axes
    assert axis.get_title() == "mnist" and axis.get_xscale() == "log"
    poisson, gaussian = axis.lines
    assert poisson.get_xdata().tolist() == [200, 1000] and np.allclose(poisson.get_ydata(), [0.61, 0.81])
    assert np.allclose(gaussian.get_ydata(), [0.51, 0.71])
    band = axis.collections[0].get_paths()[0].vertices[:, 1]
    half = scipy_stats.t.ppf(0.995, 2) * 0.01 / np.sqrt(3)  # the seeds differ by 0.01
    assert (band.min(), band.max()) == pytest.approx((0.61 - half, 0.81 + half))
    compare(two_conditions(tmp_path / "unlabelled", shift=1.0, seeds=(0, 1)), tmp_path / "out")
    assert not (tmp_path / "out" / "knn.png").exists()  # no KNN results: none, and no stale one
