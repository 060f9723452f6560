"""A cache of processed arrays, keyed by a fingerprint of everything that made them."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable, Collection
from pathlib import Path

import numpy as np
import platformdirs

from ..files import write_atomic, write_text
from .idx import error_summary

__all__ = ["cache_dir", "cached_arrays", "fingerprint"]

CACHE_ENV = "PVAE_CACHE_DIR"


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where processed arrays go: ``override``, else ``$PVAE_CACHE_DIR``, else the user cache dir."""
    chosen = override or os.environ.get(CACHE_ENV) or platformdirs.user_cache_dir("poisson-vae")
    return Path(chosen).expanduser()


def fingerprint(parameters: dict) -> str:
    """A short stable hash of a JSON-serialisable dict of parameters."""
    text = json.dumps(parameters, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _read_entry(path: Path, required: Collection[str]) -> dict[str, np.ndarray]:
    """The arrays of a cache entry, all read (so a bad CRC or truncated member shows here).

    Raises:
        ValueError: an expected array is missing from the entry.
        Exception: whatever the file's corruption makes numpy or zipfile raise.
    """
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in stored.files}
    missing = sorted(set(required) - set(arrays))
    if missing:
        raise ValueError(f"it lacks {missing}")
    return arrays


def cached_arrays(
    name: str,
    parameters: dict,
    build: Callable[[], dict[str, np.ndarray]],
    directory: str | os.PathLike | None = None,
    required: Collection[str] = ("train", "valid"),
) -> dict[str, np.ndarray]:
    """Load ``name``'s arrays for ``parameters`` from the cache, or build and cache them.

    The file is written under a temporary name and renamed into place, so an interrupted build
    never leaves a half-written entry. An entry that cannot be read (truncated, corrupt, lacking one
    of the ``required`` arrays) is rebuilt with a warning; one that is a folder is rebuilt with a
    warning and left alone, so the arrays are not cached until it is removed.
    """
    folder = cache_dir(directory)
    path = folder / f"{name}-{fingerprint(parameters)}.npz"
    if path.is_file():
        try:
            return _read_entry(path, required)
        except Exception as error:  # any corruption of the entry: rebuild it, as promised
            warnings.warn(
                f"rebuilding unreadable cache entry {path} ({error_summary(error)})", stacklevel=2
            )
    elif path.exists():
        warnings.warn(
            f"rebuilding {name}: cache entry {path} is not a file; remove it to cache the arrays",
            stacklevel=2,
        )
        return build()
    arrays = build()
    folder.mkdir(parents=True, exist_ok=True)

    def save(temporary: Path) -> None:
        with open(temporary, "wb") as handle:  # a file object: np.savez adds no suffix
            np.savez(handle, **arrays)

    write_atomic(path, save)
    write_text(folder / f"{path.stem}.json", json.dumps(parameters, indent=2, default=str) + "\n")
    return arrays
