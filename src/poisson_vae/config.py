"""Every configuration of the package, its constraints, and the rules for resuming a run.

A run is described by dataclasses: :class:`DataConfig`, :class:`ModelConfig` and
:class:`TrainConfig` make a VAE run (:class:`RunConfig`); :class:`DataConfig` and
:class:`SparseCodingConfig` make a dictionary-learning run (:class:`SparseCodingRunConfig`). Each
field is declared with :func:`option`: its default, its help text (the command line shows it) and
its :class:`Check`, the one constraint table that every value passes through, whether it comes
from Python, a JSON file or a flag. Errors are :class:`ConfigError` and name fields
(``n_latents must be a positive integer, got 0``); the command line renders the same error with
its flags (``--n-latents``).

This module imports neither Lightning nor numba, so that ``pvae --help`` starts quickly.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

from .data import dataset_names, resolve_source
from .distributions import INDICATORS
from .errors import ConfigError, braces
from .iterative import ITERATIVE_FAMILIES, KL_PREFACTORS
from .latents import LATENT_FAMILIES
from .nets import BLOCK_NETWORKS, parse_architecture
from .sparse_coding import ALGORITHMS
from .sparse_coding.lca import THRESHOLDS

__all__ = [
    "ACCELERATORS",
    "ESTIMATOR_METHODS",
    "INFERENCE",
    "METHODS",
    "RESUMABLE",
    "Check",
    "ConfigError",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "SparseCodingConfig",
    "SparseCodingRunConfig",
    "TrainConfig",
    "boolean",
    "check_fields",
    "check_memory",
    "choice",
    "config_from_dict",
    "integer",
    "load_config",
    "memory_bytes",
    "number",
    "option",
    "resolve_accelerator",
    "text",
    "threshold_refusal",
]

#: Methods that train Poisson latents through a gradient estimator of :mod:`poisson_vae.gradients`.
ESTIMATOR_METHODS = ("gsm", "score", "vargrad", "mvd")
#: Ways the VAE's loss takes the expectation over the posterior (see :mod:`poisson_vae.vae`): the
#: family's relaxed sample (``mc``), the closed form (``exact``), straight-through, and for Poisson
#: latents the other gradient estimators.
METHODS = ("mc", "exact", "straight-through", *ESTIMATOR_METHODS)
#: How a VAE infers its posterior: an encoder, or iterative dynamics (poisson_vae.iterative).
INFERENCE = ("amortized", "iterative")
#: Values of ``accelerator``: ``auto`` takes CUDA when present (``gpu`` and ``cuda`` require it).
ACCELERATORS = ("auto", "cpu", "gpu", "cuda")
#: Lightning's precisions: float32, or mixed precision with bfloat16 (CPU and recent GPUs) or
#: float16 (GPUs). The latent family and the loss stay in float32 under mixed precision.
PRECISIONS = ("32-true", "bf16-mixed", "16-mixed")
#: Fields that may differ from the stored configuration when a run is resumed.
RESUMABLE = frozenset(
    {
        "epochs",
        "accelerator",
        "devices",
        "num_nodes",
        "strategy",
        "precision",
        "progress",
        "cache_dir",
        "data_dir",
    }
)


def _shown(value: object) -> str:
    """``repr`` of a value for a message (numpy scalars shown as Python's)."""
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):
        try:
            value = value.item()  # type: ignore[union-attr]
        except (TypeError, ValueError):
            pass
    return repr(value)


def _escaped(value: object) -> str:
    """:func:`_shown` for a message template that names fields."""
    return braces(_shown(value))


