"""Reader of the IDX format (the MNIST family's files), gzipped or raw."""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import FieldError

__all__ = ["DataFileError", "read_idx"]

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataFileError(FieldError):
    """A data file is missing, truncated or not in the expected format (its message may name
    fields, such as ``data_dir``; see :class:`~poisson_vae.errors.FieldError`)."""


def error_summary(error: BaseException) -> str:
    """``Type: first line of the message`` of an exception, for one-line errors and warnings.

    Lower-case type names (``zlib.error``) keep their module, so that they still say something.
    """
    kind = type(error).__name__
    if kind.islower():
        kind = f"{type(error).__module__}.{kind}"
    lines = str(error).splitlines()
    return f"{kind}: {lines[0]}" if lines and lines[0] else kind


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or raw) into an array of its stored shape and type.

    Raises:
        DataFileError: the file is missing, is not valid gzip (truncated or corrupt compressed
            data), has a bad magic number, or holds the wrong byte count.
    """
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"{path} does not exist")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:  # gzip.BadGzipFile is an OSError
        raise DataFileError(
            f"{path} is not a readable gzip file ({error_summary(error)}); "
            "it is truncated or corrupt: fetch it again"
        ) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataFileError(f"{path} is not an IDX file (bad magic number {raw[:4].hex()})")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    if len(raw) < header:
        raise DataFileError(f"{path} is truncated inside its header")
    shape = struct.unpack(f">{n_dims}I", raw[4:header])
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        raise DataFileError(
            f"{path} holds {len(raw)} bytes but its header {shape} needs {expected}: truncated/corrupt"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
