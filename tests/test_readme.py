"""The README's examples run as written.

What this covers, for the ``diffc ...`` lines of the README's "Command line" block (comments cut;
``[...]`` read twice: once with what the brackets hold, once without; ``DIR`` and the Kodak folder
replaced by an existing folder, since the parser checks that --data exists):

- every line is accepted by the CLI's own parser: click's ``make_context`` with resilient parsing
  off, so unknown options, bad values and bad choices fail here, plus the checks a command makes of
  its command line before it does any work (those of ``diffc encode`` are run through
  ``api.check``, as ``diffc encode`` runs them);
- in a temporary folder, in the README's order, every line that does not train or evaluate runs
  and exits 0: ``sample``, ``info``, ``models``, ``--version`` exactly as written; ``encode`` and
  ``decode`` as written but on a 32x24 crop of the sample, with tiny untrained models
  (``--model``) and few ``--steps`` appended, so that they take seconds, not the minutes the
  shipped models need; the outputs exist and the lossless one is exact;
- the Set up section's main job is the sample photo's ``encode`` and ``decode`` (the lines are
  checked to be those of the block, and ``diffc sample`` to write the shipped photo);
- the sample photo ships in the package with its source and licence.

What it does not: train, or evaluate on Kodak (``diffc train`` and ``diffc eval`` are only parsed;
tests/test_train_cli.py and tests/test_eval_rd.py run them on small data), or run the shipped
models (tests/test_cli_coding.py runs the coders; docs/ give the shipped models' measurements).
"""

from __future__ import annotations

import io
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
import typer
from PIL import Image

from diffc import bitstreams, samples
from diffc.cli.main import app, main
from diffc.codec import api
from diffc.models import ardm_network, checkpoint, configs, vdm

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end >= 0 else None]


def shell_lines(text: str) -> list[str]:
    """The lines of the ```sh blocks of ``text``."""
    return [line for block in re.findall(r"```sh\n(.*?)```", text, re.S) for line in block.splitlines()]


def examples() -> list[str]:
    """The README's Command line examples, comments cut, in order."""
    lines = [line.split(" #")[0].strip() for line in shell_lines(section("Command line"))]
    return [line for line in lines if line.startswith("diffc")]


def variants(line: str) -> list[list[str]]:
    """The argument lists a README line stands for: optional ``[...]`` groups all given (nested
    ones too), then none given; ``DIR [DIR ...]`` as one folder."""
    line = line.replace(" [DIR ...]", "")
    full, bare = line, line
    while "[" in full:
        full = re.sub(r"\[([^\[\]]*)\]", r"\1", full)
    while "[" in bare:
        bare = re.sub(r"\s*\[[^\[\]]*\]", "", bare)
    return [shlex.split(v)[1:] for v in dict.fromkeys([full, bare])]


EXAMPLES = examples()


def test_the_block_holds_every_command():
    """A README whose block lost its lines (or this test's extraction) must not pass unchecked."""
    commands = {tuple(arg for arg in args[:2] if not arg.startswith("-") and "." not in arg)
                for line in EXAMPLES for args in variants(line)}
    assert {("sample",), ("encode",), ("decode",), ("info",), ("models",), ("train", "vdm"),
            ("train", "ardm"), ("eval", "rd"), ("eval", "elbo")} <= commands
    assert "diffc --version" in EXAMPLES


def resolve(args: list[str]) -> tuple[object, list[str], list[str]]:
    """The click command ``args`` names, its path, and its own arguments."""
    command, path = typer.main.get_command(app), []
    while getattr(command, "commands", None) and args and args[0] in command.commands:
        path.append(args[0])
        command, args = command.commands[args[0]], args[1:]
    return command, path, args


def parse(args: list[str]) -> dict:
    """``args`` through the parser of the command they name; the parameters as the command gets them."""
    command, path, rest = resolve(args)
    if not path:  # diffc --version: the root's eager callback exits 0
        with pytest.raises(typer.Exit) as done:
            command.make_context("diffc", list(rest), resilient_parsing=False)
        assert done.value.exit_code == 0
        return {}
    with command.make_context(" ".join(["diffc", *path]), list(rest), resilient_parsing=False) as ctx:
        return dict(ctx.params)


@pytest.mark.parametrize("line", EXAMPLES)
def test_every_example_is_accepted_by_the_parser(line, tmp_path):
    for args in variants(line):
        args = [str(tmp_path) if a in ("DIR", "../shared/data/kodak") else a for a in args]
        params = parse(args)
        if args[0] == "encode":  # what diffc encode checks of its command line before any work
            prior = params["prior"] and params["prior"].value
            bpp = params["bpp"] if params["bpp"] in (None, "max") else float(params["bpp"])
            api.check(bpp=bpp, lossless=params["lossless"], prior=prior, steps=params["steps"],
                      chunk_bits=params["chunk_bits"], margin=params["margin"])