# --- constraints -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """The constraint of a field: what it accepts, and the words that say so.

    Attributes:
        requirement: completes "``field`` must be ...", e.g. ``"a positive integer"``.
        accepts: True for an acceptable value (None is handled by ``optional``).
        optional: None is accepted too.
    """

    requirement: str
    accepts: Callable[[Any], bool]
    optional: bool = False
    choices: tuple[str, ...] | None = None  # the accepted values, when they are few

    def __call__(self, name: str, value: object) -> None:
        """Raise :class:`ConfigError` unless ``value`` is acceptable for field ``name``."""
        if value is None and self.optional:
            return
        if not self.accepts(value):
            raise ConfigError(f"{{0}} must be {self.requirement}, got {_escaped(value)}", name)

    def or_none(self) -> Check:
        return Check(self.requirement, self.accepts, optional=True, choices=self.choices)


def _is_integer(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def integer(low: int | None = None, high: int | None = None, requirement: str | None = None) -> Check:
    """A whole number in ``[low, high]`` (bools, floats and strings refused)."""
    if requirement is None:
        requirement = {1: "a positive integer", 0: "an integer >= 0"}.get(low, "an integer")  # type: ignore[arg-type]
        if high is not None:
            requirement = f"an integer in [{low}, {high}]"
    return Check(
        requirement,
        lambda v: _is_integer(v) and (low is None or v >= low) and (high is None or v <= high),
    )


def number(
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    requirement: str | None = None,
) -> Check:
    """A finite number in the interval from ``low`` to ``high`` (open ends where asked)."""
    if requirement is None:
        if high is None:
            requirement = "a finite number" + (
                "" if low is None else f" {'>' if low_open else '>='} {low:g}"
            )
        else:
            left, right = "(" if low_open else "[", ")" if high_open else "]"
            requirement = f"a number in {left}{low:g}, {high:g}{right}"

    def accepts(value: object) -> bool:
        if not _is_number(value):
            return False
        above = low is None or (value > low if low_open else value >= low)  # type: ignore[operator]
        below = high is None or (value < high if high_open else value <= high)  # type: ignore[operator]
        return above and below

    return Check(requirement, accepts)


def boolean() -> Check:
    """True or false (not 0, 1 or a string)."""
    return Check("true or false", lambda v: isinstance(v, bool))


def text() -> Check:
    """A non-empty string."""
    return Check("a non-empty string", lambda v: isinstance(v, str) and v != "")


def choice(options: Iterable[str], extra: str = "") -> Check:
    """One of ``options`` (``extra`` adds words for accepted values outside them)."""
    options = tuple(options)
    return Check(
        f"one of {', '.join(options)}{extra}",
        lambda v: isinstance(v, str) and v in options,
        choices=options,
    )


def option(default: Any, help: str, check: Check | None = None, cli: bool = True) -> Any:
    """A dataclass field with a default, a help text, its constraint, and whether it is a flag."""
    return field(default=default, metadata={"help": help, "check": check, "cli": cli})


def check_fields(instance: object) -> None:
    """Check every field of a configuration dataclass against its :class:`Check`."""
    for item in fields(instance):  # type: ignore[arg-type]
        check = item.metadata.get("check")
        if check is not None:
            check(item.name, getattr(instance, item.name))


def _absolute(path: str | None) -> str | None:
    return None if path is None else os.path.abspath(os.path.expanduser(path))


SEED = integer(0, 2**32 - 1, requirement="a whole number in [0, 2^32)")


# --- data ------------------------------------------------------------------------------------
def _known_data(value: object) -> bool:
    return isinstance(value, str) and (value in dataset_names() or value.startswith("npy:"))


@dataclass
class DataConfig:
    """Which data, how much of it, and where processed arrays are cached."""

    data: str = option(
        "natural16",
        "dataset: " + ", ".join(dataset_names()) + ", or npy:PATH for your own .npy/.npz file",
        Check("a dataset of `pvae data list` or npy:PATH", _known_data),
    )
    n_train: int | None = option(
        None, "training samples (natural16: 80,000; others: all)", integer(1).or_none()
    )
    n_valid: int | None = option(
        None, "validation samples (natural16: 20,000; others: all)", integer(1).or_none()
    )
    data_seed: int = option(0, "seed of natural16's patch positions", SEED)
    data_dir: str | None = option(
        None, "folder of source files you supply (e.g. MNIST's IDX files)", text().or_none()
    )
    whiten_f0: float | None = option(
        None,
        "whitening cut-off in cycles/pixel (dataset default)",
        number(0, 0.5, low_open=True).or_none(),
    )
    contrast_normalise: bool | None = option(
        None, "local contrast normalisation (dataset default)", boolean().or_none()
    )
    patch_size: int | None = option(
        None,
        "side of the square patches (dataset default)",
        integer(2, requirement="an integer >= 2").or_none(),
    )
    patches_per_image: int | None = option(
        None, "random patches per image (dataset default)", integer(1).or_none()
    )
    cache_dir: str | None = option(
        None, "processed-array cache (default: $PVAE_CACHE_DIR or user cache)", text().or_none()
    )

    def __post_init__(self) -> None:
        check_fields(self)
        # Absolute paths, so that the stored config.json works from any folder.
        self.data = resolve_source(self.data)
        self.data_dir, self.cache_dir = _absolute(self.data_dir), _absolute(self.cache_dir)

    def load(self) -> dict:
        """The dataset's train and validation arrays (and labels), from the cache when built."""
        from .data import Preprocessing, load_dataset

        preprocessing = Preprocessing(
            self.whiten_f0, self.contrast_normalise, self.patch_size, self.patches_per_image
        )
        return load_dataset(
            self.data,
            self.n_train,
            self.n_valid,
            self.data_seed,
            self.cache_dir,
            self.data_dir,
            preprocessing,
        )


