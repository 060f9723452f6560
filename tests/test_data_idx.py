"""The IDX reader on synthetic files, and its errors on corrupt ones."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from idx_files import idx_bytes, write_idx

from poisson_vae.data.idx import DataFileError, read_idx


@pytest.mark.parametrize("compress", [True, False])
def test_round_trip(tmp_path, compress: bool) -> None:
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / ("x.gz" if compress else "x"), images, compress)
    assert np.array_equal(read_idx(path), images)


def test_missing_file(tmp_path) -> None:
    with pytest.raises(DataFileError, match="does not exist"):
        read_idx(tmp_path / "absent")


def test_bad_magic(tmp_path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + bytes(8))
    with pytest.raises(DataFileError, match="bad magic number"):
        read_idx(path)


def test_truncated_file(tmp_path) -> None:
    path = tmp_path / "short"
    path.write_bytes(idx_bytes(np.zeros((10, 5), np.uint8))[:-3])
    with pytest.raises(DataFileError, match="short holds .* bytes"):
        read_idx(path)


def test_unreadable_gzip(tmp_path) -> None:
    path = tmp_path / "broken.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(4, np.uint8)))[:-6])
    with pytest.raises(DataFileError, match="broken.gz is not a readable gzip file"):
        read_idx(path)


@pytest.mark.parametrize("offset", [10, 12, 20])
def test_corrupt_compressed_data_is_named(tmp_path, offset: int) -> None:
    """A damaged deflate stream (zlib.error) is a one-line error, like a truncated file."""
    path = tmp_path / "train-images-idx3-ubyte.gz"
    images = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    raw = bytearray(gzip.compress(idx_bytes(images)))
    raw[offset] = 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(
        DataFileError, match="train-images-idx3-ubyte.gz is not a readable gzip"
    ) as caught:
        read_idx(path)
    assert "\n" not in str(caught.value)
