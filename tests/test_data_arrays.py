"""User arrays (--data npy:PATH) on small files the tests write, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from poisson_vae.data import load_dataset
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


def test_nan_in_user_arrays_is_refused(tmp_path) -> None:
    images = np.zeros((10, 4, 4))
    images[3, 1, 1] = np.nan
    np.save(tmp_path / "x.npy", images)
    with pytest.raises(ValueError, match="1 values are NaN"):
        load_dataset(f"npy:{tmp_path / 'x.npy'}")


def test_missing_and_corrupt_files(tmp_path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        load_user_arrays(tmp_path / "absent.npy")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    with pytest.raises(DataFileError, match="bad.npy is not a readable"):
        load_user_arrays(tmp_path / "bad.npy")
