"""What iterative inference costs: one step of an iP-VAE against one amortised P-VAE pass.

On 16 x 16 patches (D = 256) with K = 512 latents and a trained model's rates (the dictionary's
columns at unit norm / 16, the state at log-rates ~ N(-1, 1)):

    amortised P-VAE forward       ``VAE`` (``lin|lin``), encode + exact Poisson draw + decode, no
                                  gradient, at ``--batch`` samples (the reference)
    iP-VAE inference step         one step of ``IterativeVAE.trajectory`` at evaluation (exact
                                  spikes for the update, a fresh draw decoded), no gradient
    iP-VAE, 1000 steps            ``convergence`` over the release's 1000 evaluation steps,
                                  with every per-step metric
    amortised P-VAE training step forward + backward + Adamax step at batch 200, temperature 0.05
    iP-VAE training step          the same over T = ``--steps`` unrolled steps at temperature 0.01

Each row in a fresh subprocess (the package imported before torch, as ``pvae`` does), warmed up,
median of ``--repeats``. Run: ``python benchmarks/iterative.py`` (``--json FILE`` keeps the figures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from machine import describe, package_first, run_worker

ROWS = (
    "amortised P-VAE forward",
    "iP-VAE inference step",
    "iP-VAE, 1000 inference steps",
    "amortised P-VAE training step (batch 200)",
    "iP-VAE training step (batch 200)",
)


def measure(row: int, batch: int, latents: int, steps: int, repeats: int) -> dict:
    package_first()
    import torch

    from poisson_vae.config import ModelConfig
    from poisson_vae.iterative import IterativeState, convergence
    from poisson_vae.vae import build_vae

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 256, generator=generator)
    amortised = build_vae(ModelConfig(n_latents=latents))
    iterative = build_vae(ModelConfig(n_latents=latents, inference="iterative", n_steps=steps))
    with torch.no_grad():
        iterative.dictionary.copy_(torch.randn(256, latents, generator=generator))
        iterative.dictionary.div_(16 * iterative.dictionary.norm(dim=0))
    state = IterativeState(torch.randn(batch, latents, generator=generator) - 1)
    small = x[:200]
    optimizer = torch.optim.Adamax([*amortised.parameters(), *iterative.parameters()], lr=1e-4)

    def train(loss: torch.Tensor) -> None:
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    runs = {
        0: lambda: amortised(x, temperature=0.0),
        1: lambda: iterative.step(x, state, temperature=0.0),
        2: lambda: convergence(iterative, x, 1000),
        3: lambda: train(amortised(small, temperature=0.05).loss(1.0)),
        4: lambda: train(iterative(small, steps, temperature=0.01).loss(24.0)),
    }
    run = runs[row]
    no_grad = row in (0, 1)
    with torch.set_grad_enabled(not no_grad):
        run()
        times = []
        for _ in range(1 if row == 2 else repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    return {"name": ROWS[row], "ms": 1000 * statistics.median(times), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--steps", type=int, default=16, help="T of the training step")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        figures = measure(args.worker, args.batch, args.latents, args.steps, args.repeats)
        print(json.dumps(figures))
        return
    flags = ["--batch", str(args.batch), "--latents", str(args.latents), "--steps", str(args.steps)]
    flags += ["--repeats", str(args.repeats)]
    results = [run_worker(__file__, ["--worker", str(row), *flags]) for row in range(len(ROWS))]
    forward, amortised_step = results[0]["ms"], results[3]["ms"]
    print(
        f"batch {args.batch} x {args.latents} latents, T = {args.steps}, median of {args.repeats} "
        f"(1000 steps: one run); {describe()}, torch {results[0]['torch']}\n"
    )
    print("| pass | ms | x amortised forward | x amortised training step |")
    print("|---|---|---|---|")
    for row in results:
        print(
            f"| {row['name']} | {row['ms']:.1f} | {row['ms'] / forward:.2f} | "
            f"{row['ms'] / amortised_step:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
