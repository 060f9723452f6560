"""Atomic writes and one-line JSON errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from poisson_vae.errors import ConfigError
from poisson_vae.files import read_json, write_atomic, write_json, write_text


def test_a_failed_write_keeps_the_previous_version_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "metrics.json"
    write_json(path, {"a": 1})

    def interrupted(temporary: Path) -> None:
        temporary.write_text('{"a": ')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_atomic(path, interrupted)
    assert read_json(path) == {"a": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_files_follow_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_parents_are_created(tmp_path: Path) -> None:
    write_json(tmp_path / "deep" / "er" / "x.json", [1])
    assert read_json(tmp_path / "deep" / "er" / "x.json") == [1]


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "does not exist"), ("{", "is not valid JSON"), (b"\xff\xfe", "is not valid JSON")],
)
def test_read_errors_name_the_file(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "x.json"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"{path} {message}"):
        read_json(path, ConfigError)
    with pytest.raises(ValueError, match="is a folder, not a JSON file"):
        read_json(tmp_path)
