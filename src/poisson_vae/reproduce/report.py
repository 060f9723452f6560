"""``REPORT.md`` of a suite: the paper's tables with our numbers beside the published ones, and a
verdict on each of the paper's claims computed from the runs.

Every number comes from the result files of :mod:`poisson_vae.reproduce.runner`, so a report can be
regenerated from ``results/*.json`` alone. Means carry 99 % t confidence half-widths over seeds;
claims are one-sided paired t-tests over seeds, Benjamini-Hochberg corrected across the claims of a
suite at false-discovery rate 0.01 (:mod:`poisson_vae.reproduce.claims`). What a suite claims and
tabulates is its own (:mod:`poisson_vae.reproduce.suites`); this module lays the report out.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

from ..files import write_text
from ..tables import MISSING, table
from .claims import decide
from .suites import SUITES, Suite

__all__ = ["claims", "render_report", "write_report"]


def claims(suite: Suite, results: dict[str, dict]) -> list[dict]:
    """The paper's claims that ``suite`` tests, each with its numbers, test and verdict."""
    return decide(SUITES[suite.name].claims(suite, results))


def _setting(value: object) -> str:
    return ", ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


def _p_value(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return MISSING
    return "< 0.0001" if p < 1e-4 else f"{p:.4f}"


def _comparison_note(suite: Suite) -> str:
    """What the published numbers are, and how the runs differ from the paper's protocol."""
    definition = SUITES[suite.name]
    published = definition.published_note
    note = f"Published numbers are the paper's ({definition.source})"
    note += f"; {published}." if published else "."
    if suite.scale != "paper":
        note += f" This is the {suite.scale} scale, run at the settings above"
        note += f"; {suite.protocol}." if suite.protocol else "."
        note += " Deviations from the published numbers are therefore expected."
    else:
        note += f" At paper scale our jobs follow the paper's protocol: {suite.protocol}."
    return note + " The claims are about orderings; each verdict says whether our runs support it."


def render_report(
    suite: Suite,
    results: dict[str, dict],
    failed: dict[str, str],
    out: str | Path,
    command: str,
    wall_seconds: float | None = None,
) -> str:
    """The Markdown of ``REPORT.md`` (writes its figures into ``out/figures``)."""
    out = Path(out)
    compute = sum(result.get("seconds", 0.0) for result in results.values())
    lines = [f"# Reproduction: {suite.name} ({suite.scale} scale)", ""]
    lines += [f"{suite.description[0].upper()}{suite.description[1:]}.", ""]
    lines += ["```bash", command, "```", ""]
    lines += [f"- jobs: {len(results)} finished of {len(suite.jobs)}, {len(failed)} failed"]
    if wall_seconds is not None:
        lines += [f"- wall time of the sweep: {wall_seconds / 60:.1f} min"]
    lines += [f"- compute time of the jobs: {compute / 60:.1f} min (sum over jobs)"]
    settings = "; ".join(
        f"{key.replace('_', ' ')} {_setting(value)}"
        for key, value in suite.settings.items()
        if value is not None
    )
    lines += [f"- settings: {settings}", ""]
    lines += [_comparison_note(suite), ""]
    lines += ["Cells read `mean ± 99 % CI half-width over seeds (published; ours - published)`.", ""]
    lines += ["## Claims", ""]
    claim_rows = [
        [c["claim"], c["numbers"], c["test"], _p_value(c.get("p_adjusted")), f"**{c['verdict']}**"]
        for c in claims(suite, results)
    ]
    lines += [*table(["claim", "ours", "test", "BH-adjusted p", "verdict"], claim_rows), ""]
    lines += ["## Tables", ""]
    lines += SUITES[suite.name].sections(suite, results, out)
    blocked = [job.name for job in suite.jobs if job.after in failed and job.name not in results]
    if failed:
        lines += ["## Failed jobs", ""]
        lines += [f"- `{name}`: {error.splitlines()[-1]}" for name, error in failed.items()]
        lines += [f"- `{name}`: not run, the job it reads failed" for name in blocked] + [""]
    return "\n".join(lines)


def write_report(suite: Suite, out: str | Path, command: str, wall_seconds: float | None = None) -> Path:
    """Write ``out/REPORT.md`` from the result files under ``out``; returns its path."""
    from .runner import failed_jobs, read_results

    out = Path(out)
    sweep = out / "sweep.json"
    invocations = json.loads(sweep.read_text())["invocations"] if sweep.is_file() else []
    if invocations and "settings" in invocations[-1]:  # the settings the jobs ran with
        suite = replace(suite, settings=invocations[-1]["settings"])
    names = {job.name for job in suite.jobs}
    results = {name: result for name, result in read_results(out).items() if name in names}
    failed = {name: error for name, error in failed_jobs(out).items() if name not in results}
    path = out / "REPORT.md"
    write_text(path, render_report(suite, results, failed, out, command, wall_seconds))
    return path
