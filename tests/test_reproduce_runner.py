"""Tests of the suite runner: a tiny grid end to end through the process pool and submitit's local
executor, resuming after a killed sweep, and recording failed jobs."""

from __future__ import annotations

import contextlib
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from poisson_vae.reproduce import runner
from poisson_vae.reproduce.report import write_report
from poisson_vae.reproduce.runner import (
    _with_devices,
    failed_jobs,
    job_phases,
    read_results,
    run_job,
    run_suite,
    submitit_parameters,
)
from poisson_vae.reproduce.suites import Job, Suite

DATA = {"data": "natural16", "n_train": 600, "n_valid": 200}


def tiny_job(family: str, seed: int, epochs: int = 1, **model) -> Job:
    config = {
        "data": DATA,
        "model": {"latent": family, "arch": "lin|lin", "n_latents": 8, "method": "mc"} | model,
        "train": {
            "epochs": epochs,
            "batch_size": 200,
            "warmup_epochs": 0,
            "seed": seed,
            "progress": False,
        },
    }
    return Job(f"{family}-s{seed}", "vae", config, seed, evaluate={"geometry": False, "gabor": False})


def tiny_suite(*jobs: Job) -> Suite:
    jobs = jobs or (tiny_job("poisson", 0), tiny_job("gaussian", 0))
    return Suite(
        "natural16-zoo", "small", "natural16", tuple(jobs), {"archs": ("lin|lin",)}, "a tiny grid"
    )


@pytest.mark.parametrize("executor", ["local", "submitit-local"])
def test_tiny_grid_end_to_end(executor: str, tmp_path: Path) -> None:
    suite = tiny_suite()
    results = run_suite(suite, tmp_path, executor, {"workers": 2, "cpus_per_job": 1}, progress=False)
    assert set(results) == {"poisson-s0", "gaussian-s0"}
    for result in results.values():
        assert {"nelbo", "mse_map", "lifetime_sparsity", "active_fraction"} <= set(result["metrics"])
        assert result["seconds"] > 0
        assert (tmp_path / "runs" / result["job"] / "eval" / "metrics.json").is_file()
    assert not failed_jobs(tmp_path)
    report = write_report(suite, tmp_path, "pvae reproduce tiny").read_text()
    assert "| P-VAE | mc |" in report and "(167.2; " in report  # published NELBO beside ours
    assert "![dictionaries](figures/dictionaries.png)" in report
    assert (tmp_path / "figures" / "dictionaries.png").stat().st_size > 1000


def test_finished_jobs_are_skipped(tmp_path: Path) -> None:
    suite = tiny_suite(tiny_job("poisson", 0))
    first = run_suite(suite, tmp_path, progress=False)
    stamp = (tmp_path / "results" / "poisson-s0.json").stat().st_mtime_ns
    assert run_suite(suite, tmp_path, progress=False) == first
    assert (tmp_path / "results" / "poisson-s0.json").stat().st_mtime_ns == stamp


def test_failed_job_is_recorded_and_retried_on_request(tmp_path: Path) -> None:
    bad = tiny_job("poisson", 1, method="nope")
    suite = tiny_suite(tiny_job("poisson", 0), bad)
    results = run_suite(suite, tmp_path, progress=False)
    assert set(results) == {"poisson-s0"}
    assert (
        "model.method must be one of mc, exact, straight-through, gsm, score, vargrad, mvd, got 'nope'"
        in failed_jobs(tmp_path)["poisson-s1"]
    )
    record = tmp_path / "failed" / "poisson-s1.json"
    stamp = record.stat().st_mtime_ns
    run_suite(suite, tmp_path, progress=False)  # not retried
    assert record.stat().st_mtime_ns == stamp
    time.sleep(0.01)
    run_suite(suite, tmp_path, retry_failed=True, progress=False)
    assert record.stat().st_mtime_ns != stamp
    assert "Failed jobs" in write_report(suite, tmp_path, "x").read_text()


