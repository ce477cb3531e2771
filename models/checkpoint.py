"""Checkpoints: flax msgpack payloads (never pickle) beside a JSON card that records their sha256.

A model is ``NAME.msgpack`` (its family's payload: the parameters, and for ARDM its loss curve;
float32 or float16) plus ``NAME.json`` (the model card: format, config, training facts, dtype and
``sha256`` of the msgpack bytes; ``families`` names the formats). A model may also carry its
integer network (``NAME.int.msgpack``, the exact path of docs/portability.md), named with its own
sha256 under the card's ``integer`` entry (``write_integer``, ``read_integer``). The training
state for ``--resume`` is stored the same way (``state.msgpack`` + ``state.json``). Loading checks
the hash before deserialising anything and raises ``ModelError`` with a clear message.

On-disk format: the msgpack file is ``flax.serialization.msgpack_serialize`` of a nested dict of
arrays, keys in the order flax produces them; the card is UTF-8 JSON, keys sorted, indent 2.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import flax.serialization
import jax
import numpy as np

from diffc.errors import DiffcError
from diffc.models import families
from diffc.models.configs import Recipe

STATE_FORMAT = "diffc-train-state/1"
RESUME_FORMAT = "diffc-resume-point/1"
RESUME_LIMIT = 16 * 2**20  # bytes: a resume point is committed to the repository every session
LEGACY_STATE_FORMATS = ("diffc-vdm-train-state/1",)  # VDM runs saved before ARDM training existed
DTYPES = ("float32", "float16")
T = TypeVar("T")


class ModelError(DiffcError):
    """A model or checkpoint that is missing, tampered with, or does not fit its config."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.fchmod(fd, 0o644)  # mkstemp's 0600 would hide shipped checkpoints from other users
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def card_path(path: Path) -> Path:
    """The card of a checkpoint given as ``NAME``, ``NAME.msgpack`` or ``NAME.json``."""
    path = Path(path)
    return path.with_suffix(".json") if path.suffix in (".msgpack", ".json") else Path(f"{path}.json")


