"""The errors every command ends with, and their exit statuses.

A wrong argument, an unusable machine or an unreadable file is one line on
stderr and exit status 2 (EXIT_USAGE), never a traceback; Ctrl-C is 130.
"""
from __future__ import annotations

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A wrong argument or an unusable machine: one line, exit status 2."""