# --- model -----------------------------------------------------------------------------------
def _input_shape(value: object) -> bool:
    return (
        isinstance(value, (tuple, list))
        and len(value) == 3
        and all(_is_integer(side) and side >= 1 for side in value)
    )


def _architecture(value: object) -> bool:
    if not isinstance(value, str):
        return False
    parse_architecture(value)  # a malformed string raises its own, more precise error
    return True


@dataclass
class ModelConfig:
    """What to build: latent family, networks, size and training method."""

    latent: str = option(
        "poisson", "latent family: " + ", ".join(LATENT_FAMILIES), choice(LATENT_FAMILIES)
    )
    arch: str = option(
        "lin|lin",
        "networks as 'encoder|decoder', e.g. 'lin|lin'",
        Check("a string 'encoder|decoder'", _architecture),
    )
    n_latents: int = option(512, "number of latents K", integer(1))
    layer_norm: bool = option(
        True,
        "close each residual dense block (mlp networks, the conv encoder) with its LayerNorm, "
        "as the paper does",
        boolean(),
    )
    input_shape: tuple[int, int, int] = option(
        (1, 16, 16),
        "shape of one sample (set from the data)",
        Check("(channels, height, width), three positive integers", _input_shape),
        cli=False,
    )
    method: str = option("mc", "expectation of the loss: " + " | ".join(METHODS), choice(METHODS))
    indicator: str = option("sigmoid", "soft indicator of the relaxed sampler", choice(INDICATORS))
    excitatory_only: bool = option(False, "restrict rate changes to dr >= 1", boolean())
    init_std: float | None = option(
        None,
        "std of the initial weights (default: 0.05 with a linear decoder, else 0.1; "
        "gaussian-exp: a fifth of that; iterative: 1e-4)",
        number(0, low_open=True).or_none(),
    )
    inference: str = option(
        "amortized",
        "amortized (an encoder) or iterative (no encoder: the posterior evolves step by step, "
        "driven by its prediction errors through the dictionary; the iP-VAE)",
        choice(INFERENCE),
    )
    n_steps: int = option(16, "inference steps per sample in training (iterative)", integer(1))
    truncation: int | None = option(
        None,
        "backpropagate through blocks of this many steps (iterative; default: through all)",
        integer(1).or_none(),
    )
    kl_prefactor: str = option(
        "posterior",
        "the iP-VAE's KL: posterior (the published loss) or prior (the exact Poisson KL)",
        choice(KL_PREFACTORS),
    )

    def __post_init__(self) -> None:
        check_fields(self)
        self.input_shape = tuple(int(side) for side in self.input_shape)  # type: ignore[assignment]
        family = LATENT_FAMILIES[self.latent]
        arch = parse_architecture(self.arch)
        linear_decoder = arch.decoder == "lin"
        if not self.layer_norm and not (
            arch.encoder in BLOCK_NETWORKS[0] or arch.decoder in BLOCK_NETWORKS[1]
        ):
            raise ConfigError(
                f"{{0}} false changes nothing: {{1}} {self.arch} has no residual dense block "
                "(mlp networks and the conv encoder have one)",
                "layer_norm",
                "arch",
            )
        if self.method == "exact" and not family.supports_exact:
            raise ConfigError(
                f"{{0}} exact needs closed-form posterior moments, which {{1}} {self.latent} lacks; "
                "use {0} mc",
                "method",
                "latent",
            )
        if self.method == "exact" and not linear_decoder:
            raise ConfigError("{0} exact needs a linear decoder ({1} '...|lin')", "method", "arch")
        if self.method == "straight-through" and not family.supports_straight_through:
            raise ConfigError(
                f"{{0}} straight-through needs a hard sample; {{1}} {self.latent} has none "
                "(poisson and categorical do)",
                "method",
                "latent",
            )
        if self.method in ESTIMATOR_METHODS and self.latent != "poisson":
            raise ConfigError(
                f"{{0}} {self.method} is a Poisson gradient estimator; {{1}} {self.latent} trains "
                "with mc (or exact, straight-through where it has them)",
                "method",
                "latent",
            )
        if self.excitatory_only and "excitatory_only" not in family.model_options:
            raise ConfigError("{0} applies to {1} poisson only", "excitatory_only", "latent")
        if self.inference == "iterative":
            self._check_iterative()

    def _check_iterative(self) -> None:
        if self.latent not in ITERATIVE_FAMILIES:
            raise ConfigError(
                f"{{0}} iterative exists for {{1}} {', '.join(ITERATIVE_FAMILIES)}, "
                f"not {braces(self.latent)}",
                "inference",
                "latent",
            )
        if self.arch != "lin|lin":
            raise ConfigError(
                "{0} iterative decodes with one dictionary that also carries the feedback: "
                "{1} must be lin|lin",
                "inference",
                "arch",
            )
        if self.method != "mc":
            raise ConfigError(
                "{0} iterative trains through its sampled spikes: {1} must be mc", "inference", "method"
            )
        if self.excitatory_only:
            raise ConfigError("{0} needs {1} amortized", "excitatory_only", "inference")
        if self.kl_prefactor != "posterior" and self.latent != "poisson":
            raise ConfigError("{0} applies to {1} poisson only", "kl_prefactor", "latent")

    @classmethod
    def from_dict(cls, values: Mapping) -> ModelConfig:
        """A model configuration from the ``model`` section of a ``config.json``."""
        return _section(cls, values, "model")


