"""Relaxed-Poisson sampler: time and memory of one forward + backward pass, against Algorithm 1.

Each (path, temperature) runs in a fresh subprocess: it imports, warms up on a 1 x K input, records
its peak memory as the baseline, runs one full-size forward + backward and reports the rise of peak
memory over that baseline, then times ``--repeats`` more passes (median reported). Memory is the
process's resident memory on the CPU and torch's allocated memory on CUDA.

Paths:
    dense      the release's Algorithm 1, arrivals = Poisson 1 - 1e-5 quantile of the largest rate
    torch      RelaxedPoisson.rsample(backend="torch"): the vectorised walk, O(batch x latents) memory
    fused      (CPU) RelaxedPoisson.rsample(backend="fused"): the numba per-element kernel
    triton     (CUDA) RelaxedPoisson.rsample(backend="triton"): the Triton per-element kernel
    poisson    torch.poisson on the same rates: a hard draw with no gradient, the practical floor
    gvae_step  one training step of a lin|lin G-VAE (batch x 16x16 inputs -> latents): forward, loss,
               backward, gradient clipping and an Adamax step; what a sampler call is measured against

Run: ``python benchmarks/sampler.py`` (``--device cuda`` on a GPU; ``--json FILE`` keeps the raw
figures). It ends with the targets: the fused kernel within 1.5 ``torch.poisson`` draws at
temperature 1 and within one at 0.05.

``--contention`` measures what a busy machine does instead: ``fused`` and ``poisson`` each quiet and
then beside one competing CPU-bound process (a Python busy loop the benchmark starts), and, in the
sampler's process, a ``torch.poisson`` draw after every sampler pass (whether the sampler's threads
get in the way of what runs after them). Targets: the sampler at most 2x its quiet time, and
``torch.poisson`` beside it as fast as in a process of its own under the same load.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

from machine import competitor, describe, package_first, peak_rss_mb, verdict

#: The paths measured on each device; the compiled kernel is ``fused`` on the CPU, ``triton`` on CUDA.
PATHS = {
    "cpu": ("dense", "torch", "fused", "poisson", "gvae_step"),
    "cuda": ("dense", "torch", "triton", "poisson", "gvae_step"),
}
TEMPERATURES = (1.0, 0.1, 0.05)
#: The fused kernel's time over torch.poisson's, at most, per temperature (quiet machine).
TARGETS = {1.0: 1.5, 0.05: 1.0}
#: Under one competing process: the sampler's time over its quiet time, at most; torch.poisson
#: beside the sampler over torch.poisson in a process of its own (same load), at most (noise).
CONTENTION_TARGETS = {"sampler": 2.0, "poisson": 1.15}


def _peak_mb(device: str) -> float:
    """Peak memory so far: resident memory of the process, or torch's allocations on CUDA."""
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return peak_rss_mb()


def gvae_step(latents: int, device: str, pixels: int = 256):
    """A lin|lin G-VAE training step on random data, as a function of the batch size."""
    import torch

    encoder = torch.nn.Linear(pixels, 2 * latents, bias=False, device=device)
    decoder = torch.nn.Linear(latents, pixels, bias=False, device=device)
    parameters = [*encoder.parameters(), *decoder.parameters()]
    optimizer = torch.optim.Adamax(parameters, lr=5e-3)

    def step(batch: int) -> None:
        x = torch.randn(batch, pixels, device=device)
        mean, log_scale = encoder(x).chunk(2, dim=1)
        log_scale = 5.3 * torch.tanh(log_scale / 5.3)
        z = mean + log_scale.exp() * torch.randn_like(mean)
        kl = 0.5 * (mean.pow(2) + (2 * log_scale).exp() - 1 - 2 * log_scale).sum(1)
        loss = ((x - decoder(z)).pow(2).sum(1) + kl).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 500.0)
        optimizer.step()

    return step


