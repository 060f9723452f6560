"""Shared fixtures: a private cache directory and small natural16 runs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


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
