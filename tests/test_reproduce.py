"""Tests of :func:`poisson_vae.reproduce.reproduce`: how each invocation of a sweep is recorded in
``sweep.json`` and counted in the report's wall time, killed invocations included."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import poisson_vae.reproduce as reproduce_module
from poisson_vae.reproduce import reproduce


def fake_run_suite(names: list[str], interrupt: bool = False):
    """A stand-in for ``run_suite`` that writes result files and, optionally, is then killed."""

    def run_suite(suite, out, *args, **kwargs) -> dict:
        results = Path(out) / "results"
        results.mkdir(parents=True, exist_ok=True)
        for name in names:
            (results / f"{name}.json").write_text(json.dumps({"job": name, "seconds": 1.0}))
        if interrupt:
            raise KeyboardInterrupt
        return {}

    return run_suite


def sweep(out: Path) -> list[dict]:
    return json.loads((out / "sweep.json").read_text())["invocations"]


def test_a_killed_invocation_is_timed_to_its_last_finished_job(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "zoo"
    monkeypatch.setattr(reproduce_module, "run_suite", fake_run_suite(["a", "b"], interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        reproduce("natural16-zoo", out=out, command="first")
    (killed,) = sweep(out)
    assert killed["command"] == "first" and "started" in killed and "seconds" not in killed

    # pretend the killed invocation started 10 minutes before its results were written
    document = json.loads((out / "sweep.json").read_text())
    started = datetime.fromisoformat(killed["started"]) - timedelta(minutes=10)
    document["invocations"][0]["started"] = started.isoformat()
    (out / "sweep.json").write_text(json.dumps(document))

    monkeypatch.setattr(reproduce_module, "run_suite", fake_run_suite(["c"]))
    report = reproduce("natural16-zoo", out=out, command="second").read_text()
    first, second = sweep(out)
    assert first["interrupted"] and second["jobs_run"] == 1 and second["seconds"] < 60
    # 10 min plus the time the fake took to write its results, settled when the second started
    last_result = max((out / "results" / f"{name}.json").stat().st_mtime for name in "ab")
    assert first["seconds"] == pytest.approx(last_result - started.timestamp(), abs=0.1)
    assert 600 <= first["seconds"] < 600 + 60
    wall = (first["seconds"] + second["seconds"]) / 60
    assert f"wall time of the sweep: {wall:.1f} min" in report
    assert "first  # interrupted: timed to its last finished job\nsecond\n" in report
    # a clone of the folder (new modification times) renders the same report
    for path in (out / "results").glob("*.json"):
        os.utime(path)
    again = reproduce("natural16-zoo", out=out, command="report", report_only=True).read_text()
    assert f"wall time of the sweep: {wall:.1f} min" in again


def test_invocations_that_run_no_job_are_not_recorded(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "zoo"
    monkeypatch.setattr(reproduce_module, "run_suite", fake_run_suite(["a"]))
    reproduce("natural16-zoo", out=out, command="ran")
    monkeypatch.setattr(reproduce_module, "run_suite", fake_run_suite([]))
    reproduce("natural16-zoo", out=out, command="nothing left")
    reproduce("natural16-zoo", out=out, command="report", report_only=True)
    assert [entry["command"] for entry in sweep(out)] == ["ran"]


def test_a_killed_invocation_without_results_adds_no_time(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    out = tmp_path / "zoo"
    monkeypatch.setattr(reproduce_module, "run_suite", fake_run_suite([], interrupt=True))
    with pytest.raises(KeyboardInterrupt):
        reproduce("natural16-zoo", out=out, command="killed early")
    report = reproduce("natural16-zoo", out=out, report_only=True).read_text()
    assert "killed early" not in report and "wall time of the sweep" not in report


def test_an_unknown_executor_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="executor must be one of local, slurm, submitit-local"):
        reproduce("natural16-zoo", out=tmp_path / "zoo", executor="dask")
    assert not (tmp_path / "zoo").exists()
