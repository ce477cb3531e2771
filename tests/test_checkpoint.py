"""Checkpoints and the model registry (``diffc.models.checkpoint``, ``diffc.models.registry``):
exact round trips, refusal of tampered or mismatched files with clear ``ModelError`` messages, and
name/path resolution, with the tiny config."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import flax.traverse_util
import jax
import numpy as np
import pytest

from diffc.models import checkpoint, configs, families, registry, train, vdm
from diffc.models.checkpoint import ModelError

TINY = configs.get_config("tiny")
CARD = {"name": "tiny", "steps": 3, "val_bpd": 7.5}


def flat(tree) -> dict:
    return flax.traverse_util.flatten_dict(tree, sep="/")


@pytest.fixture(scope="module")
def params() -> dict:
    """Random tiny-config parameters (no compilation), with awkward float32 values in one leaf."""
    shapes = jax.eval_shape(lambda: vdm.init_params(TINY, 0))
    rng = np.random.default_rng(0)
    tree = jax.tree.map(lambda s: rng.standard_normal(s.shape).astype(np.float32), shapes)
    leaf = max(flat(tree).items(), key=lambda kv: kv[1].size)[1]
    specials = [-0.0, 1e-45, -3e-39, np.finfo(np.float32).max, np.finfo(np.float32).tiny, np.pi, 1 / 3]
    leaf.ravel()[: len(specials)] = specials
    return tree


def assert_same_tree(got, want) -> None:
    got, want = flat(got), flat(want)
    assert got.keys() == want.keys()
    for name in want:
        a, b = np.asarray(got[name]), np.asarray(want[name])
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name  # bit for bit, -0.0 and subnormals included


@pytest.fixture
def saved(tmp_path: Path, params) -> Path:
    stem = tmp_path / "m"
    checkpoint.save_model(stem, TINY, params, CARD)
    return stem


# --- round trips --------------------------------------------------------------------------------


def test_float32_round_trip_is_bit_exact(saved: Path, params) -> None:
    for spec in (saved, saved.with_suffix(".msgpack"), saved.with_suffix(".json")):
        config, loaded, card = checkpoint.load_model(spec)
        assert config == TINY
        assert_same_tree(loaded, params)
    assert card["format"] == families.VDM.model_format and card["dtype"] == "float32"
    assert configs.VDMConfig.from_dict(card["config"]) == TINY and card["weights"] == "m.msgpack"
    assert {k: card[k] for k in CARD} == CARD
    payload = saved.with_suffix(".msgpack").read_bytes()
    assert card["sha256"] == checkpoint.sha256(payload) and card["bytes"] == len(payload)
    # The card on disk is what save_model returned, and sorted JSON.
    text = saved.with_suffix(".json").read_text()
    assert json.loads(text) == card
    assert text == json.dumps(card, indent=2, sort_keys=True) + "\n"


@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")  # float32 max -> inf
def test_float16_round_trip_is_within_half_precision(tmp_path: Path, params) -> None:
    stem = tmp_path / "half"
    card = checkpoint.save_model(stem, TINY, params, CARD, dtype="float16")
    assert card["dtype"] == "float16"
    full = checkpoint.save_model(tmp_path / "full", TINY, params, CARD)
    assert card["bytes"] < 0.6 * full["bytes"]
    _, loaded, _ = checkpoint.load_model(stem)
    got, want = flat(loaded), flat(params)
    for name, w in want.items():
        g = np.asarray(got[name])
        assert g.dtype == np.float32
        with np.errstate(over="ignore"):
            np.testing.assert_array_equal(g, w.astype(np.float16).astype(np.float32), err_msg=name)
        normal = np.abs(w) < np.finfo(np.float16).max
        np.testing.assert_allclose(g[normal], w[normal], rtol=2.0**-11, atol=2.0**-24, err_msg=name)


def test_unknown_dtype_is_refused(tmp_path: Path, params) -> None:
    with pytest.raises(ValueError, match="float16"):
        checkpoint.save_model(tmp_path / "x", TINY, params, CARD, dtype="bfloat16")


def test_files_are_readable_by_others_and_no_temporaries_remain(saved: Path) -> None:
    for name in ("m.msgpack", "m.json"):
        assert os.stat(saved.parent / name).st_mode & 0o777 == 0o644
    assert sorted(p.name for p in saved.parent.iterdir()) == ["m.json", "m.msgpack"]



def test_train_state_round_trip_is_exact(tmp_path: Path) -> None:
    fresh = train.create_state(TINY, 0)
    # Give every leaf (step, optimiser moments and counts, EMA, key) a distinct non-initial value.
    rng = np.random.default_rng(1)

    def scramble(a):
        a = np.asarray(a)
        if np.issubdtype(a.dtype, np.floating):
            return rng.standard_normal(a.shape).astype(a.dtype)
        return rng.integers(1, 1000, a.shape).astype(a.dtype)

    state = jax.tree.map(scramble, fresh)
    assert int(state.step) != 0
    checkpoint.save_state(tmp_path / "state", state, {"config": TINY.to_dict(), "run": {"images_seen": 5}})
    restored, card = checkpoint.load_state(tmp_path / "state", fresh)
    assert card["format"] == checkpoint.STATE_FORMAT and card["run"] == {"images_seen": 5}
    assert type(restored) is type(fresh)
    assert jax.tree.structure(restored) == jax.tree.structure(fresh)
    got, want = jax.tree.leaves(restored), jax.tree.leaves(state)
    assert len(got) == len(want) > 10
    for a, b in zip(got, want, strict=True):
        a, b = np.asarray(a), np.asarray(b)
        assert a.dtype == b.dtype and a.shape == b.shape
        assert a.tobytes() == b.tobytes()
    assert int(restored.step) == int(state.step)


def test_states_and_models_are_not_confused(tmp_path: Path, saved: Path, params) -> None:
    checkpoint.save_state(tmp_path / "state", {"params": params, "step": 3}, {"config": TINY.to_dict()})
    with pytest.raises(ModelError, match="not a diffc model"):
        checkpoint.load_model(tmp_path / "state")
    with pytest.raises(ModelError, match="not a diffc training state"):
        checkpoint.load_state(saved, {"params": params, "step": 0})
    # A plain dict state (leaves in sorted-key order either way) round-trips exactly.
    restored, card = checkpoint.load_state(tmp_path / "state", {"params": params, "step": 0})
    assert card["format"] == checkpoint.STATE_FORMAT and int(restored["step"]) == 3
    assert_same_tree(restored["params"], params)


# --- refusals --------------------------------------------------------------------------------------


def test_tampered_weights_are_refused(saved: Path) -> None:
    weights = saved.with_suffix(".msgpack")
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt or was modified") as info:
        checkpoint.load_model(saved)
    assert str(weights) in str(info.value)


def test_truncated_weights_are_refused(saved: Path) -> None:
    weights = saved.with_suffix(".msgpack")
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(ModelError, match="corrupt or was modified"):
        checkpoint.load_model(saved)


def test_missing_card_is_refused(saved: Path) -> None:
    saved.with_suffix(".json").unlink()
    with pytest.raises(ModelError, match=r"no model card .*m\.json"):
        checkpoint.load_model(saved.with_suffix(".msgpack"))


def test_missing_weights_are_refused(saved: Path) -> None:
    saved.with_suffix(".msgpack").unlink()
    with pytest.raises(ModelError, match=r"weights .*m\.msgpack are missing"):
        checkpoint.load_model(saved)


def test_card_that_is_not_json_is_refused(saved: Path) -> None:
    saved.with_suffix(".json").write_text('{"format": "diffc-vdm/1", ')
    with pytest.raises(ModelError, match="not valid JSON"):
        checkpoint.load_model(saved)
    saved.with_suffix(".json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ModelError, match="not valid JSON"):
        checkpoint.load_model(saved)


def test_card_without_hash_is_refused(saved: Path) -> None:
    card = json.loads(saved.with_suffix(".json").read_text())
    del card["sha256"]
    saved.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="sha256"):
        checkpoint.load_model(saved)
    saved.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ModelError, match="lacks"):
        checkpoint.load_model(saved)


def rewrite_card(stem: Path, **changes) -> None:
    card = json.loads(stem.with_suffix(".json").read_text())
    stem.with_suffix(".json").write_text(json.dumps({**card, **changes}))


def test_a_model_of_another_family_is_refused(saved: Path) -> None:
    assert checkpoint.load_model(saved, "vdm")[0] == TINY
    with pytest.raises(ModelError, match="is a VDM model; this needs a model of the ARDM family"):
        checkpoint.load_model(saved, "ardm")


def test_wrong_format_is_refused(saved: Path) -> None:
    rewrite_card(saved, format="diffc-vdm/99")
    with pytest.raises(ModelError, match=r"not a diffc model \(format 'diffc-vdm/99'\)"):
        checkpoint.load_model(saved)


def test_bad_config_is_refused(saved: Path) -> None:
    rewrite_card(saved, config={**TINY.to_dict(), "dropout": 0.5})
    with pytest.raises(ModelError, match="bad config.*dropout"):
        checkpoint.load_model(saved)
    rewrite_card(saved, config="tiny")
    with pytest.raises(ModelError, match="bad config"):
        checkpoint.load_model(saved)


def test_params_not_matching_the_config_are_refused(tmp_path: Path, params) -> None:
    wider = dataclasses.replace(TINY, channels=16)
    checkpoint.save_model(tmp_path / "wider", wider, params, CARD)  # shapes of tiny, card says wider
    with pytest.raises(ModelError, match="does not match the parameters of its config"):
        checkpoint.load_model(tmp_path / "wider")
    fewer = {**params, "unet": {k: v for k, v in params["unet"].items() if k != "Conv_0"}}
    assert len(fewer["unet"]) == len(params["unet"]) - 1
    checkpoint.save_model(tmp_path / "fewer", TINY, fewer, CARD)
    with pytest.raises(ModelError, match="does not match the parameters of its config"):
        checkpoint.load_model(tmp_path / "fewer")


def test_garbage_payload_with_a_valid_hash_is_refused(tmp_path: Path) -> None:
    card = {"format": families.VDM.model_format, "config": TINY.to_dict(), "dtype": "float32"}
    checkpoint.write_blob(tmp_path / "junk", b"\xc1 not msgpack", card)
    with pytest.raises(ModelError, match=r"junk\.json cannot be read"):
        checkpoint.load_model(tmp_path / "junk")


# --- registry --------------------------------------------------------------------------------------


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch, params) -> Path:
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    checkpoint.save_model(folder / registry.DEFAULTS["vdm"], TINY, params, {**CARD, "name": "a run name"})
    checkpoint.save_model(folder / "vdm-other", TINY, params, CARD)
    monkeypatch.setattr(registry, "SHIPPED", folder)
    return folder


def test_default_names_the_default_shipped_model(shipped: Path) -> None:
    assert registry.DEFAULTS["vdm"] == "vdm-small"
    assert list(registry.shipped()) == ["vdm-other", "vdm-small"]
    assert registry.resolve("default") == shipped / "vdm-small.json"
    assert registry.resolve("vdm-small") == shipped / "vdm-small.json"
    assert registry.resolve("vdm-other") == shipped / "vdm-other.json"
    card = registry.describe("default")
    assert card["name"] == "vdm-small" and card["path"] == str(shipped / "vdm-small.json")
    config, _, _ = checkpoint.load_model(registry.resolve("default"))
    assert config == TINY


def test_default_without_shipped_models_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(registry, "SHIPPED", tmp_path / "empty")
    monkeypatch.chdir(tmp_path)
    assert registry.shipped() == {}
    with pytest.raises(ModelError, match=r"no VDM model ships with this diffc \(none shipped\)"):
        registry.resolve("default")


def test_each_family_has_its_default(shipped: Path) -> None:
    assert registry.resolve("default", "vdm") == shipped / "vdm-small.json"
    with pytest.raises(ModelError, match="no ARDM model ships.*`diffc train ardm`"):
        registry.resolve("default", "ardm")


def test_paths_resolve(shipped: Path, tmp_path: Path, params) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    checkpoint.save_model(elsewhere / "mine", TINY, params, CARD)
    card = elsewhere / "mine.json"
    for spec in (card, elsewhere / "mine.msgpack", elsewhere / "mine", str(elsewhere / "mine")):
        assert registry.resolve(spec) == card, spec
    run = tmp_path / "run"
    run.mkdir()
    checkpoint.save_model(run / "model", TINY, params, CARD)
    assert registry.resolve(run) == run / "model.json"
    assert registry.describe(run)["name"] == "tiny"  # a run's card names its config
    # A stem with a dot in it.
    checkpoint.save_model(elsewhere / "vdm.v2", TINY, params, CARD)
    assert registry.resolve(elsewhere / "vdm.v2") == elsewhere / "vdm.v2.json"


def test_unknown_model_lists_the_shipped_names(shipped: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as info:
        registry.resolve("vdm-huge")
    message = str(info.value)
    assert "no model 'vdm-huge'" in message and "vdm-small" in message and "vdm-other" in message
    empty_run = tmp_path / "empty-run"
    empty_run.mkdir()
    with pytest.raises(ModelError, match="no model"):
        registry.resolve(empty_run)
