"""The model registry: where a checkpoint is found, and what streams and listings call it.

The checkpoints shipped in ``models/checkpoints/`` (package data, no network) are looked up by
name, any checkpoint on disk by path. A checkpoint is ``NAME.msgpack`` + ``NAME.json`` (see
``checkpoint``); ``--model`` takes a shipped name, ``default`` (the family's default:
``DEFAULTS``), a path to either file or to their common stem, or a training run folder (its
``model.json``). What kind of model a checkpoint holds, and how that kind trains and is stored,
is ``families``'s part.
"""

from __future__ import annotations

from pathlib import Path

from diffc.models.checkpoint import ModelError, read_card

SHIPPED = Path(__file__).parent / "checkpoints"
DEFAULTS = {"vdm": "vdm-small", "ardm": "ardm-small"}
"""The model ``--model default`` (every command's default) names, by the family a command needs."""


def shipped() -> dict[str, Path]:
    """The shipped checkpoints by name, in name order: every ``*.json`` card in ``SHIPPED``."""
    return {p.stem: p for p in sorted(SHIPPED.glob("*.json"))}


def resolve(spec: str | Path, family: str = "vdm") -> Path:
    """The card path of the model ``spec`` names (``default``: ``family``'s); ``ModelError`` naming
    the choices if none."""
    name = DEFAULTS[family] if str(spec) == "default" else str(spec)
    models = shipped()
    if name in models:
        return models[name]
    path = Path(spec)
    candidates = [path / "model.json"] if path.is_dir() else [path.with_suffix(".json"), Path(f"{path}.json")]
    for card in candidates:
        if card.is_file():
            return card
    choices = ", ".join(models) or "none shipped"
    if str(spec) == "default":
        raise ModelError(f"no {family.upper()} model ships with this diffc ({choices}): train one with "
                         f"`diffc train {family}` and pass it with --model")
    raise ModelError(f"no model {str(spec)!r}: not a shipped model ({choices}) nor a checkpoint path")


def stream_hash(weights_sha256: str) -> bytes:
    """The first 8 bytes of a checkpoint's sha256: how stream headers name its weights."""
    return bytes.fromhex(weights_sha256[:16])


def display_name(path: Path, card: dict) -> str:
    """What streams and listings call the model at ``path``: a shipped model's file name, else its
    card's name."""
    return path.stem if path.parent == SHIPPED else card.get("name") or path.stem


def describe(spec: str | Path, family: str = "vdm") -> dict:
    """The card of the model ``spec`` names, with its ``name`` and ``path``."""
    path = resolve(spec, family)
    card = read_card(path)
    return {**card, "name": display_name(path, card), "path": str(path)}
