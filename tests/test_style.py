"""The tree is ruff-clean and ruff-formatted, and the version is defined once."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", [["check"], ["format", "--check"]])
def test_ruff(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "src", "tests", "benchmarks", "docs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_version_is_defined_once() -> None:
    """pyproject.toml reads it from the package; the citation file repeats it."""
    import poisson_vae

    pyproject = (ROOT / "pyproject.toml").read_text()  # (tomllib needs Python 3.11)
    project = pyproject.split("\n[project]\n")[1].split("\n[")[0]
    assert not re.search(r"^version\s*=", project, flags=re.MULTILINE)
    assert 'dynamic = ["version"]' in project
    assert 'version = { attr = "poisson_vae.__version__" }' in pyproject
    citation = (ROOT / "CITATION.cff").read_text()
    assert f"\nversion: {poisson_vae.__version__}\n" in citation
    assert f"## {poisson_vae.__version__.removesuffix('.dev0')}" in (ROOT / "CHANGELOG.md").read_text()
    assert (ROOT / "src" / "poisson_vae" / "py.typed").is_file()
