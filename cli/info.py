"""``diffc info``: a stream's header, chunk table and rate, without decoding it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from diffc import bitstreams
from diffc.cli.io import read_bytes


def describe(container: bitstreams.Container) -> dict[str, Any]:
    """The facts ``diffc info`` shows, as a JSON-ready dict."""
    h = container.header
    bits = 8 * container.total_bytes
    return {
        "format_version": h.version,
        "mode": h.mode.label,
        "height": h.height,
        "width": h.width,
        "channels": h.channels,
        "seed": h.seed,
        "model_id": h.model_id,
        "model_hash": h.model_hash.hex(),
        "params": dict(h.params),
        "header_bytes": container.header_bytes,
        "chunks": [len(c) for c in container.chunks],
        "declared_chunks": container.declared_chunks,
        "complete": container.complete,
        "total_bytes": container.total_bytes,
        "bits": bits,
        "bpp": bits / h.pixels,
        "bits_per_dim": bits / (h.pixels * h.channels),
    }


def _hash_label(facts: dict[str, Any]) -> str:
    """What the header's hash names: the integer network for exact streams, else the weights."""
    return "integer network" if facts["params"].get("exact") == 1 else "weights"


def format_text(facts: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in facts["params"].items()) or "none"
    chunks = facts["chunks"]
    lines = [
        f"format      dfc version {facts['format_version']}, {facts['mode']}",
        f"image       {facts['width']}x{facts['height']}, {facts['channels']} channel(s)",
        f"model       {facts['model_id']} ({_hash_label(facts)} {facts['model_hash']})",
        f"seed        {facts['seed']}",
        f"parameters  {params}",
        f"size        {facts['total_bytes']} bytes ({facts['header_bytes']} header), "
        f"{facts['bpp']:.4f} bpp, {facts['bits_per_dim']:.4f} bits/dim",
        f"chunks      {len(chunks)} of {facts['declared_chunks']} present: "
        + (" ".join(str(n) for n in chunks) if len(chunks) <= 32 else f"{sum(chunks)} bytes in all"),
    ]
    if not facts["complete"]:
        lines.append("note        the stream is truncated; only the complete chunks above decode")
    return "\n".join(lines)


def info(
    file: Annotated[Path, typer.Argument(help="A .dfc stream, or - for stdin.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the facts as JSON.")] = False,
) -> None:
    """Show a stream's header, chunk table and rate without decoding it.

    Example: diffc info image.dfc --json
    """
    container = bitstreams.read(read_bytes(file))
    facts = describe(container)
    typer.echo(json.dumps(facts, indent=2) if as_json else format_text(facts))