# --- training --------------------------------------------------------------------------------
def _devices(value: object) -> bool:
    return (
        value == "auto"
        or (_is_integer(value) and value > 0)
        or (  # type: ignore[operator]
            isinstance(value, str) and value.isdigit() and int(value) > 0
        )
    )


@dataclass
class TrainConfig:
    """The optimisation recipe (defaults: the paper's van Hateren recipe) and the hardware."""

    epochs: int = option(100, "training epochs (the paper: 3000)", integer(1))
    batch_size: int = option(1000, "samples per batch (per device)", integer(1))
    lr: float = option(5e-3, "peak learning rate of Adamax", number(0, low_open=True))
    lr_min: float = option(1e-5, "learning rate at the end of the cosine", number(0))
    warmup_epochs: float = option(5, "epochs of linear learning-rate warm-up", number(0))
    weight_decay: float = option(0.0, "Adamax weight decay", number(0))
    grad_clip: float = option(500.0, "gradient-norm clip", number(0, low_open=True))
    warmup_clip_factor: float = option(3.0, "clip multiplier during warm-up", number(1))
    lr_restarts: int = option(
        0, "warm restarts of the cosine after warm-up (the paper's MNIST: 2)", integer(0)
    )
    beta: float = option(1.0, "final KL weight", number(0))
    beta_start: float = option(1e-4, "initial KL weight of the linear ramp", number(0))
    beta_hold_fraction: float | None = option(
        None,
        "fraction of the steps beta stays at --beta-start (default: 0.01 with a "
        "non-linear decoder, else 0)",
        number(0, 1).or_none(),
    )
    temperature_start: float = option(1.0, "initial sampler temperature", number(0))
    temperature_end: float | None = option(
        None,
        "final sampler temperature (default: poisson 0.05, categorical 0.1)",
        number(0).or_none(),
    )
    anneal_fraction: float = option(
        0.5, "fraction of the steps over which beta and temperature ramp", number(0, 1)
    )
    beta_anneal_fraction: float | None = option(
        None,
        "fraction of the steps over which beta (and an iterative model's clamps) ramp "
        "(default: --anneal-fraction)",
        number(0, 1).or_none(),
    )
    seed: int = option(0, "seed of initialisation, shuffling and sampling", SEED)
    accelerator: str = option(
        "auto", "cpu, gpu, or auto (CUDA when present, else the CPU)", choice(ACCELERATORS)
    )
    devices: str | int = option(
        "auto", "devices per node: a count or 'auto'", Check("a positive count or 'auto'", _devices)
    )
    num_nodes: int = option(1, "nodes for multi-node data parallelism", integer(1))
    precision: str = option(
        "32-true",
        "arithmetic: 32-true, or mixed precision bf16-mixed (CPU, recent GPUs) or 16-mixed (GPU)",
        choice(PRECISIONS),
    )
    strategy: str = option("auto", "Lightning strategy, e.g. ddp", text())
    val_every: int = option(5, "validate every this many epochs", integer(1))
    knn_curve: bool = option(
        False,
        "labelled data: record 5-NN accuracy with 200 and 1000 labels at every validation",
        boolean(),
    )
    log_every: int = option(10, "log training metrics every this many steps", integer(1))
    tensorboard: bool = option(False, "also log to TensorBoard", boolean())
    progress: bool = option(True, "show a progress bar", boolean())

    def __post_init__(self) -> None:
        check_fields(self)
        self.devices = str(self.devices)
        if self.lr_min > self.lr:
            raise ConfigError(
                f"{{0}} must be at most {{1}} (the cosine decays from {{1}} to {{0}}), "
                f"got {_escaped(self.lr_min)} > {_escaped(self.lr)}",
                "lr_min",
                "lr",
            )
        hold, ramp = self.beta_hold_fraction, self.beta_ramp_fraction
        if hold is not None and hold > ramp:
            which = "anneal_fraction" if self.beta_anneal_fraction is None else "beta_anneal_fraction"
            raise ConfigError(
                f"{{0}} must lie in [0, {{1}} = {ramp:g}], got {_escaped(hold)}",
                "beta_hold_fraction",
                which,
            )

    @property
    def beta_ramp_fraction(self) -> float:
        """The fraction of the steps over which beta ramps."""
        return self.anneal_fraction if self.beta_anneal_fraction is None else self.beta_anneal_fraction


