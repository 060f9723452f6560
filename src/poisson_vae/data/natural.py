"""natural16: whitened 16 x 16 patches of twelve photographs bundled in scikit-image and scikit-learn.

The offline stand-in for van Hateren (docs/data.md). Each image is converted to grey, standardised,
whitened with R(f) = f exp(-(f / f0)^4), contrast-normalised and cropped by 8 pixels. Every image is
cut into 32 x 32 tiles; every fifth tile in raster order is validation, and each patch lies inside
one tile, so no validation pixel appears in a training patch. Patches are drawn at random positions
(overlap allowed), each patch's mean is removed, and all patches are divided by the training set's
standard deviation, so a zero reconstruction has an SSE of about 256.
"""

from __future__ import annotations

from importlib.metadata import version

import numpy as np

from ..errors import ConfigError
from .cache import cached_arrays
from .whitening import local_contrast_normalise, standardise_patches, whiten

__all__ = ["NATURAL16_IMAGES", "load_natural16", "natural16_images", "sample_patches"]

#: (name, package, licence) of the bundled photographs.
NATURAL16_IMAGES = (
    ("astronaut", "scikit-image", "public domain (NASA Great Images)"),
    ("brick", "scikit-image", "CC0 (CC0Textures)"),
    ("camera", "scikit-image", "CC0 (Lav Varshney)"),
    ("chelsea", "scikit-image", "CC0 (Stefan van der Walt)"),
    ("coffee", "scikit-image", "CC0 (Rachel Michetti)"),
    ("grass", "scikit-image", "CC0 (CC0Textures)"),
    ("gravel", "scikit-image", "CC0 (CC0Textures)"),
    ("moon", "scikit-image", "scikit-image sample data, no stated restriction"),
    ("rocket", "scikit-image", "public domain (SpaceX)"),
    ("motorcycle_left", "scikit-image", "Middlebury 2014 stereo benchmark (Scharstein et al.)"),
    ("china", "scikit-learn", "CC BY 2.0 (danielbuechele, Flickr)"),
    ("flower", "scikit-learn", "CC BY 2.0 (vultilion, Flickr)"),
)

PIPELINE_VERSION = 1
TILE = 32
BORDER = 8
VALIDATION_EVERY = 5


def _grey(image: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray

    image = np.asarray(image)
    if image.ndim == 3:
        return rgb2gray(image[..., :3]).astype(np.float64)
    return image.astype(np.float64) / 255.0


def _load_image(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return _grey(load_sample_image(f"{name}.jpg"))
    from skimage import data

    if name == "motorcycle_left":
        return _grey(data.stereo_motorcycle()[0])
    return _grey(getattr(data, name)())


def natural16_images(f0: float = 0.2, contrast_normalise: bool = True) -> list[np.ndarray]:
    """The twelve photographs, greyscale, standardised, whitened, normalised and cropped.

    Returns:
        list of (H_i, W_i) float64 images.
    """
    images = []
    for name, _, _ in NATURAL16_IMAGES:
        image = _load_image(name)
        image = (image - image.mean()) / image.std()
        image = whiten(image, f0)
        if contrast_normalise:
            image = local_contrast_normalise(image)
        images.append(image[BORDER:-BORDER, BORDER:-BORDER])
    return images


def _split_tiles(shape: tuple[int, int], validation: bool) -> np.ndarray:
    """(T, 2) top-left corners of the image's 32 x 32 tiles that belong to one split."""
    rows, cols = shape[0] // TILE, shape[1] // TILE
    index = np.arange(rows * cols)
    chosen = index[(index % VALIDATION_EVERY == VALIDATION_EVERY - 1) == validation]
    return np.stack([chosen // cols * TILE, chosen % cols * TILE], axis=1)


def sample_patches(
    images: list[np.ndarray],
    n_patches: int,
    validation: bool,
    rng: np.random.Generator,
    size: int = 16,
) -> np.ndarray:
    """Random ``size`` x ``size`` patches, each inside one tile of the requested split.

    Patches are spread over the images as equally as possible.

    Returns:
        (n_patches, size, size) float64, in image order.
    """
    per_image = np.full(len(images), n_patches // len(images))
    per_image[: n_patches % len(images)] += 1
    patches = []
    offsets = np.arange(size)
    for image, count in zip(images, per_image):
        tiles = _split_tiles(image.shape, validation)
        corners = tiles[rng.integers(len(tiles), size=count)] + rng.integers(
            TILE - size + 1, size=(count, 2)
        )
        rows = corners[:, 0, None, None] + offsets[None, :, None]
        cols = corners[:, 1, None, None] + offsets[None, None, :]
        patches.append(image[rows, cols])
    return np.concatenate(patches)


def _build(
    n_train: int, n_valid: int, seed: int, f0: float, contrast_normalise: bool, size: int
) -> dict:
    images = natural16_images(f0, contrast_normalise)
    splits = {}
    for key, count, validation in (("train", n_train, False), ("valid", n_valid, True)):
        rng = np.random.default_rng([seed, int(validation)])
        splits[key] = sample_patches(images, count, validation, rng, size)
    return standardise_patches(splits["train"], splits["valid"])


def load_natural16(
    n_train: int = 80_000,
    n_valid: int = 20_000,
    seed: int = 0,
    f0: float = 0.2,
    contrast_normalise: bool = True,
    cache_dir: str | None = None,
    size: int = 16,
) -> dict[str, np.ndarray]:
    """natural16 patches, built once per parameter set and then read from the cache.

    Args:
        n_train: training patches.
        n_valid: validation patches.
        seed: patch positions are a deterministic function of it.
        f0: whitening cut-off in cycles per pixel.
        contrast_normalise: apply local contrast normalisation.
        cache_dir: where processed arrays are cached (default: ``$PVAE_CACHE_DIR`` or the user
            cache directory).
        size: side of the square patches, at most the 32-pixel tile.

    Returns:
        ``{"train": (n_train, 1, size, size), "valid": (n_valid, 1, size, size)}`` float32 arrays.
    """
    for name, value in (("n_train", n_train), ("n_valid", n_valid)):
        if value < 1:
            raise ValueError(f"natural16: {name} must be a positive integer, got {value}")
    if not 0 < f0 <= 0.5:
        raise ValueError(f"natural16: f0 must lie in (0, 0.5] cycles/pixel, got {f0}")
    if not 2 <= size <= TILE:
        raise ConfigError(
            f"natural16: {{0}} must lie in [2, {TILE}] (one tile), got {size}", "patch_size"
        )
    parameters = {
        "dataset": "natural16",
        "version": PIPELINE_VERSION,
        "images": [name for name, _, _ in NATURAL16_IMAGES],
        # The photographs ship with these packages; a release may re-encode one.
        "sources": {package: version(package) for package in ("scikit-image", "scikit-learn")},
        "n_train": n_train,
        "n_valid": n_valid,
        "seed": seed,
        "f0": f0,
        "contrast_normalise": contrast_normalise,
        "size": size,
    }
    return cached_arrays(
        "natural16",
        parameters,
        lambda: _build(n_train, n_valid, seed, f0, contrast_normalise, size),
        cache_dir,
    )
