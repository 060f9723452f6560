"""Files written atomically and JSON read with one-line errors: the package's only file helpers.

A reader never sees half a file: everything is written to a temporary file beside its final name
and renamed into place (a rename within one folder is atomic on POSIX file systems, local or
networked), so a process killed while writing leaves the previous version or none. Temporary
files are created with the process's umask, as every other file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["read_json", "temporary_name", "write_atomic", "write_json", "write_text"]


def temporary_name(path: Path) -> Path:
    """A name beside ``path`` for writing it (hidden, and unique to this process)."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary)`` to write a file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(path)
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:  # on disk before it replaces the old version
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # some writers (safetensors) create files 0600
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, content: str) -> None:
    """Write ``content`` to ``path`` atomically."""
    write_atomic(path, lambda temporary: temporary.write_text(content))


def write_json(path: str | Path, document: Any) -> None:
    """Write ``document`` as indented JSON to ``path`` atomically."""
    write_text(path, json.dumps(document, indent=2) + "\n")


def read_json(path: str | Path, error: Callable[[str], Exception] = ValueError) -> Any:
    """The JSON document in ``path``; ``error(message)`` in one line naming the file when it is
    missing, unreadable or not JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise error(f"{path} does not exist") from None
    except IsADirectoryError:
        raise error(f"{path} is a folder, not a JSON file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as problem:
        raise error(f"{path} is not valid JSON ({problem}); fix or re-create it") from None
    except OSError as problem:
        raise error(f"cannot read {path}: {problem.strerror}") from None
