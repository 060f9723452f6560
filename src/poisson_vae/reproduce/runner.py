"""Run a suite's jobs through an existing executor, resumably.

Layout of the output folder::

    runs/<job>/          the job's run directory (checkpoints, eval/, figures)
    results/<job>.json   its metrics, written last and atomically: the job is finished
    failed/<job>.json    the error of a failed job (retried with ``retry_failed``)

A job whose result file exists is skipped; a job killed in flight resumes from its run's last
checkpoint. Jobs go to a :class:`concurrent.futures.ProcessPoolExecutor` (``local``) or to
submitit (``slurm``, or ``submitit-local`` to use submitit on this machine); the runner only
submits, waits and records.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from ..config import Check, choice, integer
from ..errors import ConfigError, braces, require_extra
from ..files import write_json
from ..progress import on_terminal
from ..runs import Run, is_replica
from .suites import Job, Suite

__all__ = [
    "EXECUTORS",
    "failed_jobs",
    "job_phases",
    "read_results",
    "run_job",
    "run_suite",
    "submitit_parameters",
]

EXECUTORS = ("local", "slurm", "submitit-local")


class JobInterrupted(RuntimeError):
    """A job stopped before its end (a signal): unfinished, not failed."""


class SweepInterrupted(KeyboardInterrupt):
    """The sweep was stopped (Ctrl+C or SIGTERM); its unfinished jobs resume next time."""


RESULTS, RUNS, FAILED = "results", "runs", "failed"


def _limit_threads(threads: int | None) -> None:
    """Bound torch's thread pool in a worker (the fused sampler runs on as many threads), so that
    workers do not oversubscribe."""
    if threads is None:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _run_vae(job: Job, run: Path) -> dict | None:
    from ..config import RunConfig
    from ..evaluation import evaluate_run
    from ..results import flat_metrics
    from ..training import train

    if not Run(run).finished:  # not trained to the end yet (or never started)
        if train(RunConfig.from_dict(job.config), run, resume=True) is None and not is_replica():
            raise JobInterrupted(f"{job.name}: training was interrupted")
    if is_replica():  # another task of a multi-GPU job: it only trains; rank 0 evaluates, records
        return None
    return flat_metrics(evaluate_run(run, **job.evaluate))


def _run_sparse(job: Job, run: Path) -> dict:
    from ..config import SparseCodingRunConfig
    from ..evaluation import evaluate_run
    from ..results import flat_metrics
    from ..sparse_coding.training import train_sparse_coding

    if not Run(run).finished:
        train_sparse_coding(SparseCodingRunConfig.from_dict(job.config), run, resume=True)
    return flat_metrics(evaluate_run(run, **job.evaluate))


def _run_gap(job: Job, run: Path) -> dict:
    from ..amortization import amortization_gap

    options = dict(job.config)
    options["lams"] = tuple(options["lams"])
    source = run.parent / job.after
    rows = amortization_gap(source, out=run, **options)
    return {"encoder": rows[0], "points": rows[1:]}


def _run_gradients(job: Job, run: Path) -> dict:
    from ..gradient_study import run_study

    return {"cells": run_study(run, **job.config)}


_KINDS: dict[str, Callable[[Job, Path], dict | None]] = {
    "vae": _run_vae,
    "sparse": _run_sparse,
    "gap": _run_gap,
    "gradients": _run_gradients,
}


def run_job(job: Job, out: str | Path, threads: int | None = None) -> dict:
    """Run one job to its end and write ``out/results/<job>.json``; returns that document (empty in
    the extra tasks of a multi-GPU job, which only train).

    Args:
        job: the job.
        out: the suite's output folder.
        threads: CPU threads for this job (None leaves torch's default).
    """
    _limit_threads(threads)
    import lightning.pytorch  # noqa: F401  (its import sets its logger to INFO: quiet it after)

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # no banner per job
    out = Path(out)
    if job.kind != "vae" and is_replica():  # only a VAE's training runs on every task
        return {}
    started = time.perf_counter()
    metrics = _KINDS[job.kind](job, out / RUNS / job.name)
    if metrics is None:
        return {}
    document = {
        "job": job.name,
        "kind": job.kind,
        "seed": job.seed,
        "after": job.after,
        "config": job.config,
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(out / RESULTS / f"{job.name}.json", document)
    (out / FAILED / f"{job.name}.json").unlink(missing_ok=True)
    return document


def read_results(out: str | Path) -> dict[str, dict]:
    """``{job name: result document}`` of the finished jobs under ``out/results``."""
    folder = Path(out) / RESULTS
    results = {}
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            results[path.stem] = json.loads(path.read_text())
        except json.JSONDecodeError:
            continue  # a damaged result is re-run
    return results


def job_phases(jobs: Iterable[Job]) -> list[list[Job]]:
    """Jobs in phases: those without ``after`` first, then the jobs that read their runs."""
    jobs = list(jobs)
    first = [job for job in jobs if job.after is None]
    second = [job for job in jobs if job.after is not None]
    return [phase for phase in (first, second) if phase]


def _die_with_parent(parent: int) -> None:
    """In a worker: end when the process that started it ends, however it ends (a SIGKILL of the
    sweep must not leave workers training and rewriting checkpoints in the background), and leave
    Ctrl+C to the sweep, which stops its workers itself."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):  # at once: the kernel signals the orphan
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # it ended before the line above took effect
        os._exit(1)

    def watch() -> None:  # elsewhere (and as a second line on Linux): poll
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="die-with-parent").start()