_KILLABLE = """
import sys
from tests.test_reproduce_runner import tiny_job, tiny_suite
from poisson_vae.reproduce.runner import run_suite
if __name__ == "__main__":
    suite = tiny_suite(tiny_job("poisson", 0), tiny_job("gaussian", 0, epochs={epochs}))
    run_suite(suite, sys.argv[1], "local", {{"workers": 1}}, progress=False)
"""


def test_killed_sweep_loses_only_the_job_in_flight(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    # ~3 steps per epoch: the kill lands a few epochs in, far from the end of the 150
    command = [sys.executable, "-c", _KILLABLE.format(epochs=150), str(tmp_path)]
    process = subprocess.Popen(command, cwd=root, start_new_session=True)
    checkpoint = tmp_path / "runs" / "gaussian-s0" / "checkpoints" / "last.ckpt"
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.is_file():  # the first job finished, the second is training
            assert process.poll() is None and time.monotonic() < deadline, "the sweep did not get going"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert set(read_results(tmp_path)) == {"poisson-s0"}
    stamp = (tmp_path / "results" / "poisson-s0.json").stat().st_mtime_ns
    # Resume the same sweep: the killed job continues from its checkpoint.
    subprocess.run(command, cwd=root, check=True, timeout=300)
    assert set(read_results(tmp_path)) == {"poisson-s0", "gaussian-s0"}
    assert (tmp_path / "results" / "poisson-s0.json").stat().st_mtime_ns == stamp


_SWEEP = """
import signal
import sys
from tests.test_reproduce_runner import tiny_job, tiny_suite
from poisson_vae.reproduce.runner import SweepInterrupted, run_suite
if __name__ == "__main__":
    # a foreground command's Ctrl+C, whatever the test process's own disposition
    signal.signal(signal.SIGINT, signal.default_int_handler)
    jobs = [tiny_job("poisson", seed, epochs={epochs}) for seed in range(3)]
    try:
        run_suite(tiny_suite(*jobs), sys.argv[1], "local", {{"workers": 2}}, progress=False)
    except SweepInterrupted as error:
        print(error)
        sys.exit(130)
"""


def _children(pid: int) -> set[int]:
    """The processes ``pid`` started (Linux)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_sweep(tmp_path: Path, epochs: int = 60) -> tuple[subprocess.Popen, set[int]]:
    """A sweep of three jobs on two workers, once both workers train (their checkpoints exist)."""
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", _SWEEP.format(epochs=epochs), str(tmp_path)]
    process = subprocess.Popen(
        command,
        cwd=root,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 240
    while len(list((tmp_path / "runs").glob("*/checkpoints/last.ckpt"))) < 2:
        assert process.poll() is None and time.monotonic() < deadline, "the sweep did not get going"
        time.sleep(0.05)
    return process, _children(process.pid)


def _gone(pids: set[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_alive(pid) for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


needs_proc = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds the worker processes through /proc"
)


@needs_proc
@pytest.mark.parametrize(
    ("signal_number", "group"), [(signal.SIGINT, True), (signal.SIGTERM, False)], ids=["ctrl-c", "term"]
)
def test_a_stopped_sweep_stops_its_workers_and_resumes_its_jobs(
    tmp_path: Path, signal_number: int, group: bool
) -> None:
    process, workers = _start_sweep(tmp_path)
    assert len(workers) >= 2
    started = time.monotonic()
    if group:  # Ctrl+C: the terminal signals the whole process group
        os.killpg(process.pid, signal_number)
    else:
        os.kill(process.pid, signal_number)
    stdout, stderr = process.communicate(timeout=60)
    seconds = time.monotonic() - started
    assert seconds < 20, f"the sweep took {seconds:.0f} s to stop"
    assert process.returncode == 130, f"exit {process.returncode}: {stdout}{stderr[-3000:]}"
    assert "run the same command again to resume" in stdout
    assert _gone(workers, 10), "workers kept running after the sweep stopped"
    assert not failed_jobs(tmp_path)  # interrupted, not failed
    interrupted = set(
        path.parents[1].name for path in (tmp_path / "runs").glob("*/checkpoints/last.ckpt")
    )
    interrupted -= set(read_results(tmp_path))
    assert interrupted
    # the next invocation resumes them from their checkpoints: a later start logs no step 0
    root = Path(__file__).resolve().parents[1]
    command = [sys.executable, "-c", _SWEEP.format(epochs=60), str(tmp_path)]
    subprocess.run(command, cwd=root, check=True, timeout=600, capture_output=True)
    assert set(read_results(tmp_path)) == {"poisson-s0", "poisson-s1", "poisson-s2"}
    for name in interrupted:
        for log in (tmp_path / "runs" / name / "logs").glob("version_[1-9]*/metrics.csv"):
            steps = [int(row["step"]) for row in csv.DictReader(log.open()) if row.get("step")]
            assert min(steps) > 0, (name, log)


@needs_proc
def test_a_killed_sweep_leaves_no_worker_training(tmp_path: Path) -> None:
    process, workers = _start_sweep(tmp_path, epochs=2000)
    os.kill(process.pid, signal.SIGKILL)  # the main process alone: its workers are orphaned
    process.wait(timeout=30)
    assert _gone(workers, 10), "orphaned workers kept training"


def test_gap_jobs_run_after_the_vae_they_read(tmp_path: Path) -> None:
    vae = tiny_job("poisson", 0)
    gap = Job(
        "gap",
        "gap",
        {"algorithm": "lca", "lams": [0.3, 1.0], "n_samples": 50, "seed": 0},
        0,
        after=vae.name,
    )
    assert job_phases([gap, vae]) == [[vae], [gap]]
    result = run_suite(tiny_suite(vae, gap), tmp_path, progress=False)["gap"]
    assert result["after"] == vae.name
    assert [point["lam"] for point in result["metrics"]["points"]] == [0.3, 1.0]
    assert result["metrics"]["encoder"]["source"] == "VAE encoder"


def test_run_job_writes_its_result_last(tmp_path: Path) -> None:
    document = run_job(tiny_job("poisson", 0), tmp_path, threads=1)
    assert json.loads((tmp_path / "results" / "poisson-s0.json").read_text()) == document
    assert not list((tmp_path / "results").glob("*.tmp"))


def test_a_job_prints_no_lightning_banner(tmp_path: Path) -> None:
    # in a fresh process, as in a pool worker: Lightning is imported by the job itself
    code = (
        "import sys; from tests.test_reproduce_runner import tiny_job; "
        "from poisson_vae.reproduce.runner import run_job; "
        "run_job(tiny_job('gaussian', 0), sys.argv[1], threads=1)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True
    )
    assert (tmp_path / "results" / "gaussian-s0.json").is_file()
    assert "GPU available" not in done.stderr and "Trainer.fit" not in done.stderr


def test_auto_workers_run_a_whole_seed_at_once_on_a_gpu(monkeypatch) -> None:
    jobs = [tiny_job(family, seed) for seed in (0, 1) for family in ("poisson", "gaussian", "laplace")]
    monkeypatch.setattr(runner, "_cuda_present", lambda: True)
    assert runner.local_workers("auto", jobs) == 3  # the three jobs of a seed share the GPU
    assert runner.local_workers("auto", jobs[:4]) == 3
    assert runner.local_workers(5, jobs) == 5  # a count is kept
    monkeypatch.setattr(runner, "_cuda_present", lambda: False)
    assert runner.local_workers("auto", jobs) == 2  # a CPU: two at a time


def test_jobs_are_submitted_seed_by_seed(tmp_path: Path, monkeypatch) -> None:
    from concurrent.futures import Future

    class Pool:
        def shutdown(self, cancel_futures: bool = False) -> None:
            pass

    submitted = []

    def submit(pool, executor, options, job, out, threads) -> Future:
        submitted.append(job.name)
        future: Future = Future()
        future.set_result(None)
        return future

    monkeypatch.setattr(runner, "_local_executor", lambda options, jobs: (Pool(), 1))
    monkeypatch.setattr(runner, "_submit", submit)
    monkeypatch.setattr(runner, "_record", lambda job, future, out, bar: None)
    jobs = [tiny_job(family, seed) for family in ("poisson", "gaussian") for seed in (1, 0)]
    run_suite(tiny_suite(*jobs), tmp_path, "local", {"workers": 1}, progress=False)
    assert submitted == ["poisson-s0", "gaussian-s0", "poisson-s1", "gaussian-s1"]


def test_unknown_executor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor must be one of local, slurm, submitit-local"):
        run_suite(tiny_suite(), tmp_path, "dask")


def test_slurm_parameters_ask_one_task_per_gpu() -> None:
    options = {"partition": "gpu", "gpus_per_job": 4, "cpus_per_job": 8, "timeout_min": 90}
    parameters = submitit_parameters("slurm", options | {"slurm_args": {"account": "lab"}})
    assert parameters == {
        "timeout_min": 90,
        "cpus_per_task": 8,
        "slurm_partition": "gpu",
        "gpus_per_node": 4,
        "tasks_per_node": 4,
        "slurm_additional_parameters": {"account": "lab"},
    }
    assert submitit_parameters("local", options) == {"timeout_min": 90}
    # sparse-coding and gap jobs do not train through Lightning: one task on one GPU
    single = submitit_parameters("slurm", options, kind="sparse")
    assert single["gpus_per_node"] == 1 and single["tasks_per_node"] == 1
    assert "gpus_per_node" not in submitit_parameters("slurm", options, kind="gap")  # CPU work
    job = _with_devices(tiny_job("poisson", 0), 4)
    assert {"devices": "4", "strategy": "ddp", "accelerator": "gpu"}.items() <= job.config[
        "train"
    ].items()
    # the batch size is per device in Lightning: the recipe's batch of 200 is kept across 4 GPUs
    assert job.config["train"]["batch_size"] == 50
    with pytest.raises(ValueError, match="gpus_per_job 3 does not divide .* batch size 200"):
        _with_devices(tiny_job("poisson", 0), 3)


@pytest.mark.parametrize("executor", ["local", "submitit-local"])
def test_several_gpus_per_job_need_slurm(executor: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="gpus_per_job 2 needs executor slurm"):
        run_suite(tiny_suite(), tmp_path, executor, {"gpus_per_job": 2}, progress=False)
    assert not (tmp_path / "results").exists()  # refused before any work


def test_replicas_of_a_multi_gpu_job_record_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SLURM_PROCID", "1")
    gap = Job("gap-poisson-s0", "gap", {"lams": [0.5]}, 0, after="poisson-s0")
    assert run_job(gap, tmp_path) == {}  # only rank 0 runs work that is not training
    vae = tiny_job("poisson", 0)
    assert run_job(vae, tmp_path) == {}  # trains, as every rank does, but neither evaluates nor records
    assert (tmp_path / "runs" / vae.name / "model.safetensors").is_file()
    assert not (tmp_path / "runs" / vae.name / "eval").exists()
    assert not (tmp_path / "results").exists()


def test_slurm_without_a_cluster_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor slurm needs a SLURM cluster"):
        run_suite(tiny_suite(), tmp_path, "slurm", progress=False)


def test_sparse_coding_jobs_run_and_report(tmp_path: Path) -> None:
    coder = {"algorithm": "lca", "n_atoms": 8, "lam": 0.5, "n_iterations": 20, "epochs": 1}
    job = Job(
        "lca-s0",
        "sparse",
        {"data": DATA, "sparse_coding": coder | {"seed": 0, "batch_size": 200, "progress": False}},
        0,
        evaluate={"gabor": False},
    )
    result = run_suite(tiny_suite(job), tmp_path, progress=False)["lca-s0"]
    assert {"mse_map", "lifetime_sparsity"} <= set(result["metrics"])
    assert (tmp_path / "runs" / "lca-s0" / "dictionary.safetensors").is_file()
