"""What every benchmark needs of the machine it runs on: its name, peak memory, a busy neighbour.

Imported by the scripts beside it (``python benchmarks/NAME.py`` puts this folder on the path).
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def cpu_model() -> str:
    """The CPU's model name (``platform.processor()`` is empty on most Linux systems)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> str:
    """The CPU model and core count, for a table's heading."""
    return f"{cpu_model()}, {os.cpu_count()} cores"


def verdict(met: bool) -> str:
    """How a benchmark reports a target: ``met`` or ``NOT met``."""
    return "met" if met else "NOT met"


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (MB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def competitor(on: bool = True) -> Iterator[None]:
    """One other CPU-bound process (a Python busy loop) on the machine while the block runs."""
    if not on:
        yield
        return
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        process.kill()
        process.wait()


def package_first() -> None:
    """Import the package before torch, as ``pvae`` does, so that its process defaults apply
    (idle OpenMP threads sleep, ``OMP_WAIT_POLICY=PASSIVE``, unless the environment says otherwise).
    Called first by every worker, never by the parent (whose peak memory the workers inherit)."""
    import poisson_vae  # noqa: F401


def run_worker(script: str, arguments: list[str]) -> dict:
    """Run ``python SCRIPT ARGUMENTS`` in a fresh process and return the JSON of its last line of
    output (echoed to stderr as it arrives): one benchmark row measured in a process of its own."""
    import json

    command = [sys.executable, script, *arguments]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    figures = json.loads(output.strip().splitlines()[-1])
    print(json.dumps(figures), file=sys.stderr)
    return figures
