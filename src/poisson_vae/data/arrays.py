"""User-supplied arrays: ``--data npy:PATH`` for a ``.npy`` or ``.npz`` file of images.

A ``.npy`` file holds images (N, H, W) or (N, 1, H, W). A ``.npz`` file holds either ``train`` and
``valid`` arrays (with optional ``train_labels`` / ``valid_labels``), or one array of images under
``images`` or ``x`` (with optional ``labels`` or ``y``). Without an explicit split, the last 20 % of
the samples (a contiguous block, so neighbouring samples do not straddle the split) validate.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .idx import DataFileError

__all__ = ["load_user_arrays"]

VALIDATION_FRACTION = 0.2


def _as_images(array: np.ndarray, where: str) -> np.ndarray:
    if array.ndim == 3:
        array = array[:, None]
    if array.ndim != 4 or array.shape[1] != 1:
        raise DataFileError(f"{where}: expected images (N, H, W) or (N, 1, H, W), got {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataFileError(f"{where}: expected numbers, got dtype {array.dtype}")
    return array.astype(np.float32)


def _labels(array: np.ndarray | None, n: int, where: str) -> np.ndarray | None:
    if array is None:
        return None
    if array.shape != (n,):
        raise DataFileError(f"{where}: {array.shape[0] if array.ndim else 0} labels for {n} images")
    return array.astype(np.int64)


def load_user_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Train and validation images (and labels, when present) from a ``.npy`` / ``.npz`` file.

    Returns:
        ``train`` and ``valid`` float32 (N, 1, H, W), optional ``train_labels`` / ``valid_labels``.

    Raises:
        DataFileError: missing or unreadable file, wrong shapes, or labels that do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"npy:{path} does not exist; give the path of a .npy or .npz file")
    try:
        stored = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DataFileError(f"{path} is not a readable .npy/.npz file ({error})") from None
    if isinstance(stored, np.ndarray):
        contents = {"images": stored}
    else:
        with stored:
            contents = {key: stored[key] for key in stored.files}
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
