"""A cache of processed arrays, keyed by a fingerprint of everything that made them."""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import platformdirs

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


def cached_arrays(
    name: str,
    parameters: dict,
    build: Callable[[], dict[str, np.ndarray]],
    directory: str | os.PathLike | None = None,
) -> dict[str, np.ndarray]:
    """Load ``name``'s arrays for ``parameters`` from the cache, or build and cache them.

    The file is written under a temporary name and renamed into place, so an interrupted build
    never leaves a half-written entry; an unreadable entry is rebuilt.
    """
    folder = cache_dir(directory)
    path = folder / f"{name}-{fingerprint(parameters)}.npz"
    if path.is_file():
        try:
            with np.load(path) as stored:
                return {key: stored[key] for key in stored.files}
        except (OSError, ValueError, EOFError) as error:
            warnings.warn(f"rebuilding unreadable cache entry {path} ({error})", stacklevel=2)
    arrays = build()
    folder.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(f".{os.getpid()}.tmp.npz")
    try:
        np.savez(temporary, **arrays)
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)
    (folder / f"{path.stem}.json").write_text(json.dumps(parameters, indent=2, default=str) + "\n")
    return arrays
