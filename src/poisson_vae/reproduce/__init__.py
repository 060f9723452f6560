"""Reproduce the paper: ``pvae reproduce SUITE --scale small|paper``.

:mod:`~poisson_vae.reproduce.suites` lists each suite's jobs, :mod:`~poisson_vae.reproduce.runner`
runs them through a process pool or submitit (resumably: one small JSON of metrics per finished
job), and :mod:`~poisson_vae.reproduce.report` writes ``REPORT.md`` with the published numbers
beside ours and a computed verdict on each of the paper's claims.
"""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from ..errors import ConfigError, braces
from ..files import write_json
from .report import write_report
from .runner import EXECUTORS, SweepInterrupted, check_executor, run_suite
from .suites import SCALES, SUITES, Job, Suite, build_suite

__all__ = ["EXECUTORS", "SCALES", "SUITES", "Job", "Suite", "build_suite", "reproduce"]

SWEEP_FILE = "sweep.json"


def _machine() -> str:
    """The CPU model and count (and the GPU, if any) of this machine, for the report."""
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    machine = f"{cpu}, {os.cpu_count()} CPUs"
    if torch.cuda.is_available():
        machine += f", {torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return machine


def _count(out: Path) -> int:
    """Finished jobs under ``out``."""
    return len(list((out / "results").glob("*.json"))) if out.is_dir() else 0


def _now() -> str:
    # Microseconds: a killed invocation is timed by the results written before the next start, and
    # a start truncated to the millisecond could fall before a result written just ahead of it.
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _read_sweep(out: Path) -> dict:
    path = out / SWEEP_FILE
    return json.loads(path.read_text()) if path.is_file() else {"invocations": []}


def _write_sweep(out: Path, document: dict) -> None:
    write_json(out / SWEEP_FILE, document)


def _start_invocation(out: Path, command: str, settings: dict) -> int:
    """Append this invocation to ``out/sweep.json`` before any job runs (so that a killed sweep
    still leaves its start time), after settling the time of any killed one; returns its index."""
    document = _read_sweep(out)
    _settle_interrupted(out, document["invocations"], until=time.time())
    document["invocations"].append(
        {
            "command": command,
            "machine": _machine(),
            "started": _now(),
            "settings": json.loads(json.dumps(settings)),
        }
    )
    _write_sweep(out, document)
    return len(document["invocations"]) - 1


def _finish_invocation(out: Path, index: int, seconds: float, jobs_run: int) -> None:
    """Record the wall time of invocation ``index``, or drop it when it ran no job."""
    document = _read_sweep(out)
    if jobs_run:
        entry = document["invocations"][index]
        entry.pop("interrupted", None)  # settled by an invocation started beside this one
        entry |= {"finished": _now(), "seconds": round(seconds, 1), "jobs_run": jobs_run}
    else:
        del document["invocations"][index]
    _write_sweep(out, document)


def _interrupted_seconds(out: Path, started: float, until: float) -> float:
    """Wall time of a killed invocation: from its start to the last result written before
    ``until`` (the next invocation's start); 0 when it finished no job."""
    finished = [
        mtime
        for mtime in (path.stat().st_mtime for path in (out / "results").glob("*.json"))
        if started <= mtime < until
    ]
    return max(finished) - started if finished else 0.0


def _settle_interrupted(out: Path, invocations: list[dict], until: float = float("inf")) -> None:
    """Give every killed invocation (one with a start and no ``seconds``) its wall time, up to
    its last finished job, and mark it ``interrupted``. Done when the next invocation starts,
    while the results' modification times still tell (a copy or a clone of the folder loses them).
    """
    starts = [
        datetime.fromisoformat(entry["started"]).timestamp() if "started" in entry else None
        for entry in invocations
    ]
    for i, entry in enumerate(invocations):
        if "seconds" in entry or starts[i] is None:
            continue
        end = next((start for start in starts[i + 1 :] if start is not None), until)
        entry |= {"seconds": round(_interrupted_seconds(out, starts[i], end), 1), "interrupted": True}


def _sweep_time(out: Path) -> tuple[float, list[str]]:
    """The total wall time of the invocations that ran jobs, and their commands for the report.

    An invocation that was killed counts up to its last finished job, and its command says so.
    """
    invocations = _read_sweep(out)["invocations"]
    _settle_interrupted(out, invocations)
    total, commands, machines = 0.0, [], set()
    for entry in invocations:
        command = entry.get("command")
        if entry.get("interrupted"):
            if not entry.get("seconds"):
                continue
            command = command and f"{command}  # interrupted: timed to its last finished job"
        total += entry.get("seconds", 0.0)
        if command:
            commands.append(command)
        if "machine" in entry:
            machines.add(f"# on {entry['machine']}")
    return total, commands + sorted(machines)


def reproduce(
    suite: str,
    scale: str = "small",
    out: str | Path | None = None,
    executor: str = "local",
    options: dict | None = None,
    retry_failed: bool = False,
    report_only: bool = False,
    data_dir: str | None = None,
    progress: bool = True,
    command: str | None = None,
) -> Path:
    """Run (or resume) a suite and write its report; returns the path of ``REPORT.md``.

    Args:
        suite: a name of :data:`SUITES`.
        scale: ``small`` or ``paper``.
        out: output folder (default ``reproduce/SUITE-SCALE``).
        executor: ``local``, ``slurm`` or ``submitit-local``.
        options: executor options (see :func:`~poisson_vae.reproduce.runner.run_suite`).
        retry_failed: run failed jobs again.
        report_only: only (re)write the report from the finished jobs' result files.
        data_dir: folder of source files the data needs (van Hateren, CIFAR).
        progress: show progress bars.
        command: the command line to print in the report.
    """
    plan = build_suite(suite, scale, data_dir)
    check_executor(executor, options, plan.jobs)
    out = Path(out) if out is not None else Path("reproduce") / f"{suite}-{scale}"
    if report_only and not (out / "results").is_dir():
        raise ConfigError(
            f"{braces(str(out))} holds no results/ folder: run the suite first (without {{0}})",
            "report_only",
        )
    command = command or f"pvae reproduce {suite} --scale {scale} --out {out}"
    if not report_only:
        before = _count(out)
        started = time.perf_counter()
        index = _start_invocation(out, command, plan.settings)
        try:
            run_suite(plan, out, executor, options, retry_failed, progress)
        except SweepInterrupted:  # a clean stop is timed to the stop (a killed one: see below)
            _finish_invocation(out, index, time.perf_counter() - started, _count(out) - before)
            raise
        _finish_invocation(out, index, time.perf_counter() - started, _count(out) - before)
    wall, commands = _sweep_time(out)
    return write_report(plan, out, "\n".join(commands or [command]), wall or None)
