"""How the fused sampler's cost grows: time and memory over latents, batch size and mean rate.

One axis at a time around the benchmark's usual point (batch 1000 x 512 latents, log-rates
~ N(log(mean rate) - 1/2, 1), so that the rates average ``mean rate``; 0.61 is what a trained model
gives): latents K in 128..4096, batch in 100..10000, mean rate in 0.1..50. Each point runs in a
fresh subprocess: warm-up, then one forward + backward pass for the rise of peak resident memory,
then the median time of ``--repeats`` passes.

``arrivals`` is the expected number of arrivals the kernel walks per element, worked out from the
stopping rule (the sigmoid, truncated: an element stops at its first arrival past
``rate (1 + 40 T)`` or at its own truncation ``n``; estimated on up to 200,000 of the rates). The
release's dense Algorithm 1 instead walks ``n_max x B x K`` arrivals, ``n_max`` the truncation of
the largest rate; it is timed where that tensor stays under ``--dense-limit`` elements.

Run: ``python benchmarks/scaling.py`` (``--json FILE`` keeps the raw figures).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time

import numpy as np
from machine import describe, package_first, peak_rss_mb

BASE = {"latents": 512, "batch": 1000, "mean_rate": 0.61}
AXES = {
    "latents": (128, 512, 1024, 4096),
    "batch": (100, 1000, 10_000),
    "mean_rate": (0.1, 1.0, 5.0, 50.0),
}


def _log_rates(batch: int, latents: int, mean_rate: float):
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randn(batch, latents, generator=generator) + math.log(mean_rate) - 0.5


def expected_arrivals(rate, temperature: float) -> float:
    """Mean arrivals walked per element by the truncated sigmoid walk (see the module docstring):
    ``min(n, 1 + P)`` with ``P ~ Poisson(rate (1 + 40 T))`` the arrivals before the cutoff,
    averaged over one draw of ``P`` for each of up to 200,000 rates."""
    import torch

    from poisson_vae.distributions import poisson_quantile

    rate = rate.reshape(-1)[:200_000].double()
    before_cutoff = torch.poisson(rate * (1 + 40 * temperature), torch.Generator().manual_seed(1))
    return float(torch.minimum(poisson_quantile(rate).double(), 1 + before_cutoff).mean())


def measure(
    latents: int, batch: int, mean_rate: float, temperature: float, repeats: int, dense_limit: float
) -> dict:
    """One point, in this process."""
    package_first()
    import torch

    from poisson_vae import RelaxedPoisson
    from poisson_vae.reference import algorithm_1_dense, release_arrival_count

    log_rate = _log_rates(batch, latents, mean_rate)

    def fused(values: torch.Tensor) -> None:
        leaf = values.clone().requires_grad_()
        RelaxedPoisson(leaf.exp(), temperature, backend="fused").rsample().sum().backward()

    def dense(values: torch.Tensor) -> None:
        leaf = values.clone().requires_grad_()
        algorithm_1_dense(leaf.exp(), temperature).sum().backward()

    fused(log_rate[:2])
    baseline = peak_rss_mb()
    fused(log_rate)
    memory = peak_rss_mb() - baseline
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fused(log_rate)
        times.append(time.perf_counter() - start)
    n_max = release_arrival_count(log_rate.exp())
    dense_ms = None
    if n_max * batch * latents <= dense_limit:
        dense(log_rate)
        start = time.perf_counter()
        dense(log_rate)
        dense_ms = 1000 * (time.perf_counter() - start)
    return {
        "latents": latents,
        "batch": batch,
        "mean_rate": mean_rate,
        "temperature": temperature,
        "ms": 1000 * statistics.median(times),
        "peak_rise_mb": memory,
        "arrivals": expected_arrivals(log_rate.exp(), temperature),
        "dense_arrivals": n_max,
        "dense_ms": dense_ms,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dense-limit", type=float, default=1e8, help="largest dense tensor timed")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", nargs=3, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        latents, batch, mean_rate = args.worker
        row = measure(
            int(latents), int(batch), mean_rate, args.temperature, args.repeats, args.dense_limit
        )
        print(json.dumps(row))
        return
    points = []
    for axis, values in AXES.items():
        points += [BASE | {axis: value} for value in values if BASE | {axis: value} not in points]
    rows = []
    for point in points:
        command = [sys.executable, __file__, "--worker"]
        command += [str(point["latents"]), str(point["batch"]), str(point["mean_rate"])]
        command += ["--temperature", str(args.temperature), "--repeats", str(args.repeats)]
        command += ["--dense-limit", str(args.dense_limit)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    print(
        f"fused sampler, forward + backward at temperature {args.temperature}, median of "
        f"{args.repeats}; {describe()}, {rows[0]['threads']} threads, torch {rows[0]['torch']}\n"
    )
    print(
        "| latents | batch | mean rate | arrivals / element | ms | ns / element "
        "| ns / arrival | peak rise (MB) | bytes / element | dense n_max | dense ms |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    per_element_memory = []
    for row in rows:
        elements = row["batch"] * row["latents"]
        per_arrival = 1e6 * row["ms"] / (elements * row["arrivals"])
        memory = 2**20 * row["peak_rise_mb"] / elements
        if elements >= 500_000:  # below, the rise is within the allocator's granularity
            per_element_memory.append(memory)
        dense = f"{row['dense_ms']:.0f}" if row["dense_ms"] is not None else "too large"
        print(
            f"| {row['latents']} | {row['batch']} | {row['mean_rate']} | {row['arrivals']:.2f} "
            f"| {row['ms']:.2f} | {1e6 * row['ms'] / elements:.1f} | {per_arrival:.1f} "
            f"| {row['peak_rise_mb']:.0f} | {memory:.0f} | {row['dense_arrivals']} | {dense} |"
        )
    # time = a x elements + b x arrivals walked, by least squares over the grid
    design = np.array(
        [[r["batch"] * r["latents"], r["batch"] * r["latents"] * r["arrivals"]] for r in rows]
    )
    times = np.array([1e6 * r["ms"] for r in rows])  # ns
    (per_element, per_walked), *_ = np.linalg.lstsq(
        design / times[:, None], np.ones(len(rows)), rcond=None
    )
    residual = np.abs(design @ [per_element, per_walked] / times - 1).max()
    print(
        f"\ntime ~ {per_element:.1f} ns x elements + {per_walked:.1f} ns x arrivals walked "
        f"(fit by relative least squares; worst point off by {100 * residual:.0f} %); bytes per "
        f"element (points of >= 500,000 elements): {min(per_element_memory):.0f} to "
        f"{max(per_element_memory):.0f}"
    )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
