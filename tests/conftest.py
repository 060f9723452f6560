"""Shared fixtures: a private cache directory and small natural16 runs."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test caches processed data in one session-wide temporary folder, never in ~/.cache."""
    monkeypatch.setenv("PVAE_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "cache"))
