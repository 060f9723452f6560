"""Whitening and local contrast normalisation of natural images (SPEC 3)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["local_contrast_normalise", "standardise_patches", "whiten"]


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


def local_contrast_normalise(image: np.ndarray) -> np.ndarray:
    """Subtract the local mean and divide by the local standard deviation.

    The window is a Gaussian exp(-r^2 / 0.5) sampled on a 13 x 13 grid spanning [-1, 1]; the local
    standard deviation is floored at its image-wide mean, so flat regions are not blown up.

    Args:
        image: (H, W) image.

    Returns:
        (H, W) float64 normalised image.
    """
    kernel = _contrast_kernel()
    centred = image - ndimage.convolve(image, kernel, mode="reflect")
    local_std = np.sqrt(ndimage.convolve(centred**2, kernel, mode="reflect"))
    return centred / np.maximum(local_std, local_std.mean())


def standardise_patches(train: np.ndarray, valid: np.ndarray) -> dict[str, np.ndarray]:
    """Remove each patch's mean and divide both splits by the training set's standard deviation.

    A zero reconstruction of a training patch then has an SSE of about the number of pixels.

    Args:
        train: (N, H, W) patches.
        valid: (M, H, W) patches.

    Returns:
        ``{"train": (N, 1, H, W), "valid": (M, 1, H, W)}`` float32.
    """
    centred = {
        key: p - p.mean(axis=(1, 2), keepdims=True) for key, p in (("train", train), ("valid", valid))
    }
    scale = centred["train"].std()
    return {key: (value / scale).astype(np.float32)[:, None] for key, value in centred.items()}
