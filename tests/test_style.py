"""The tree is ruff-clean and ruff-formatted, and the README's Python examples run."""

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
        [sys.executable, "-m", "ruff", *command, "src", "tests", "benchmarks"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_has_python_examples() -> None:
    assert readme_examples()


@pytest.mark.parametrize("index", range(len(readme_examples())))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(readme_examples()[index], f"README.md example {index}", "exec"), {})


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
