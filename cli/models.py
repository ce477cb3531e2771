"""``diffc models``: the shipped models and their cards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from diffc.cli.errors import UsageError, UserError
from diffc.cli.io import check_writable
from diffc.models import checkpoint, integer_export, registry


def _line(card: dict[str, Any]) -> str:
    val = card.get("val_bpd")
    facts = [
        card.get("format", "?"),
        f"config {card.get('config', {}).get('name', '?')}",
        f"{card.get('parameters', '?')} parameters",
        f"{card.get('steps', '?')} steps",
        f"validation {val:.4f} bits/dim" if isinstance(val, float) else "no validation",
        f"{card.get('bytes', 0) / 2**20:.1f} MiB {card.get('dtype', '')}".rstrip(),
        f"sha256 {str(card.get('sha256', ''))[:16]}",
    ]
    if "integer" in card:
        facts.append(f"integer network {card['integer']['sha256'][:16]}")
    default = " (default)" if card["name"] in registry.DEFAULTS.values() else ""
    return f"{card['name']}{default}: " + ", ".join(facts)


def models(
    model: Annotated[
        str | None, typer.Argument(help="Show this model's whole card (a name or a checkpoint path).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the cards as JSON.")] = False,
    export: Annotated[Path | None, typer.Option(
        "--export", help="Write MODEL to EXPORT.msgpack + EXPORT.json (e.g. a run, to ship it).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Name of the exported model (default: EXPORT's stem).")] = None,
    dtype: Annotated[str, typer.Option("--dtype", help="Exported weights: float16 or float32.")] = "float16",
    quantise: Annotated[list[Path] | None, typer.Option(
        "--quantise", help="Give MODEL its integer network (exact streams), calibrated on crops of "
        "this image folder's images (repeat for more folders): NAME.int.msgpack beside it.")] = None,
    crops: Annotated[int, typer.Option("--crops", min=1, help="Calibration crops for --quantise.")] = (
        integer_export.DEFAULT_CROPS),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing export or integer network.")] = False,
) -> None:
    """List the shipped models, or show one model's card.

    Every command takes --model NAME|PATH; 'default' names the default model.

    Examples:

      diffc models

      diffc models default --json

      diffc models runs/vdm --export models/checkpoints/vdm-small --dtype float16

      diffc models models/checkpoints/vdm-small --quantise ../shared/data/cid22/train
    """
    if quantise:
        if model is None:
            raise UsageError("--quantise needs the MODEL to quantise")
        _quantise(model, quantise, crops, force)
        return
    if export is not None:
        if model is None:
            raise UsageError("--export needs the MODEL to export")
        if dtype not in checkpoint.DTYPES:
            raise UsageError(f"--dtype must be one of {', '.join(checkpoint.DTYPES)}")
        for suffix in (".msgpack", ".json"):
            check_writable(Path(f"{export}{suffix}"), force=force)
        card = checkpoint.export_model(registry.resolve(model), export, name=name or export.name, dtype=dtype)
        typer.echo(f"wrote {export}.msgpack ({card['bytes']} bytes, {dtype}) and {export}.json")
        return
    if model is not None:
        card = registry.describe(model)
        if as_json:
            typer.echo(json.dumps(card, indent=2, sort_keys=True))
        else:
            typer.echo(_line(card))
            for key in ("path", "command", "data", "images_seen", "wall_time_s", "device", "note"):
                if key in card:
                    typer.echo(f"  {key}: {json.dumps(card[key]) if isinstance(card[key], list | dict) else card[key]}")
        return
    cards = [registry.describe(name) for name in registry.shipped()]
    if as_json:
        typer.echo(json.dumps(cards, indent=2, sort_keys=True))
    elif not cards:
        typer.echo("no shipped models")
    else:
        for card in cards:
            typer.echo(_line(card))


def _quantise(model: str, folders: list[Path], crops: int, force: bool) -> None:
    """``--quantise``: write MODEL's integer network and name it in MODEL's card."""
    for folder in folders:
        if not folder.is_dir():
            raise UsageError(f"--quantise {folder}: no such folder of images")
    path = registry.resolve(model)
    if "integer" in checkpoint.read_card(path) and not force:
        raise UsageError(f"{model} already has an integer network; pass --force to replace it")
    try:
        entry = integer_export.export(path, folders, crops=crops)
    except ValueError as exc:
        raise UserError(f"cannot quantise {model}: {exc}") from None
    typer.echo(f"wrote {entry['file']} ({entry['bytes']} bytes, sha256 {entry['sha256'][:16]}) beside {path}")
