"""Turning exceptions into the one-line messages and exit codes every command promises.

Known user-facing failures (bad files, corrupt streams, wrong models: every ``DiffcError``) print
``diffc: error: ...`` on stderr and exit 1; anything else is an internal error, reported on one line
too. Set DIFFC_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import os
import sys

from diffc.errors import DiffcError


class UserError(DiffcError):
    """A failure caused by the user's input or environment, with a message that says what to do."""


def debug_enabled() -> bool:
    return os.environ.get("DIFFC_DEBUG", "") not in ("", "0")


def describe(exc: BaseException) -> str:
    """One line for ``exc``: its message for known errors, its type and message otherwise."""
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, DiffcError):
        return message
    if isinstance(exc, FileNotFoundError):
        return f"no such file: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"is a directory: {exc.filename}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.filename}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or message}: {exc.filename}"
    if isinstance(exc, MemoryError):
        return "out of memory"
    return f"internal error ({type(exc).__name__}: {message}); set DIFFC_DEBUG=1 for the traceback"


def report(exc: BaseException) -> int:
    """Print ``exc`` as one line on stderr and return the exit code (1)."""
    print(f"diffc: error: {describe(exc)}", file=sys.stderr)
    return 1
