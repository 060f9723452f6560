"""vanhateren16: whitened 16 x 16 patches of van Hateren's natural images, from the raw files.

The raw images (van Hateren & van der Schaaf 1998) are 1536 x 1024 pixels of 16-bit big-endian
integers, ``.iml`` (linearised) or ``.imc`` (calibrated). Pipeline (docs/data.md): each image
standardised, whitened with R(f) = f exp(-(f / f0)^4) (f0 = 0.4 cycles/pixel: these images are
calibrated), contrast-normalised as natural16, z-scored, cropped by 8 pixels; 1344 random 16 x 16
patches per image (the release's count); the images, in file-name order, are cut into 100
contiguous blocks and a seeded fifth of the blocks validate, so neighbouring images never straddle
the split. Patches are standardised as natural16's (each patch's mean removed, all divided by the
training std).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import braces
from .idx import DataFileError
from .whitening import prepare_image, random_patches, standardise_patches

__all__ = ["IMAGE_SHAPE", "load_vanhateren16", "read_vanhateren_image", "vanhateren_files"]

IMAGE_SHAPE = (1024, 1536)
BORDER = 8
HOW_TO_GET = (
    "pass {0} pointing at a folder of van Hateren's raw images (imk*.iml or imk*.imc, "
    "1536 x 1024, 16-bit big-endian), available from the van Hateren natural image database mirrors"
)


def vanhateren_files(data_dir: str | Path | None) -> list[Path]:
    """The ``.iml`` / ``.imc`` files of ``data_dir``, sorted by name."""
    if data_dir is None:
        raise DataFileError(f"vanhateren16 needs the raw images: {HOW_TO_GET}", "data_dir")
    folder = Path(data_dir)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".iml", ".imc"))
    if not files:
        raise DataFileError(
            f"vanhateren16: no .iml or .imc files in {braces(str(folder))}; {HOW_TO_GET}", "data_dir"
        )
    return files


def read_vanhateren_image(path: str | Path) -> np.ndarray:
    """One raw image as (1024, 1536) float64.

    Raises:
        DataFileError: the file does not hold exactly 1536 x 1024 16-bit pixels.
    """
    path = Path(path)
    expected = IMAGE_SHAPE[0] * IMAGE_SHAPE[1] * 2
    size = path.stat().st_size
    if size != expected:
        raise DataFileError(
            f"{path} holds {size} bytes, not the {expected} of a 1536 x 1024 16-bit image: corrupt"
        )
    return np.fromfile(path, dtype=">u2").reshape(IMAGE_SHAPE).astype(np.float64)


def validation_images(
    n_images: int, seed: int, n_blocks: int = 100, fraction: float = 0.2
) -> np.ndarray:
    """Boolean (n_images,): which images validate (whole contiguous blocks, a seeded ``fraction``)."""
    n_blocks = min(n_blocks, n_images)
    block = np.arange(n_images) * n_blocks // n_images
    n_valid_blocks = max(1, round(fraction * n_blocks))
    chosen = np.random.default_rng([seed, 2]).choice(n_blocks, size=n_valid_blocks, replace=False)
    if n_valid_blocks >= n_blocks:
        raise DataFileError(f"vanhateren16: {n_images} images are too few to split by blocks")
    return np.isin(block, chosen)


def load_vanhateren16(
    data_dir: str | Path | None,
    patches_per_image: int = 1344,
    seed: int = 0,
    f0: float = 0.4,
    contrast_normalise: bool = True,
    size: int = 16,
) -> dict[str, np.ndarray]:
    """Train and validation patches of the raw van Hateren images in ``data_dir``.

    Returns:
        ``{"train": (N, 1, 16, 16), "valid": (M, 1, 16, 16)}`` float32.
    """
    files = vanhateren_files(data_dir)
    is_valid = validation_images(len(files), seed)
    rng = np.random.default_rng([seed, 3])
    patches: dict[bool, list[np.ndarray]] = {False: [], True: []}
    for path, validation in zip(files, is_valid):
        image = prepare_image(read_vanhateren_image(path), f0, contrast_normalise, BORDER)
        patches[bool(validation)].append(random_patches(image, patches_per_image, size, rng))
    return standardise_patches(np.concatenate(patches[False]), np.concatenate(patches[True]))
