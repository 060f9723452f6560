"""Shared fixtures: a private cache directory and small natural16 runs.

Without a GPU, Triton kernels run in Triton's CPU interpreter, so that the GPU sampler is tested
everywhere; the variable must be set before the kernels are defined (at import).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import lightning  # noqa: F401  (its log handler binds to the session's stderr, not to one test's)
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test caches processed data in one session-wide temporary folder, never in ~/.cache."""
    monkeypatch.setenv("PVAE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Run a test with one torch thread, restoring the count after it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