# --- sparse coding ---------------------------------------------------------------------------
@dataclass
class SparseCodingConfig:
    """The inference method and the dictionary-learning recipe."""

    algorithm: str = option("lca", "inference: lca, ista or fista", choice(ALGORITHMS))
    n_atoms: int = option(512, "number of atoms K", integer(1))
    lam: float = option(0.5, "sparsity weight (L1 weight; LCA's threshold)", number(0, low_open=True))
    n_iterations: int = option(300, "maximum inference iterations per batch", integer(1))
    tol: float = option(
        1e-3,
        "relative change (per sample; LCA: of its potentials) that stops inference early",
        number(0),
    )
    non_negative: bool = option(False, "non-negative codes", boolean())
    threshold: str = option(
        "soft", "LCA's threshold: soft (Lasso) or hard (L0-like); LCA only", choice(THRESHOLDS)
    )
    epochs: int = option(20, "passes over the training data", integer(1))
    batch_size: int = option(1000, "samples per dictionary update", integer(1))
    lr: float = option(0.1, "step size of the dictionary update", number(0, low_open=True))
    seed: int = option(0, "seed of the initial atoms and the batch order", SEED)
    accelerator: str = option(
        "auto", "cpu, gpu, or auto (CUDA when present, else the CPU)", choice(ACCELERATORS)
    )
    progress: bool = option(True, "show a progress bar", boolean())

    def __post_init__(self) -> None:
        check_fields(self)
        if self.threshold != "soft" and self.algorithm != "lca":
            raise threshold_refusal(self.algorithm)

    @property
    def label(self) -> str:
        """The method in a few words: ``lca lambda 0.5``, ``lca hard lambda 0.5``."""
        hard = " hard" if self.threshold == "hard" else ""
        return f"{self.algorithm}{hard} lambda {self.lam:g}"


def threshold_refusal(algorithm: str) -> ConfigError:
    """The refusal of a threshold for an algorithm other than LCA."""
    return ConfigError(
        f"{{0}} applies to {{1}} lca only ({algorithm} always soft-thresholds); "
        "drop {0} or use {1} lca",
        "threshold",
        "algorithm",
    )


