"""``diffc encode`` and ``diffc decode``: images to ``.dfc`` streams and back."""

from __future__ import annotations

import json
import resource
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from diffc.cli.errors import UserError
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
    prior: Annotated[PriorName | None, typer.Option("--prior", help="Lossless coder: vdm (bits-back, closest to the model's ELBO) or diffc (the progressive lossy stream run to the end).")] = None,
    model: ModelOption = "default",
    steps: Annotated[int | None, typer.Option("--steps", min=1, max=4096, help="Lossy: coding steps after the first (default 12, at most 64). Lossless vdm: diffusion steps T (default 100).", show_default=False)] = None,
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

      diffc encode photo.png --bpp max                 # progressive DiffC stream that ends lossless
    """
    from diffc.codec import api, bitsback, denoiser, lossy

    rate = _parse_bpp(bpp, lossless)
    chosen = _choose_prior(prior, lossless, bpp)
    steps = api.default_steps(chosen.value) if steps is None else steps
    if chosen is PriorName.diffc and steps > lossy.MAX_STEPS:
        raise UserError(f"--steps for lossy DiffC is at most {lossy.MAX_STEPS}, not {steps}")
    if chosen is PriorName.vdm and (chunk_bits, margin) != (None, None):
        raise UserError("--chunk-bits and --margin tune lossy DiffC; bits-back (--prior vdm) has no such knobs")
    out = _default_output(image, ".dfc", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    pixels = read_image(image)
    den = denoiser.load(model)
    what = "lossless bits-back" if chosen is PriorName.vdm else ("lossless DiffC" if rate is None else "DiffC")
    _note(quiet, f"diffc: {what} of {pixels.shape[1]}x{pixels.shape[0]} with {den.name}, {steps} steps")
    start = time.perf_counter()
    if chosen is PriorName.vdm:
        with progress_bar("encoding", "patches", quiet=quiet) as progress:
            coded = bitsback.encode(pixels, den, steps=steps, seed=seed, progress=progress)
        facts = bitsback.describe(coded)
        summary = f"{facts['bpd']:.4f} bits/dim ({facts['seed_patches']} of {facts['patches']} patches seeded directly)"
    else:
        config = api.lossy_config(steps, chunk_bits, margin)
        with progress_bar("encoding", "steps", quiet=quiet) as progress:
            coded = lossy.encode(pixels, den, bpp=rate, config=config, seed=seed, progress=progress)
        facts = lossy.describe(coded, pixels.shape[0] * pixels.shape[1])
        summary = (f"{facts['bpp']:.4f} bpp, {len(coded.steps)} steps" + (", lossless" if coded.lossless else "")
                   + (f", {facts['overhead_ratio']:.3f}x the KL" if facts["overhead_ratio"] else ""))
    seconds = time.perf_counter() - start
    write_bytes(out, coded.data, force=force)
    facts["seconds_total"] = seconds
    facts["peak_memory_mib"] = _peak_memory_mib()
    if stats is not None:
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(quiet, f"diffc: {len(coded.data)} bytes, {summary}, {seconds:.1f} s")


def _choose_prior(prior: PriorName | None, lossless: bool, bpp: str | None) -> PriorName:
    from diffc.codec import api

    if bpp is not None and lossless:
        raise UserError("--bpp and --lossless exclude each other (--bpp max is the lossless DiffC stream)")
    if prior is None:
        return PriorName(api.LOSSLESS_PRIOR) if lossless else PriorName.diffc
    if prior is PriorName.vdm and not lossless:
        raise UserError("--prior vdm codes losslessly: use it with --lossless and without --bpp")
    return prior


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
    from diffc.bitstreams import Mode
    from diffc.codec import api, bitsback, denoiser, lossy

    out = _default_output(stream, ".png", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    data = read_bytes(stream)
    try:
        header = api.header_of(data, max_bytes)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    den = denoiser.load(model or header.model_id)
    start = time.perf_counter()
    if header.mode is Mode.LOSSLESS_VDM:
        with progress_bar("decoding", "patches", quiet=quiet) as progress:
            pixels = bitsback.decode(data, den, progress)
        facts: dict[str, object] = {"mode": header.mode.label, "lossless": True}
        done = "losslessly"
    else:
        latent = lossy.decode_latent(data, den, max_bytes=max_bytes)
        pixels = lossy.reconstruct(latent, den, method=method.value, steps=decode_steps, seed=header.seed)
        if latent.truncated:
            _note(False, f"diffc: note: the stream is truncated; decoded {latent.steps_decoded} of {latent.steps_total} steps")
        facts = {
            "mode": header.mode.label,
            "steps_decoded": latent.steps_decoded,
            "steps_total": latent.steps_total,
            "gamma": latent.gamma,
            "lossless": latent.pixels is not None,
            "method": method.value,
        }
        done = f"from {latent.steps_decoded} steps"
    seconds = time.perf_counter() - start
    write_png(out, pixels, force=force)
    if stats is not None:
        facts["seconds_total"] = seconds
        facts["peak_memory_mib"] = _peak_memory_mib()
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(quiet, f"diffc: {pixels.shape[1]}x{pixels.shape[0]} {done}, {seconds:.1f} s")
