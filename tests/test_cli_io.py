"""File conventions of every command (``cli/io.py``): atomic writes, no overwrite without force,
``-`` for stdin and stdout."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from diffc.cli.errors import UserError
from diffc.cli.io import STDIO, atomic_output, check_writable, read_bytes, write_bytes


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_output_writes_the_file_and_nothing_else(tmp_path: Path) -> None:
    target = tmp_path / "out.dfc"
    with atomic_output(target, force=False) as f:
        f.write(b"hello ")
        f.write(b"world")
        assert not target.exists()  # nothing at the target until the block completes
        assert len(names(tmp_path)) == 1 and names(tmp_path)[0].endswith(".part")
    assert target.read_bytes() == b"hello world"
    assert names(tmp_path) == ["out.dfc"]


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_atomic_output_leaves_nothing_when_the_block_raises(tmp_path: Path, exc) -> None:
    target = tmp_path / "out.png"
    with pytest.raises(type(exc)):
        with atomic_output(target, force=False) as f:
            f.write(b"half an image")
            raise exc
    assert names(tmp_path) == []


def test_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "out.dfc"
    target.write_bytes(b"precious")
    with pytest.raises(UserError, match=r"out\.dfc exists; pass --force to overwrite it"):
        with atomic_output(target, force=False) as f:
            f.write(b"new")
    assert target.read_bytes() == b"precious"
    assert names(tmp_path) == ["out.dfc"]
    with pytest.raises(UserError, match="pass --force"):
        write_bytes(target, b"new", force=False)
    assert target.read_bytes() == b"precious"


def test_overwrites_with_force(tmp_path: Path) -> None:
    target = tmp_path / "out.dfc"
    target.write_bytes(b"old contents, longer than the new")
    write_bytes(target, b"new", force=True)
    assert target.read_bytes() == b"new"
    assert names(tmp_path) == ["out.dfc"]


def test_failed_forced_overwrite_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.dfc"
    target.write_bytes(b"old")
    with pytest.raises(ValueError):
        with atomic_output(target, force=True) as f:
            f.write(b"partial")
            raise ValueError("encoder failed")
    assert target.read_bytes() == b"old"
    assert names(tmp_path) == ["out.dfc"]


def test_a_file_that_appears_while_writing_is_not_overwritten(tmp_path: Path) -> None:
    target = tmp_path / "out.dfc"
    with pytest.raises(UserError, match="appeared while writing"):
        with atomic_output(target, force=False) as f:
            f.write(b"mine")
            target.write_bytes(b"someone else's")
    assert target.read_bytes() == b"someone else's"
    assert names(tmp_path) == ["out.dfc"]


def test_check_writable(tmp_path: Path) -> None:
    check_writable(tmp_path / "new.dfc", force=False)
    check_writable(STDIO, force=False)
    (tmp_path / "old.dfc").write_bytes(b"x")
    check_writable(tmp_path / "old.dfc", force=True)
    with pytest.raises(UserError, match="exists"):
        check_writable(tmp_path / "old.dfc", force=False)
    with pytest.raises(UserError, match="is a directory"):
        check_writable(tmp_path, force=True)
    with pytest.raises(UserError, match=r"output folder .*nowhere does not exist"):
        check_writable(tmp_path / "nowhere" / "x.dfc", force=False)
    assert names(tmp_path) == ["old.dfc"]


def test_write_bytes_to_stdout(capsysbinary) -> None:
    write_bytes(STDIO, b"\x00DFC\xff", force=False)
    assert capsysbinary.readouterr().out == b"\x00DFC\xff"


def test_read_bytes(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "in.dfc"
    path.write_bytes(b"\x00\x01" * 100)
    assert read_bytes(path) == b"\x00\x01" * 100
    assert read_bytes(path, limit=200) == b"\x00\x01" * 100
    with pytest.raises(UserError, match="larger than the limit of 199 bytes"):
        read_bytes(path, limit=199)
    with pytest.raises(UserError, match="no such file: .*missing.dfc"):
        read_bytes(tmp_path / "missing.dfc")
    with pytest.raises(UserError, match="is a directory, not a file"):
        read_bytes(tmp_path)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"DFC\x01binary\xff")))
    assert read_bytes(STDIO) == b"DFC\x01binary\xff"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"0123456789")))
    with pytest.raises(UserError, match="larger than the limit of 5 bytes"):
        read_bytes(STDIO, limit=5)