# --- whole runs ------------------------------------------------------------------------------
def _section(kind: type, values: object, section: str) -> Any:
    """``kind(**values)`` for one section of a document, its errors naming ``section.field``."""
    if not isinstance(values, Mapping):
        raise ConfigError(f"section {section!r} must be an object of options, got {_shown(values)}")
    known = {item.name for item in fields(kind)}
    extra = sorted(set(values) - known)
    if extra:
        raise ConfigError(f"unknown option(s) {_shown(extra)} in section {section!r}")
    try:
        return kind(**values)
    except ConfigError as error:
        raise error.in_section(section) from None


class _Sections:
    """What :class:`RunConfig` and :class:`SparseCodingRunConfig` share: sections by name,
    conversion to and from the ``config.json`` document, and the resume rules."""

    SECTIONS: ClassVar[dict[str, type]]
    #: The kind of run: ``vae`` or ``sparse-coding``.
    KIND: ClassVar[str]

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, document: object) -> Any:
        """The configuration in a ``config.json`` document (missing options take their defaults)."""
        if not isinstance(document, Mapping):
            raise ConfigError(
                f"a configuration must be a JSON object of sections, got {_shown(document)}"
            )
        unknown = sorted(set(document) - set(cls.SECTIONS))
        if unknown:
            known = _shown(sorted(cls.SECTIONS))
            raise ConfigError(f"unknown configuration section(s) {_shown(unknown)}; known: {known}")
        parts = {
            name: _section(kind, document.get(name, {}), name) for name, kind in cls.SECTIONS.items()
        }
        return cls(**parts)

    @classmethod
    def section_of(cls, name: str) -> str:
        """The section that holds field ``name``."""
        for section, kind in cls.SECTIONS.items():
            if name in {item.name for item in fields(kind)}:
                return section
        raise KeyError(name)

    @classmethod
    def resolve(
        cls,
        overrides: Mapping[str, Any],
        stored: Mapping | None = None,
        base: Mapping | None = None,
        recipe: Mapping[str, Any] | None = None,
    ) -> Any:
        """The configuration of a run from its sources, by the rules ``pvae train`` follows.

        A run being resumed keeps its stored configuration: only fields of :data:`RESUMABLE` may
        be overridden (a new ``epochs`` extends it), and neither a ``base`` document nor a recipe
        may be given. A new run starts from ``base`` (a ``config.json``-shaped document), then
        ``recipe`` fills the fields ``base`` leaves unset, then ``overrides`` win.

        Args:
            overrides: ``{field: value}`` given explicitly (flags), any section.
            stored: the ``config.json`` of the run being resumed, if any.
            base: a configuration document to start a new run from.
            recipe: ``{field: value}`` of a named recipe (:mod:`poisson_vae.recipes`).

        Raises:
            ConfigError: an unknown field, a refused change, or an invalid value.
        """
        for name in overrides:
            try:
                cls.section_of(name)
            except KeyError:
                raise ConfigError(f"{{0}} is not an option of a {cls.KIND} run", name) from None
        if stored is not None:
            for name, given in (("recipe", recipe), ("config", base)):
                if given is not None:
                    raise ConfigError(
                        "{0} applies to a new run; a resumed run keeps its stored configuration",
                        name,
                    )
            document = cls.from_dict(stored).to_dict()  # newer options take their defaults
            changed = sorted(
                name
                for name, value in overrides.items()
                if name not in RESUMABLE
                and document[cls.section_of(name)][name] != _normalised(cls, name, value)
            )
            if changed:
                listed = ", ".join(f"{{{i}}}" for i in range(len(changed)))
                one = len(changed) == 1
                raise ConfigError(
                    f"{listed} differ{'s' * one} from the run being resumed; drop "
                    f"{'it' if one else 'them'} or start a new run",
                    *changed,
                )
        else:
            document = json.loads(json.dumps(base or {}))
            for name, value in (recipe or {}).items():
                section = document.setdefault(cls.section_of(name), {})
                if isinstance(section, dict):
                    section.setdefault(name, value)
        for name, value in overrides.items():
            section = document.setdefault(cls.section_of(name), {})
            if isinstance(section, dict):
                section[name] = value
        return cls.from_dict(document)


