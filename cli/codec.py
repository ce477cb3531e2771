"""``diffc encode`` and ``diffc decode``: images to ``.dfc`` streams and back."""

from __future__ import annotations

import json
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from diffc.cli.errors import UserError
from diffc.cli.images import read_image, write_png
from diffc.cli.io import STDIO, check_writable, read_bytes, write_bytes

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="A shipped model's name (see `diffc models`) or a checkpoint path.")
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")]
StatsOption = Annotated[Path | None, typer.Option("--stats", help="Write rates, KLs and timings here as JSON.")]


class Method(str, Enum):
    flow = "flow"
    ancestral = "ancestral"
    mean = "mean"


def _default_output(input_path: Path, suffix: str, output: Path | None) -> Path:
    if output is not None:
        return output
    if input_path == STDIO:
        raise UserError("reading stdin needs -o/--output (use -o - for stdout)")
    return input_path.with_suffix(suffix)


def _parse_bpp(bpp: str | None, lossless: bool) -> float | None:
    if lossless or bpp == "max":
        return None
    if bpp is None:
        raise UserError("say how many bits to spend: --bpp 0.5 (bits per pixel), --bpp max, or --lossless")
    try:
        value = float(bpp)
    except ValueError:
        raise UserError(f"--bpp takes a number of bits per pixel or 'max', not {bpp!r}") from None
    if not value > 0:
        raise UserError(f"--bpp must be positive, not {bpp}")
    return value


def _note(quiet: bool, message: str) -> None:
    if not quiet:
        typer.echo(message, err=True)


def encode(
    image: Annotated[Path, typer.Argument(help="Image to compress (PNG, JPEG, ...), or - for stdin.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output stream (default: IMAGE.dfc; - for stdout).")] = None,
    bpp: Annotated[str | None, typer.Option("--bpp", help="Bits per pixel to spend at most, header included, or 'max' for a stream that ends lossless.")] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="Code the image exactly (same as --bpp max).")] = False,
    model: ModelOption = "default",
    steps: Annotated[int, typer.Option("--steps", min=1, max=64, help="Coding steps after the first (more: finer rate control and progression, slower).")] = 12,
    chunk_bits: Annotated[int, typer.Option("--chunk-bits", min=1, max=20, help="Reverse channel coding: KL bits per chunk.")] = 6,
    margin: Annotated[int, typer.Option("--margin", min=0, max=8, help="Reverse channel coding: 2^(chunk bits + margin) candidates per chunk.")] = 1,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Shared randomness of the stream.")] = 0,
    force: ForceOption = False,
    quiet: QuietOption = False,
    stats: StatsOption = None,
) -> None:
    """Compress an image with lossy DiffC.

    Examples:

      diffc encode photo.png --bpp 0.5 -o photo.dfc

      diffc encode photo.png --bpp max            # progressive, ends lossless
    """
    from diffc.codec import denoiser, lossy, rcc

    rate = _parse_bpp(bpp, lossless)
    out = _default_output(image, ".dfc", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    pixels = read_image(image)
    den = denoiser.load(model)
    config = lossy.LossyConfig(steps=steps, rcc=rcc.RccConfig(chunk_bits, margin))
    _note(quiet, f"diffc: encoding {pixels.shape[1]}x{pixels.shape[0]} with {den.name}, {steps + 1} steps")
    start = time.perf_counter()
    result = lossy.encode(pixels, den, bpp=rate, config=config, seed=seed)
    seconds = time.perf_counter() - start
    write_bytes(out, result.data, force=force)
    facts = lossy.describe(result, pixels.shape[0] * pixels.shape[1])
    facts["seconds_total"] = seconds
    if stats is not None:
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(
        quiet,
        f"diffc: {len(result.data)} bytes, {facts['bpp']:.4f} bpp, {len(result.steps)} steps"
        + (", lossless" if result.lossless else "")
        + (f", {facts['overhead_ratio']:.3f}x the KL" if facts["overhead_ratio"] else "")
        + f", {seconds:.1f} s",
    )


def decode(
    stream: Annotated[Path, typer.Argument(help="A .dfc stream, or - for stdin.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output PNG (default: STREAM.png; - for stdout).")] = None,
    max_bytes: Annotated[int | None, typer.Option("--max-bytes", min=1, help="Decode only this prefix of the stream (progressive).")] = None,
    method: Annotated[Method, typer.Option("--method", help="Reconstruction: probability-flow ODE, ancestral sampling, or the denoised mean.")] = Method.flow,
    decode_steps: Annotated[int, typer.Option("--decode-steps", min=1, max=1000, help="Network calls of the flow or ancestral reconstruction.")] = 16,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model to decode with (default: the one the stream names).")] = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    stats: StatsOption = None,
) -> None:
    """Decompress a stream to PNG; a truncated stream decodes from its complete chunks.

    Examples:

      diffc decode photo.dfc -o photo.png

      diffc decode photo.dfc --max-bytes 4000 -o preview.png
    """
    from diffc import bitstreams
    from diffc.codec import denoiser, lossy

    out = _default_output(stream, ".png", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    data = read_bytes(stream)
    header = bitstreams.read(data[:max_bytes] if max_bytes else data).header
    den = denoiser.load(model or header.model_id)
    start = time.perf_counter()
    latent = lossy.decode_latent(data, den, max_bytes=max_bytes)
    pixels = lossy.reconstruct(latent, den, method=method.value, steps=decode_steps, seed=header.seed)
    seconds = time.perf_counter() - start
    write_png(out, pixels, force=force)
    if latent.truncated:
        _note(False, f"diffc: note: the stream is truncated; decoded {latent.steps_decoded} of {latent.steps_total} steps")
    if stats is not None:
        facts = {
            "steps_decoded": latent.steps_decoded,
            "steps_total": latent.steps_total,
            "gamma": latent.gamma,
            "lossless": latent.pixels is not None,
            "method": method.value,
            "seconds_total": seconds,
        }
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(quiet, f"diffc: {pixels.shape[1]}x{pixels.shape[0]} from {latent.steps_decoded} steps, {seconds:.1f} s")
