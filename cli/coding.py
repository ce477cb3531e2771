"""``diffc encode`` and ``diffc decode``: images to ``.dfc`` streams and back."""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from diffc.cli.errors import UsageError, UserError
from diffc.cli.images import read_image, write_png
from diffc.cli.io import STDIO, check_writable, read_bytes, write_bytes
from diffc.cli.progress import progress_bar

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


class PriorName(str, Enum):
    diffc = "diffc"
    vdm = "vdm"
    ardm = "ardm"


def _default_output(input_path: Path, suffix: str, output: Path | None) -> Path:
    if output is not None:
        return output
    if input_path == STDIO:
        raise UsageError("reading stdin needs -o/--output (use -o - for stdout)")
    return input_path.with_suffix(suffix)


def _parse_bpp(bpp: str | None, lossless: bool) -> float | str | None:
    """--bpp as the API takes it: a positive number, 'max', or None with --lossless; a usage error
    otherwise."""
    if lossless or bpp == "max":
        return bpp
    if bpp is None:
        raise UsageError("say how many bits to spend: --bpp 0.5 (bits per pixel), --bpp max, or --lossless")
    try:
        value = float(bpp)
    except ValueError:
        raise UsageError(f"--bpp takes a number of bits per pixel or 'max', not {bpp!r}") from None
    if not 0 < value < math.inf:
        raise UsageError(f"--bpp must be a positive, finite number of bits per pixel, not {bpp}")
    return value


def _peak_memory_mib() -> float:
    """The process's peak resident memory so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1 << 20 if sys.platform == "darwin" else 1 << 10), 1)


def _note(quiet: bool, message: str) -> None:
    if not quiet:
        typer.echo(message, err=True)


def encode(
    image: Annotated[Path, typer.Argument(help="Image to compress (PNG, JPEG, ...), or - for stdin.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output stream (default: IMAGE.dfc; - for stdout).")] = None,
    bpp: Annotated[str | None, typer.Option("--bpp", help="Bits per pixel to spend at most, header included, or 'max' for a DiffC stream that ends lossless.")] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="Code the image exactly (with --prior vdm unless another prior is named).")] = False,
    prior: Annotated[PriorName | None, typer.Option("--prior", help="Lossless coder: vdm (bits-back with the VDM prior), ardm (autoregressive diffusion, per image) or diffc (the progressive lossy stream run to the end).")] = None,
    model: ModelOption = "default",
    steps: Annotated[int | None, typer.Option("--steps", min=1, max=4096, help="Lossy: at most this many steps t -> s after step 0, which codes the noisiest z (default 12, at most 64; the messages and diffc info count steps the same way). Lossless vdm: diffusion steps T (default 100). Lossless ardm: network calls at most (default 50).", show_default=False)] = None,
    chunk_bits: Annotated[int | None, typer.Option("--chunk-bits", min=1, max=20, help="Lossy reverse channel coding: KL bits per chunk (default 6).", show_default=False)] = None,
    margin: Annotated[int | None, typer.Option("--margin", min=0, max=8, help="Lossy reverse channel coding: 2^(chunk bits + margin) candidates per chunk (default 1).", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Shared randomness of the stream.")] = 0,
    force: ForceOption = False,
    quiet: QuietOption = False,
    stats: StatsOption = None,
) -> None:
    """Compress an image: lossy DiffC at a rate, or lossless.

    Examples:

      diffc encode photo.png --bpp 0.5 -o photo.dfc

      diffc encode photo.png --lossless                # bits-back with the VDM prior

      diffc encode photo.png --lossless --prior ardm --steps 50

      diffc encode photo.png --bpp max                 # progressive DiffC stream that ends lossless
    """
    from diffc.codec import api

    if bpp is not None and lossless:
        raise UsageError("--bpp and --lossless exclude each other (--bpp max is the lossless DiffC stream)")
    rate = _parse_bpp(bpp, lossless)
    request = {"bpp": rate, "lossless": lossless, "prior": prior and prior.value, "steps": steps,
               "chunk_bits": chunk_bits, "margin": margin}
    try:
        api.check(**request)
    except ValueError as exc:  # a contradictory request: a usage error
        raise UsageError(str(exc)) from None
    out = _default_output(image, ".dfc", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    pixels = read_image(image)
    job = api.prepare(**request, model=model)
    steps = f"at most {job.steps} steps" if job.prior == "diffc" else f"{job.steps} steps"  # lossy: rate control may stop early
    _note(quiet, f"diffc: {job.title} of {pixels.shape[1]}x{pixels.shape[0]} with {job.model.name}, {steps}")
    start = time.perf_counter()
    with progress_bar("encoding", job.unit, quiet=quiet) as progress:
        coded = job.run(pixels, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    write_bytes(out, coded.data, force=force)
    facts = {**coded.facts, "seconds_total": seconds, "peak_memory_mib": _peak_memory_mib()}
    if stats is not None:
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(quiet, f"diffc: {len(coded.data)} bytes, {coded.summary}, {seconds:.1f} s")


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
    from diffc.codec import api

    out = _default_output(stream, ".png", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    data = read_bytes(stream)
    try:
        header = api.header_of(data, max_bytes)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    start = time.perf_counter()
    unit = api.PRIOR_FACTS[api.MODE_PRIORS[header.mode]].unit
    with progress_bar("decoding", unit, quiet=quiet) as progress:
        decoded = api.decode(data, model=model, method=method.value, decode_steps=decode_steps,
                             max_bytes=max_bytes, progress=progress)
    if decoded.notice:
        _note(False, f"diffc: note: {decoded.notice}")
    seconds = time.perf_counter() - start
    pixels = decoded.pixels
    write_png(out, pixels, force=force)
    if stats is not None:
        facts = {**decoded.facts, "seconds_total": seconds, "peak_memory_mib": _peak_memory_mib()}
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(quiet, f"diffc: {pixels.shape[1]}x{pixels.shape[0]} {decoded.summary}, {seconds:.1f} s")