def write_blob(stem: Path, payload: bytes, card: dict[str, Any]) -> dict[str, Any]:
    """Write ``stem.msgpack`` then ``stem.json`` (card plus ``sha256``) atomically; return the card."""
    stem = Path(stem)
    card = {**card, "weights": f"{stem.name}.msgpack", "sha256": sha256(payload), "bytes": len(payload)}
    _atomic_write(stem.parent / f"{stem.name}.msgpack", payload)
    _atomic_write(stem.parent / f"{stem.name}.json", (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    return card


def read_card(path: Path) -> dict[str, Any]:
    """The JSON card of a checkpoint, or ``ModelError`` if it is missing or not JSON."""
    cpath = card_path(path)
    if not cpath.is_file():
        raise ModelError(f"no model card {cpath}: a checkpoint is NAME.msgpack plus NAME.json")
    try:
        card = json.loads(cpath.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model card {cpath} is not valid JSON ({exc})") from None
    if not isinstance(card, dict) or "sha256" not in card or "weights" not in card:
        raise ModelError(f"model card {cpath} lacks the 'weights' and 'sha256' fields")
    return card


def read_blob(path: Path) -> tuple[bytes, dict[str, Any]]:
    """The payload and card of a checkpoint, after checking the payload's sha256 against the card."""
    card = read_card(path)
    wpath = card_path(path).parent / card["weights"]
    if not wpath.is_file():
        raise ModelError(f"checkpoint weights {wpath} are missing (named by {card_path(path)})")
    payload = wpath.read_bytes()
    digest = sha256(payload)
    if digest != card["sha256"]:
        raise ModelError(
            f"checkpoint {wpath} is corrupt or was modified: its sha256 is {digest[:16]}..., "
            f"its card says {str(card['sha256'])[:16]}...; restore or re-download it"
        )
    return payload, card


def write_integer(path: Path, payload: bytes, facts: dict[str, Any]) -> dict[str, Any]:
    """Store the integer network ``payload`` of the checkpoint at ``path`` as ``NAME.int.msgpack``
    and record it in the card's ``integer`` entry (file, sha256, bytes and ``facts``: its format,
    calibration, measured cost); the float weights and their hash are untouched. Returns the entry."""
    cpath = card_path(path)
    card = read_card(path)
    name = f"{Path(card['weights']).stem}.int.msgpack"
    entry = {**facts, "file": name, "sha256": sha256(payload), "bytes": len(payload)}
    _atomic_write(cpath.parent / name, payload)
    _atomic_write(cpath, (json.dumps({**card, "integer": entry}, indent=2, sort_keys=True) + "\n").encode())
    return entry


def read_integer(path: Path) -> tuple[bytes, dict[str, Any]] | None:
    """The integer network's payload and card entry of the checkpoint at ``path``, hash checked;
    None where the model has none (a float-only model)."""
    entry = read_card(path).get("integer")
    if entry is None:
        return None
    ipath = card_path(path).parent / entry["file"]
    if not ipath.is_file():
        raise ModelError(f"the integer network {ipath} is missing (named by {card_path(path)})")
    payload = ipath.read_bytes()
    if sha256(payload) != entry["sha256"]:
        raise ModelError(f"the integer network {ipath} is corrupt or was modified: its sha256 is not its card's")
    return payload, entry


def load_integer(path: Path, parse: Callable[[bytes], T]) -> tuple[T | None, str]:
    """The integer network of the checkpoint at ``path`` as ``parse`` reads its bytes (a family's
    ``from_bytes``), and its sha256: how exact streams name it; (None, "") for a float-only model."""
    stored = read_integer(path)
    if stored is None:
        return None, ""
    blob, entry = stored
    try:
        return parse(blob), entry["sha256"]
    except ValueError as exc:
        raise ModelError(f"the integer network of {path} cannot be read ({exc})") from None


def params_bytes(params: Any, dtype: str = "float32") -> bytes:
    """msgpack bytes of a parameter tree with every array cast to ``dtype``."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, not {dtype!r}")
    tree = jax.tree.map(lambda a: np.asarray(a, dtype=dtype), flax.serialization.to_state_dict(params))
    return flax.serialization.msgpack_serialize(tree)


def save_model(
    stem: Path, config: Recipe, payload: Any, card: dict[str, Any], *, dtype: str = "float32"
) -> dict[str, Any]:
    """Write a model (``stem.msgpack`` + ``stem.json``) of ``config``'s family and return its card;
    ``payload`` is what the family stores (``Family.payload``)."""
    full = {**card, "format": families.of(config).model_format, "config": config.to_dict(), "dtype": dtype}
    return write_blob(stem, params_bytes(payload, dtype), full)


def export_model(src: Path, stem: Path, *, name: str, dtype: str = "float16") -> dict[str, Any]:
    """Copy the model at ``src`` to ``stem.msgpack`` + ``stem.json`` in ``dtype`` under ``name``,
    keeping its card (and recording the source's sha256): how a run becomes a shipped model."""
    config, payload, card = load_model(src)
    card = {**card, "name": name, "exported_from": {"sha256": card["sha256"], "dtype": card.get("dtype")}}
    for key in ("weights", "sha256", "bytes", "dtype", "format", "config"):
        card.pop(key, None)
    return save_model(stem, config, payload, card, dtype=dtype)


def _restore(target: Any, payload: bytes, where: Path) -> Any:
    try:
        restored = flax.serialization.msgpack_restore(payload)
        expected = flax.serialization.to_state_dict(target)
        structure_ok = jax.tree.structure(restored) == jax.tree.structure(expected)
        shapes_ok = structure_ok and all(
            np.shape(a) == np.shape(b) for a, b in zip(jax.tree.leaves(restored), jax.tree.leaves(expected))
        )
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise ModelError(f"checkpoint {where} cannot be read ({type(exc).__name__}: {exc})") from None
    if not (structure_ok and shapes_ok):
        raise ModelError(f"checkpoint {where} does not match the parameters of its config")
    return flax.serialization.from_state_dict(target, restored)


def load_model(path: Path, family: str | None = None) -> tuple[Recipe, Any, dict[str, Any]]:
    """(config, float32 payload, card) of a model checkpoint, hash checked; ``family`` (vdm, ardm)
    refuses a model of another family."""
    payload, card = read_blob(path)
    fam = families.by_format(card.get("format"))
    if fam is None:
        raise ModelError(f"{card_path(path)} is not a diffc model (format {card.get('format')!r})")
    if family is not None and fam.name != family:
        raise ModelError(f"{card_path(path)} is a {fam.name.upper()} model; this needs a model of the {family.upper()} family")
    try:
        config = fam.config_type.from_dict(card["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model card {card_path(path)} has a bad config: {exc}") from None
    restored = _restore(fam.payload_target(config), payload, card_path(path))
    return config, jax.tree.map(lambda a: np.asarray(a, np.float32), restored), card


def save_state(stem: Path, state: Any, card: dict[str, Any]) -> dict[str, Any]:
    """Write a full training state (any flax-serialisable pytree) for ``--resume``."""
    payload = flax.serialization.msgpack_serialize(flax.serialization.to_state_dict(jax.device_get(state)))
    return write_blob(stem, payload, {**card, "format": STATE_FORMAT})


def load_state(stem: Path, target: Any) -> tuple[Any, dict[str, Any]]:
    """Restore a training state saved by ``save_state`` into the structure of ``target``."""
    payload, card = read_blob(stem)
    if card.get("format") not in (STATE_FORMAT, *LEGACY_STATE_FORMATS):
        raise ModelError(f"{card_path(stem)} is not a diffc training state")
    return _restore(target, payload, card_path(stem)), card


def save_resume_point(stem: Path, state: Any, card: dict[str, Any]) -> dict[str, Any]:
    """Write the compact resume point of a training state: parameters and EMA parameters in
    float16, the step and the run's key; the optimiser moments are left out (``load_resume_point``
    re-warms them). It is what a session commits so that the next one, on any machine, goes on."""
    state = jax.device_get(state)
    half = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float16), flax.serialization.to_state_dict(tree))
    tree = {
        "params": half(state.params), "ema_params": half(state.ema_params),
        "step": np.asarray(state.step, np.int64), "key": np.asarray(state.key),
    }
    payload = flax.serialization.msgpack_serialize(tree)
    if len(payload) > RESUME_LIMIT:
        raise ModelError(f"a resume point of {len(payload)} bytes is over the {RESUME_LIMIT} bytes one may commit")
    return write_blob(stem, payload, {**card, "format": RESUME_FORMAT})


def load_resume_point(stem: Path, target: Any) -> tuple[Any, dict[str, Any]]:
    """A fresh training state ``target`` (structure, optimiser) with the parameters, EMA
    parameters, step and key of the resume point at ``stem``; the optimiser state is ``target``'s,
    so its moments and warm-up start again."""
    payload, card = read_blob(stem)
    if card.get("format") != RESUME_FORMAT:
        raise ModelError(f"{card_path(stem)} is not a diffc resume point")
    expected = {
        "params": flax.serialization.to_state_dict(target.params),
        "ema_params": flax.serialization.to_state_dict(target.ema_params),
        "step": np.zeros((), np.int64), "key": np.asarray(target.key),
    }
    tree = _restore(expected, payload, card_path(stem))
    widen = lambda t, like: flax.serialization.from_state_dict(like, jax.tree.map(lambda a: np.asarray(a, np.float32), t))
    state = target.replace(
        params=widen(tree["params"], target.params), ema_params=widen(tree["ema_params"], target.ema_params),
        step=int(tree["step"]), key=np.asarray(tree["key"], np.asarray(target.key).dtype),
    )
    return state, card