def _cuda_present() -> bool:
    import torch

    return torch.cuda.is_available()


def local_workers(workers: int | str, jobs: Iterable[Job]) -> int:
    """The parallel jobs of the local executor: ``workers``, or for ``"auto"`` every job of one
    seed at once when a CUDA device is present (small networks leave most of a GPU idle, so the
    jobs share it), else 2."""
    if workers != "auto":
        return int(workers)
    if not _cuda_present():
        return 2
    per_seed = Counter(job.seed for job in jobs)
    return max(per_seed.values(), default=1)


def _local_executor(options: dict, jobs: list[Job]) -> tuple[Any, int | None]:
    workers = local_workers(options.get("workers", "auto"), jobs)
    threads = max(1, (os.cpu_count() or 1) // workers)
    executor = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    )
    return executor, threads


class _Stopped(BaseException):
    """The sweep was asked to stop (SIGTERM), handled as Ctrl+C is."""


@contextlib.contextmanager
def _stop_on_sigterm() -> Iterator[None]:
    """Within: SIGTERM raises :class:`_Stopped` in the main thread (a no-op elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise _Stopped

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stop(pool: Any, executor: str, futures: dict) -> int:
    """Stop every unfinished job at once; returns how many were stopped. Local workers are
    killed (each job resumes from its last checkpoint, written atomically); submitit jobs are
    cancelled (``scancel`` on SLURM)."""
    unfinished = [future for future in futures if not future.done()]
    if executor == "local":
        for process in list(getattr(pool, "_processes", {}).values()):
            with contextlib.suppress(OSError):
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
    else:
        for job in unfinished:
            with contextlib.suppress(Exception):
                job.cancel(check=False)
    return len(unfinished)


def submitit_parameters(cluster: str, options: dict, kind: str = "vae") -> dict[str, Any]:
    """The ``update_parameters`` of a submitit executor for ``cluster`` (``slurm`` or ``local``)
    and a job of ``kind``: only VAE training spreads over several GPUs, dictionary learning gets
    one, and a gap job (CPU inference on a trained dictionary) none."""
    gpus = int(options.get("gpus_per_job") or 0)
    if kind != "vae":
        gpus = min(gpus, 1) if kind == "sparse" else 0
    parameters: dict[str, Any] = {"timeout_min": int(options.get("timeout_min") or 24 * 60)}
    if cluster == "slurm":
        parameters["cpus_per_task"] = int(options.get("cpus_per_job") or 2)
        if options.get("partition"):
            parameters["slurm_partition"] = options["partition"]
        if gpus:  # one task per GPU: Lightning reads SLURM's variables and runs DDP across them
            parameters |= {"gpus_per_node": gpus, "tasks_per_node": gpus}
        if options.get("slurm_args"):
            parameters["slurm_additional_parameters"] = dict(options["slurm_args"])
    return parameters


def _submitit_executor(kind: str, out: Path, options: dict) -> tuple[Any, int | None]:
    submitit = require_extra("submitit", "slurm", f"executor {kind}")

    cluster = "slurm" if kind == "slurm" else "local"
    try:
        executor = submitit.AutoExecutor(folder=out / "submitit" / "%j", cluster=cluster)
    except RuntimeError as error:  # no srun / sbatch on this machine
        raise ConfigError(
            f"{{0}} {kind} needs a SLURM cluster: {braces(str(error))}", "executor"
        ) from None
    # submitit-local starts every job at once: each gets cpus_per_job threads.
    return executor, None if cluster == "slurm" else int(options.get("cpus_per_job") or 2)


def _with_devices(job: Job, gpus: int) -> Job:
    """The job with the training engine's multi-GPU settings when given several GPUs.

    Lightning's batch size is per device: each of the ``gpus`` replicas takes ``batch_size / gpus``
    samples, so that the recipe's batch (and its number of steps per epoch) is kept. The run's
    ``config.json`` records that per-device batch beside ``devices``: resume it on as many.
    """
    if job.kind != "vae" or gpus < 2:
        return job
    from ..config import TrainConfig

    config = json.loads(json.dumps(job.config))
    batch = int(config["train"].get("batch_size", TrainConfig.batch_size))
    if batch % gpus:
        raise ConfigError(
            f"{{0}} {gpus} does not divide job {job.name}'s batch size {batch}; "
            "choose a divisor of it so that the recipe's batch is kept",
            "gpus_per_job",
        )
    config["train"] |= {
        "accelerator": "gpu",
        "devices": str(gpus),
        "strategy": "ddp",
        "batch_size": batch // gpus,
    }
    return replace(job, config=config)


#: The executor options and their constraints (``partition`` and ``slurm_args`` are free).
_OPTION_CHECKS = {
    "workers": Check("a positive integer or 'auto'", lambda v: v == "auto" or integer(1).accepts(v)),
    "gpus_per_job": integer(0),
    "cpus_per_job": integer(1),
    "timeout_min": integer(1),
}


def check_executor(
    executor: str, options: Mapping[str, Any] | None = None, jobs: Iterable[Job] = ()
) -> None:
    """Raise a one-line :class:`~poisson_vae.errors.ConfigError` unless ``executor`` is one of
    :data:`EXECUTORS`, its ``options`` are in range, and ``gpus_per_job`` (several GPUs per job:
    one SLURM task per GPU) suits the executor and ``jobs``."""
    choice(EXECUTORS)("executor", executor)
    options = dict(options or {})
    for name, check in _OPTION_CHECKS.items():
        if options.get(name) is not None:
            check(name, options[name])
    gpus = int(options.get("gpus_per_job") or 0)
    if gpus > 1 and executor != "slurm":
        raise ConfigError(
            f"{{0}} {gpus} needs {{1}} slurm (one task per GPU); with {{1}} {executor} each job "
            "uses one device",
            "gpus_per_job",
            "executor",
        )
    for job in jobs:
        _with_devices(job, gpus)  # raises if the GPUs do not divide a job's batch


def run_suite(
    suite: Suite,
    out: str | Path,
    executor: str = "local",
    options: dict | None = None,
    retry_failed: bool = False,
    progress: bool = True,
) -> dict[str, dict]:
    """Run the unfinished jobs of ``suite`` into ``out`` and return every finished result.

    Finished jobs (a result file) are skipped; failed ones (a file in ``out/failed``) too, unless
    ``retry_failed``. A job's failure is recorded and does not stop the others.

    Args:
        suite: from :func:`poisson_vae.reproduce.suites.build_suite`.
        out: output folder.
        executor: ``local`` (a process pool), ``slurm`` or ``submitit-local`` (submitit).
        options: ``workers`` (local: parallel jobs, CPU threads shared among them; ``"auto"``:
            see :func:`local_workers`); for submitit
            ``partition``, ``gpus_per_job`` (several: multi-GPU data parallelism per job),
            ``cpus_per_job``, ``timeout_min`` and ``slurm_args`` (extra ``#SBATCH`` options).
        retry_failed: run failed jobs again.
        progress: show a progress bar.
    """
    options = dict(options or {})
    gpus = int(options.get("gpus_per_job") or 0)
    check_executor(executor, options, suite.jobs)
    out = Path(out)
    (out / RESULTS).mkdir(parents=True, exist_ok=True)
    for phase in job_phases(suite.jobs):
        done = read_results(out)
        failed = {path.stem for path in (out / FAILED).glob("*.json")}
        # Seed by seed: the jobs that run together (on a GPU, every job of a seed) and a sweep
        # stopped early leave whole seeds, which the report's paired tests need.
        todo = sorted(
            (
                _with_devices(job, gpus)
                for job in phase
                if job.name not in done
                and (retry_failed or job.name not in failed)
                and (job.after is None or job.after in done)
            ),
            key=lambda job: job.seed,
        )
        if not todo:
            continue
        if executor == "local":
            pool, threads = _local_executor(options, todo)
        else:
            pool, threads = _submitit_executor(executor, out, options)
        # A bar on a terminal; elsewhere (a batch system's log) a line per finished job.
        bar = tqdm(
            total=len(todo),
            desc=f"{suite.name} ({suite.scale})",
            disable=not (progress and on_terminal()),
        )
        futures: dict = {}
        try:
            with _stop_on_sigterm():
                for job in todo:
                    futures[_submit(pool, executor, options, job, out, threads)] = job
                for done_count, future in enumerate(_completed(futures, executor), start=1):
                    _record(futures[future], future, out, bar)
                    bar.update()
                    if progress and bar.disable:
                        print(f"{futures[future].name} done ({done_count}/{len(todo)})", file=sys.stderr)
        except (KeyboardInterrupt, _Stopped):
            stopped = _stop(pool, executor, futures)
            bar.close()
            raise SweepInterrupted(
                f"interrupted: {stopped} unfinished job(s) stopped; run the same command again to "
                "resume them"
            ) from None
        finally:
            bar.close()
            if executor == "local":
                pool.shutdown(cancel_futures=True)
    return read_results(out)


def _record(job: Job, future: Any, out: Path, bar: Any) -> None:
    """Record a finished job's failure (its result file is written by the job itself)."""
    try:
        future.result()
    except BrokenProcessPool:  # a worker died (e.g. out of memory): not the job's fault
        bar.write(f"not run: {job.name}: a worker process died; run the command again")
    except JobInterrupted:  # unfinished, not failed: the next invocation resumes it
        bar.write(f"interrupted: {job.name}; run the command again to resume it")
    except Exception as error:  # recorded; the other jobs go on
        write_json(out / FAILED / f"{job.name}.json", {"job": job.name, "error": _describe(error)})
        bar.write(f"failed: {job.name}: {_describe(error).splitlines()[-1]}")


def _submit(pool: Any, executor: str, options: dict, job: Job, out: Path, threads: int | None) -> Any:
    """Submit one job; a submitit executor first gets the resources of the job's kind."""
    if executor != "local":
        cluster = "slurm" if executor == "slurm" else "local"
        pool.update_parameters(**submitit_parameters(cluster, options, job.kind))
    return pool.submit(run_job, job, str(out), threads)


def _completed(futures: dict, executor: str) -> Iterable:
    if executor == "local":
        return as_completed(futures)
    submitit_completed = require_extra("submitit.helpers", "slurm", "submitit").as_completed

    return submitit_completed(list(futures))


def _describe(error: BaseException) -> str:
    """The error with its traceback, last line last (submitit errors carry the job's traceback)."""
    text = "".join(traceback.format_exception(error)).strip()
    return text[-4000:]


def failed_jobs(out: str | Path) -> dict[str, str]:
    """``{job: error}`` of the failed jobs recorded under ``out/failed``."""
    folder = Path(out) / FAILED
    return (
        {
            path.stem: json.loads(path.read_text()).get("error", "?")
            for path in sorted(folder.glob("*.json"))
        }
        if folder.is_dir()
        else {}
    )
