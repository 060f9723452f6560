"""Tests of the scikit-learn estimators: the estimator checks, shapes, seeding and checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from poisson_vae.estimators import PoissonVAETransformer, SparseCodingTransformer
from poisson_vae.vae import ModelConfig, build_vae, save_model

SMALL_ESTIMATORS = [
    PoissonVAETransformer(n_latents=4, epochs=2, batch_size=32),
    *(
        SparseCodingTransformer(algorithm, n_atoms=4, n_steps=5, n_iterations=50, batch_size=32)
        for algorithm in ("fista", "ista", "lca")
    ),
    SparseCodingTransformer(
        "lca", n_atoms=4, n_steps=5, n_iterations=50, batch_size=32, threshold="hard"
    ),
]


def _check_name(case) -> str:
    check = case.values[1] if hasattr(case, "values") else case[1]
    return getattr(check, "func", check).__name__


_ALL_CHECKS = parametrize_with_checks(SMALL_ESTIMATORS)
# scikit-learn skips its array-API check unless SCIPY_ARRAY_API=1 is set before SciPy is imported;
# it runs in its own process below instead of being reported as skipped here.
_IN_PROCESS_CHECKS = pytest.mark.parametrize(
    _ALL_CHECKS.args[0],
    [case for case in _ALL_CHECKS.args[1] if _check_name(case) != "check_array_api_input"],
    **_ALL_CHECKS.kwargs,
)


@_IN_PROCESS_CHECKS
def test_sklearn_compatible(estimator: BaseEstimator, check) -> None:
    check(estimator)


def test_sklearn_array_api_check_in_numpy_namespace() -> None:
    script = (
        "from sklearn.utils.estimator_checks import check_array_api_input\n"
        "from poisson_vae.estimators import PoissonVAETransformer, SparseCodingTransformer\n"
        "check_array_api_input('vae', PoissonVAETransformer(n_latents=4, epochs=2, batch_size=32),"
        " array_namespace='numpy')\n"
        "check_array_api_input('sc', SparseCodingTransformer(n_atoms=4, n_steps=5, n_iterations=50),"
        " array_namespace='numpy')\n"
    )
    env = os.environ | {"SCIPY_ARRAY_API": "1"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _data(n: int = 200, d: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def _vae(**params) -> PoissonVAETransformer:
    return PoissonVAETransformer(
        **{"n_latents": 6, "epochs": 3, "batch_size": 64, "random_state": 0} | params
    )


def test_vae_shapes_and_determinism() -> None:
    X = _data()
    estimator = _vae().fit(X)
    codes = estimator.transform(X)
    assert codes.shape == (200, 6)
    assert codes.dtype == np.float64
    np.testing.assert_array_equal(codes, estimator.transform(X))
    assert (codes > 0).all()  # Poisson rates
    assert estimator.n_features_in_ == 5
    assert len(estimator.loss_curve_) == 3
    assert estimator.inverse_transform(codes).shape == (200, 5)


def test_vae_fit_is_seeded() -> None:
    X = _data()
    first = _vae().fit(X).transform(X)
    np.testing.assert_array_equal(first, _vae().fit(X).transform(X))
    assert not np.array_equal(first, _vae(random_state=1).fit(X).transform(X))


def test_vae_fit_leaves_global_torch_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _vae(epochs=1).fit(_data(n=20))
    torch.testing.assert_close(torch.rand(3), expected)


def test_sample_codes_are_counts_and_reproducible() -> None:
    X = _data()
    estimator = _vae().fit(X)
    counts = estimator.sample_codes(X, random_state=7)
    assert counts.shape == (200, 6)
    assert (counts >= 0).all()
    np.testing.assert_array_equal(counts, np.round(counts))
    np.testing.assert_array_equal(counts, estimator.sample_codes(X, random_state=7))


@pytest.mark.parametrize("latent", ["gaussian", "categorical"])
def test_other_families(latent: str) -> None:
    X = _data(n=50)
    estimator = _vae(latent=latent, epochs=1).fit(X)
    assert estimator.transform(X).shape == (50, 6)
    assert estimator.sample_codes(X, random_state=0).shape == (50, 6)


def test_input_validation_messages() -> None:
    estimator = _vae(epochs=1).fit(_data(n=20))
    with pytest.raises(ValueError, match="X has 7 features, but PoissonVAETransformer is expecting 5"):
        estimator.transform(_data(n=3, d=7))
    bad = _data(n=20)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        _vae(epochs=1).fit(bad)
    with pytest.raises(ValueError, match="n_latents"):
        _vae(n_latents=0).fit(_data(n=20))
    with pytest.raises(ValueError, match="codes"):
        estimator.inverse_transform(np.zeros((2, 3)))


def test_clone_and_params() -> None:
    estimator = _vae(beta=0.5)
    params = estimator.get_params()
    assert params["beta"] == 0.5 and params["latent"] == "poisson"
    copy = clone(estimator).set_params(n_latents=3, latent="gaussian")
    assert copy.get_params()["n_latents"] == 3
    assert estimator.n_latents == 6
    sparse = clone(SparseCodingTransformer(algorithm="lca", lam=0.2))
    assert sparse.set_params(n_atoms=5).get_params()["n_atoms"] == 5


def test_pipeline_classifies_above_chance() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=300)
    X = rng.normal(size=(300, 8)) + 1.5 * (2 * y[:, None] - 1) * np.array([1, 1, 1, 1, 0, 0, 0, 0])
    # Early in training the Poisson rates are small (~0.01), so the classifier needs a weak penalty.
    classifier = LogisticRegression(C=1e4, max_iter=1000)
    pipe = Pipeline([("pvae", _vae(n_latents=8, epochs=10)), ("clf", classifier)])
    pipe.fit(X[:200], y[:200])
    assert pipe.score(X[200:], y[200:]) > 0.75


def test_from_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_vae(ModelConfig(latent="poisson", arch="lin|lin", n_latents=5, input_shape=(1, 4, 4)))
    save_model(model, tmp_path)
    estimator = PoissonVAETransformer.from_checkpoint(tmp_path)
    assert estimator.n_features_in_ == 16
    assert estimator.get_params()["n_latents"] == 5
    assert estimator.get_params()["arch"] == "lin|lin"
    X = np.random.default_rng(0).normal(size=(10, 16)).astype(np.float32)
    with torch.no_grad():  # the estimator infers in float64
        x = torch.from_numpy(X).double().view(10, 1, 4, 4)
        expected = model.double().eval().encode(x).mean.numpy()
    np.testing.assert_allclose(estimator.transform(X), expected, rtol=1e-12)
    assert estimator.sample_codes(X, random_state=0).shape == (10, 5)
    assert estimator.inverse_transform(estimator.transform(X)).shape == (10, 16)
    assert clone(estimator).get_params() == estimator.get_params()


def test_from_checkpoint_of_a_run_takes_its_recipe(tmp_path: Path) -> None:
    model = build_vae(ModelConfig(latent="gaussian", arch="lin|lin", n_latents=3, input_shape=(1, 2, 2)))
    (tmp_path / "config.json").write_text(
        json.dumps({"train": {"epochs": 7, "lr": 0.01, "seed": 4, "val_every": 1}})
    )
    save_model(model, tmp_path)  # keeps the run's other sections
    params = PoissonVAETransformer.from_checkpoint(tmp_path).get_params()
    assert (params["epochs"], params["lr"], params["random_state"]) == (7, 0.01, 4)
    assert params["latent"] == "gaussian" and params["n_latents"] == 3


@pytest.mark.parametrize("algorithm", ["lca", "ista", "fista"])
def test_sparse_coding_transformer(algorithm: str) -> None:
    rng = np.random.default_rng(0)
    atoms = rng.normal(size=(6, 10))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    sparse = rng.normal(size=(300, 6)) * (rng.random((300, 6)) < 0.3)
    X = sparse @ atoms
    estimator = SparseCodingTransformer(
        algorithm=algorithm, n_atoms=12, lam=0.2, n_steps=50, batch_size=64, random_state=0
    ).fit(X)
    assert estimator.components_.shape == (12, 10)
    np.testing.assert_allclose(np.linalg.norm(estimator.components_, axis=1), 1.0, rtol=1e-5)
    codes = estimator.transform(X)
    assert codes.shape == (300, 12)
    assert (codes == 0).mean() > 0.3
    np.testing.assert_array_equal(codes, estimator.transform(X))
    with pytest.raises(
        ValueError, match="X has 3 features, but SparseCodingTransformer is expecting 10"
    ):
        estimator.transform(X[:, :3])


def test_sparse_coding_non_negative_and_bad_algorithm() -> None:
    X = np.abs(_data(n=100, d=6))
    codes = SparseCodingTransformer(
        n_atoms=8, n_steps=10, non_negative=True, random_state=0
    ).fit_transform(X)
    assert (codes >= 0).all()
    with pytest.raises(ValueError, match="algorithm"):
        SparseCodingTransformer(algorithm="omp").fit(X)


def test_sparse_coding_hard_threshold_is_lca_only() -> None:
    X = _data(n=100, d=6)
    estimator = SparseCodingTransformer(
        "lca", n_atoms=8, lam=0.3, n_steps=10, threshold="hard", random_state=0
    )
    codes = estimator.fit_transform(X)
    assert estimator.get_params()["threshold"] == "hard"
    active = codes[codes != 0]
    assert active.size and (np.abs(active) > 0.3).all()  # a hard threshold leaves no small codes
    soft = clone(estimator).set_params(threshold="soft").fit_transform(X)
    assert (np.abs(soft[soft != 0]) < 0.3).any()  # the soft one shrinks them
    unfitted = SparseCodingTransformer("fista", threshold="hard")  # stored as given
    with pytest.raises(ValueError, match="threshold applies to algorithm lca only"):
        unfitted.fit(X)
    with pytest.raises(ValueError, match="threshold must be one of"):
        SparseCodingTransformer("lca", threshold="medium").fit(X)


@pytest.mark.parametrize(
    "estimator",
    [
        PoissonVAETransformer(n_latents=16, epochs=2, random_state=0),
        *(SparseCodingTransformer(algorithm, random_state=0) for algorithm in ("fista", "ista", "lca")),
        SparseCodingTransformer("lca", threshold="hard", random_state=0),
    ],
    ids=["vae", "fista", "ista", "lca", "lca-hard"],
)
def test_a_sample_code_does_not_depend_on_its_batch(estimator: BaseEstimator) -> None:
    # On these inputs float32 inference moved codes by up to 6e-3 (sparse coding: the stopping rule
    # amplifies the batch-dependent rounding of float32 products) and by 1.3e-7 (the VAE), which
    # failed check_methods_subset_invariance on some CPUs. In float64 the rounding is ~1e-16.
    X = np.random.RandomState(0).randn(100, 20) * 3
    full = estimator.fit(X).transform(X)
    for rows in (slice(0, 1), slice(1, 11), slice(11, 60), slice(60, 100)):
        np.testing.assert_allclose(estimator.transform(X[rows]), full[rows], rtol=0, atol=1e-10)


def test_package_exports_the_estimators_lazily() -> None:
    import poisson_vae

    assert poisson_vae.PoissonVAETransformer is PoissonVAETransformer
    assert poisson_vae.SparseCodingTransformer is SparseCodingTransformer
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        poisson_vae.Nope  # noqa: B018


def test_feature_names_and_pandas_output() -> None:
    pandas = pytest.importorskip("pandas", reason="pandas comes with the test extra")
    X = _data(n=60, d=5)
    vae = _vae(n_latents=3, epochs=1).fit(X)
    assert list(vae.get_feature_names_out()) == [f"poissonvaetransformer{i}" for i in range(3)]
    frame = vae.set_output(transform="pandas").transform(X)
    assert isinstance(frame, pandas.DataFrame) and frame.columns[0] == "poissonvaetransformer0"
    coder = SparseCodingTransformer(n_atoms=4, n_steps=3, random_state=0).fit(X)
    assert list(coder.get_feature_names_out()) == [f"sparsecodingtransformer{i}" for i in range(4)]


def test_score_is_minus_the_nelbo_and_drives_a_label_free_grid_search() -> None:
    from sklearn.model_selection import GridSearchCV

    X = _data(n=300, d=8)
    estimator = _vae(n_latents=4, epochs=2).fit(X)
    assert estimator.score(X) < 0 and estimator.score(X) == estimator.score(X)
    search = GridSearchCV(_vae(n_latents=4, epochs=2), {"beta": [0.5, 2.0]}, cv=2).fit(X)
    assert search.best_params_["beta"] in (0.5, 2.0) and np.isfinite(search.best_score_)


def test_dictionaries_are_rows_in_components_and_columns_in_torch() -> None:
    X = _data(n=100, d=6)
    vae = _vae(n_latents=3, epochs=1).fit(X)
    np.testing.assert_array_equal(vae.components_, vae.model_.decoder.dictionary.detach().double().T)
    coder = SparseCodingTransformer(n_atoms=4, n_steps=3, random_state=0).fit(X)
    codes = coder.transform(X)
    np.testing.assert_allclose(coder.inverse_transform(codes), codes @ coder.components_)
    with pytest.raises(ValueError, match=r"codes must be \(N, 4\)"):
        coder.inverse_transform(codes[:, :2])


@pytest.mark.parametrize(
    "latent", ["poisson", "gaussian", "gaussian-relu", "gaussian-exp", "laplace", "categorical"]
)
def test_every_family_trains_under_bfloat16_mixed_precision(latent: str) -> None:
    X = _data(n=200, d=16) * 3
    estimator = _vae(latent=latent, n_latents=8, epochs=2, precision="bf16-mixed").fit(X)
    assert all(np.isfinite(estimator.loss_curve_)), estimator.loss_curve_
    assert np.isfinite(estimator.transform(X)).all()