def _normalised(cls: type, name: str, value: object) -> object:
    """A flag's value as the stored configuration holds it (data paths are made absolute)."""
    if name == "data" and isinstance(value, str):
        return resolve_source(value)
    if name in ("data_dir", "cache_dir") and isinstance(value, str):
        return _absolute(value)
    return value


@dataclass
class RunConfig(_Sections):
    """Everything that defines a VAE run; saved as ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    SECTIONS: ClassVar[dict[str, type]] = {
        "data": DataConfig,
        "model": ModelConfig,
        "train": TrainConfig,
    }
    KIND: ClassVar[str] = "vae"


@dataclass
class SparseCodingRunConfig(_Sections):
    """Everything that defines a dictionary-learning run; saved as ``config.json``."""

    data: DataConfig = field(default_factory=DataConfig)
    sparse_coding: SparseCodingConfig = field(default_factory=SparseCodingConfig)

    SECTIONS: ClassVar[dict[str, type]] = {"data": DataConfig, "sparse_coding": SparseCodingConfig}
    KIND: ClassVar[str] = "sparse-coding"


def config_from_dict(document: object) -> RunConfig | SparseCodingRunConfig:
    """The configuration of either kind of run, told apart by its sections."""
    if isinstance(document, Mapping) and "sparse_coding" in document:
        return SparseCodingRunConfig.from_dict(document)
    if isinstance(document, Mapping) and "model" in document:
        return RunConfig.from_dict(document)
    got = sorted(document) if isinstance(document, Mapping) else document
    raise ConfigError(
        "a run configuration needs a 'model' section (a VAE) or a 'sparse_coding' section "
        f"(dictionary learning), got {_shown(got)}"
    )


def load_config(path: str | Path, kind: type | None = None) -> Any:
    """The configuration in a JSON file; one-line ``ConfigError`` naming the file when it is
    unreadable or invalid.

    Args:
        path: a ``config.json``.
        kind: :class:`RunConfig` or :class:`SparseCodingRunConfig`; default: told from the file.
    """
    from .files import read_json

    document = read_json(path, ConfigError)
    try:
        return config_from_dict(document) if kind is None else kind.from_dict(document)
    except ConfigError as error:  # the file's own keys: not for an interface to rename
        raise ConfigError(f"{path}: {error}") from None


def default_of(kind: type, name: str) -> Any:
    """The default value of field ``name`` of a configuration class."""
    item = next(item for item in fields(kind) if item.name == name)
    return item.default if item.default is not MISSING else item.default_factory()  # type: ignore[misc]


def memory_bytes(accelerator: str = "cpu") -> int | None:
    """The memory of the device ``accelerator`` resolves to (a GPU's, or this machine's RAM);
    None where it cannot be read."""
    if resolve_accelerator(accelerator) == "gpu":
        import torch

        return int(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None


def check_memory(needed: int, accelerator: str, what: str, *names: str) -> None:
    """Refuse work that needs more memory than the device has, in one line naming the fields
    (``names``) that size it."""
    available = memory_bytes(accelerator)
    if available is not None and needed > available:
        listed = " or ".join(f"{{{index}}}" for index in range(len(names)))
        device = "GPU" if resolve_accelerator(accelerator) == "gpu" else "machine"
        raise ConfigError(
            f"{braces(what)} needs about {needed / 2**30:.3g} GiB, more than the "
            f"{available / 2**30:.3g} GiB of this {device}; lower {listed}",
            *names,
        )


def resolve_accelerator(accelerator: str) -> str:
    """``cpu`` or ``gpu`` (CUDA) for an ``accelerator`` of :data:`ACCELERATORS`; a one-line error
    when CUDA is asked for and absent (Lightning's own "auto" would also pick Apple's MPS, untested
    here)."""
    import torch

    choice(ACCELERATORS)("accelerator", accelerator)
    if accelerator == "cpu":
        return "cpu"
    if torch.cuda.is_available():
        return "gpu"
    if accelerator == "auto":
        return "cpu"
    raise ConfigError(
        f"{{0}} {accelerator}: no CUDA device is visible to torch {torch.__version__}; "
        "use {0} cpu (or auto)",
        "accelerator",
    )
