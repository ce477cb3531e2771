"""The integer export (``diffc models MODEL --quantise DIR``, ``models/integer_export.py``): the
integer network lands beside the checkpoint, named by hash in its card; loading the model brings
it along; a tampered file or a second export without --force is refused; and a lossless stream
made with the exported model is exact (format field ``exact`` = 1) and decodes."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest
from PIL import Image

from diffc import bitstreams
from diffc.cli.main import main
from diffc.codec import bitsback, denoiser
from diffc.models import checkpoint, configs, integer_unet, vdm
from diffc.models.checkpoint import ModelError
from helpers import smooth_image

TINY = configs.get_config("tiny")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, str]:
    """A tiny VDM checkpoint (perturbed init, so the network is not near zero) and a folder of two
    40x40 photos-to-be, quantised through the CLI; (checkpoint stem, stdout)."""
    root = tmp_path_factory.mktemp("export")
    params = vdm.init_params(TINY, 0)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(tree, [a + 0.05 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    checkpoint.save_model(root / "tiny", TINY, params, {"name": "tiny-int"})
    images = root / "images"
    images.mkdir()
    for seed in range(2):
        Image.fromarray(smooth_image(40, 40, 3, seed=seed)).save(images / f"{seed}.png")
    return root / "tiny", images


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_export_writes_the_network_and_names_it_in_the_card(capsys, exported) -> None:
    stem, images = exported
    code, out, err = run(capsys, "models", str(stem), "--quantise", str(images), "--crops", "4")
    assert (code, err) == (0, "")
    card = json.loads(stem.with_suffix(".json").read_text())
    entry = card["integer"]
    blob = (stem.parent / "tiny.int.msgpack").read_bytes()
    assert entry["file"] == "tiny.int.msgpack" and entry["sha256"] == checkpoint.sha256(blob)
    assert entry["format"] == integer_unet.FORMAT and entry["from_sha256"] == card["sha256"]
    assert entry["calibration"] == {"data": [str(images)], "crops": 4, "crop": 32, "seed": 1}
    assert f"wrote tiny.int.msgpack ({len(blob)} bytes" in out

    den = denoiser.load(stem)
    assert den.integer is not None and den.integer_sha256 == entry["sha256"]
    assert integer_unet.to_bytes(den.integer) == blob

    # the export is repeatable: the same command gives the same bytes
    code, _, _ = run(capsys, "models", str(stem), "--quantise", str(images), "--crops", "4", "--force")
    assert code == 0 and (stem.parent / "tiny.int.msgpack").read_bytes() == blob

    image = smooth_image(12, 8, 3, seed=3)
    result = bitsback.encode(image, den, steps=3, patch_size=8, seed=2)
    header = bitstreams.read(result.data).header
    assert header.params["exact"] == 1 and header.model_hash == bytes.fromhex(entry["sha256"][:16])
    np.testing.assert_array_equal(bitsback.decode(result.data, denoiser.load(stem)), image)


def test_a_second_export_needs_force(capsys, exported) -> None:
    stem, images = exported
    run(capsys, "models", str(stem), "--quantise", str(images), "--crops", "2", "--force")
    code, out, err = run(capsys, "models", str(stem), "--quantise", str(images))
    assert (code, out) == (2, "")
    assert err == f"diffc: error: {stem} already has an integer network; pass --force to replace it (see 'diffc models --help')\n"


def test_missing_folder_is_one_line(capsys, exported, tmp_path) -> None:
    stem, _ = exported
    code, out, err = run(capsys, "models", str(stem), "--quantise", str(tmp_path / "nope"))
    assert (code, out) == (2, "")
    assert err == f"diffc: error: --quantise {tmp_path / 'nope'}: no such folder of images (see 'diffc models --help')\n"


def test_a_tampered_integer_network_is_refused(capsys, exported) -> None:
    stem, images = exported
    run(capsys, "models", str(stem), "--quantise", str(images), "--crops", "2", "--force")
    path = stem.parent / "tiny.int.msgpack"
    blob = path.read_bytes()
    try:
        path.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
        with pytest.raises(ModelError, match="integer network .*tiny.int.msgpack is corrupt or was modified"):
            denoiser.load(stem)
        path.unlink()
        with pytest.raises(ModelError, match="integer network .*tiny.int.msgpack is missing"):
            denoiser.load(stem)
    finally:
        path.write_bytes(blob)


def test_a_learned_schedule_is_refused_in_one_line(capsys, exported, tmp_path) -> None:
    """Exact streams compute their gamma codes from a linear schedule's parameters: a model with a
    learned (network) schedule gets no integer network it could not code with."""
    _, images = exported
    cfg = configs.VDMConfig(**{**TINY.__dict__, "schedule": "learned"})
    checkpoint.save_model(tmp_path / "learned", cfg, vdm.init_params(cfg, 0), {"name": "learned"})
    code, out, err = run(capsys, "models", str(tmp_path / "learned"), "--quantise", str(images))
    assert code == 1 and out == "" and err.count("\n") == 1
    assert "linear noise schedule" in err and "'learned'" in err
    assert not (tmp_path / "learned.int.msgpack").exists()