def measure(
    path: str,
    temperature: float,
    batch: int,
    latents: int,
    repeats: int,
    device: str,
    beside_poisson: bool = False,
) -> dict:
    """Run one path in this process and return its figures."""
    package_first()
    import torch

    from poisson_vae import RelaxedPoisson
    from poisson_vae.reference import algorithm_1_dense, release_arrival_count

    generator = torch.Generator().manual_seed(0)
    log_rate = (torch.randn(batch, latents, generator=generator) - 1).to(device)
    reference_step = gvae_step(latents, device) if path == "gvae_step" else None
    synchronize = torch.cuda.synchronize if device == "cuda" else lambda: None

    def one_pass(values: torch.Tensor) -> None:
        if reference_step is not None:
            reference_step(values.shape[0])
            return
        leaf = values.clone().requires_grad_(path != "poisson")
        rate = leaf.exp()
        if path == "dense":
            algorithm_1_dense(rate, temperature).sum().backward()
        elif path in ("torch", "fused", "triton"):
            RelaxedPoisson(rate, temperature, backend=path).rsample().sum().backward()
        else:
            torch.poisson(rate)

    one_pass(log_rate[:1])
    one_pass(log_rate[:2])  # compiles the fused kernel's two-thread path too
    synchronize()
    baseline = _peak_mb(device)
    one_pass(log_rate)
    synchronize()
    memory = _peak_mb(device) - baseline
    times, poisson_times = [], []
    rate = log_rate.exp()
    for _ in range(repeats):
        start = time.perf_counter()
        one_pass(log_rate)
        synchronize()
        times.append(time.perf_counter() - start)
        if beside_poisson:  # right after the sampler: do its threads slow torch down?
            start = time.perf_counter()
            torch.poisson(rate)
            synchronize()
            poisson_times.append(time.perf_counter() - start)
    return {
        "path": path,
        "temperature": temperature,
        "ms": 1000 * statistics.median(times),
        "poisson_beside_ms": 1000 * statistics.median(poisson_times) if beside_poisson else None,
        "peak_rise_mb": memory,
        "arrivals": release_arrival_count(log_rate.exp()) if path == "dense" else None,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--latents", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--device", choices=sorted(PATHS), default="cpu")
    parser.add_argument(
        "--temperatures", type=float, nargs="+", default=list(TEMPERATURES), help="temperatures"
    )
    parser.add_argument("--contention", action="store_true", help="quiet against one busy process")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", nargs=2, metavar=("PATH", "TEMPERATURE"), help=argparse.SUPPRESS)
    parser.add_argument("--beside-poisson", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        path, temperature = args.worker
        figures = measure(
            path,
            float(temperature),
            args.batch,
            args.latents,
            args.repeats,
            args.device,
            args.beside_poisson,
        )
        print(json.dumps(figures))
        return
    if args.contention:
        rows = _contention(args)
    else:
        rows = [
            _worker(args, path, temperature)
            for temperature in args.temperatures
            for path in PATHS[args.device]
        ]
        _print_table(rows, args)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


def _worker(args: argparse.Namespace, path: str, temperature: float, beside: bool = False) -> dict:
    """Measure one path in a fresh subprocess."""
    command = [sys.executable, __file__, "--worker", path, str(temperature)]
    command += ["--batch", str(args.batch), "--latents", str(args.latents)]
    command += ["--repeats", str(args.repeats), "--device", args.device]
    command += ["--beside-poisson"] if beside else []
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    row = json.loads(output.strip().splitlines()[-1])
    print(json.dumps(row), file=sys.stderr)
    return row


def _machine(rows: list[dict], device: str) -> str:
    return rows[0]["device"] if device == "cuda" else describe()


def _contention(args: argparse.Namespace) -> list[dict]:
    rows = []
    for temperature in args.temperatures:
        for loaded in (False, True):
            with competitor(loaded):
                sampler = _worker(args, "fused", temperature, beside=True)
                alone = _worker(args, "poisson", temperature)
            rows.append(
                {"temperature": temperature, "loaded": loaded, "fused": sampler, "poisson": alone}
            )
    print(
        f"batch {args.batch} x {args.latents} latents, log-rates ~ N(-1, 1); "
        f"{_machine([rows[0]['fused']], args.device)}, torch {rows[0]['fused']['torch']}; "
        f"median of {args.repeats}; loaded = beside one CPU-bound process\n"
    )
    print(
        "| temperature | fused quiet (ms) | fused loaded (ms) | loaded / quiet "
        "| torch.poisson loaded, own process (ms) | torch.poisson loaded, after the sampler (ms) "
        "| ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    verdicts = []
    for temperature in args.temperatures:
        quiet, loaded = (r for r in rows if r["temperature"] == temperature)
        slowdown = loaded["fused"]["ms"] / quiet["fused"]["ms"]
        poisson_ratio = loaded["fused"]["poisson_beside_ms"] / loaded["poisson"]["ms"]
        print(
            f"| {temperature} | {quiet['fused']['ms']:.1f} | {loaded['fused']['ms']:.1f} "
            f"| {slowdown:.2f} | {loaded['poisson']['ms']:.1f} "
            f"| {loaded['fused']['poisson_beside_ms']:.1f} | {poisson_ratio:.2f} |"
        )
        verdicts.append(
            f"temperature {temperature}: sampler {slowdown:.2f}x its quiet time (target <= "
            f"{CONTENTION_TARGETS['sampler']}): "
            f"{verdict(slowdown <= CONTENTION_TARGETS['sampler'])}; torch.poisson after it "
            f"{poisson_ratio:.2f}x its own (target <= {CONTENTION_TARGETS['poisson']}): "
            f"{verdict(poisson_ratio <= CONTENTION_TARGETS['poisson'])}"
        )
    print("\n" + "\n".join(verdicts))
    return rows


def _print_table(rows: list[dict], args: argparse.Namespace) -> None:
    machine = _machine(rows, args.device)
    print(
        f"batch {args.batch} x {args.latents} latents, log-rates ~ N(-1, 1); {machine}, "
        f"torch {rows[0]['torch']}"
    )
    peak = "allocated CUDA memory" if args.device == "cuda" else "peak RSS"
    print(
        f"forward + backward, median of {args.repeats}; memory = rise of {peak} over a 1 x K warm-up\n"
    )
    print(
        "| temperature | path | ms | peak rise (MB) | speed-up vs dense | memory vs dense "
        "| time / G-VAE step | time / torch.poisson |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        same = {r["path"]: r for r in rows if r["temperature"] == row["temperature"]}
        speed = same["dense"]["ms"] / row["ms"]
        memory = same["dense"]["peak_rise_mb"] / max(row["peak_rise_mb"], 0.1)
        name = row["path"] + (f" ({row['arrivals']} arrivals)" if row["arrivals"] else "")
        step = row["path"] == "gvae_step"
        memory_text = ("", "") if step else (f"{row['peak_rise_mb']:.0f}", f"{memory:.0f}x")
        print(
            f"| {row['temperature']} | {name} | {row['ms']:.1f} | {memory_text[0]} | {speed:.1f}x "
            f"| {memory_text[1]} | {row['ms'] / same['gvae_step']['ms']:.2f} "
            f"| {row['ms'] / same['poisson']['ms']:.2f} |"
        )
    compiled = {"cpu": "fused", "cuda": "triton"}[args.device]
    for temperature, target in TARGETS.items():
        same = {r["path"]: r for r in rows if r["temperature"] == temperature}
        if compiled in same and "poisson" in same:
            ratio = same[compiled]["ms"] / same["poisson"]["ms"]
            print(
                f"target: {compiled} <= {target} x torch.poisson at temperature {temperature}: "
                f"{ratio:.2f}x, {verdict(ratio <= target)}"
            )


if __name__ == "__main__":
    main()
