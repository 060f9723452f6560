"""scikit-learn estimators: a VAE transformer (any latent family) and a sparse-coding transformer.

Both follow the scikit-learn conventions: constructor parameters are only stored, learning happens
in ``fit``, inputs are validated with :func:`sklearn.utils.validation.validate_data`, fitted
attributes end in ``_``, and the estimators are clone-able and usable in a
:class:`~sklearn.pipeline.Pipeline`.

Example::

    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    pipe = Pipeline([("pvae", PoissonVAETransformer(n_latents=16, epochs=10, random_state=0)),
                     ("clf", LogisticRegression())])
    pipe.fit(X_train, y_train)  # X_train (N, D)

Training runs in float32 (on the CPU unless ``accelerator`` says otherwise). Inference
(``transform``, ``inverse_transform``, ``sample_codes``) runs in float64 on the CPU, as scikit-learn
users expect: a sample's code then depends on that sample alone, not on the size of its batch, the
thread count or the CPU's instruction set (float32 matrix products are blocked differently for
each, which moves results by ~1e-7, and an iterative solver's stopping rule can amplify that).
Outputs are float64 numpy arrays.
"""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .config import ModelConfig, SparseCodingConfig, TrainConfig
from .nets import LinearDecoder
from .runs import Run
from .sparse_coding import InferenceMethod, learn_dictionary
from .sparse_coding.training import inference_method
from .training import fit_array
from .vae import VAE, load_model

__all__ = ["PoissonVAETransformer", "SparseCodingTransformer"]


def _seed(random_state: Any) -> int:
    """An int seed for torch from anything :func:`sklearn.utils.check_random_state` accepts."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _as_tensor(X: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(N, D) CPU tensor, always a copy (read-only or memory-mapped inputs are fine)."""
    return torch.tensor(np.asarray(X), dtype=dtype)


