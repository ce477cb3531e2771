"""The CLI's usage-error contract, over every command: a command line that cannot run as given (a
missing argument, an unknown option, a value the parser or the command refuses, options that
exclude each other) prints exactly one line on stderr, ``diffc: error: ...``, nothing on stdout, and
exits 2; it never loads a model or reads an image first. Runtime errors keep exit 1
(tests/test_cli_info.py, tests/test_cli_coding.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import typer

from diffc.cli.main import app, main


@pytest.fixture(autouse=True)
def no_debug(monkeypatch) -> None:
    monkeypatch.delenv("DIFFC_DEBUG", raising=False)


def leaf_commands() -> list[tuple[str, ...]]:
    """Every runnable command's path under ``diffc``: ('encode',), ('eval', 'rd'), ..."""
    found: list[tuple[str, ...]] = []

    def walk(command, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found.append(path)
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return sorted(found)


COMMANDS = leaf_commands()


def assert_usage_error(capsys, args: list[str], *fragments: str) -> str:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert code == 2, (args, code, err)
    assert out == ""
    assert err.startswith("diffc: error: ") and err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and "╭" not in err and "Usage:" not in err
    for fragment in fragments:
        assert fragment in err, (fragment, err)
    return err[len("diffc: error: "):-1]


def test_every_command_is_covered():
    """The walk finds the commands this test is about; a new command joins the loops below."""
    assert {("encode",), ("decode",), ("info",), ("models",), ("eval", "rd"), ("eval", "elbo"),
            ("train", "vdm"), ("train", "ardm")} <= set(COMMANDS)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_an_unknown_option_is_one_line_and_exit_2(capsys, command):
    message = assert_usage_error(capsys, [*command, "--no-such-flag"], "--no-such-flag")
    assert message.endswith(f"(see 'diffc {' '.join(command)} --help')")


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_works_for_every_command(capsys, command):
    assert main([*command, "--help"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and f"diffc {' '.join(command)}" in out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "images").mkdir()
    return tmp_path / "images"


# Each: arguments, and what the one line must say. FOLDER is an existing, empty folder.
BAD = {
    "encode-no-image": (["encode"], "missing argument"),
    "encode-bpp-abc": (["encode", "x.png", "--bpp", "abc"], "--bpp", "'abc'"),
    "encode-bpp-negative": (["encode", "x.png", "--bpp", "-1"], "--bpp", "positive"),
    "encode-bpp-inf": (["encode", "x.png", "--bpp", "inf"], "--bpp", "finite"),
    "encode-no-rate": (["encode", "x.png"], "--bpp", "--lossless"),
    "encode-rate-and-lossless": (["encode", "x.png", "--bpp", "1", "--lossless"], "exclude each other"),
    "encode-lossy-vdm": (["encode", "x.png", "--bpp", "1", "--prior", "vdm"], "losslessly only"),
    "encode-bad-prior": (["encode", "x.png", "--lossless", "--prior", "png"], "--prior"),
    "encode-steps-0": (["encode", "x.png", "--bpp", "1", "--steps", "0"], "--steps"),
    "encode-steps-65": (["encode", "x.png", "--bpp", "1", "--steps", "65"], "[1, 64]"),
    "encode-steps-text": (["encode", "x.png", "--bpp", "1", "--steps", "many"], "--steps"),
    "encode-seed-negative": (["encode", "x.png", "--bpp", "1", "--seed", "-1"], "--seed"),
    "encode-stdin-without-output": (["encode", "-", "--bpp", "1"], "-o/--output"),
    "encode-extra-argument": (["encode", "a.png", "b.png", "--bpp", "1"], "b.png"),
    "decode-no-stream": (["decode"], "missing argument"),
    "decode-bad-method": (["decode", "x.dfc", "--method", "sharpest"], "--method"),
    "decode-max-bytes-0": (["decode", "x.dfc", "--max-bytes", "0"], "--max-bytes"),
    "decode-option-without-value": (["decode", "x.dfc", "--decode-steps"], "--decode-steps"),
    "info-no-file": (["info"], "missing argument"),
    "models-export-without-model": (["models", "--export", "x"], "--export"),
    "models-bad-dtype": (["models", "default", "--export", "x", "--dtype", "int8"], "--dtype"),
    "no-such-command": (["compress", "x.png"], "compress"),
    "eval-no-command": (["eval", "nothing"], "nothing"),
    "eval-rd-no-data": (["eval", "rd"], "--data"),
    "eval-rd-missing-data": (["eval", "rd", "--data", "no/such/folder"], "--data"),
    "eval-rd-bpp-abc": (["eval", "rd", "--data", "FOLDER", "--bpp", "abc"], "--bpp"),
    "eval-rd-bad-codec": (["eval", "rd", "--data", "FOLDER", "--codecs", "gif"], "--codecs"),
    "eval-rd-crop-text": (["eval", "rd", "--data", "FOLDER", "--crop", "big"], "--crop"),
    "eval-elbo-no-data": (["eval", "elbo"], "--data"),
    "eval-elbo-steps-negative": (["eval", "elbo", "--data", "FOLDER", "--steps", "-1"], "--steps"),
    "train-vdm-no-out": (["train", "vdm", "--data", "FOLDER"], "--out"),
    "train-ardm-batch-text": (["train", "ardm", "--data", "FOLDER", "--out", "o", "--batch", "x"], "--batch"),
}


@pytest.mark.parametrize("case", BAD.values(), ids=BAD.keys())
def test_bad_command_lines_are_one_line_and_exit_2(capsys, folder, case):
    args, *fragments = case
    assert_usage_error(capsys, [str(folder) if a == "FOLDER" else a for a in args], *fragments)


@pytest.mark.parametrize("group", [[], ["eval"], ["train"]], ids=["diffc", "eval", "train"])
def test_a_group_without_a_command_prints_its_help_and_exits_2(capsys, group):
    assert main(group) == 2
    out, err = capsys.readouterr()
    assert err == "" and "Usage: diffc" in out and "Commands" in out


def test_runtime_errors_keep_exit_1(capsys, tmp_path):
    code = main(["info", str(tmp_path / "missing.dfc")])
    assert code == 1 and capsys.readouterr().err == f"diffc: error: no such file: {tmp_path / 'missing.dfc'}\n"


def test_the_console_script_exits_2_with_one_line():
    """Through the console script's entry point (``run``) in a fresh process, as a shell sees it."""
    done = subprocess.run([sys.executable, "-c", "from diffc.cli.main import run; run()", "encode", "x.png",
                           "--bpp", "abc"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["diffc: error: --bpp takes a number of bits per pixel or 'max', "
                                        "not 'abc' (see 'diffc encode --help')"]
