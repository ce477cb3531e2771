"""``diffc info`` and the CLI frame (``cli/main.py``, ``cli/errors.py``, ``cli/info.py``): output,
rates, one-line errors and exit codes, through ``main([...])`` and the installed console script."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from diffc import bitstreams
from diffc.bitstreams import Header, Mode
from diffc.cli.main import main

HASH = bytes.fromhex("0123456789abcdef")
LOSSY = Header(Mode.LOSSY, 48, 64, 3, 42, "vdm-tiny", HASH, {"chunk_bits": 300, "steps": 10})
LOSSY_CHUNKS = [b"a" * 100, b"b" * 20, b"c" * 7]
LOSSLESS = Header(Mode.LOSSLESS_ARDM, 16, 8, 1, 0, "ardm", HASH, {"image_crc32": 0xDEADBEEF})


@pytest.fixture(autouse=True)
def no_debug(monkeypatch) -> None:
    monkeypatch.delenv("DIFFC_DEBUG", raising=False)


@pytest.fixture
def lossy_file(tmp_path: Path) -> Path:
    path = tmp_path / "image.dfc"
    path.write_bytes(bitstreams.write(LOSSY, LOSSY_CHUNKS))
    return path


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(code: int, out: str, err: str) -> str:
    assert code == 1
    assert out == ""
    assert err.startswith("diffc: error: ") and err.endswith("\n")
    assert err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return err[len("diffc: error: ") : -1]


def test_version(capsys) -> None:
    code, out, err = run(capsys, "--version")
    assert (code, out, err) == (0, f"diffc {version('diffc')}\n", "")


def test_info_text(capsys, lossy_file: Path) -> None:
    code, out, err = run(capsys, "info", str(lossy_file))
    total = lossy_file.stat().st_size
    header_bytes = bitstreams.header_size(LOSSY, [100, 20, 7])
    assert total == header_bytes + 127
    assert (code, err) == (0, "")
    assert out.splitlines() == [
        "format      dfc version 7, lossy",
        "image       64x48, 3 channel(s)",
        "model       vdm-tiny (weights 0123456789abcdef)",
        "seed        42",
        "parameters  steps=10, chunk_bits=300",
        f"size        {total} bytes ({header_bytes} header), {8 * total / 3072:.4f} bpp, "
        f"{8 * total / 9216:.4f} bits/dim",
        "chunks      3 of 3 present: 100 20 7",
    ]


def test_info_json(capsys, lossy_file: Path) -> None:
    code, out, err = run(capsys, "info", str(lossy_file), "--json")
    assert (code, err) == (0, "")
    facts = json.loads(out)
    total = lossy_file.stat().st_size
    assert facts == {
        "format_version": 7,
        "mode": "lossy",
        "height": 48,
        "width": 64,
        "channels": 3,
        "seed": 42,
        "model_id": "vdm-tiny",
        "model_hash": "0123456789abcdef",
        "params": {"steps": 10, "chunk_bits": 300},
        "header_bytes": bitstreams.header_size(LOSSY, [100, 20, 7]),
        "chunks": [100, 20, 7],
        "declared_chunks": 3,
        "complete": True,
        "total_bytes": total,
        "bits": 8 * total,
        "bpp": 8 * total / (48 * 64),
        "bits_per_dim": 8 * total / (48 * 64 * 3),
    }
    assert list(facts["params"]) == ["steps", "chunk_bits"]  # field-id order


def test_info_reports_the_streams_own_format_version(capsys, tmp_path: Path) -> None:
    """A version-3 stream (still read) is reported as version 3, not as the writer's version."""
    assert bitstreams.OLDEST_VERSION == 3 < bitstreams.VERSION
    path = tmp_path / "v3.dfc"
    path.write_bytes(bitstreams.write(dataclasses.replace(LOSSY, version=3), LOSSY_CHUNKS))
    code, out, _ = run(capsys, "info", "--json", str(path))
    assert (code, json.loads(out)["format_version"]) == (0, 3)
    code, out, _ = run(capsys, "info", str(path))
    assert code == 0 and out.splitlines()[0] == "format      dfc version 3, lossy"


