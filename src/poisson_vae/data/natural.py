"""natural16: whitened 16 x 16 patches of twelve photographs bundled in scikit-image and scikit-learn.

The offline stand-in for van Hateren (docs/data.md). natural16-large adds the six photographs of
other maintained wheels (sporco, PyWavelets, matplotlib) and draws ten times the training patches,
so that a weakly regularised model cannot memorise them. Each image is converted to grey, standardised,
whitened with R(f) = f exp(-(f / f0)^4), contrast-normalised and cropped by 8 pixels. Every image is
cut into 32 x 32 tiles; every fifth tile in raster order is validation, and each patch lies inside
one tile, so no validation pixel appears in a training patch. Patches are drawn at random positions
(overlap allowed), each patch's mean is removed, and all patches are divided by the training set's
standard deviation, so a zero reconstruction has an SSE of about 256.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from .cache import cached_arrays
from .idx import DataFileError
from .whitening import local_contrast_normalise, standardise_patches, whiten

__all__ = [
    "LARGE_IMAGES",
    "LARGE_TRAIN",
    "NATURAL16_IMAGES",
    "PACKAGE_MODULES",
    "load_natural16",
    "natural16_images",
    "sample_patches",
]

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

#: natural16-large: natural16's photographs and these, read from the files of the packages that
#: ship them (none of the packages is imported).
LARGE_IMAGES = (
    *NATURAL16_IMAGES,
    ("kodim23", "sporco", "Kodak test image, released for unrestricted use"),
    ("monarch", "sporco", "Waterloo BragZone test image, free of copyright restrictions"),
    ("sail", "sporco", "Waterloo BragZone test image, free of copyright restrictions"),
    ("tulips", "sporco", "Waterloo BragZone test image, free of copyright restrictions"),
    ("ascent", "pywavelets", "public domain (public-domain-image.com)"),
    ("grace_hopper", "matplotlib", "public domain (U.S. Navy photograph)"),
)

#: natural16-large's default training patches (measured in docs/data.md: enough that a P-VAE at
#: beta = 0.01 does not memorise them).
LARGE_TRAIN = 200_000

#: The module each package of photographs is found as.
PACKAGE_MODULES = {
    "scikit-image": "skimage",
    "scikit-learn": "sklearn",
    "sporco": "sporco",
    "pywavelets": "pywt",
    "matplotlib": "matplotlib",
}

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


def _package_file(package: str, *parts: str) -> Path:
    """A file inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE_MODULES[package])
    if spec is None or not spec.submodule_search_locations:
        raise DataFileError(f"needs the {package} package (pip install {package})")
    return Path(next(iter(spec.submodule_search_locations)), *parts)


def _load_image(name: str, package: str = "scikit-image") -> np.ndarray:
    from PIL import Image

    if package == "sporco":
        return _grey(np.asarray(Image.open(_package_file(package, "data", f"{name}.png"))))
    if package == "pywavelets":
        with np.load(_package_file(package, "data", f"{name}.npz"), allow_pickle=False) as stored:
            return _grey(stored["data"])
    if package == "matplotlib":
        path = _package_file(package, "mpl-data", "sample_data", f"{name}.jpg")
        return _grey(np.asarray(Image.open(path)))
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return _grey(load_sample_image(f"{name}.jpg"))
    from skimage import data

    if name == "motorcycle_left":
        return _grey(data.stereo_motorcycle()[0])
    return _grey(getattr(data, name)())


def natural16_images(
    f0: float = 0.2, contrast_normalise: bool = True, images: Sequence[tuple] = NATURAL16_IMAGES
) -> list[np.ndarray]:
    """The photographs (natural16's twelve, or ``images``: (name, package, licence) rows),
    greyscale, standardised, whitened, normalised and cropped.

    Returns:
        list of (H_i, W_i) float64 images.
    """
    prepared = []
    for name, package, _ in images:
        image = _load_image(name, package)
        image = (image - image.mean()) / image.std()
        image = whiten(image, f0)
        if contrast_normalise:
            image = local_contrast_normalise(image)
        prepared.append(image[BORDER:-BORDER, BORDER:-BORDER])
    return prepared


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
    n_train: int,
    n_valid: int,
    seed: int,
    f0: float,
    contrast_normalise: bool,
    size: int,
    sources: Sequence[tuple],
) -> dict:
    images = natural16_images(f0, contrast_normalise, sources)
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
    large: bool = False,
) -> dict[str, np.ndarray]:
    """natural16 (or natural16-large) patches, built once per parameter set and then read from the
    cache.

    Args:
        n_train: training patches.
        n_valid: validation patches.
        seed: patch positions are a deterministic function of it.
        f0: whitening cut-off in cycles per pixel.
        contrast_normalise: apply local contrast normalisation.
        cache_dir: where processed arrays are cached (default: ``$PVAE_CACHE_DIR`` or the user
            cache directory).
        size: side of the square patches, at most the 32-pixel tile.
        large: natural16-large: the photographs of :data:`LARGE_IMAGES`.

    Returns:
        ``{"train": (n_train, 1, size, size), "valid": (n_valid, 1, size, size)}`` float32 arrays.
    """
    dataset, images = ("natural16-large", LARGE_IMAGES) if large else ("natural16", NATURAL16_IMAGES)
    for name, value in (("n_train", n_train), ("n_valid", n_valid)):
        if value < 1:
            raise ValueError(f"{dataset}: {name} must be a positive integer, got {value}")
    if not 0 < f0 <= 0.5:
        raise ValueError(f"{dataset}: f0 must lie in (0, 0.5] cycles/pixel, got {f0}")
    if not 2 <= size <= TILE:
        raise ConfigError(
            f"{dataset}: {{0}} must lie in [2, {TILE}] (one tile), got {size}", "patch_size"
        )
    packages = sorted({package for _, package, _ in images})
    parameters = {
        "dataset": dataset,
        "version": PIPELINE_VERSION,
        "images": [name for name, _, _ in images],
        # The photographs ship with these packages; a release may re-encode one.
        "sources": {package: version(package) for package in packages},
        "n_train": n_train,
        "n_valid": n_valid,
        "seed": seed,
        "f0": f0,
        "contrast_normalise": contrast_normalise,
        "size": size,
    }
    return cached_arrays(
        dataset,
        parameters,
        lambda: _build(n_train, n_valid, seed, f0, contrast_normalise, size, images),
        cache_dir,
    )
