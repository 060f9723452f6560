"""Relaxed-Poisson sampler: time and memory of one forward + backward pass, against Algorithm 1.

Each (path, temperature) runs in a fresh subprocess: it imports, warms up on a 1 x K input, records
its peak resident memory as the baseline, runs one full-size forward + backward and reports the rise
of peak resident memory over that baseline, then times ``--repeats`` more passes (median reported).

Paths:
    dense    the release's Algorithm 1, arrivals = Poisson 1 - 1e-5 quantile of the largest rate
    torch    RelaxedPoisson.rsample (per-element truncation, O(batch x latents) memory)
    poisson  torch.poisson on the same rates: a hard draw with no gradient, the practical floor

Run: ``python benchmarks/sampler.py`` (add ``--json FILE`` to keep the raw figures).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

PATHS = ("dense", "torch", "poisson")
TEMPERATURES = (1.0, 0.1, 0.05)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: str, temperature: float, batch: int, latents: int, repeats: int) -> dict:
    """Run one path in this process and return its figures."""
    import torch

    from poisson_vae import RelaxedPoisson
    from poisson_vae.reference import algorithm_1_dense, release_arrival_count

    generator = torch.Generator().manual_seed(0)
    log_rate = torch.randn(batch, latents, generator=generator) - 1

    def one_pass(values: torch.Tensor) -> None:
        leaf = values.clone().requires_grad_(path != "poisson")
        rate = leaf.exp()
        if path == "dense":
            algorithm_1_dense(rate, temperature).sum().backward()
        elif path == "torch":
            RelaxedPoisson(rate, temperature).rsample().sum().backward()
        else:
            torch.poisson(rate)

    one_pass(log_rate[:1])
    baseline = _peak_mb()
    one_pass(log_rate)
    memory = _peak_mb() - baseline
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        one_pass(log_rate)
        times.append(time.perf_counter() - start)
    return {
        "path": path,
        "temperature": temperature,
        "ms": 1000 * statistics.median(times),
        "peak_rise_mb": memory,
        "arrivals": release_arrival_count(log_rate.exp()) if path == "dense" else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "TEMPERATURE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        path, temperature = args.worker
        print(json.dumps(measure(path, float(temperature), args.batch, args.latents, args.repeats)))
        return
    rows = []
    for temperature in TEMPERATURES:
        for path in PATHS:
            command = [sys.executable, __file__, "--worker", path, str(temperature)]
            command += ["--batch", str(args.batch), "--latents", str(args.latents)]
            command += ["--repeats", str(args.repeats)]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), file=sys.stderr)
    machine = (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {rows[0]['torch']}"
    )
    print(f"batch {args.batch} x {args.latents} latents, log-rates ~ N(-1, 1); {machine}")
    print(
        f"forward + backward, median of {args.repeats}; memory = rise of peak RSS over a 1 x K warm-up\n"
    )
    print("| temperature | path | ms | peak rise (MB) | speed-up vs dense | memory vs dense |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        dense = next(r for r in rows if r["path"] == "dense" and r["temperature"] == row["temperature"])
        speed = dense["ms"] / row["ms"]
        memory = dense["peak_rise_mb"] / max(row["peak_rise_mb"], 0.1)
        name = row["path"] + (f" ({row['arrivals']} arrivals)" if row["arrivals"] else "")
        print(
            f"| {row['temperature']} | {name} | {row['ms']:.1f} | {row['peak_rise_mb']:.0f} "
            f"| {speed:.1f}x | {memory:.0f}x |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
