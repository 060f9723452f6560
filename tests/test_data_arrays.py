"""User arrays (--data npy:PATH) on small files the tests write, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from poisson_vae.data import Preprocessing, dataset_availability, load_dataset
from poisson_vae.data.arrays import load_user_arrays
from poisson_vae.data.idx import DataFileError


def test_npy_images_split_last_fifth_for_validation(tmp_path) -> None:
    images = np.random.default_rng(0).normal(size=(50, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    splits = load_user_arrays(tmp_path / "x.npy")
    assert splits["train"].shape == (40, 1, 8, 8) and splits["valid"].shape == (10, 1, 8, 8)
    assert np.array_equal(splits["valid"][:, 0], images[40:])


def test_npz_with_named_splits_and_labels(tmp_path) -> None:
    rng = np.random.default_rng(1)
    np.savez(
        tmp_path / "d.npz",
        train=rng.normal(size=(30, 1, 6, 6)),
        valid=rng.normal(size=(12, 1, 6, 6)),
        train_labels=rng.integers(0, 3, 30),
        valid_labels=rng.integers(0, 3, 12),
    )
    splits = load_dataset(f"npy:{tmp_path / 'd.npz'}")
    assert splits["train"].shape == (30, 1, 6, 6) and splits["valid_labels"].shape == (12,)
    assert splits["train"].dtype == np.float32


def test_npz_images_and_labels(tmp_path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 4, 4)), y=np.arange(20))
    splits = load_user_arrays(tmp_path / "d.npz")
    assert splits["train_labels"].tolist() == list(range(16))


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        ({"x": np.zeros((20, 2, 4, 4))}, r"expected images \(N, H, W\) or \(N, 1, H, W\)"),
        ({"x": np.zeros((20, 4, 4)), "y": np.arange(19)}, "19 labels for 20 images"),
        ({"pixels": np.zeros((20, 4, 4))}, "expected 'train' and 'valid', or 'images'"),
        ({"x": np.zeros((1, 4, 4))}, "too few to split"),
    ],
)
def test_bad_user_arrays_are_refused(tmp_path, contents: dict, message: str) -> None:
    np.savez(tmp_path / "d.npz", **contents)
    with pytest.raises(DataFileError, match=message):
        load_user_arrays(tmp_path / "d.npz")


@pytest.mark.parametrize(
    "preprocessing",
    [None, Preprocessing(whiten_f0=0.3, contrast_normalise=True, patch_size=4, patches_per_image=3)],
)
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_in_user_arrays_is_refused_before_preprocessing(
    tmp_path, preprocessing: Preprocessing | None, value: float
) -> None:
    """The count is of the user's values, not of the patches a NaN spreads into."""
    images = np.random.default_rng(0).normal(size=(10, 8, 8))
    images[3, 1, 1] = value
    np.save(tmp_path / "x.npy", images)
    with pytest.raises(DataFileError, match=r"x.npy\[images\]: 1 values are NaN or infinite"):
        load_dataset(f"npy:{tmp_path / 'x.npy'}", preprocessing=preprocessing)


def test_values_beyond_float32_are_refused(tmp_path) -> None:
    np.save(tmp_path / "x.npy", np.full((10, 4, 4), 1e300))
    with pytest.raises(DataFileError, match="160 values exceed the float32 range"):
        load_user_arrays(tmp_path / "x.npy")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (np.arange(20).reshape(20, 1), r"labels must be a 1-D array of 20 values, got shape \(20, 1\)"),
        (np.zeros((20, 3)), r"got shape \(20, 3\)"),
        (np.full(20, 0.5), r"20 labels are not whole numbers \(e.g. 0.5\)"),
        (np.where(np.arange(20) == 7, np.nan, 1.0), "1 labels are NaN or infinite"),
        (np.array(["a"] * 20), "labels must be whole numbers, got dtype <U1"),
    ],
)
def test_labels_must_be_one_whole_number_per_image(tmp_path, labels: np.ndarray, message: str) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 4, 4)), y=labels)
    with pytest.raises(DataFileError, match=message) as caught:
        load_user_arrays(tmp_path / "d.npz")
    assert "\n" not in str(caught.value) and r"d.npz[y]" in str(caught.value)


def test_whole_float_labels_become_integers(tmp_path) -> None:
    np.savez(tmp_path / "d.npz", x=np.zeros((20, 4, 4)), y=np.arange(20.0))
    splits = load_user_arrays(tmp_path / "d.npz")
    assert splits["train_labels"].dtype == np.int64
    assert splits["valid_labels"].tolist() == [16, 17, 18, 19]


def test_a_folder_is_not_a_file(tmp_path) -> None:
    (tmp_path / "adir.npy").mkdir()
    with pytest.raises(DataFileError, match="adir.npy is a folder, not a file"):
        load_user_arrays(tmp_path / "adir.npy")
    reason = dataset_availability(f"npy:{tmp_path / 'adir.npy'}")
    assert reason is not None and "is a folder, not a file" in str(reason)
    assert "does not exist" in str(dataset_availability(f"npy:{tmp_path / 'absent.npy'}"))


def _corrupt(raw: bytes, how: str) -> bytes:
    if how == "truncated":
        return raw[: len(raw) // 2]
    flipped = bytearray(raw)
    flipped[len(raw) // 2] ^= 0xFF  # inside the (only) member's data
    return bytes(flipped)


@pytest.mark.parametrize(
    ("how", "compressed"),
    [("truncated", False), ("truncated", True), ("flipped", False), ("flipped", True)],
)
def test_corrupt_npz_is_a_one_line_error_naming_the_file(tmp_path, how: str, compressed: bool) -> None:
    """Truncated files, bad CRCs and corrupt deflate streams surface when the members are read."""
    images = np.random.default_rng(0).normal(size=(50, 8, 8))
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "d.npz", images=images)
    path = tmp_path / "d.npz"
    path.write_bytes(_corrupt(path.read_bytes(), how))
    with pytest.raises(DataFileError, match="d.npz is not a readable .npy/.npz file") as caught:
        load_dataset(f"npy:{path}")
    assert "\n" not in str(caught.value)


def test_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        load_user_arrays(tmp_path / "absent.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(DataFileError, match="bad.npy is not a readable"):
        load_user_arrays(tmp_path / "bad.npy")
