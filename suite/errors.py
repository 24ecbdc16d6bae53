"""The errors every command ends with, and their exit statuses.

A wrong argument, an unusable machine or an unreadable file is one line on
stderr and exit status 2 (EXIT_USAGE), never a traceback; Ctrl-C is 130.
"""
from __future__ import annotations

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A wrong argument or an unusable machine: one line, exit status 2."""


def check_device(index: int, count: int) -> None:
    """Refuse a --device index this machine does not have (of `count` visible CUDA devices)."""
    if not 0 <= index < count:
        raise UsageError(f"--device {index} does not exist: this machine has {count} CUDA device(s)"
                         + (f", 0..{count - 1}" if count else ""))
