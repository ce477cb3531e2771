"""File conventions shared by every command: ``-`` for stdin/stdout, no overwrite without
``--force``, and atomic writes (a temporary file in the target's folder, then a rename), so that a
failed or interrupted command never leaves a half-written output."""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from diffc.cli.errors import UserError

STDIO = Path("-")


def read_bytes(path: Path, *, limit: int | None = None) -> bytes:
    """Read a whole input file, or stdin for ``-``; refuse more than ``limit`` bytes."""
    if path == STDIO:
        data = sys.stdin.buffer.read(-1 if limit is None else limit + 1)
    else:
        if path.is_dir():
            raise UserError(f"{path} is a directory, not a file")
        if not path.exists():
            raise UserError(f"no such file: {path}")
        with path.open("rb") as f:
            data = f.read(-1 if limit is None else limit + 1)
    if limit is not None and len(data) > limit:
        raise UserError(f"{path} is larger than the limit of {limit} bytes")
    return data


def check_writable(path: Path, *, force: bool) -> None:
    """Fail before any work is done if ``path`` exists and ``--force`` was not given."""
    if path == STDIO:
        return
    if path.is_dir():
        raise UserError(f"output {path} is a directory")
    if path.exists() and not force:
        raise UserError(f"output {path} exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise UserError(f"output folder {path.parent} does not exist")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_output(path: Path, *, force: bool) -> Iterator[BinaryIO]:
    """Yield a binary file that becomes ``path`` only if the block completes without error."""
    if path == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    check_writable(path, force=force)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp's 0600 would hide the output from others
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if path.exists() and not force:
            raise UserError(f"output {path} appeared while writing; pass --force to overwrite it")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_bytes(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``data`` to ``path`` (or stdout for ``-``) atomically."""
    with atomic_output(path, force=force) as f:
        f.write(data)
