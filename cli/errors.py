"""Turning exceptions into the one-line messages and exit codes every command promises.

Usage errors (a missing argument, an unknown option, a bad value, options that exclude each other:
click's ``UsageError``, raised by the parser or by a command) print ``diffc: error: ...`` on stderr
and exit 2. Known user-facing failures (bad files, corrupt streams, wrong models: every
``DiffcError``) print the same one line and exit 1; anything else is an internal error, reported on
one line too. Set DIFFC_DEBUG=1 to see the traceback instead.
"""

from __future__ import annotations

import os
import sys

from diffc.errors import DiffcError

try:  # recent typer carries its own copy of click
    from typer._click import exceptions as _click_exceptions
except ImportError:  # older typer runs on click itself
    from click import exceptions as _click_exceptions

ClickException = _click_exceptions.ClickException
UsageError = _click_exceptions.UsageError
"""What a command raises for a command line it cannot run as given (exit 2), like the parser."""
NoArgsIsHelpError = getattr(_click_exceptions, "NoArgsIsHelpError", ())  # click < 8.2 exits 0 itself


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


def describe_click(exc: ClickException) -> str:
    """One line for a click error: its message, lower-cased at the start, and where to find help
    ("missing argument 'image' (see 'diffc encode --help')")."""
    message = " ".join(exc.format_message().split()).rstrip(".") or type(exc).__name__
    message = message[:1].lower() + message[1:]
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "diffc"
    return f"{message} (see '{command} --help')" if isinstance(exc, UsageError) else message


def report_click(exc: ClickException) -> int:
    """Print a click error as one line on stderr and return its exit code (2 for usage errors)."""
    print(f"diffc: error: {describe_click(exc)}", file=sys.stderr)
    return exc.exit_code
