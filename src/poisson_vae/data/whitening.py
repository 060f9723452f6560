"""Whitening and local contrast normalisation of natural images (docs/data.md)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = [
    "local_contrast_normalise",
    "prepare_image",
    "random_patches",
    "standardise_patches",
    "whiten",
]


def whiten(image: np.ndarray, f0: float) -> np.ndarray:
    """Flatten the 1/f amplitude spectrum with R(f) = f exp(-(f / f0)^4) (Olshausen & Field).

    Args:
        image: (H, W) greyscale image.
        f0: cut-off of the low-pass part, in cycles per pixel.

    Returns:
        (H, W) float64 whitened image.
    """
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    frequency = np.hypot(fx, fy)
    response = frequency * np.exp(-((frequency / f0) ** 4))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * response))


def _contrast_kernel(size: int = 13, width: float = 0.5) -> np.ndarray:
    grid = np.linspace(-1.0, 1.0, size)
    kernel = np.exp(-(grid[:, None] ** 2 + grid[None, :] ** 2) / width)
    return kernel / kernel.sum()


def _is_blank(image: np.ndarray) -> bool:
    """Whether every pixel has the same value (exactly, so no rounding noise counts as contrast)."""
    return image.size == 0 or bool(image.max() == image.min())


def local_contrast_normalise(image: np.ndarray) -> np.ndarray:
    """Subtract the local mean and divide by the local standard deviation.

    The window is a Gaussian exp(-r^2 / 0.5) sampled on a 13 x 13 grid spanning [-1, 1]; the local
    standard deviation is floored at its image-wide mean, so flat regions are not blown up. A blank
    (constant) image has no contrast to normalise and gives zeros, not 0 / 0.

    Args:
        image: (H, W) image.

    Returns:
        (H, W) float64 normalised image.
    """
    image = np.asarray(image, dtype=np.float64)
    if _is_blank(image):
        return np.zeros_like(image)
    kernel = _contrast_kernel()
    centred = image - ndimage.convolve(image, kernel, mode="reflect")
    local_std = np.sqrt(ndimage.convolve(centred**2, kernel, mode="reflect"))
    floor = local_std.mean()
    if not floor > 0:  # no contrast left after the local mean (rounding or underflow): blank
        return np.zeros_like(centred)
    return centred / np.maximum(local_std, floor)


def standardise_patches(train: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """Remove each patch's mean and divide both splits by the training set's standard deviation.

    A zero reconstruction of a training patch then has an SSE of about the number of pixels.

    Args:
        train: (N, H, W) patches.
        valid: (M, H, W) patches.

    Returns:
        ``{"train": (N, 1, H, W), "valid": (M, 1, H, W)}`` float32.

    Raises:
        ValueError: every training patch is constant (blank or flat images), so there is no scale.
    """
    centred = {
        key: p - p.mean(axis=(1, 2), keepdims=True) for key, p in (("train", train), ("valid", valid))
    }
    scale = centred["train"].std()
    # no spread beyond the rounding of the patch means (1e-10 of the values): nothing to scale
    if not scale > 1e-10 * np.abs(train).max(initial=0.0):
        raise ValueError(
            f"all {len(train)} training patches are constant (the images are blank or flat), so "
            "there is nothing to standardise or learn: check the source images"
        )
    return {key: (value / scale).astype(np.float32)[:, None] for key, value in centred.items()}


def prepare_image(
    image: np.ndarray, f0: float | None, contrast_normalise: bool, border: int = 0
) -> np.ndarray:
    """The image pipeline of docs/data.md: standardise, whiten, contrast-normalise, z-score, crop.

    Args:
        image: (H, W).
        f0: whitening cut-off in cycles/pixel, or None for no whitening.
        contrast_normalise: apply :func:`local_contrast_normalise`.
        border: pixels dropped on every side.

    Returns:
        (H - 2 border, W - 2 border) float64; zeros for a blank (constant) image.
    """
    image = np.asarray(image, dtype=np.float64)
    if _is_blank(image):  # nothing to whiten or normalise; its patches are zeros
        return np.zeros((image.shape[0] - 2 * border, image.shape[1] - 2 * border))
    image = (image - image.mean()) / max(image.std(), 1e-12)
    if f0 is not None:
        image = whiten(image, f0)
    if contrast_normalise:
        image = local_contrast_normalise(image)
    image = (image - image.mean()) / max(image.std(), 1e-12)
    return image[border : image.shape[0] - border, border : image.shape[1] - border]


def random_patches(image: np.ndarray, count: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` random ``size`` x ``size`` patches of an (H, W) image: (count, size, size).

    Raises:
        ValueError: the image is smaller than a patch.
    """
    height, width = image.shape
    if height < size or width < size:
        raise ValueError(f"images of {height} x {width} pixels are smaller than a {size} x {size} patch")
    corners = rng.integers(0, [height - size + 1, width - size + 1], (count, 2))
    offsets = np.arange(size)
    rows = corners[:, 0, None, None] + offsets[None, :, None]
    cols = corners[:, 1, None, None] + offsets[None, None, :]
    return image[rows, cols]
