"""The reproduction suites, one module each: its jobs, its claims, its tables and figures, and the
paper's numbers it is compared with. Adding a suite is one module and one line below.

A suite is a grid of jobs at one *scale*: ``small`` (fewer epochs and samples, 3 seeds, cheaper
networks where named; each suite within 45 minutes on a 2-core CPU) or ``paper`` (the paper's
recipes, networks and 5 seeds). :mod:`poisson_vae.reproduce.runner` runs the jobs and
:mod:`poisson_vae.reproduce.report` writes the report through the suite's own functions.
"""

from __future__ import annotations

from dataclasses import replace

from ...data import dataset_availability
from ...errors import ConfigError, braces
from . import gradients, iterative, mnist, rate_distortion, zoo
from .base import FAMILIES, SCALES, Job, Suite, SuiteDefinition

__all__ = ["FAMILIES", "SCALES", "SUITES", "Job", "Suite", "SuiteDefinition", "build_suite"]

#: Every suite by name.
SUITES: dict[str, SuiteDefinition] = {
    "natural16-zoo": zoo.definition("natural16"),
    "natural16-rate-distortion": rate_distortion.definition("natural16"),
    "natural16-large-rate-distortion": rate_distortion.definition("natural16-large"),
    "mnist-geometry": mnist.DEFINITION,
    "vanhateren16": zoo.definition("vanhateren16"),
    "cifar16": zoo.definition("cifar16"),
    "poisson-gradients": gradients.DEFINITION,
    "natural16-iterative": iterative.definition("natural16"),
    "vanhateren16-iterative": iterative.definition("vanhateren16"),
    "mnist-iterative": iterative.MNIST,
}


def build_suite(name: str, scale: str, data_dir: str | None = None) -> Suite:
    """The jobs of suite ``name`` at ``scale``.

    Raises:
        ConfigError: an unknown suite or scale.
        DataFileError: the suite's data is absent (one line that says how to supply it).
    """
    if name not in SUITES:
        raise ConfigError(f"unknown suite {name!r}; choose one of {', '.join(SUITES)}")
    if scale not in SCALES:
        raise ConfigError(
            f"{{0}} must be one of {', '.join(SCALES)}, got {braces(repr(scale))}", "scale"
        )
    if scale not in SUITES[name].scales:
        raise ConfigError(
            f"suite {name} has no {scale} scale; {{0}} must be one of {', '.join(SUITES[name].scales)}",
            "scale",
        )
    suite = SUITES[name].build(scale)
    if data_dir is not None:
        jobs = []
        for job in suite.jobs:
            config = dict(job.config)
            if "data" in config:
                config["data"] = {**config["data"], "data_dir": str(data_dir)}
            jobs.append(replace(job, config=config))
        suite = replace(suite, jobs=tuple(jobs))
    reason = dataset_availability(suite.data, data_dir)
    if reason is not None:
        raise reason.within(
            f"suite {name} needs the {suite.data} data, which is absent (",
            "); see `pvae data list` for how to supply it",
        )
    return suite
