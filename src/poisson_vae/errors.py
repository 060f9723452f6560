"""Errors whose messages name configuration fields, so that each interface can name them its way.

Library code names fields as Python users know them (``n_latents must be a positive integer, got
0``); the command line renders the same error with its flags (``--n-latents must be ...``) in one
place, :func:`poisson_vae.cli.main`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

__all__ = [
    "CheckpointError",
    "ConfigError",
    "FieldError",
    "MissingExtraError",
    "braces",
    "require_extra",
]


def braces(text: str) -> str:
    """``text`` for a message template that names fields: literal braces doubled."""
    return text.replace("{", "{{").replace("}", "}}")


class FieldError(ValueError):
    """An error about the values of named fields.

    Args:
        template: the message; with ``names``, ``{0}``, ``{1}``, ... mark where the field names
            go and literal braces are doubled (:func:`braces`); without, it is the message as is.
        *names: the fields the message is about.
        section: the configuration section of the fields (``train``), named when the value came
            from a file.
    """

    def __init__(self, template: str, *names: str, section: str | None = None) -> None:
        self.template, self.names, self.section = template, names, section
        super().__init__(self.render(lambda section, name: f"{section}.{name}" if section else name))

    def render(self, namer: Callable[[str | None, str], str]) -> str:
        """The message with each field named by ``namer(section, field)``."""
        if not self.names:
            return self.template
        return self.template.format(*(namer(self.section, name) for name in self.names))

    def in_section(self, section: str) -> FieldError:
        """The same error, its fields qualified by ``section``."""
        return type(self)(self.template, *self.names, section=section)

    def within(self, before: str, after: str = "") -> FieldError:
        """The same error with plain text ``before`` and ``after`` its message (e.g. the file it
        came from)."""
        if not self.names:
            return type(self)(before + self.template + after)
        template = braces(before) + self.template + braces(after)
        return type(self)(template, *self.names, section=self.section)


class ConfigError(FieldError):
    """An invalid configuration value or combination of values."""


class CheckpointError(RuntimeError):
    """A run folder's weights, checkpoint or configuration are missing, unreadable, or belong to
    another model."""


class MissingExtraError(ImportError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require_extra(module: str, extra: str, purpose: str) -> ModuleType:
    """Import ``module`` of an optional dependency, or say in one line which extra installs it.

    Args:
        module: the module to import (``submitit``).
        extra: the package extra that brings it (``slurm``).
        purpose: what needs it, for the message (``--executor slurm``).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingExtraError(
            f"{purpose} needs {module.split('.')[0]}, which the '{extra}' extra installs: "
            f"pip install 'poisson-vae[{extra}]'"
        ) from None
