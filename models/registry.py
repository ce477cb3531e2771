"""Where models come from: the checkpoints shipped in ``models/checkpoints/`` (package data, no
network), looked up by name, or any checkpoint on disk, looked up by path.

A checkpoint is ``NAME.msgpack`` + ``NAME.json`` (see ``checkpoint``); ``--model`` takes a shipped
name, ``default``, a path to either file or to their common stem, or a training run folder (its
``model.json``).
"""

from __future__ import annotations

from pathlib import Path

from diffc.models.checkpoint import ModelError, read_card

SHIPPED = Path(__file__).parent / "checkpoints"
DEFAULT = "vdm-small"
"""The model ``--model default`` (every command's default) names."""


def shipped() -> dict[str, Path]:
    """The shipped checkpoints by name, in name order: every ``*.json`` card in ``SHIPPED``."""
    return {p.stem: p for p in sorted(SHIPPED.glob("*.json"))}


def resolve(spec: str | Path) -> Path:
    """The card path of the model ``spec`` names; ``ModelError`` naming the choices if none."""
    name = DEFAULT if str(spec) == "default" else str(spec)
    models = shipped()
    if name in models:
        return models[name]
    path = Path(spec)
    candidates = [path / "model.json"] if path.is_dir() else [path.with_suffix(".json"), Path(f"{path}.json")]
    for card in candidates:
        if card.is_file():
            return card
    choices = ", ".join(models) or "none shipped"
    raise ModelError(f"no model {str(spec)!r}: not a shipped model ({choices}) nor a checkpoint path")


def describe(spec: str | Path) -> dict:
    """The card of the model ``spec`` names, with its ``name`` and ``path``."""
    path = resolve(spec)
    card = read_card(path)
    return {**card, "name": path.stem if path.parent == SHIPPED else card.get("name", path.stem), "path": str(path)}
