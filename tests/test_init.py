"""The package's import-time settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

_SHOW = (
    "import os, poisson_vae; print(os.environ.get('OMP_WAIT_POLICY'), os.environ.get('GOMP_SPINCOUNT'))"
)


def _imported_with(environment: dict[str, str]) -> list[str]:
    """OMP_WAIT_POLICY and GOMP_SPINCOUNT after importing the package in a fresh interpreter."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
    }
    result = subprocess.run(
        [sys.executable, "-c", _SHOW],
        env={**clean, **environment},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.split()


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, ["PASSIVE", "1000"]),  # torch's idle threads spin briefly, then sleep
        ({"GOMP_SPINCOUNT": "0"}, ["PASSIVE", "0"]),  # a spin count of the user's own is kept
        ({"OMP_WAIT_POLICY": "ACTIVE"}, ["ACTIVE", "None"]),  # a policy of the user's own: no spin count
    ],
)
def test_importing_sets_the_openmp_wait_policy_unless_the_user_did(
    environment: dict[str, str], expected: list[str]
) -> None:
    assert _imported_with(environment) == expected