# --- running them ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("readme-models")
    vdm_cfg, ardm_cfg = configs.get_config("tiny"), configs.get_config("tiny", "ardm")
    checkpoint.save_model(root / "vdm", vdm_cfg, vdm.init_params(vdm_cfg, 0), {"name": "vdm"})
    curve = np.linspace(8.0, 3.0, 33)  # made-up loss curve of an untrained ARDM
    checkpoint.save_model(root / "ardm", ardm_cfg, {"params": ardm_network.init_params(ardm_cfg, 0),
                                                    "loss_curve": curve}, {"name": "ardm"})
    return {"vdm": root / "vdm.json", "ardm": root / "ardm.json"}


def fast(args: list[str], models: dict[str, Path], folder: Path) -> list[str]:
    """An encode or decode line with a tiny model and few steps appended (a later option wins)."""
    if args[0] == "decode":
        mode = bitstreams.read((folder / args[1]).read_bytes()).header.mode
        return [*args, "--model", str(models["ardm" if mode is bitstreams.Mode.LOSSLESS_ARDM else "vdm"])]
    if "ardm" in args:
        return [*args, "--model", str(models["ardm"]), "--steps", "4"]
    extra = ["--steps", "2"] if "--lossless" in args else ["--steps", "2", "--chunk-bits", "4"]
    return [*args, "--model", str(models["vdm"]), *extra]


def test_the_examples_run_in_order(tiny_models, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ran = []
    for line in EXAMPLES:
        for args in variants(line):
            if args[0] in ("train", "eval"):
                continue
            if args[0] == "sample":  # the rest run on a crop of it: tiny models, seconds
                assert main(args) == 0
                Image.open("photo.png").crop((96, 96, 128, 120)).save("photo.png")
                ran.append(args)
                continue
            run = fast(args, tiny_models, tmp_path) if args[0] in ("encode", "decode") else args
            code = main(run)
            out, err = capsys.readouterr()
            assert code == 0, (line, err)
            ran.append(args)
    assert len(ran) == 17  # every line but train and eval, [--json] twice
    for name in ("photo.dfc", "photo-decoded.png", "p.png", "a.png", "max.dfc", "exact.dfc", "ardm.dfc",
                 "exact.png", "s.json", "s.dfc", "coded/a.dfc", "coded/photo.dfc"):
        assert (tmp_path / name).stat().st_size > 0, name
    frames = sorted(p.name for p in (tmp_path / "frames").glob("*.png"))  # --progression: up to 12 prefixes
    assert 2 <= len(frames) <= 12 and frames[-1] == f"{(tmp_path / 'photo.dfc').stat().st_size:09d}.png"
    with Image.open("exact.png") as exact, Image.open("photo.png") as photo:  # --lossless: exact
        np.testing.assert_array_equal(np.asarray(exact), np.asarray(photo))


# --- the set-up section's main job -------------------------------------------------------------------


def test_the_main_job_uses_only_the_shipped_sample():
    (job,) = [line for line in shell_lines(section("Set up")) if "pip install -e . " in line]
    steps = [step.strip() for step in job.split("&&")]
    assert steps[3:] == ["diffc sample -o sample.png", "diffc encode sample.png --bpp 0.5 -o sample.dfc",
                         "diffc decode sample.dfc -o sample-decoded.png"]
    assert "../" not in job and "shared" not in job


def test_diffc_sample_writes_the_shipped_photo(tmp_path, capsys):
    out = tmp_path / "sample.png"
    assert main(["sample", "-o", str(out)]) == 0
    assert "CC BY-SA 4.0" in capsys.readouterr().err
    assert out.read_bytes() == samples.read_bytes()
    with Image.open(out) as im:
        assert (im.mode, im.size) == ("RGB", samples.SIZE)
        assert np.asarray(im).std() > 30  # a photo, not a flat placeholder
    assert main(["sample", "-o", str(out)]) == 1  # the CLI's convention: no overwrite without --force
    assert "pass --force" in capsys.readouterr().err
    assert main(["sample", "-o", str(out), "--force", "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_the_sample_says_where_it_comes_from():
    notes = (ROOT / "samples" / "README.md").read_text()
    assert samples.NAME in notes and "CC BY-SA 4.0" in notes and "1391487" in notes
    with Image.open(io.BytesIO(samples.read_bytes())) as im:
        assert im.format == "PNG"


# --- DIFFC_KODAK ------------------------------------------------------------------------------------


def test_kodak_is_found_through_diffc_kodak_and_its_absence_is_a_skip_with_the_reason(tmp_path, monkeypatch):
    from helpers import KODAK_ENV, require_kodak

    assert KODAK_ENV == "DIFFC_KODAK" and "`DIFFC_KODAK`" in section("Set up")
    monkeypatch.setenv(KODAK_ENV, str(tmp_path))
    with pytest.raises(pytest.skip.Exception, match=f"{tmp_path} lacks kodim01.png and 23 more; set DIFFC_KODAK"):
        require_kodak()
    for i in range(1, 25):
        (tmp_path / f"kodim{i:02d}.png").write_bytes(b"")
    assert require_kodak() == tmp_path
