"""Everything that needs a GPU to be checked, in one command, with one summary table.

Run on a machine with CUDA: ``python benchmarks/gpu_check.py`` (about 10 minutes on one modern
GPU). Steps, each in its own process, each timed:

    doctor           ``pvae doctor``: versions, devices, the sampler of each device against the
                     torch walk
    cuda-tests       the sampler's and the sparse coders' test files on CUDA (the Triton kernel
                     compiled for the GPU, against the dense reference and the CPU kernel)
    sampler          ``benchmarks/sampler.py --device cuda``: the GPU table of BENCHMARKS.md
    train            the main job's P-VAE for 20 epochs on the GPU: time and validation NELBO
    ddp              the same for 5 epochs on two GPUs under DDP (skipped with one GPU)
    bf16             a few training steps of every latent family under bfloat16 autocast

``--device cpu --quick`` runs the same steps on the CPU at toy sizes, which is how the test suite
keeps this script working on machines without a GPU. The table is printed and written, with the
raw figures, to ``OUT/gpu_check.md`` and ``OUT/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS = ("doctor", "cuda-tests", "sampler", "train", "ddp", "bf16")

_BF16 = """
import sys, torch
from poisson_vae.config import ModelConfig
from poisson_vae.latents import LATENT_FAMILIES
from poisson_vae.vae import build_vae
device, steps = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
x = torch.randn(256, 1, 16, 16, device=device)
for family in LATENT_FAMILIES:
    model = build_vae(ModelConfig(latent=family, n_latents=64)).to(device)
    optimiser = torch.optim.Adamax(model.parameters(), lr=5e-3)
    for step in range(steps):
        with torch.autocast(device_type=device, dtype=torch.bfloat16):
            loss = model(x, temperature=0.5).loss(1.0)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if not torch.isfinite(loss):
            sys.exit(f"{family}: the loss became {float(loss)} at step {step}")
    print(f"{family}: loss {float(loss):.1f}")
"""


def _run(command: list[str], out: Path, name: str, timeout: int) -> tuple[str, float, str]:
    """Run one step; (status, seconds, its last output line or error)."""
    started = time.perf_counter()
    log = out / f"{name}.log"
    try:
        result = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, env=os.environ.copy()
        )
    except subprocess.TimeoutExpired:
        return "failed", time.perf_counter() - started, f"timed out after {timeout} s"
    seconds = time.perf_counter() - started
    log.write_text(f"$ {shlex.join(command)}\n{result.stdout}\n{result.stderr}")
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    if result.returncode != 0:
        return "failed", seconds, (lines[-1] if lines else f"exit {result.returncode}")[:160]
    return "ok", seconds, (lines[-1] if lines else "")[:160]


def _pvae(*words: str) -> list[str]:
    return [sys.executable, "-m", "poisson_vae.cli", *words]


def _train(out: Path, device: str, quick: bool, epochs: int, *extra: str) -> list[str]:
    sizes = ["--n-train", "2000", "--n-valid", "500"] if quick else []
    accelerator = "gpu" if device == "cuda" else "cpu"
    return _pvae(
        "train", "--data", "natural16", "--latent", "poisson", "--arch", "lin|lin",
        "--n-latents", "64" if quick else "512", "--epochs", str(epochs), "--accelerator", accelerator,
        "--no-progress", "--out", str(out), *sizes, *extra,
    )  # fmt: skip


def _gpus() -> int:
    import torch

    return torch.cuda.device_count()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true", help="toy sizes (a plumbing check)")
    parser.add_argument("--skip", nargs="+", choices=STEPS, default=[], help="steps to leave out")
    parser.add_argument("--out", type=Path, default=Path("gpu_check"), help="output folder")
    args = parser.parse_args(argv)
    if args.device == "cuda" and _gpus() == 0:
        parser.error("no CUDA device is visible to torch; --device cpu --quick checks the script")
    args.out.mkdir(parents=True, exist_ok=True)
    quick, device = args.quick, args.device
    sampler = [
        sys.executable,
        "benchmarks/sampler.py",
        "--device",
        device,
        "--json",
        str(args.out / "sampler.json"),
    ]
    sampler += (
        ["--batch", "100", "--latents", "64", "--repeats", "1", "--temperatures", "0.05"]
        if quick
        else []
    )
    tests = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "tests/test_distributions.py",
    ]
    tests += ["tests/test_sparse_coding_lca.py", "tests/test_sparse_coding_training.py"]
    ddp = ("--devices", "2", "--strategy", "ddp")
    commands = {
        "doctor": _pvae("doctor"),
        "cuda-tests": tests,
        "sampler": sampler,
        "train": _train(args.out / "train", device, quick, 2 if quick else 20),
        "ddp": _train(args.out / "ddp", device, quick, 2 if quick else 5, *ddp),
        "bf16": [sys.executable, "-c", _BF16, device, "3" if quick else "20"],
    }  # fmt: skip
    rows = []
    for name in STEPS:
        if name in args.skip:
            rows.append({"step": name, "status": "skipped", "seconds": 0.0, "note": "--skip"})
            continue
        if name == "ddp" and (device != "cuda" or _gpus() < 2):
            note = "needs two GPUs" if device == "cuda" else "a GPU check"
            rows.append({"step": name, "status": "skipped", "seconds": 0.0, "note": note})
            continue
        status, seconds, note = _run(commands[name], args.out, name, timeout=3600)
        if status == "ok" and name in ("train", "ddp"):
            metrics = json.loads((args.out / name / "metrics.json").read_text())
            note = f"validation NELBO {metrics['nelbo']:.1f}"
        rows.append({"step": name, "status": status, "seconds": round(seconds, 1), "note": note})
        print(f"{name}: {status} ({seconds:.0f} s) {note}", file=sys.stderr)
    table = ["| step | status | seconds | note |", "|---|---|---|---|"]
    table += [f"| {r['step']} | {r['status']} | {r['seconds']:.1f} | {r['note']} |" for r in rows]
    (args.out / "gpu_check.md").write_text("\n".join(table) + "\n")
    (args.out / "gpu_check.json").write_text(json.dumps(rows, indent=2) + "\n")
    print("\n".join(table))
    return 0 if all(row["status"] != "failed" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
