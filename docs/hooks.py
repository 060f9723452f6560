"""mkdocs hook: the command-line reference is generated from ``pvae``'s parsers, never retyped.

``docs/cli.md`` holds the marker ``<!-- pvae-cli -->``; this hook replaces it with the ``--help``
text of ``pvae`` and of each of its commands and actions, walked from
``poisson_vae.cli.build_parser()``.
"""

from __future__ import annotations

import argparse
import os

MARKER = "<!-- pvae-cli -->"


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser]]:
    """The (name, parser) pairs of a parser's sub-commands, in their declared order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return list(action.choices.items())
    return []


def _sections(parser: argparse.ArgumentParser, path: str, level: int) -> list[str]:
    """Markdown for a parser and, below it, each of its sub-commands."""
    text = [f"{'#' * level} `{path}`", "", "```text", parser.format_help().rstrip(), "```", ""]
    for name, sub in _subcommands(parser):
        text += _sections(sub, f"{path} {name}", level + 1)
    return text


def cli_reference() -> str:
    """The help of every ``pvae`` command, formatted at 100 columns."""
    from poisson_vae.cli import build_parser

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        return "\n".join(_sections(build_parser(), "pvae", 2))
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous


def on_page_markdown(markdown: str, page, config, files) -> str:
    """mkdocs' event: each page's Markdown before it is rendered."""
    if MARKER in markdown:
        return markdown.replace(MARKER, cli_reference())
    return markdown
