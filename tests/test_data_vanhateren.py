"""vanhateren16 from raw .iml files the tests write, the block split, and corrupt files."""

from __future__ import annotations

import numpy as np
import pytest

from poisson_vae.data import Preprocessing, load_dataset
from poisson_vae.data.idx import DataFileError
from poisson_vae.data.vanhateren import IMAGE_SHAPE, load_vanhateren16, validation_images


def write_images(folder, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        image = rng.integers(0, 4096, IMAGE_SHAPE).astype(">u2")
        suffix = ".iml" if index % 2 else ".imc"
        image.tofile(folder / f"imk{index:05d}{suffix}")


def test_raw_images_to_patches(tmp_path) -> None:
    write_images(tmp_path, 6)
    splits = load_vanhateren16(tmp_path, patches_per_image=100)
    # 6 images in min(100, 6) = 6 blocks, a fifth of them (1 block = 1 image) validates
    assert splits["train"].shape == (500, 1, 16, 16) and splits["valid"].shape == (100, 1, 16, 16)
    assert float(splits["train"].std()) == pytest.approx(1.0, rel=1e-4)
    again = load_vanhateren16(tmp_path, patches_per_image=100)
    assert np.array_equal(splits["valid"], again["valid"])


def test_split_is_by_contiguous_blocks_of_images() -> None:
    valid = validation_images(4167, seed=0)
    assert valid.mean() == pytest.approx(0.2, abs=0.01)
    block = np.arange(4167) * 100 // 4167
    for b in range(100):
        assert len(set(valid[block == b].tolist())) == 1
    assert not np.array_equal(valid, validation_images(4167, seed=1))


def test_truncated_image_is_named(tmp_path) -> None:
    write_images(tmp_path, 2)
    path = tmp_path / "imk00001.iml"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataFileError, match=r"imk00001.iml holds .* bytes"):
        load_vanhateren16(tmp_path, patches_per_image=10)


def test_missing_source_says_where_it_goes(tmp_path) -> None:
    with pytest.raises(DataFileError, match="pass data_dir pointing at"):
        load_dataset("vanhateren16")
    with pytest.raises(DataFileError, match="no .iml or .imc files"):
        load_dataset("vanhateren16", data_dir=str(tmp_path))


def test_registry_caches_the_patches(tmp_path) -> None:
    write_images(tmp_path / "raw", 3)
    first = load_dataset("vanhateren16", data_dir=str(tmp_path / "raw"), cache_dir=str(tmp_path / "c"))
    assert len(first["train"]) + len(first["valid"]) == 3 * 1344
    again = load_dataset("vanhateren16", data_dir=str(tmp_path / "raw"), cache_dir=str(tmp_path / "c"))
    assert np.array_equal(first["train"], again["train"])
    assert len(list((tmp_path / "c").glob("vanhateren16-*.npz"))) == 1


def test_preprocessing_options_reach_the_pipeline(tmp_path) -> None:
    write_images(tmp_path / "raw", 2)
    options = Preprocessing(whiten_f0=0.2, contrast_normalise=False, patch_size=8, patches_per_image=7)
    splits = load_dataset("vanhateren16", data_dir=str(tmp_path / "raw"), preprocessing=options)
    assert splits["train"].shape[1:] == (1, 8, 8)
    assert len(splits["train"]) + len(splits["valid"]) == 14


def test_blank_image_gives_blank_patches_not_nan(tmp_path) -> None:
    write_images(tmp_path, 6)
    np.zeros(IMAGE_SHAPE, ">u2").tofile(tmp_path / "imk00002.imc")
    splits = load_vanhateren16(tmp_path, patches_per_image=50)
    assert np.isfinite(splits["train"]).all() and np.isfinite(splits["valid"]).all()
    blank = np.flatnonzero(~splits["train"].any(axis=(1, 2, 3)))
    assert len(blank) == 50  # exactly the blank image's patches (image 2 trains with seed 0)
    assert float(splits["train"].std()) == pytest.approx(1.0, rel=1e-4)


def test_only_blank_images_are_refused(tmp_path) -> None:
    tmp_path.mkdir(exist_ok=True)
    for index in range(3):
        np.zeros(IMAGE_SHAPE, ">u2").tofile(tmp_path / f"imk{index:05d}.iml")
    with pytest.raises(ValueError, match="training patches are constant"):
        load_dataset(
            "vanhateren16", data_dir=str(tmp_path), preprocessing=Preprocessing(patches_per_image=5)
        )
