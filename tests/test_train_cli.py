"""``diffc train vdm|ardm`` and ``diffc models`` end to end through ``main([...])``: a few steps of the tiny
configs on 24x24 images, the run folder and model card it leaves, exact ``--resume``, and one-line
errors with exit code 1."""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
from pathlib import Path

import flax.serialization
import jax
import numpy as np
import pytest
from PIL import Image

from diffc.cli.main import main
from diffc.models import checkpoint, configs, families

TINY = configs.get_config("tiny")


@pytest.fixture(scope="module", autouse=True)
def environment():
    """No tracebacks instead of error lines."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("DIFFC_DEBUG", raising=False)
        yield


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """DATA/train with 3 and DATA/val with 2 smooth 24x24 RGB PNGs."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split, count in (("train", 3), ("val", 2)):
        (root / split).mkdir()
        for i in range(count):
            walk = np.cumsum(rng.normal(size=(24, 24, 3)) * 8, axis=1) + rng.uniform(60, 200, 3)
            Image.fromarray(np.clip(walk, 0, 255).astype(np.uint8)).save(root / split / f"{i}.png")
    return root / "train"


def train(out: Path, data: Path, *extra: str) -> int:
    return main(["train", "vdm", "--data", str(data), "--out", str(out), "--config", "tiny", *extra])


@pytest.fixture(scope="module")
def run6(tmp_path_factory, data) -> Path:
    """A 6-step run of the tiny config (batch 8, 16x16 crops), validated on DATA/val; its stderr
    is kept beside it in run6-stderr.txt."""
    out = tmp_path_factory.mktemp("runs") / "run6"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = train(out, data, "--steps", "6")
    assert code == 0, err.getvalue()
    (out.parent / "run6-stderr.txt").write_text(err.getvalue())
    return out


def read_params(stem: Path):
    return flax.serialization.msgpack_restore(stem.with_suffix(".msgpack").read_bytes())


def assert_one_error_line(code: int, err: str) -> str:
    assert code == 1
    assert err.startswith("diffc: error: ") and err.endswith("\n") and err.count("\n") == 1, err
    assert "Traceback" not in err and "internal error" not in err
    return err[len("diffc: error: ") : -1]


