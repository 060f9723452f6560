"""The documentation cannot rot: the README's and the docs pages' Python examples run, the
tutorials execute, and the site builds with ``mkdocs build --strict`` (a broken link, a missing
page or a docstring mkdocstrings cannot read fails)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md"))]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.py"))
DOCS_EXTRA = all(importlib.util.find_spec(name) for name in ("mkdocs", "jupytext", "nbclient"))
NEEDS_DOCS = pytest.mark.skipif(
    not DOCS_EXTRA, reason="the docs extra is not installed (pip install -e '.[docs]')"
)


def examples() -> list[tuple[str, str]]:
    """(page:index, code) of every ```python block of the README and the docs pages."""
    found = []
    for page in PAGES:
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.DOTALL)
        found += [(f"{page.relative_to(ROOT)}:{index}", code) for index, code in enumerate(blocks)]
    return found


def test_the_readme_and_the_guide_have_python_examples() -> None:
    pages = {name.split(":")[0] for name, _ in examples()}
    assert {"README.md", "docs/python.md", "docs/sparse-coding.md"} <= pages


@pytest.mark.parametrize(("name", "code"), examples(), ids=[name for name, _ in examples()])
def test_example_runs(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    exec(compile(code, name, "exec"), {})


def test_the_readme_stays_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 170


@NEEDS_DOCS
@pytest.mark.parametrize("path", TUTORIALS, ids=[path.stem for path in TUTORIALS])
def test_tutorial_executes(path: Path, tmp_path: Path) -> None:
    """Each tutorial runs top to bottom in a fresh kernel, in a scratch folder, without errors."""
    import jupytext
    from nbclient import NotebookClient

    notebook = jupytext.read(path)
    NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert any(output.get("output_type") == "display_data" for output in outputs)  # its figures


def test_every_tutorial_is_in_the_site() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    assert TUTORIALS and all(f"tutorials/{path.name}" in config for path in TUTORIALS)


@NEEDS_DOCS
def test_the_site_builds_strictly(tmp_path: Path) -> None:
    """Every page, link, anchor and API reference resolves (the tutorials are executed by the test
    above; here they are rendered without running them again)."""
    environment = os.environ | {"PVAE_DOCS_EXECUTE": "false", "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    reference = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "pvae sparse-coding train" in reference and "--n-latents" in reference  # generated
    distributions = (tmp_path / "site" / "api" / "distributions" / "index.html").read_text()
    models = (tmp_path / "site" / "api" / "models" / "index.html").read_text()
    assert "RelaxedPoisson" in distributions and "load_pretrained" in models