def _float64_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A float64 copy of a trained model on the CPU, in eval mode, for batch-independent inference."""
    return copy.deepcopy(model).to(device="cpu", dtype=torch.float64).eval()


#: Constructor parameters that are fields of :class:`~poisson_vae.vae.ModelConfig` (besides K).
_MODEL_PARAMETERS = ("latent", "arch", "method", "indicator", "excitatory_only", "init_std")


class PoissonVAETransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """A VAE on flat features (``lin|lin`` by default), as a scikit-learn transformer.

    ``fit`` trains the VAE on X (N, D) with the same Lightning module, optimiser (Adamax), schedules
    (learning-rate warm-up and cosine, temperature and KL-weight ramps) and gradient clipping as
    ``pvae train``, in memory and writing nothing. ``transform`` gives the deterministic posterior
    means (P-VAE: the rates), (N, K); spike counts come only from :meth:`sample_codes`.

    The parameters are those of ``pvae train`` (see ``pvae train --help``) with smaller defaults for
    fast fits; multi-device options are left to the CLI. ``score(X)`` is minus the NELBO on X, so a
    grid search over ``beta`` (or any parameter) needs no labels. Output feature names are
    ``poissonvaetransformer0``, ... (``set_output(transform="pandas")`` works).

    Dictionaries: the torch model keeps a linear decoder's atoms as the columns of a (D, K)
    matrix (``model_.decoder.dictionary``); ``components_`` holds them as (K, D) rows, as
    scikit-learn's ``DictionaryLearning`` and :class:`SparseCodingTransformer` do.

    Args:
        n_latents: K, the number of latents.
        latent: latent family (``poisson``, ``gaussian``, ``gaussian-relu``, ``gaussian-exp``,
            ``laplace``, ``categorical``).
        arch: networks as ``encoder|decoder``; only networks that take flat inputs (``lin``,
            ``mlp``) can be fitted on (N, D) data. Checkpoints of convolutional models are wrapped
            with :meth:`from_checkpoint`.
        method: expectation of the loss: ``mc``, ``exact`` or ``straight-through``.
        indicator: the model options of ``pvae train`` (as ``--indicator``), like
            ``excitatory_only`` and ``init_std``.
        epochs: the training recipe of ``pvae train`` (as ``--epochs``), like ``batch_size``
            (capped at N), ``lr``, ``lr_min``, ``warmup_epochs``, ``weight_decay``,
            ``grad_clip``, ``warmup_clip_factor``, ``lr_restarts``, ``beta``, ``beta_start``,
            ``beta_hold_fraction``, ``temperature_start``, ``temperature_end`` and
            ``anneal_fraction``.
        accelerator: ``cpu`` (default, deterministic for a given ``random_state``), ``gpu`` or
            ``auto``.
        precision: ``32-true`` (default), ``bf16-mixed`` or ``16-mixed`` (GPU).
        random_state: seed of the initial weights, the batch order and the samples.
        verbose: show a progress bar.

    Attributes:
        model_: the trained :class:`~poisson_vae.vae.VAE` (on the CPU, in eval mode).
        components_: (K, D) a linear decoder's atoms as rows (absent for other decoders).
        n_features_in_: D.
        input_shape_: (C, H, W) the model takes (``(1, 1, D)`` after ``fit``).
        loss_curve_: mean training loss of each epoch.

    Passes every :func:`sklearn.utils.estimator_checks.check_estimator` check.
    """

    def __init__(
        self,
        n_latents: int = 32,
        latent: str = "poisson",
        arch: str = "lin|lin",
        method: str = "mc",
        indicator: str = "sigmoid",
        excitatory_only: bool = False,
        init_std: float | None = None,
        epochs: int = 20,
        batch_size: int = 256,
        lr: float = 5e-3,
        lr_min: float = 1e-5,
        warmup_epochs: float = 1.0,
        weight_decay: float = 0.0,
        grad_clip: float = 500.0,
        warmup_clip_factor: float = 3.0,
        lr_restarts: int = 0,
        beta: float = 1.0,
        beta_start: float = 1e-4,
        beta_hold_fraction: float | None = None,
        temperature_start: float = 1.0,
        temperature_end: float | None = None,
        anneal_fraction: float = 0.5,
        accelerator: str = "cpu",
        precision: str = "32-true",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
    ) -> None:
        self.n_latents = n_latents
        self.latent = latent
        self.arch = arch
        self.method = method
        self.indicator = indicator
        self.excitatory_only = excitatory_only
        self.init_std = init_std
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.lr_min = lr_min
        self.warmup_epochs = warmup_epochs
        self.weight_decay = weight_decay
        self.grad_clip = grad_clip
        self.warmup_clip_factor = warmup_clip_factor
        self.lr_restarts = lr_restarts
        self.beta = beta
        self.beta_start = beta_start
        self.beta_hold_fraction = beta_hold_fraction
        self.temperature_start = temperature_start
        self.temperature_end = temperature_end
        self.anneal_fraction = anneal_fraction
        self.accelerator = accelerator
        self.precision = precision
        self.random_state = random_state
        self.verbose = verbose

    def _configs(self, n_features: int) -> tuple[ModelConfig, TrainConfig]:
        """The model and training configurations of the parameters (errors name them)."""
        if self.accelerator not in ("cpu", "gpu", "auto"):
            raise ValueError(f"accelerator must be 'cpu', 'gpu' or 'auto', got {self.accelerator!r}")
        train_options = (
            "epochs", "batch_size", "lr", "lr_min", "warmup_epochs", "weight_decay", "grad_clip",
            "warmup_clip_factor", "lr_restarts", "beta", "beta_start", "beta_hold_fraction",
            "temperature_start", "temperature_end", "anneal_fraction", "accelerator", "precision",
        )  # fmt: skip
        model = ModelConfig(
            n_latents=self.n_latents,
            input_shape=(1, 1, n_features),
            **{name: getattr(self, name) for name in _MODEL_PARAMETERS},
        )
        train = TrainConfig(
            seed=_seed(self.random_state),
            progress=bool(self.verbose),
            **{name: getattr(self, name) for name in train_options},
        )
        return model, train

    def fit(self, X: Any, y: Any = None) -> PoissonVAETransformer:
        """Train the VAE on X (N, D); ``y`` is ignored. Returns self."""
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        model_config, train_config = self._configs(X.shape[1])
        model, curve = fit_array(model_config, train_config, X)
        self._fitted(model)
        self.loss_curve_ = curve
        return self

    def _fitted(self, model: VAE) -> None:
        """Set the fitted attributes of a trained model."""
        self.model_ = model
        self.input_shape_ = tuple(model.config.input_shape)
        if isinstance(model.decoder, LinearDecoder):
            self.components_ = model.decoder.dictionary.detach().double().T.numpy().copy()
        elif hasattr(self, "components_"):
            del self.components_

    @property
    def _n_features_out(self) -> int:
        return self.model_.config.n_latents

    def score(self, X: Any, y: Any = None) -> float:
        """Minus the mean NELBO (SSE + KL, hard samples, as ``pvae evaluate``) of X (N, D): higher
        is better, as scikit-learn's model selection expects; ``y`` is ignored."""
        data = self._inputs(X)
        model = _float64_copy(self.model_)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            terms = model(data, temperature=0.0, method="mc", generator=generator)
        return -float((terms.sse + terms.kl).mean())

    def _inputs(self, X: Any) -> torch.Tensor:
        """X (N, D) validated, as a float64 tensor."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return _as_tensor(X, torch.float64)

    def transform(self, X: Any) -> np.ndarray:
        """Deterministic posterior means (P-VAE: the rates) of X (N, D), as (N, K) float64."""
        data = self._inputs(X)
        with torch.no_grad():
            mean = _float64_copy(self.model_).encode(data).mean
        return mean.numpy()

    def sample_codes(self, X: Any, random_state: Any = None) -> np.ndarray:
        """Hard posterior samples (temperature 0) of X (N, D), (N, K) float64.

        For the P-VAE these are spike counts (non-negative integers); ``random_state`` seeds the draw.
        """
        data = self._inputs(X)
        model = _float64_copy(self.model_)
        generator = torch.Generator().manual_seed(_seed(random_state))
        with torch.no_grad():
            z = model.latent.rsample(model.encode(data), 0.0, False, generator)
        return z.numpy()

    def inverse_transform(self, Z: Any) -> np.ndarray:
        """Decode codes Z (N, K) into (N, D) reconstructions (float64)."""
        check_is_fitted(self, "model_")
        Z = np.asarray(Z, dtype=np.float64)
        if Z.ndim != 2 or Z.shape[1] != self.model_.config.n_latents:
            raise ValueError(f"Z must be (N, {self.model_.config.n_latents}) codes, got shape {Z.shape}")
        with torch.no_grad():
            x = _float64_copy(self.model_).decode(_as_tensor(Z, torch.float64))
        return x.reshape(Z.shape[0], -1).numpy()

    @classmethod
    def from_checkpoint(cls, path: str | Path) -> PoissonVAETransformer:
        """A fitted transformer around a model saved by ``pvae train`` or ``save_model``.

        The parameters mirror the model's configuration (and the training recipe, for a run
        directory of ``pvae train``), so ``clone(estimator).fit(X)`` retrains the same kind of
        model; ``n_features_in_`` is prod(input_shape) and ``transform`` takes flattened samples
        (N, C*H*W).
        """
        model = load_model(path)
        if model.config.inference != "amortized":
            raise ValueError(
                f"{path} holds an iterative VAE; the scikit-learn transformer wraps amortised VAEs"
            )
        params = {name: getattr(model.config, name) for name in (*_MODEL_PARAMETERS, "n_latents")}
        names = set(cls._get_param_names())
        recipe = Run(path).config_document().get("train", {})
        params |= {name: value for name, value in recipe.items() if name in names}
        if "seed" in recipe:
            params["random_state"] = recipe["seed"]
        estimator = cls(**params)
        estimator._fitted(model.eval())
        estimator.n_features_in_ = math.prod(model.config.input_shape)
        estimator.loss_curve_ = []
        return estimator


class SparseCodingTransformer(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Dictionary learning plus LCA / ISTA / FISTA sparse inference, like scikit-learn's SparseCoder.

    ``fit`` learns ``n_atoms`` unit-norm atoms by minibatch alternating minimisation
    (:func:`poisson_vae.sparse_coding.learn_dictionary`); ``transform`` infers the codes of X (N, D)
    that minimise ``0.5 ||x - a Phi||^2 + lam ||a||_1`` (optionally a >= 0).

    Args:
        algorithm: ``lca``, ``ista`` or ``fista``.
        n_atoms: K.
        lam: L1 weight (LCA: the threshold).
        n_iterations: most inference iterations.
        tol: relative change at which inference stops, per sample (codes; LCA: potentials).
        non_negative: constrain codes to a >= 0.
        threshold: LCA's ``"soft"`` (the Lasso above) or ``"hard"`` threshold (an L0-like energy,
            non-convex); ISTA and FISTA take only ``"soft"``.
        n_steps: dictionary updates in ``fit``.
        batch_size: samples per dictionary update (drawn with replacement).
        lr: step size of the dictionary update.
        random_state: seed of the initial atoms and the minibatches.

    Attributes:
        components_: (K, D) the unit-norm atoms, as rows (like ``DictionaryLearning``); the
            torch solvers take them as the columns of a (D, K) dictionary, ``components_.T``.
        n_features_in_: D.
    """

    def __init__(
        self,
        algorithm: str = "fista",
        n_atoms: int = 32,
        lam: float = 0.1,
        n_iterations: int = 200,
        tol: float = 1e-4,
        non_negative: bool = False,
        threshold: str = "soft",
        n_steps: int = 200,
        batch_size: int = 256,
        lr: float = 0.1,
        random_state: int | np.random.RandomState | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.n_atoms = n_atoms
        self.lam = lam
        self.n_iterations = n_iterations
        self.tol = tol
        self.non_negative = non_negative
        self.threshold = threshold
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.lr = lr
        self.random_state = random_state

    def _method(self) -> InferenceMethod:
        """The inference method of the parameters (checked by the sparse-coding configuration)."""
        config = SparseCodingConfig(
            algorithm=self.algorithm,
            lam=self.lam,
            n_iterations=self.n_iterations,
            tol=self.tol,
            non_negative=self.non_negative,
            threshold=self.threshold,
        )
        return inference_method(config)

    def fit(self, X: Any, y: Any = None) -> SparseCodingTransformer:
        """Learn the dictionary from X (N, D); ``y`` is ignored. Returns self."""
        method = self._method()
        X = validate_data(self, X, dtype=[np.float64, np.float32])
        dictionary = learn_dictionary(
            _as_tensor(X),
            int(self.n_atoms),
            method,
            n_steps=int(self.n_steps),
            batch_size=int(self.batch_size),
            lr=self.lr,
            seed=_seed(self.random_state),
        )
        self.components_ = dictionary.T.numpy().astype(np.float64)
        return self

    @property
    def _n_features_out(self) -> int:
        return self.components_.shape[0]

    def inverse_transform(self, codes: Any) -> np.ndarray:
        """(N, D) reconstructions ``codes @ components_`` of (N, K) codes, float64."""
        check_is_fitted(self, "components_")
        codes = np.asarray(codes, dtype=np.float64)
        if codes.ndim != 2 or codes.shape[1] != self.components_.shape[0]:
            raise ValueError(f"codes must be (N, {self.components_.shape[0]}), got shape {codes.shape}")
        return codes @ self.components_

    def transform(self, X: Any) -> np.ndarray:
        """Sparse codes of X (N, D) under the learned dictionary, (N, K) float64."""
        check_is_fitted(self, "components_")
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        dictionary = torch.tensor(self.components_.T, dtype=torch.float64)
        return self._method().infer(_as_tensor(X, torch.float64), dictionary).codes.numpy()
