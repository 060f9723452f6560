"""Dataset preparation: building the processed arrays against loading them from the cache.

For each bundled dataset, ``--repeats`` builds into a fresh cache folder and as many loads of the
cached arrays; medians reported. Run: ``python benchmarks/data_cache.py``.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from poisson_vae.data import load_dataset


def timed_load(name: str, cache_dir: str) -> float:
    start = time.perf_counter()
    load_dataset(name, cache_dir=cache_dir)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("| dataset | build (s) | cached load (s) | speed-up |")
    print("|---|---|---|---|")
    for name in ("natural16", "mnist"):
        builds, loads = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as folder:
                builds.append(timed_load(name, folder))
                loads.append(timed_load(name, folder))
        build, load = statistics.median(builds), statistics.median(loads)
        print(f"| {name} | {build:.2f} | {load:.3f} | {build / load:.0f}x |")


if __name__ == "__main__":
    main()
