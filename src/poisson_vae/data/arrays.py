"""User-supplied arrays: ``--data npy:PATH`` for a ``.npy`` or ``.npz`` file of images.

A ``.npy`` file holds images (N, H, W) or (N, 1, H, W). A ``.npz`` file holds either ``train`` and
``valid`` arrays (with optional ``train_labels`` / ``valid_labels``), or one array of images under
``images`` or ``x`` (with optional ``labels`` or ``y``). Without an explicit split, the last 20 % of
the samples (a contiguous block, so neighbouring samples do not straddle the split) validate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .idx import DataFileError, error_summary

__all__ = ["load_user_arrays"]

VALIDATION_FRACTION = 0.2


def _as_images(array: np.ndarray, where: str) -> np.ndarray:
    """Images as float32 (N, 1, H, W), refusing other shapes, non-numbers and NaN/inf values."""
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[1] != 1:
        raise DataFileError(f"{where}: expected images (N, H, W) or (N, 1, H, W), got {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataFileError(f"{where}: expected numbers, got dtype {array.dtype}")
    bad = array.size - np.count_nonzero(np.isfinite(array))
    if bad:
        raise DataFileError(f"{where}: {bad} values are NaN or infinite; clean or drop those samples")
    with np.errstate(over="ignore"):  # counted and refused just below
        images = array.astype(np.float32)
    overflow = images.size - np.count_nonzero(np.isfinite(images))
    if overflow:
        raise DataFileError(
            f"{where}: {overflow} values exceed the float32 range (about 3.4e38); rescale the images"
        )
    return images


def _labels(array: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    """Labels as int64 (n,): refuses other shapes and values that are not finite whole numbers."""
    if array is None:
        return None
    if array.ndim != 1:
        raise DataFileError(
            f"{where}: labels must be a 1-D array of {n} values, got shape {array.shape}"
        )
    if len(array) != n:
        raise DataFileError(f"{where}: {len(array)} labels for {n} images")
    if np.issubdtype(array.dtype, np.integer) or array.dtype == np.bool_:
        return array.astype(np.int64)
    if not np.issubdtype(array.dtype, np.floating):
        raise DataFileError(f"{where}: labels must be whole numbers, got dtype {array.dtype}")
    bad = array.size - np.count_nonzero(np.isfinite(array))
    if bad:
        raise DataFileError(f"{where}: {bad} labels are NaN or infinite; labels must be whole numbers")
    fractional = np.count_nonzero(array != np.round(array))
    if fractional:
        first = array[array != np.round(array)][0]
        raise DataFileError(
            f"{where}: {fractional} labels are not whole numbers (e.g. {first}); store class indices"
        )
    if np.abs(array).max(initial=0) >= 2**63:
        raise DataFileError(f"{where}: labels beyond the int64 range; store class indices")
    return array.astype(np.int64)


def load_user_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Train and validation images (and labels, when present) from a ``.npy`` / ``.npz`` file.

    Returns:
        ``train`` and ``valid`` float32 (N, 1, H, W), optional ``train_labels`` / ``valid_labels``.

    Raises:
        DataFileError: missing, unreadable or corrupt file (every member is read, so a truncated
            file or a bad CRC shows here), wrong shapes, NaN or infinite pixels, or labels that are
            not one whole number per image.
    """
    path = Path(path)
    if path.is_dir():
        raise DataFileError(f"npy:{path} is a folder, not a file; give the path of a .npy or .npz file")
    if not path.is_file():
        raise DataFileError(f"npy:{path} does not exist; give the path of a .npy or .npz file")
    try:
        stored = np.load(path, allow_pickle=False)
        if isinstance(stored, np.ndarray):
            contents = {"images": stored}
        else:
            with stored:
                contents = {key: stored[key] for key in stored.files}
    except Exception as error:  # zipfile, zlib, numpy format errors: the file is corrupt
        raise DataFileError(
            f"{path} is not a readable .npy/.npz file ({error_summary(error)}): it is truncated, "
            "corrupt or holds non-numeric arrays; write it again with numpy.save or numpy.savez"
        ) from None
    if "train" in contents and "valid" in contents:
        splits = {}
        for split in ("train", "valid"):
            images = _as_images(contents[split], f"{path}[{split}]")
            splits[split] = images
            labels = _labels(contents.get(f"{split}_labels"), len(images), f"{path}[{split}_labels]")
            if labels is not None:
                splits[f"{split}_labels"] = labels
        return splits
    key = next((k for k in ("images", "x") if k in contents), None)
    if key is None:
        raise DataFileError(
            f"{path} holds {sorted(contents)}: expected 'train' and 'valid', or 'images' (or 'x')"
        )
    images = _as_images(contents[key], f"{path}[{key}]")
    label_key = next((k for k in ("labels", "y") if k in contents), None)
    labels = _labels(contents.get(label_key), len(images), f"{path}[{label_key}]") if label_key else None
    n_valid = round(VALIDATION_FRACTION * len(images))
    if n_valid < 1 or n_valid >= len(images):
        raise DataFileError(
            f"{path}: {len(images)} samples are too few to split into train and validation"
        )
    splits = {"train": images[:-n_valid], "valid": images[-n_valid:]}
    if labels is not None:
        splits |= {"train_labels": labels[:-n_valid], "valid_labels": labels[-n_valid:]}
    return splits