def test_training_writes_the_run_folder(run6: Path, data: Path) -> None:
    files = {p.name for p in run6.iterdir()}
    assert {"model.json", "model.msgpack", "state.json", "state.msgpack", "log.jsonl"} <= files
    assert not [f for f in files if f.endswith(".part")]

    card = json.loads((run6 / "model.json").read_text())
    assert card["format"] == families.VDM.model_format
    assert configs.VDMConfig.from_dict(card["config"]) == TINY
    assert card["data"] == [{"folder": str(data), "images": 3}]
    assert card["steps"] == 6 and card["images_seen"] == 6 * TINY.batch
    assert card["wall_time_s"] > 0
    assert isinstance(card["device"], str) and f"({jax.default_backend()})" in card["device"]
    assert isinstance(card["val_bpd"], float) and 0 < card["val_bpd"] < 20
    assert str(data.parent / "val") in card["val_set"]  # the val/ beside train/
    assert card["sha256"] == checkpoint.sha256((run6 / "model.msgpack").read_bytes())
    assert card["parameters"] == sum(np.size(a) for a in jax.tree.leaves(read_params(run6 / "model")))

    # The model loads, hash checked, and is the EMA of the training state's parameters.
    config, params, loaded_card = checkpoint.load_model(run6 / "model")
    assert config == TINY and loaded_card == card
    state_card = json.loads((run6 / "state.json").read_text())
    assert state_card["format"] == checkpoint.STATE_FORMAT
    assert state_card["run"]["images_seen"] == 6 * TINY.batch and state_card["run"]["sessions"] == 1
    state = read_params(run6 / "state")
    assert int(state["step"]) == 6
    assert jax.tree.structure(state["ema_params"]) == jax.tree.structure(params)
    for a, b in zip(jax.tree.leaves(state["ema_params"]), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)

    # The last line on stderr says what was saved.
    last = (run6.parent / "run6-stderr.txt").read_text().splitlines()[-1]
    images, val = 6 * TINY.batch, round(card["val_bpd"], 4)
    assert last == f"saved {run6 / 'model.msgpack'}: step 6, {images} images, validation {val} bits/dim"

    log = [json.loads(line) for line in (run6 / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 6 and log[-1]["val_bpd"] == card["val_bpd"]
    assert all(math.isfinite(v) for e in log for v in e.values() if isinstance(v, float))



def test_resume_is_exact(run6: Path, data: Path, tmp_path: Path, capsys) -> None:
    resumed = tmp_path / "resumed"
    shutil.copytree(run6, resumed)
    code = train(resumed, data, "--resume", "--steps", "12")
    _, err = capsys.readouterr()
    assert code == 0, err
    straight = tmp_path / "straight"
    assert train(straight, data, "--steps", "12") == 0

    card = json.loads((resumed / "model.json").read_text())
    assert card["steps"] == 12 and card["images_seen"] == 12 * TINY.batch
    run = json.loads((resumed / "state.json").read_text())["run"]
    assert run["sessions"] == 2 and [v["step"] for v in run["val_history"]] == [6, 12]
    # Bit for bit the run that was never interrupted: EMA weights, parameters, optimiser, key, step.
    assert (resumed / "model.msgpack").read_bytes() == (straight / "model.msgpack").read_bytes()
    assert (resumed / "state.msgpack").read_bytes() == (straight / "state.msgpack").read_bytes()


def test_a_second_run_in_the_same_folder_is_refused(run6: Path, data: Path, capsys) -> None:
    before = (run6 / "state.msgpack").read_bytes()
    code = train(run6, data, "--steps", "6")
    out, err = capsys.readouterr()
    message = assert_one_error_line(code, err)
    assert "already holds a run" in message and "--resume" in message
    assert (run6 / "state.msgpack").read_bytes() == before


def test_resume_in_an_empty_folder_is_refused(data: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    code = train(empty, data, "--resume", "--steps", "6")
    _, err = capsys.readouterr()
    assert "no training state" in assert_one_error_line(code, err)
    assert list(empty.iterdir()) == []


def test_steps_or_time_limit_is_required(data: Path, tmp_path: Path, capsys) -> None:
    code = train(tmp_path / "run", data)
    _, err = capsys.readouterr()
    assert "--steps" in assert_one_error_line(code, err)
    assert not (tmp_path / "run").exists()


def test_missing_data_folder_and_unknown_config(data: Path, tmp_path: Path, capsys) -> None:
    code = train(tmp_path / "run", tmp_path / "nowhere", "--steps", "1")
    _, err = capsys.readouterr()
    assert "nowhere is not a folder" in assert_one_error_line(code, err)
    out = str(tmp_path / "r")
    code = main(["train", "vdm", "--data", str(data), "--out", out, "--config", "huge", "--steps", "1"])
    _, err = capsys.readouterr()
    message = assert_one_error_line(code, err)
    assert "huge" in message and "tiny" in message


def test_models_shows_a_run(run6: Path, capsys) -> None:
    code = main(["models", str(run6)])
    out, err = capsys.readouterr()
    assert (code, err) == (0, "")
    card = json.loads((run6 / "model.json").read_text())
    first, *rest = out.splitlines()
    facts = f"{families.VDM.model_format}, config tiny, {card['parameters']} parameters, 6 steps, "
    assert first.startswith(f"tiny: {facts}")
    assert f"validation {card['val_bpd']:.4f} bits/dim" in first and f"sha256 {card['sha256'][:16]}" in first
    assert f"  path: {run6 / 'model.json'}" in rest
    assert f"  images_seen: {6 * TINY.batch}" in rest

    code = main(["models", str(run6), "--json"])
    out, _ = capsys.readouterr()
    assert code == 0 and json.loads(out)["sha256"] == card["sha256"]


def test_models_unknown_name_is_an_error(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    code = main(["models", "nonexistent"])
    out, err = capsys.readouterr()
    assert out == ""
    assert "no model 'nonexistent'" in assert_one_error_line(code, err)


def test_ardm_training_stores_the_loss_curve_its_coder_plans_with(data: Path, tmp_path: Path, capsys) -> None:
    from diffc.codec import ardm

    out = tmp_path / "ardm"
    args = ["train", "ardm", "--data", str(data), "--out", str(out), "--config", "tiny", "--steps", "2"]
    assert main(args) == 0, capsys.readouterr().err
    card = json.loads((out / "model.json").read_text())
    assert card["format"] == families.ARDM.model_format and card["config"]["name"] == "tiny"
    assert card["steps"] == 2 and 6.0 < card["val_bpd"] < 10.0  # untrained: about 8 bits per subpixel
    prior = ardm.load(out)
    assert prior.curve.shape == (families.CURVE_POINTS,)
    assert np.all((prior.curve > 5.0) & (prior.curve < 11.0))
    assert prior.hash8 == bytes.fromhex(card["sha256"][:16])
    image = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    np.testing.assert_array_equal(ardm.decode(ardm.encode(image, prior, steps=3).data, prior), image)


def test_ardm_training_needs_validation_images(tmp_path: Path, data: Path, capsys) -> None:
    lone = tmp_path / "lone"
    shutil.copytree(data, lone)  # no val/ beside it, no --val
    args = ["train", "ardm", "--data", str(lone), "--out", str(tmp_path / "a"), "--config", "tiny", "--steps", "1"]
    message = assert_one_error_line(main(args), capsys.readouterr().err)
    assert "give --val DIR" in message


def test_resume_point_carries_a_run_across_machines(run6: Path, data: Path, tmp_path: Path, capsys) -> None:
    """--init a model, keep a compact resume point, and go on from it in a fresh --out: the
    weights and EMA come back to float16 precision, the step, key and history exactly."""
    point = tmp_path / "resume" / "vdm-tiny"
    point.parent.mkdir()
    code = train(tmp_path / "first", data, "--steps", "9", "--init", str(run6), "--resume-point", str(point))
    assert code == 0, capsys.readouterr().err
    card = json.loads(point.with_suffix(".json").read_text())
    assert card["format"] == checkpoint.RESUME_FORMAT and card["bytes"] < checkpoint.RESUME_LIMIT
    run = card["run"]
    assert run["images_seen"] == 9 * TINY.batch and run["sessions"] == 1
    assert [s["session"] for s in run["segments"]] == [0, 1]
    assert run["segments"][0]["to_step"] == 6 and run["segments"][1]["from_step"] == 6
    assert run["segments"][1]["to_step"] == 9 and run["cpu_time_s"] > 0
    state = json.loads((tmp_path / "first" / "state.json").read_text())
    first = checkpoint.load_state(tmp_path / "first" / "state", _fresh_state())[0]

    restored, _ = checkpoint.load_resume_point(point, _fresh_state())
    assert int(restored.step) == 9 and np.array_equal(np.asarray(restored.key), np.asarray(first.key))
    for got, want in zip(jax.tree.leaves(restored.ema_params), jax.tree.leaves(first.ema_params)):
        np.testing.assert_array_equal(got, np.asarray(want, np.float16).astype(np.float32))
    assert all(float(np.abs(m).sum()) == 0.0 for m in jax.tree.leaves(restored.opt_state) if np.ndim(m))

    code = train(tmp_path / "second", data, "--steps", "12", "--resume", "--resume-point", str(point))
    assert code == 0, capsys.readouterr().err
    run = json.loads(point.with_suffix(".json").read_text())["run"]
    assert run["sessions"] == 2 and run["images_seen"] == 12 * TINY.batch
    assert [s["session"] for s in run["segments"]] == [0, 1, 2]
    assert [v["session"] for v in run["val_history"]] == [1, 1, 2]  # run6's own history: one validation
    assert state["run"]["cpu_time_s"] < run["cpu_time_s"]


def test_resume_point_refusals(run6: Path, data: Path, tmp_path: Path, capsys) -> None:
    point = tmp_path / "p"
    assert train(tmp_path / "a", data, "--steps", "7", "--init", str(run6), "--resume-point", str(point)) == 0
    capsys.readouterr()
    code = train(tmp_path / "b", data, "--steps", "8", "--resume-point", str(point))
    assert "pass --resume to continue it" in assert_one_error_line(code, capsys.readouterr().err)
    code = main(["train", "vdm", "--data", str(data), "--out", str(tmp_path / "c"), "--config", "small",
                 "--crop", "16", "--steps", "8", "--resume", "--resume-point", str(point)])
    message = assert_one_error_line(code, capsys.readouterr().err)
    assert "config 'tiny', not of config 'small'" in message
    code = train(tmp_path / "d", data, "--steps", "8", "--resume", "--init", str(run6))
    assert "cannot be combined with --resume" in assert_one_error_line(code, capsys.readouterr().err)
    code = train(tmp_path / "e", data, "--steps", "8", "--resume", "--resume-point", str(tmp_path / "none"))
    message = assert_one_error_line(code, capsys.readouterr().err)
    assert "no training state" in message and "no resume point" in message


def _fresh_state():
    from diffc.models.train import create_state

    return create_state(TINY, 0)
