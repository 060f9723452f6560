"""Every Poisson gradient estimator's cost: one forward + backward pass at batch 1000 x 512 latents.

The loss is a linear decoder's squared error, f(z) = ||x - Phi z||^2 with x (1000, 256) and Phi
(256, 512) random, rates with log-rates ~ N(-1, 1) (a trained model's), one
``estimator.loss(rate, f, temperature).sum().backward()`` per pass, at the final temperature 0.05.
``mvd`` runs twice: through the ``SquaredError``'s closed form (one matrix product) and through a
plain function of z (K + 1 = 513 evaluations of f). References measured in the same run:
``torch.poisson`` on the same rates and one training step of a ``lin|lin`` G-VAE (as in
``benchmarks/sampler.py``). Each row in a fresh subprocess, warmed up, median of ``--repeats``.

Run: ``python benchmarks/estimators.py`` (``--json FILE`` keeps the raw figures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from machine import describe, package_first, run_worker

#: (row name, estimator name, options, whether f is the closed-form SquaredError)
ROWS = (
    ("eat sigmoid", "eat", {"indicator": "sigmoid"}, True),
    ("eat cubic", "eat", {"indicator": "cubic"}, True),
    ("eat sigmoid, straight-through", "eat", {"straight_through": True}, True),
    ("gsm (harness support)", "gsm", {}, True),
    ("score, S = 8, leave-one-out", "score", {"n_samples": 8}, True),
    ("vargrad, S = 8", "vargrad", {"n_samples": 8}, True),
    ("mvd, closed form", "mvd", {}, True),
    ("mvd, any f (K + 1 evaluations)", "mvd", {}, False),
    ("exact", "exact", {}, True),
)


def measure(row: int, batch: int, latents: int, temperature: float, repeats: int) -> dict:
    package_first()
    import torch

    from poisson_vae.gradients import SquaredError, make_estimator

    generator = torch.Generator().manual_seed(0)
    log_rate = torch.randn(batch, latents, generator=generator) - 1
    x = torch.randn(batch, 256, generator=generator)
    dictionary = torch.randn(256, latents, generator=generator) / 16
    closed = SquaredError(x, dictionary)
    if row < 0:  # the references
        from sampler import gvae_step  # this folder is on the path

        step = gvae_step(latents, "cpu")
        rate = log_rate.exp()
        run = (lambda: torch.poisson(rate)) if row == -1 else (lambda: step(batch))
        name = "torch.poisson (no gradient)" if row == -1 else "G-VAE lin|lin training step"
    else:
        name, estimator_name, options, closed_form = ROWS[row]
        estimator = make_estimator(estimator_name, **options)
        f = closed if closed_form else (lambda z: closed(z))

        def run() -> None:
            leaf = log_rate.clone().requires_grad_()
            loss, _ = estimator.loss(leaf.exp(), f, temperature)
            loss.sum().backward()

    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"name": name, "ms": 1000 * statistics.median(times), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--temperature", type=float, default=0.05)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        figures = measure(args.worker, args.batch, args.latents, args.temperature, args.repeats)
        print(json.dumps(figures))
        return
    flags = ["--batch", str(args.batch), "--latents", str(args.latents)]
    flags += ["--temperature", str(args.temperature), "--repeats", str(args.repeats)]
    results = [
        run_worker(__file__, ["--worker", str(row), *flags]) for row in (-1, -2, *range(len(ROWS)))
    ]
    poisson, step = results[0]["ms"], results[1]["ms"]
    print(
        f"forward + backward, batch {args.batch} x {args.latents} latents, temperature "
        f"{args.temperature}, median of {args.repeats}; {describe()}, torch {results[0]['torch']}\n"
    )
    print("| estimator | ms | x torch.poisson | x G-VAE step |")
    print("|---|---|---|---|")
    for row in results:
        print(
            f"| {row['name']} | {row['ms']:.1f} | {row['ms'] / poisson:.2f} | {row['ms'] / step:.2f} |"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
