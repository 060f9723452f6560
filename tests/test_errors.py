"""Field-named errors: one language for the library, translated to flags by the CLI alone."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from poisson_vae.errors import ConfigError, FieldError, braces

SOURCE = Path(__file__).resolve().parents[1] / "src" / "poisson_vae"
FLAG = re.compile(r"--[a-z][a-z-]*")


def _raised_strings() -> list[tuple[str, int, str]]:
    """(file, line, text) of every string literal inside a ``raise`` of the library (not the CLI)."""
    found = []
    for path in sorted(SOURCE.rglob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for inner in ast.walk(node.exc):
                    if isinstance(inner, ast.Constant) and isinstance(inner.value, str):
                        found.append((path.name, node.lineno, inner.value))
    return found


def test_no_library_error_names_a_command_line_flag() -> None:
    offending = [
        f"{name}:{line}: {text!r}"
        for name, line, text in _raised_strings()
        if FLAG.search(text) and "pip install --" not in text
    ]
    assert not offending, "\n".join(offending)


def test_an_error_names_fields_in_each_language() -> None:
    error = ConfigError(f"{{0}} {braces('{a}')} needs {{1}}", "patch_size", "data_dir")
    assert str(error) == "patch_size {a} needs data_dir"
    flags = error.render(lambda section, name: "--" + name.replace("_", "-"))
    assert flags == "--patch-size {a} needs --data-dir"
    assert str(error.in_section("data")) == "data.patch_size {a} needs data.data_dir"
    wrapped = error.within("suite x (", ")")
    assert isinstance(wrapped, ConfigError) and str(wrapped) == "suite x (patch_size {a} needs data_dir)"
    plain = FieldError("no fields {here}")
    assert str(plain) == "no fields {here}" and str(plain.within("a: ")) == "a: no fields {here}"


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["--version"]])
def test_the_command_line_starts_without_lightning_or_numba(argv: list[str]) -> None:
    script = (
        "import sys\n"
        "import poisson_vae.cli as cli\n"
        "parser = cli.build_parser()\n"
        f"try:\n    parser.parse_args({argv!r})\n"
        "except SystemExit:\n    pass\n"
        "loaded = [name for name in ('lightning', 'numba') if name in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_missing_extra_is_named_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from poisson_vae.errors import MissingExtraError, require_extra

    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(
        MissingExtraError, match=r"^executor slurm needs submitit, which the 'slurm' extra"
    ):
        require_extra("submitit", "slurm", "executor slurm")
    assert require_extra("json", "none", "anything").dumps([1]) == "[1]"
