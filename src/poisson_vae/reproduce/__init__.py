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

from .report import write_report
from .runner import EXECUTORS, run_suite
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


def _record_invocation(
    out: Path, seconds: float, jobs_run: int, command: str, settings: dict
) -> tuple[float, list[str]]:
    """Append this invocation to ``out/sweep.json`` when it ran jobs; the total wall time of the
    invocations that ran jobs, and their commands."""
    path = out / SWEEP_FILE
    document = json.loads(path.read_text()) if path.is_file() else {"invocations": []}
    if jobs_run:
        document["invocations"].append(
            {
                "command": command,
                "machine": _machine(),
                "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(seconds, 1),
                "jobs_run": jobs_run,
                "settings": json.loads(json.dumps(settings)),
            }
        )
        path.write_text(json.dumps(document, indent=2) + "\n")
    invocations = document["invocations"]
    commands = [entry["command"] for entry in invocations if "command" in entry]
    commands += sorted({f"# on {entry['machine']}" for entry in invocations if "machine" in entry})
    return sum(entry["seconds"] for entry in invocations), commands


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
    out = Path(out) if out is not None else Path("reproduce") / f"{suite}-{scale}"
    if report_only and not (out / "results").is_dir():
        raise ValueError(f"{out} holds no results/ folder: run the suite first (without --report-only)")
    before = len(list((out / "results").glob("*.json"))) if out.is_dir() else 0
    started = time.perf_counter()
    if not report_only:
        run_suite(plan, out, executor, options, retry_failed, progress)
    after = len(list((out / "results").glob("*.json")))
    command = command or f"pvae reproduce {suite} --scale {scale} --out {out}"
    seconds = time.perf_counter() - started
    wall, commands = _record_invocation(out, seconds, after - before, command, plan.settings)
    return write_report(plan, out, "\n".join(commands or [command]), wall or None)
