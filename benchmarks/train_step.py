"""Training-step cost of every latent family: time and memory of one optimiser step.

One step = forward, loss (beta = 1), backward, gradient-norm clipping and an Adamax step, on a
batch of random 16x16 inputs, for a ``lin|lin`` VAE with 512 latents at batch 1000 (and, with
``--conv``, the ``conv+b|lin`` networks). The encoder is scaled so that the posterior parameters are
those of a trained model, not of the initialisation: Poisson log-rates ~ N(-1, 1) (prior log-rate -1,
residuals ~ N(0, 1)); the other families' encoder outputs ~ N(0, 1). Every timed step starts from
the same parameters, so the rates do not drift while it is measured.

Each (family, method, network, temperature) runs in a fresh subprocess: it builds the model, warms
up on a batch of 2, records its peak resident memory, takes one full-size step and reports the rise of
peak memory over that baseline, then times ``--repeats`` more steps (median reported).

Run: ``python benchmarks/train_step.py`` (one JSON line per row on stdout, a Markdown table on
stderr); ``--conv`` adds the ``conv+b|lin`` rows.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from machine import describe, package_first, peak_rss_mb, verdict

FAMILIES = ("poisson", "gaussian", "gaussian-relu", "gaussian-exp", "laplace", "categorical")
TEMPERATURES = (1.0, 0.05)
#: The P-VAE step's time over the G-VAE step's, at most (the `lin|lin` networks, quiet machine).
TARGET = 1.5
EXTRA_METHODS = (("poisson", "exact"), ("poisson", "straight-through"))


def measure(
    family: str, method: str, arch: str, temperature: float, batch: int, latents: int, repeats: int
) -> dict:
    """Time one training step of one configuration in this process."""
    package_first()
    import torch

    from poisson_vae import ModelConfig, build_vae

    torch.manual_seed(0)
    model = build_vae(ModelConfig(latent=family, arch=arch, n_latents=latents, method=method))
    x = torch.randn(batch, 1, 16, 16)
    with torch.no_grad():
        # Rescale the encoder's last linear map so that its outputs have unit spread on x.
        outputs = model.encoder(x[:256])
        last = model.encoder.linear
        last.weight.div_(outputs.std())
        if family == "poisson":
            model.latent.prior_log_rate.fill_(-1.0)
    start_state = {key: value.clone() for key, value in model.state_dict().items()}
    optimizer = torch.optim.Adamax(model.parameters(), lr=5e-3, betas=(0.9, 0.999), eps=1e-8)

    def step(inputs: torch.Tensor) -> None:
        loss = model(inputs, temperature=temperature, method=method).loss(beta=1.0)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 500.0)
        optimizer.step()

    step(x[:1])
    step(x[:2])  # compiles the fused kernel's multi-thread path too
    model.load_state_dict(start_state)
    baseline = peak_rss_mb()
    step(x)
    memory = peak_rss_mb() - baseline
    times = []
    for _ in range(repeats):
        model.load_state_dict(start_state)
        start = time.perf_counter()
        step(x)
        times.append(time.perf_counter() - start)
    with torch.no_grad():
        code = model.encode(x[:256])
        spread = code.params.std().item()
        centre = code.params.mean().item()
    return {
        "family": family,
        "method": method,
        "arch": arch,
        "temperature": temperature,
        "ms_per_step": 1000 * statistics.median(times),
        "peak_mb": memory,
        "posterior_param_mean": centre,
        "posterior_param_std": spread,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def _rows(conv: bool, families: list[str]) -> list[tuple[str, str, str, float]]:
    rows = []
    for temperature in TEMPERATURES:
        rows += [(family, "mc", "lin|lin", temperature) for family in families]
        rows += [
            (family, method, "lin|lin", temperature)
            for family, method in EXTRA_METHODS
            if family in families
        ]
        if conv:
            rows += [
                (family, "mc", "conv+b|lin", temperature)
                for family in ("poisson", "gaussian")
                if family in families
            ]
    return rows


def _table(results: list[dict], args: argparse.Namespace) -> str:
    machine = describe()
    lines = [
        f"batch {args.batch}, {args.latents} latents, 16x16 inputs; {machine}, "
        f"torch {results[0]['torch']}; median of {args.repeats} steps",
        "",
        "| network | family | method | temperature | ms / step | peak rise (MB) | x G-VAE step |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in results:
        reference = next(
            r["ms_per_step"]
            for r in results
            if (r["family"], r["arch"], r["temperature"])
            == ("gaussian", row["arch"], row["temperature"])
        )
        lines.append(
            f"| `{row['arch']}` | {row['family']} | {row['method']} | {row['temperature']} "
            f"| {row['ms_per_step']:.1f} | {row['peak_mb']:.0f} | {row['ms_per_step'] / reference:.2f} |"
        )
    lines.append("")
    steps = {(r["family"], r["method"], r["arch"], r["temperature"]): r["ms_per_step"] for r in results}
    for temperature in TEMPERATURES:
        pvae = steps.get(("poisson", "mc", "lin|lin", temperature))
        gvae = steps.get(("gaussian", "mc", "lin|lin", temperature))
        if pvae is not None and gvae is not None:
            ratio = pvae / gvae
            lines.append(
                f"target: lin|lin P-VAE step <= {TARGET} x G-VAE step at temperature {temperature}: "
                f"{ratio:.2f}x, {verdict(ratio <= TARGET)}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--conv", action="store_true", help="add conv+b|lin rows (slow on a CPU)")
    parser.add_argument(
        "--families",
        nargs="+",
        choices=FAMILIES,
        default=list(FAMILIES),
        help="latent families to time (the G-VAE is always timed: it is the reference)",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        family, method, arch, temperature = args.worker
        result = measure(
            family, method, arch, float(temperature), args.batch, args.latents, args.repeats
        )
        print(json.dumps(result))
        return
    results = []
    families = [family for family in FAMILIES if family in {*args.families, "gaussian"}]
    for family, method, arch, temperature in _rows(args.conv, families):
        command = [sys.executable, __file__, "--worker", family, method, arch, str(temperature)]
        command += ["--batch", str(args.batch), "--latents", str(args.latents)]
        repeats = max(3, args.repeats // 3) if arch.startswith("conv") else args.repeats
        command += ["--repeats", str(repeats)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results.append(json.loads(output.strip().splitlines()[-1]))
        print(json.dumps(results[-1]), flush=True)
    print(_table(results, args), file=sys.stderr)


if __name__ == "__main__":
    main()
