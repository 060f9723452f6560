"""Sparse-coding inference: batched LCA in torch against scikit-learn's coordinate-descent Lasso.

Both solve 0.5 ||x - Phi a||^2 + lam ||a||_1 on the same batch of 16 x 16 patches (D = 256) with the
same dictionary of K random unit-norm atoms:

    lca               poisson_vae.sparse_coding.LCA, soft threshold, ``--iterations`` Euler steps
                      (tol = 0, so all of them run), float32, on ``--device``
    lca_tol           the same with tolerance-based stopping (``--tol``, per sample), at most
                      ``--iterations`` steps
    fista_tol         poisson_vae.sparse_coding.FISTA with the same stopping rule
    sklearn_lasso_cd  sklearn.decomposition.SparseCoder(transform_algorithm="lasso_cd",
                      transform_alpha=lam), float64: ``sparse_encode`` divides transform_alpha by D
                      and Lasso minimises (1 / (2 D)) ||x - Phi a||^2 + (alpha / D) ||a||_1, which is
                      the objective above over D. Its tolerance is fixed at 1e-8 (duality gap); in
                      float32 it cannot reach that and runs to transform_max_iter, hence float64.

Each method runs in a fresh subprocess, as in ``benchmarks/sampler.py``: it loads the batch, warms up
on a 2-sample slice, records its peak resident memory (CUDA: allocated memory) as the baseline, runs
once on the full batch and reports the rise of the peak over the baseline, then times ``--repeats``
more runs (median reported). ``objective`` is the mean per-sample objective of the codes (evaluated
in float64), ``nonzero`` the fraction of non-zero codes, ``iterations`` the steps the torch solvers
ran (with stopping: until the slowest sample settled). The batch is prepared in a subprocess of its
own too: Linux carries a process's peak RSS across fork and exec, so a parent that had loaded the
data set would hide the workers' peaks.

Data: the first ``--batch`` training patches of the registry's ``natural16`` (whitened, unit variance;
built and cached on first use), or ``--data random`` for Gaussian patches of the same scale.
Run: ``python benchmarks/sparse_coding.py`` (add ``--json FILE`` to keep the raw figures).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import package_first, peak_rss_mb, verdict

METHODS = ("lca", "lca_tol", "fista_tol", "sklearn_lasso_cd")


def prepare(path: Path, data: str, batch: int, atoms: int, seed: int) -> None:
    """Write the batch x (B, D) and the dictionary (D, K) that every worker reads to ``path``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if data == "natural16":
        from poisson_vae.data import load_dataset

        x = load_dataset("natural16")["train"][:batch].reshape(batch, -1)
    else:
        x = rng.standard_normal((batch, 256)).astype(np.float32)
    dictionary = rng.standard_normal((x.shape[1], atoms))
    dictionary /= np.linalg.norm(dictionary, axis=0)
    np.savez(path, x=x, dictionary=dictionary.astype(np.float32))


def _solver(method: str, lam: float, iterations: int, tol: float, device: str):
    """A function from (x, dictionary) float32 CPU tensors to ((B, K) codes, iterations run or
    None), for one method."""
    import torch

    if method != "sklearn_lasso_cd":
        from poisson_vae.sparse_coding import FISTA, LCA

        solver = (FISTA if method == "fista_tol" else LCA)(
            lam=lam, n_iterations=iterations, tol=0 if method == "lca" else tol
        )

        def solve(x: torch.Tensor, dictionary: torch.Tensor) -> tuple[torch.Tensor, int | None]:
            result = solver.infer(x.to(device), dictionary.to(device))
            return result.codes.cpu(), result.n_iterations  # .cpu() waits for the device

        return solve
    from sklearn.decomposition import SparseCoder

    def solve(x: torch.Tensor, dictionary: torch.Tensor) -> tuple[torch.Tensor, int | None]:
        coder = SparseCoder(
            dictionary=dictionary.T.double().numpy(), transform_algorithm="lasso_cd", transform_alpha=lam
        )
        return torch.from_numpy(coder.transform(x.double().numpy())), None

    return solve


def measure(
    method: str, path: str, lam: float, iterations: int, tol: float, repeats: int, device: str
) -> dict:
    """Run one method in this process and return its figures."""
    package_first()
    import numpy as np
    import sklearn
    import torch

    from poisson_vae.sparse_coding import lasso_objective

    arrays = np.load(path)
    x, dictionary = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["dictionary"])
    torch_solver = method != "sklearn_lasso_cd"
    on_cuda = torch_solver and device.startswith("cuda")
    solve = _solver(method, lam, iterations, tol, device)
    solve(x[:2], dictionary)

    def peak() -> float:
        return torch.cuda.max_memory_allocated() / 2**20 if on_cuda else peak_rss_mb()

    baseline = peak()
    codes, ran = solve(x, dictionary)
    memory = peak() - baseline
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        solve(x, dictionary)
        times.append(time.perf_counter() - start)
    objective = lasso_objective(x.double(), dictionary.double(), codes.double(), lam)
    return {
        "method": method,
        "ms": 1000 * statistics.median(times),
        "peak_mb": memory,
        "objective": float(objective.mean()),
        "nonzero": float((codes != 0).double().mean()),
        "batch": x.shape[0],
        "atoms": dictionary.shape[1],
        "lam": lam,
        "iterations": ran,
        "tol": None if method in ("lca", "sklearn_lasso_cd") else tol,
        "dtype": "float32" if torch_solver else "float64",
        "device": device if torch_solver else "cpu",
        "repeats": repeats,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=("natural16", "random"), default="natural16")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--atoms", type=int, default=512)
    parser.add_argument("--lam", type=float, default=1.5, help="about 7%% non-zero codes on natural16")
    parser.add_argument("--iterations", type=int, default=900, help="most steps of the torch solvers")
    parser.add_argument("--tol", type=float, default=1e-4, help="stopping tolerance of *_tol")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--device", default="cpu", help="where the torch solvers run (scikit-learn: the CPU)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "FILE"), help=argparse.SUPPRESS)
    parser.add_argument("--prepare", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        prepare(Path(args.prepare), args.data, args.batch, args.atoms, args.seed)
        return
    if args.worker:
        method, path = args.worker
        row = measure(method, path, args.lam, args.iterations, args.tol, args.repeats, args.device)
        print(json.dumps(row))
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "batch.npz"
        command = [sys.executable, __file__, "--prepare", str(path), "--data", args.data]
        command += ["--batch", str(args.batch), "--atoms", str(args.atoms), "--seed", str(args.seed)]
        subprocess.run(command, check=True)
        for method in args.methods:
            command = [sys.executable, __file__, "--worker", method, str(path)]
            command += ["--lam", str(args.lam), "--iterations", str(args.iterations)]
            command += ["--tol", str(args.tol)]
            command += ["--repeats", str(args.repeats), "--device", args.device]
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    times = {row["method"]: row["ms"] for row in rows}
    if {"fista_tol", "sklearn_lasso_cd"} <= times.keys():
        ratio = times["fista_tol"] / times["sklearn_lasso_cd"]
        print(
            f"target: FISTA <= 1.0 x scikit-learn's lasso_cd time: {ratio:.2f}x, {verdict(ratio <= 1.0)}"
        )
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=2)


if __name__ == "__main__":
    main()
