"""``diffc eval elbo``: the VDM prior's negative ELBO per image, continuous and T-step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from diffc.cli.main import main
from diffc.evaluation import baselines, runner
from diffc.evaluation.elbo import image_elbo
from diffc.models import checkpoint, configs, vdm
from helpers import smooth_image

TINY = configs.get_config("tiny")
STEPS, SAMPLES = 10, 10


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny checkpoint and a folder of two small images, one of them odd-sized."""
    root = tmp_path_factory.mktemp("elbo")
    checkpoint.save_model(root / "tiny", TINY, vdm.init_params(TINY, 0), {"name": "tiny"})
    data = root / "images"
    data.mkdir()
    Image.fromarray(smooth_image(16, 24, 3, seed=1)).save(data / "a.png")
    Image.fromarray(smooth_image(13, 16, 3, seed=2)).save(data / "b.png")
    return root / "tiny.json", data


def run(setup, tmp_path: Path, *extra: str) -> dict:
    model, data = setup
    out = tmp_path / "elbo.json"
    args = ["eval", "elbo", "--data", str(data), "--model", str(model), "--steps", str(STEPS),
            "--samples", str(SAMPLES), "--json", str(out), "--quiet", "--force", *extra]
    assert main(args) == 0
    return json.loads(out.read_text())


def test_discrete_only_gives_the_same_values_at_half_the_calls():
    pixels = smooth_image(16, 16, 3, seed=3)
    params = vdm.init_params(TINY, 0)
    both = image_elbo(TINY, params, pixels, samples=6, steps=STEPS, batch=4, seed=2)
    discrete = image_elbo(TINY, params, pixels, samples=6, steps=STEPS, batch=4, seed=2, continuous=False)
    assert discrete.continuous is None and discrete.diffusion is None
    assert (discrete.prior, discrete.recon) == pytest.approx((both.prior, both.recon), rel=1e-6)
    assert discrete.discrete == pytest.approx(both.discrete, rel=1e-6)
    assert both.continuous == pytest.approx(both.prior + both.recon + both.diffusion)
    with pytest.raises(ValueError, match="steps must be positive"):
        image_elbo(TINY, params, pixels, samples=2, steps=0, continuous=False)


def test_the_report_holds_every_image_and_dimension_weighted_totals(setup, tmp_path, capsys):
    report = run(setup, tmp_path, "--codecs", "png")
    rows = report["images"]
    assert [r["image"] for r in rows] == ["a", "b"] and [r["dims"] for r in rows] == [16 * 24 * 3, 13 * 16 * 3]
    for row in rows:
        assert row["elbo"] == pytest.approx(row["prior"] + row["recon"] + row["diffusion"])
        assert row[f"elbo_T{STEPS}"] > 0 and row["png"] > 0
    for key in ("elbo", f"elbo_T{STEPS}", "png"):
        expected = sum(r[key] * r["dims"] for r in rows) / sum(r["dims"] for r in rows)
        assert report["totals"][key] == pytest.approx(expected)
    png = runner.measure(baselines.CLASSICAL["png"], runner.load_image(setup[1] / "a.png", None), None)
    assert rows[0]["png"] == pytest.approx(png["bits_per_dim"])
    assert "--steps 10 --samples 10" in report["command"]
    assert "| **all** |" in capsys.readouterr().out


def test_discrete_only_reports_the_same_t_step_elbo(setup, tmp_path):
    full = run(setup, tmp_path, "--codecs", "none")
    discrete = run(setup, tmp_path, "--codecs", "none", "--discrete-only")
    key = f"elbo_T{STEPS}"
    assert [r[key] for r in discrete["images"]] == pytest.approx([r[key] for r in full["images"]], rel=1e-6)
    assert "elbo" not in discrete["totals"] and "elbo" not in discrete["images"][0]
    assert "--discrete-only" in discrete["command"]


def test_skipped_images_leave_the_others_values_unchanged(setup, tmp_path):
    """Each image's noise is keyed by its place in the folder, so a run split with --skip and
    --limit measures what one run does."""
    full = run(setup, tmp_path, "--codecs", "none", "--discrete-only")
    second = run(setup, tmp_path, "--codecs", "none", "--discrete-only", "--skip", "1", "--limit", "1")
    assert [r["image"] for r in second["images"]] == ["b"]
    assert second["images"][0] == full["images"][1]
    assert "--limit 1 --skip 1" in second["command"]


@pytest.mark.parametrize(
    "extra, message",
    [(["--steps", "0", "--discrete-only"], "--discrete-only needs --steps above 0"),
     (["--codecs", "gif"], "gif"),
     (["--skip", "2"], "--skip 2 leaves no image")],
)
def test_bad_options_are_one_line_errors(setup, tmp_path, capsys, extra, message):
    model, data = setup
    args = ["eval", "elbo", "--data", str(data), "--model", str(model), "--quiet", *extra]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_an_existing_report_is_not_overwritten_without_force(setup, tmp_path, capsys):
    model, data = setup
    out = tmp_path / "elbo.json"
    out.write_text("mine")
    args = ["eval", "elbo", "--data", str(data), "--model", str(model), "--steps", "2", "--samples", "1",
            "--codecs", "none", "--json", str(out), "--quiet"]
    assert main(args) != 0
    assert out.read_text() == "mine" and "--force" in capsys.readouterr().err
