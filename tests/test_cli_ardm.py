"""``diffc encode --lossless --prior ardm`` / ``diffc decode`` and the API, end to end with a tiny
untrained ARDM checkpoint saved to disk (its loss curve made up), and the errors a wrong model or
option gives."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffc import bitstreams
from diffc.cli.main import main
from diffc.codec import api
from diffc.codec import ardm as coder
from diffc.models import ardm_network, checkpoint, configs, vdm

CURVE = np.linspace(8.0, 3.0, 33)  # bits per subpixel from nothing known to all but one known


def save_tiny_ardm(stem: Path, seed: int) -> Path:
    cfg = configs.get_config("tiny", "ardm")
    params = ardm_network.init_params(cfg, seed)
    checkpoint.save_model(stem, cfg, {"params": params, "loss_curve": CURVE}, {"name": stem.name})
    return stem.with_suffix(".json")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("ardm-cli")
    model, other = save_tiny_ardm(root / "ardm-a", 0), save_tiny_ardm(root / "ardm-b", 1)
    vdm_cfg = configs.get_config("tiny")
    checkpoint.save_model(root / "vdm", vdm_cfg, vdm.init_params(vdm_cfg, 0), {"name": "vdm"})
    rng = np.random.default_rng(0)
    rgb = np.clip(np.cumsum(rng.normal(size=(9, 13, 3)) * 20, axis=1) + 128, 0, 255).astype(np.uint8)
    Image.fromarray(rgb).save(root / "rgb.png")
    Image.fromarray(rgb[..., 1]).save(root / "gray.png")
    return root, model, other


def run(args, capsys) -> tuple[int, str]:
    code = main([str(a) for a in args])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("name", ["rgb", "gray"])
def test_round_trip_through_the_cli_is_exact(work, capsys, name):
    root, model, _ = work
    stream, out, stats = root / f"{name}.dfc", root / f"{name}-out.png", root / f"{name}.json"
    code, err = run(["encode", root / f"{name}.png", "--lossless", "--prior", "ardm", "--steps", "4",
                     "--model", model, "-o", stream, "--stats", stats], capsys)
    assert code == 0, err
    assert "lossless ARDM of 13x9 with ardm-a, 4 steps" in err and "4 network calls" in err
    facts = json.loads(stats.read_text())
    assert facts["calls"] == 4 and facts["bits"] == 8 * stream.stat().st_size
    assert facts["ideal_bits"] <= facts["payload_bits"] <= facts["ideal_bits"] * 1.01 + 64
    header = bitstreams.read(stream.read_bytes()).header
    assert header.mode is bitstreams.Mode.LOSSLESS_ARDM and header.model_id == "ardm-a"
    code, err = run(["decode", stream, "-o", out, "--quiet"], capsys)  # the model the stream names is not
    assert code == 1 and "no model 'ardm-a'" in err                    # shipped: it must be given
    code, err = run(["decode", stream, "-o", out, "--model", model, "--quiet"], capsys)
    assert code == 0, err
    with Image.open(out) as decoded, Image.open(root / f"{name}.png") as original:
        assert decoded.mode == original.mode
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(original))


def test_another_ardm_or_a_vdm_is_refused_without_output(work, capsys):
    root, model, other = work
    stream = root / "refused.dfc"
    assert run(["encode", root / "rgb.png", "--lossless", "--prior", "ardm", "--steps", "2", "--model", model,
                "-o", stream, "--quiet"], capsys)[0] == 0
    out = root / "refused.png"
    code, err = run(["decode", stream, "-o", out, "--model", other], capsys)
    assert code == 1 and "the stream was made with model ardm-a" in err and err.count("\n") == 1
    code, err = run(["decode", stream, "-o", out, "--model", root / "vdm.json"], capsys)
    assert code == 1 and "is a VDM model; this needs a model of the ARDM family" in err
    assert not out.exists()
    code, err = run(["encode", root / "rgb.png", "--lossless", "--prior", "ardm", "--model", root / "vdm.json",
                     "-o", root / "x.dfc"], capsys)
    assert code == 1 and "ARDM family" in err and not (root / "x.dfc").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prior", "ardm", "--bpp", "1"], "the ardm prior codes losslessly only"),
        (["--lossless", "--prior", "ardm", "--margin", "2"], "the ardm prior has no such knobs"),
    ],
    ids=["lossy", "rcc-knobs"],
)
def test_conflicting_options_are_refused(work, capsys, args, message):
    root, model, _ = work
    out = root / "conflict.dfc"
    code, err = run(["encode", root / "rgb.png", "-o", out, "--model", model, *args], capsys)
    assert code == 2 and message in err and err.count("\n") == 1, err  # a usage error
    assert not out.exists()


def test_python_api_round_trip_and_decode_facts(work):
    root, model, _ = work
    with Image.open(root / "rgb.png") as im:
        rgb = np.asarray(im)[:4, :5]
    job = api.prepare(lossless=True, prior="ardm", model=str(model), steps=3)
    assert (job.title, job.unit, job.steps) == ("lossless ARDM", "calls", 3)
    encoded = job.run(rgb, seed=7)
    assert encoded.facts["calls"] == 3 and bitstreams.read(encoded.data).header.seed == 7
    decoded = api.decode(encoded.data, model=str(model))
    np.testing.assert_array_equal(decoded.pixels, rgb)
    assert decoded.facts == {"mode": "lossless-ardm", "lossless": True} and decoded.notice is None
    np.testing.assert_array_equal(api.decompress(api.compress(rgb, lossless=True, prior="ardm", model=str(model),
                                                              steps=2), model=str(model)), rgb)


def test_the_loaded_prior_carries_the_checkpoints_curve_under_its_hash(work):
    root, model, _ = work
    prior = coder.load(model)
    np.testing.assert_array_equal(prior.curve, CURVE.astype(np.float32).astype(np.float64))
    card = json.loads(model.read_text())
    assert prior.hash8 == bytes.fromhex(card["sha256"][:16]) and prior.name == "ardm-a"
    # Another curve is another payload, so another hash: streams of one refuse the other.
    cfg = configs.get_config("tiny", "ardm")
    bent = {"params": ardm_network.init_params(cfg, 0), "loss_curve": CURVE[::-1]}
    assert checkpoint.save_model(root / "bent", cfg, bent, {"name": "bent"})["sha256"] != card["sha256"]


def test_an_upscale_checkpoint_loads_with_its_stage_curves_and_round_trips(work, capsys):
    """A 4-stage tiny ARDM saved and loaded: its curve has 4 x 33 points, the CLI codes with it, and
    fewer calls than stages is a clear error."""
    root, _, _ = work
    cfg = dataclasses.replace(configs.get_config("tiny", "ardm"), stages=4)
    curve = np.tile(CURVE / 4, 4)
    checkpoint.save_model(root / "up", cfg, {"params": ardm_network.init_params(cfg, 0), "loss_curve": curve}, {"name": "up"})
    prior = coder.load(root / "up.json")
    assert prior.config.stages == 4 and prior.curve.shape == (4 * 33,)
    stream, out = root / "up.dfc", root / "up-out.png"
    code, err = run(["encode", root / "rgb.png", "--lossless", "--prior", "ardm", "--steps", "6",
                     "--model", root / "up.json", "-o", stream, "--quiet"], capsys)
    assert code == 0, err
    code, err = run(["decode", stream, "-o", out, "--model", root / "up.json", "--quiet"], capsys)
    assert code == 0, err
    with Image.open(out) as decoded, Image.open(root / "rgb.png") as original:
        np.testing.assert_array_equal(np.asarray(decoded), np.asarray(original))
    code, err = run(["encode", root / "rgb.png", "--lossless", "--prior", "ardm", "--steps", "3",
                     "--model", root / "up.json", "-o", root / "few.dfc", "--quiet"], capsys)
    assert code != 0 and "steps must lie in [4, " in err and not (root / "few.dfc").exists()
