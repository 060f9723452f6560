"""cifar16 from a small CIFAR-10-shaped tarball or folder the tests write, and corrupt variants."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest

from poisson_vae.data import load_dataset
from poisson_vae.data.cifar import FOLDER, TARBALL, TEST_BATCH, TRAIN_BATCHES, load_cifar16
from poisson_vae.data.idx import DataFileError


def batches(per_batch: int = 4, seed: int = 0) -> dict[str, bytes]:
    rng = np.random.default_rng(seed)
    out = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
        }
        out[name] = pickle.dumps(batch)
    return out


def write_tarball(folder, contents: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / TARBALL, "w:gz") as archive:
        for name, raw in contents.items():
            info = tarfile.TarInfo(f"{FOLDER}/{name}")
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))


def test_tarball_to_patches(tmp_path) -> None:
    write_tarball(tmp_path, batches())
    splits = load_cifar16(tmp_path)
    assert splits["train"].shape == (20, 1, 16, 16) and splits["valid"].shape == (4, 1, 16, 16)
    assert splits["train_labels"].shape == (20,) and splits["valid_labels"].dtype == np.int64
    assert float(splits["train"].std()) == pytest.approx(1.0, rel=1e-4)


def test_extracted_folder_gives_the_same_patches(tmp_path) -> None:
    contents = batches()
    write_tarball(tmp_path / "tar", contents)
    (tmp_path / "dir" / FOLDER).mkdir(parents=True)
    for name, raw in contents.items():
        (tmp_path / "dir" / FOLDER / name).write_bytes(raw)
    from_tar = load_dataset("cifar16", data_dir=str(tmp_path / "tar"))
    from_dir = load_dataset("cifar16", data_dir=str(tmp_path / "dir"))
    assert np.array_equal(from_tar["train"], from_dir["train"])


def test_corrupt_tarball_is_named(tmp_path) -> None:
    (tmp_path / TARBALL).write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataFileError, match=f"{TARBALL} is not a readable tarball"):
        load_cifar16(tmp_path)


def test_missing_batch_and_bad_pickle(tmp_path) -> None:
    contents = batches()
    del contents["data_batch_3"]
    write_tarball(tmp_path / "a", contents)
    with pytest.raises(DataFileError, match="has no data_batch_3"):
        load_cifar16(tmp_path / "a")
    contents = batches()
    contents[TEST_BATCH] = b"not a pickle"
    write_tarball(tmp_path / "b", contents)
    with pytest.raises(DataFileError, match="test_batch is not a CIFAR-10 batch"):
        load_cifar16(tmp_path / "b")


def test_missing_source_says_where_to_get_it(tmp_path) -> None:
    with pytest.raises(DataFileError, match="cs.toronto.edu"):
        load_dataset("cifar16", data_dir=str(tmp_path))


@pytest.mark.parametrize("form", ["tarball", "folder"])
def test_a_crafted_batch_runs_no_code(tmp_path, form: str) -> None:
    import builtins

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (builtins.open, (str(marker), "w"))

    contents = batches()
    contents[TEST_BATCH] = pickle.dumps({b"data": Exploit(), b"labels": [1]})
    if form == "tarball":
        write_tarball(tmp_path / "data", contents)
    else:
        (tmp_path / "data" / FOLDER).mkdir(parents=True)
        for name, raw in contents.items():
            (tmp_path / "data" / FOLDER / name).write_bytes(raw)
    with pytest.raises(DataFileError, match="refused to load .*open"):
        load_cifar16(tmp_path / "data")
    assert not marker.exists()


def test_an_array_of_python_objects_is_refused(tmp_path) -> None:
    contents = batches()
    contents[TEST_BATCH] = pickle.dumps({b"data": np.array([b"x", 1], dtype=object), b"labels": [1, 2]})
    write_tarball(tmp_path, contents)
    with pytest.raises(DataFileError, match="Python objects"):
        load_cifar16(tmp_path)


def test_a_python2_style_batch_loads(tmp_path) -> None:
    # The real batches were pickled by Python 2 (protocol 2) with numpy.core.multiarray names.
    contents = batches()
    for name, raw in contents.items():
        batch = pickle.loads(raw)
        contents[name] = pickle.dumps(batch, protocol=2).replace(b"numpy._core", b"numpy.core")
    write_tarball(tmp_path, contents)
    assert load_cifar16(tmp_path)["train"].shape == (20, 1, 16, 16)
