"""cifar16: whitened 16 x 16 greyscale patches of CIFAR-10 images, from the python tarball.

Source: ``cifar-10-python.tar.gz`` (Krizhevsky 2009) or its extracted ``cifar-10-batches-py``
folder, in ``--data-dir``. Each 32 x 32 image is converted to grey, standardised and whitened with
R(f) = f exp(-(f / f0)^4); one random 16 x 16 patch is cut from each (``patches_per_image``); the
training batches give the training patches and the test batch the validation patches; patches are
standardised as natural16's.

The batches are Python pickles. They are read by a restricted unpickler that builds only what a
CIFAR-10 batch holds (dicts, lists, bytes, strings, numbers and numeric numpy arrays), so a crafted
file cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

from ..errors import braces
from .idx import DataFileError
from .whitening import prepare_image, random_patches, standardise_patches

__all__ = ["cifar_sources", "load_cifar16", "read_cifar_batches"]

TARBALL = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
HOW_TO_GET = (
    f"pass {{0}} pointing at a folder with {TARBALL} or its extracted {FOLDER}/ "
    "(https://www.cs.toronto.edu/~kriz/cifar.html)"
)


def _numeric_dtype(*args: object) -> np.dtype:
    """``numpy.dtype`` for an unpickled array, refusing dtypes that hold Python objects."""
    dtype = np.dtype(*args)  # type: ignore[call-overload]
    if dtype.hasobject:
        raise pickle.UnpicklingError("an array of Python objects is not CIFAR data")
    return dtype


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """``_codecs.encode`` as protocol-2 pickles written by Python 3 use it for bytes (latin-1 only)."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"refused to decode bytes as {encoding!r} in a CIFAR batch")
    return text.encode("latin1")


# The callables a pickled numeric numpy array needs, under the module names numpy 1 and 2 use.
_RECONSTRUCT = np.ndarray((0,), dtype=np.uint8).__reduce__()[0]
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numeric_dtype,
    ("_codecs", "encode"): _latin1_bytes,
}


class _BatchUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global except those a numeric numpy array needs."""

    def find_class(self, module: str, name: str) -> object:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: not part of a CIFAR batch")
        return allowed


def _unpickle(raw: bytes, name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
        images = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError, IndexError) as error:
        raise DataFileError(
            f"{name} is not a CIFAR-10 batch ({type(error).__name__}: {error})"
        ) from None
    if len(images) != len(labels):
        raise DataFileError(f"{name} has {len(images)} images but {len(labels)} labels")
    return images, labels


def cifar_sources(data_dir: str | Path | None) -> dict[str, Path]:
    """The files CIFAR-10 is read from: the six extracted batches by name, or ``{"tarball": path}``.

    Raises:
        DataFileError: neither the extracted folder nor the tarball is there, or a batch is missing.
    """
    if data_dir is None:
        raise DataFileError(f"cifar16 needs CIFAR-10: {HOW_TO_GET}", "data_dir")
    folder = Path(data_dir)
    if (folder / FOLDER).is_dir():
        batches = {name: folder / FOLDER / name for name in (*TRAIN_BATCHES, TEST_BATCH)}
        for path in batches.values():
            if not path.is_file():
                raise DataFileError(f"cifar16: {braces(str(path))} is missing; {HOW_TO_GET}", "data_dir")
        return batches
    tarball = folder / TARBALL
    if not tarball.is_file():
        raise DataFileError(
            f"cifar16: neither {braces(str(tarball))} nor {braces(str(folder / FOLDER))}/ exists; "
            f"{HOW_TO_GET}",
            "data_dir",
        )
    return {"tarball": tarball}


def read_cifar_batches(data_dir: str | Path | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The CIFAR-10 batches as (images (N, 3, 32, 32) uint8, labels (N,)), by batch name."""
    sources = cifar_sources(data_dir)
    if "tarball" not in sources:
        return {name: _unpickle(path.read_bytes(), str(path)) for name, path in sources.items()}
    tarball = sources["tarball"]
    names = (*TRAIN_BATCHES, TEST_BATCH)
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}
            batches = {}
            for name in names:
                if name not in members:
                    raise DataFileError(f"cifar16: {tarball} has no {name}; is it the python version?")
                raw = archive.extractfile(members[name]).read()  # type: ignore[union-attr]
                batches[name] = _unpickle(raw, f"{tarball}:{name}")
    except (tarfile.TarError, OSError, EOFError) as error:
        raise DataFileError(f"{tarball} is not a readable tarball ({error})") from None
    return batches


def _patches(
    images: np.ndarray,
    rng: np.random.Generator,
    f0: float | None,
    contrast_normalise: bool,
    size: int,
    per_image: int,
) -> np.ndarray:
    grey = images.astype(np.float64).transpose(0, 2, 3, 1) @ np.array([0.2125, 0.7154, 0.0721])
    prepared = (prepare_image(image, f0, contrast_normalise) for image in grey)
    return np.concatenate([random_patches(image, per_image, size, rng) for image in prepared])


def load_cifar16(
    data_dir: str | Path | None,
    seed: int = 0,
    f0: float | None = 0.4,
    contrast_normalise: bool = False,
    size: int = 16,
    patches_per_image: int = 1,
) -> dict:
    """Train (50,000 images) and validation (10,000 images) patches of CIFAR-10, with labels.

    Returns:
        ``train`` / ``valid`` float32 (N, 1, size, size) and ``train_labels`` / ``valid_labels``
        int64 (each image's label repeated for its patches).
    """
    batches = read_cifar_batches(data_dir)
    rng = np.random.default_rng([seed, 4])
    train_images = np.concatenate([batches[name][0] for name in TRAIN_BATCHES])
    train_labels = np.concatenate([batches[name][1] for name in TRAIN_BATCHES])
    valid_images, valid_labels = batches[TEST_BATCH]
    options = (f0, contrast_normalise, size, patches_per_image)
    splits = standardise_patches(
        _patches(train_images, rng, *options), _patches(valid_images, rng, *options)
    )
    return splits | {
        "train_labels": np.repeat(train_labels, patches_per_image),
        "valid_labels": np.repeat(valid_labels, patches_per_image),
    }
