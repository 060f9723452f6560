"""Configuration fields that carry their command-line help (read by :mod:`poisson_vae.cli`)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["option"]


def option(default: Any, help: str, cli: bool = True) -> Any:
    """A dataclass field with a default, a help text, and whether it becomes a ``pvae`` flag."""
    return dataclasses.field(default=default, metadata={"help": help, "cli": cli})
