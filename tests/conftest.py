"""Shared fixtures: a private cache directory and small natural16 runs.

Without a GPU, Triton kernels run in Triton's CPU interpreter, so that the GPU sampler is tested
everywhere; the variable must be set before the kernels are defined (at import).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import torch

if not torch.cuda.is_available():  # before anything imports triton (lightning may)
    os.environ.setdefault("TRITON_INTERPRET", "1")

import lightning  # noqa: F401  (its log handler binds to the session's stderr, not to one test's)
import pytest
from matplotlib.figure import Figure


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test caches processed data in one session-wide temporary folder, never in ~/.cache."""
    monkeypatch.setenv("PVAE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(autouse=True)
def _ctrl_c_left_alone() -> Iterator[None]:
    """Each test finds SIGINT's handler as the session had it. A test that leaves Ctrl+C ignored
    (Lightning ignores SIGINT once it has caught one) fails: every process the worker starts
    afterwards would inherit the ignored signal. (A suite started in the background by a
    non-interactive shell starts with SIGINT ignored, which is the shell's choice, not a test's.)"""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        if after == signal.SIG_IGN:
            pytest.fail("the test left SIGINT ignored (Ctrl+C) for the rest of the session")


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test with one torch thread, restoring the count after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> dict[Path, Figure]:
    """The figures the package saves during a test, by path (as the caller named it): tests read
    the data a figure plots from its artists rather than from pixels."""
    from poisson_vae import figures

    saved: dict[Path, Figure] = {}
    save = figures._save

    def record(figure: Figure, path: str | Path, dpi: int = 100) -> Path:
        saved[Path(path)] = figure
        return save(figure, path, dpi)

    monkeypatch.setattr(figures, "_save", record)
    return saved
