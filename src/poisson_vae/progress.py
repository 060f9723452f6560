"""Progress: bars on a terminal, plain lines elsewhere, and a run's ``train.log``.

A progress bar redraws itself with carriage returns, which fills a log file (a SLURM job's output,
a redirected shell) with thousands of partial lines. So bars (on standard output) are shown only
when standard output is a terminal; elsewhere the same progress is reported as one plain line per
epoch on standard error. Every training
run also appends those lines to its ``train.log``, whatever the terminal.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

__all__ = ["RunLog", "on_terminal"]


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (standard output, where bars go, by default) is an interactive terminal."""
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        return False


class RunLog:
    """Lines of a run's progress: appended to its log file, and echoed to standard error when
    progress is wanted and no bar can show it.

    Args:
        path: the log file (appended to: a resumed run continues its log).
        echo: print each line to standard error too.
    """

    def __init__(self, path: str | Path, echo: bool) -> None:
        self.path = Path(path)
        self.echo = echo

    def line(self, text: str) -> None:
        """Write one line, stamped with the local date and time."""
        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as handle:
            handle.write(stamped + "\n")
        if self.echo:
            print(stamped, file=sys.stderr, flush=True)