def test_info_json_of_a_grayscale_lossless_stream(capsys, tmp_path: Path) -> None:
    path = tmp_path / "g.dfc"
    path.write_bytes(bitstreams.write(LOSSLESS, [bytes(64)]))
    code, out, _ = run(capsys, "info", "--json", str(path))
    facts = json.loads(out)
    assert code == 0
    assert (facts["mode"], facts["channels"], facts["params"]) == (
        "lossless-ardm", 1, {"image_crc32": 0xDEADBEEF}
    )
    assert facts["bpp"] == facts["bits_per_dim"] == 8 * path.stat().st_size / 128


def test_info_many_chunks_are_summed(capsys, tmp_path: Path) -> None:
    path = tmp_path / "many.dfc"
    path.write_bytes(bitstreams.write(LOSSY, [b"x" * i for i in range(40)]))
    code, out, _ = run(capsys, "info", str(path))
    assert code == 0
    assert "chunks      40 of 40 present: 780 bytes in all" in out.splitlines()


def test_info_on_a_truncated_lossy_stream_notes_it(capsys, lossy_file: Path) -> None:
    data = lossy_file.read_bytes()
    lossy_file.write_bytes(data[:-10])  # drops chunk 2 (7 bytes) and the end of chunk 1
    code, out, err = run(capsys, "info", str(lossy_file))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert "chunks      1 of 3 present: 100" in lines
    assert lines[-1] == "note        the stream is truncated; only the complete chunks above decode"
    code, out, _ = run(capsys, "info", "--json", str(lossy_file))
    facts = json.loads(out)
    assert (facts["complete"], facts["chunks"], facts["declared_chunks"]) == (False, [100], 3)
    assert facts["total_bytes"] == len(data) - 10


def test_complete_stream_has_no_note(capsys, lossy_file: Path) -> None:
    _, out, _ = run(capsys, "info", str(lossy_file))
    assert "truncated" not in out


def test_error_random_bytes(capsys, tmp_path: Path) -> None:
    path = tmp_path / "noise.dfc"
    path.write_bytes(bytes((i * 97 + 13) % 256 for i in range(500)))
    message = assert_one_error_line(*run(capsys, "info", str(path)))
    assert message == "not a diffc stream (missing the 'DFC' magic)"


def test_error_empty_file(capsys, tmp_path: Path) -> None:
    path = tmp_path / "empty.dfc"
    path.write_bytes(b"")
    assert "the stream is empty (0 bytes)" in assert_one_error_line(*run(capsys, "info", str(path)))


def test_error_truncated_lossless_stream(capsys, tmp_path: Path) -> None:
    path = tmp_path / "cut.dfc"
    path.write_bytes(bitstreams.write(LOSSLESS, [bytes(64)])[:-1])
    message = assert_one_error_line(*run(capsys, "info", str(path)))
    assert message == (
        "stream truncated: chunk 0 of 1 needs 1 more bytes; a lossless-ardm stream must be complete"
    )


def test_error_truncated_header(capsys, lossy_file: Path) -> None:
    lossy_file.write_bytes(lossy_file.read_bytes()[:20])
    assert "stream ends inside the model hash" in assert_one_error_line(
        *run(capsys, "info", str(lossy_file))
    )


def test_error_bit_flipped_stream(capsys, lossy_file: Path) -> None:
    data = bytearray(lossy_file.read_bytes())
    data[25] ^= 0x04  # inside the chunk table
    lossy_file.write_bytes(bytes(data))
    message = assert_one_error_line(*run(capsys, "info", str(lossy_file)))
    assert "checksum mismatch" in message or "not minimally encoded" in message


def test_error_bit_flipped_chunk(capsys, lossy_file: Path) -> None:
    data = bytearray(lossy_file.read_bytes())
    data[-1] ^= 0x01
    lossy_file.write_bytes(bytes(data))
    message = assert_one_error_line(*run(capsys, "info", str(lossy_file)))
    assert message.startswith("checksum mismatch in chunk 2 (bytes ")


def test_error_unsupported_version(capsys, lossy_file: Path) -> None:
    data = bytearray(lossy_file.read_bytes())
    data[3] = 9
    lossy_file.write_bytes(bytes(data))
    message = assert_one_error_line(*run(capsys, "info", str(lossy_file)))
    assert message == "format version 9 is not supported (this diffc reads version 3, 4, 5, 6 or 7)"


def test_error_missing_file(capsys, tmp_path: Path) -> None:
    missing = tmp_path / "nope.dfc"
    assert assert_one_error_line(*run(capsys, "info", str(missing))) == f"no such file: {missing}"


def test_error_directory(capsys, tmp_path: Path) -> None:
    message = assert_one_error_line(*run(capsys, "info", str(tmp_path)))
    assert message == f"{tmp_path} is a directory, not a file"


def test_missing_argument_is_a_usage_error(capsys) -> None:
    code, out, err = run(capsys, "info")
    assert code == 2
    assert out == ""
    assert err == "diffc: error: missing argument 'file' (see 'diffc info --help')\n"


def test_unknown_option_is_a_usage_error(capsys, lossy_file: Path) -> None:
    code, _, err = run(capsys, "info", str(lossy_file), "--frobnicate")
    assert code == 2 and err == "diffc: error: no such option: --frobnicate (see 'diffc info --help')\n"


def test_debug_shows_the_exception(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DIFFC_DEBUG", "1")
    path = tmp_path / "empty.dfc"
    path.write_bytes(b"")
    with pytest.raises(bitstreams.TruncatedStreamError):
        main(["info", str(path)])


def test_internal_errors_are_one_line_too(capsys, monkeypatch, lossy_file: Path) -> None:
    def broken(data: bytes) -> None:
        raise ZeroDivisionError("division by zero\nwith a second line")

    monkeypatch.setattr(bitstreams, "read", broken)
    code, out, err = run(capsys, "info", str(lossy_file))
    assert code == 1 and out == ""
    assert err == (
        "diffc: error: internal error (ZeroDivisionError: division by zero with a second line); "
        "set DIFFC_DEBUG=1 for the traceback\n"
    )


def test_ctrl_c_exits_130(capsys, monkeypatch, lossy_file: Path) -> None:
    def interrupted(data: bytes) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(bitstreams, "read", interrupted)
    code, out, err = run(capsys, "info", str(lossy_file))
    assert code == 130
    assert out == "" and "Traceback" not in err  # typer turns Ctrl-C into a silent exit 130


# --- the installed console script ----------------------------------------------------------------


def console_script() -> str:
    beside = Path(sys.executable).parent / "diffc"
    found = str(beside) if beside.exists() else shutil.which("diffc")
    if found is None:
        pytest.fail("the diffc console script is not installed (pip install -e .)")
    return found


def run_script(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DIFFC_DEBUG"}
    return subprocess.run(
        [console_script(), *args], input=stdin, capture_output=True, timeout=120, env=env
    )


def test_console_script_reads_stdin() -> None:
    data = bitstreams.write(LOSSY, LOSSY_CHUNKS)
    done = run_script("info", "-", "--json", stdin=data)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout)
    assert (facts["total_bytes"], facts["chunks"]) == (len(data), [100, 20, 7])
    assert facts["complete"] is True

    done = run_script("info", "-", stdin=b"GIF89a not a stream")
    assert done.returncode == 1
    assert done.stdout == b""
    assert done.stderr == b"diffc: error: not a diffc stream (missing the 'DFC' magic)\n"


def test_info_names_the_integer_network_of_an_exact_stream(capsys, tmp_path: Path) -> None:
    header = Header(Mode.LOSSLESS_VDM, 8, 8, 3, 0, "vdm-tiny", HASH, {"steps": 3, "exact": 1})
    path = tmp_path / "exact.dfc"
    path.write_bytes(bitstreams.write(header, [b"x" * 8]))
    code, out, err = run(capsys, "info", str(path))
    assert (code, err) == (0, "")
    assert "model       vdm-tiny (integer network 0123456789abcdef)" in out.splitlines()
