"""``diffc encode`` and ``diffc decode``: images to ``.dfc`` streams and back."""

from __future__ import annotations

import contextlib
import functools
import json
import math
import resource
import sys
import time
from collections.abc import Callable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from diffc.cli.errors import UsageError, UserError
from diffc.cli.evaluate import parse_shard
from diffc.cli.images import read_image, write_png
from diffc.cli.io import STDIO, check_writable, read_bytes, write_bytes
from diffc.cli.progress import progress_bar
from diffc.errors import DiffcError
from diffc.evaluation.runner import find_images
from diffc.evaluation.shards import Shard

if TYPE_CHECKING:
    from diffc.codec.api import Decoded, EncodeJob

ModelOption = Annotated[
    str, typer.Option("--model", "-m", help="A shipped model's name (see `diffc models`) or a checkpoint path.")
]
ForceOption = Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing output.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or summary on stderr.")]
StatsOption = Annotated[Path | None, typer.Option("--stats", help="Write rates, KLs and timings here as JSON (one file only).")]
ShardOption = Annotated[str | None, typer.Option(
    "--shard", metavar="I/N", help="With a folder: only shard I of N (numbered from 1), every N-th file from the "
    "I-th in name order, as diffc eval rd --shard takes it; e.g. one per task of a SLURM array.")]


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


def _steps_text(job: EncodeJob) -> str:
    """The job's steps as people should read them: lossy rate control may stop before the last."""
    return f"at most {job.steps} steps" if job.prior == "diffc" else f"{job.steps} steps"


def _batch_output(output: Path | None, stats: Path | None) -> Path:
    """The output folder of a folder's coding; the options that make no sense there are usage errors."""
    if output is None or output == STDIO:
        raise UsageError("a folder is coded into a folder: give -o/--output OUTDIR")
    if stats is not None:
        raise UsageError("--stats takes one image's facts; with a folder, each file's line gives its bytes, bpp and seconds")
    return output


def _pairs(folder: Path, inputs: list[Path], out_dir: Path, suffix: str, part: Shard | None,
           force: bool) -> list[tuple[Path, Path]]:
    """Shard ``part``'s inputs, each with its output OUTDIR/NAME``suffix``. Refuses before any work
    what would fail later: an output folder that is a file, two inputs of one name (over the whole
    folder, since every shard writes into the same OUTDIR), too many shards, existing outputs."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output {out_dir} is a file; a folder is coded into a folder")
    targets: dict[Path, Path] = {}
    for path in inputs:
        target = out_dir / f"{path.stem}{suffix}"
        if target in targets:
            raise UserError(f"{targets[target]} and {path} would both be written to {target}; rename one")
        targets[target] = path
    if part is not None and part.count > len(inputs):
        raise UserError(f"--shard {part}: {folder} has {len(inputs)} files to code, too few for {part.count} shards")
    pairs = [(path, target) for target, path in targets.items()]
    chosen = pairs if part is None else part.select(pairs)
    if out_dir.is_dir():
        for _, target in chosen:
            check_writable(target, force=force)
    return chosen


def _count(count: int, kind: str) -> str:
    """'3 images', '1 image'."""
    return f"{count} {kind.removesuffix('s') if count == 1 else kind}"


def _batch_label(count: int, kind: str, folder: Path, part: Shard | None) -> str:
    """'3 images of photos', with the shard when there is one."""
    return f"{_count(count, kind)} of {folder}" + ("" if part is None else f" (shard {part})")


@contextlib.contextmanager
def _naming(source: Path) -> Iterator[None]:
    """An error about one file of a folder names that file (once), so the user knows which to fix."""
    try:
        yield
    except DiffcError as exc:
        if str(source) in str(exc):
            raise
        raise UserError(f"{source}: {exc}") from exc


def _rate(size: int, pixels: int, seconds: float) -> str:
    return f"{size} bytes, {8 * size / pixels:.4f} bpp, {seconds:.1f} s"


def _run_batch(pairs: list[tuple[Path, Path]], out_dir: Path, code: Callable[[Path, Path], tuple[int, int]],
               made: str, *, quiet: bool) -> None:
    """Run ``code(source, target)`` (it writes target atomically and returns the stream's bytes and
    the image's pixels) on every pair, with a line per file and a summary; the first error stops it,
    leaving the outputs finished so far."""
    out_dir.mkdir(parents=True, exist_ok=True)
    start, total_bytes, total_pixels = time.perf_counter(), 0, 0
    for i, (source, target) in enumerate(pairs, 1):
        began = time.perf_counter()
        with _naming(source):
            size, pixels = code(source, target)
        total_bytes, total_pixels = total_bytes + size, total_pixels + pixels
        line = _rate(size, pixels, time.perf_counter() - began)
        _note(quiet, f"diffc: [{i}/{len(pairs)}] {source.name} -> {target.name}: {line}")
    _note(quiet, f"diffc: wrote {_count(len(pairs), made)} to {out_dir}: "
          f"{_rate(total_bytes, total_pixels, time.perf_counter() - start)}")


def _encode_folder(folder: Path, out_dir: Path, part: Shard | None, prepare: Callable[[], EncodeJob], seed: int,
                   *, force: bool, quiet: bool) -> None:
    """Every image of ``folder`` (as diffc eval rd lists them), or shard ``part`` of them, into
    ``out_dir``/NAME.dfc, with the model loaded once, after the outputs are known to be writable."""
    pairs = _pairs(folder, find_images(folder), out_dir, ".dfc", part, force)
    job = prepare()
    label = _batch_label(len(pairs), "images", folder, part)
    _note(quiet, f"diffc: {job.title} of {label} with {job.model.name}, {_steps_text(job)}")

    def code(source: Path, target: Path) -> tuple[int, int]:
        pixels = read_image(source)
        with progress_bar("encoding", job.unit, quiet=quiet) as progress:
            coded = job.run(pixels, seed=seed, progress=progress)
        write_bytes(target, coded.data, force=force)
        return len(coded.data), pixels.shape[0] * pixels.shape[1]

    _run_batch(pairs, out_dir, code, "streams", quiet=quiet)


def encode(
    image: Annotated[Path, typer.Argument(help="Image to compress (PNG, JPEG, ...), a folder of images, or - for stdin.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output stream (default: IMAGE.dfc; - for stdout); for a folder, the folder that gets NAME.dfc per image.")] = None,
    bpp: Annotated[str | None, typer.Option("--bpp", help="Bits per pixel to spend at most, header included, or 'max' for a DiffC stream that ends lossless.")] = None,
    lossless: Annotated[bool, typer.Option("--lossless", help="Code the image exactly (with --prior vdm unless another prior is named).")] = False,
    prior: Annotated[PriorName | None, typer.Option("--prior", help="Lossless coder: vdm (bits-back with the VDM prior), ardm (autoregressive diffusion, per image) or diffc (the progressive lossy stream run to the end).")] = None,
    model: ModelOption = "default",
    steps: Annotated[int | None, typer.Option("--steps", min=1, max=4096, help="Lossy: at most this many steps t -> s after step 0, which codes the noisiest z (default 12, at most 64; the messages and diffc info count steps the same way). Lossless vdm: diffusion steps T (default 100). Lossless ardm: network calls at most (default 50).", show_default=False)] = None,
    chunk_bits: Annotated[int | None, typer.Option("--chunk-bits", min=1, max=20, help="Lossy reverse channel coding: KL bits per chunk (default 6).", show_default=False)] = None,
    margin: Annotated[int | None, typer.Option("--margin", min=0, max=8, help="Lossy reverse channel coding: 2^(chunk bits + margin) candidates per chunk (default 1).", show_default=False)] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, max=2**32 - 1, help="Shared randomness of the stream.")] = 0,
    shard: ShardOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    stats: StatsOption = None,
) -> None:
    """Compress an image, or every image of a folder: lossy DiffC at a rate, or lossless.

    Examples:

      diffc encode photo.png --bpp 0.5 -o photo.dfc

      diffc encode photo.png --lossless                # bits-back with the VDM prior

      diffc encode photo.png --lossless --prior ardm --steps 50

      diffc encode photo.png --bpp max                 # progressive DiffC stream that ends lossless

      diffc encode photos --bpp 0.5 -o coded           # coded/NAME.dfc for every image of photos/

      diffc encode photos --bpp 0.5 -o coded --shard 2/4   # every 4th image from the 2nd
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
    part = parse_shard(shard)
    if image != STDIO and image.is_dir():
        out_dir = _batch_output(output, stats)
        prepare = functools.partial(api.prepare, **request, model=model)
        _encode_folder(image, out_dir, part, prepare, seed, force=force, quiet=quiet)
        return
    if part is not None:
        raise UsageError(f"--shard splits a folder of images, and {image} is not a folder")
    out = _default_output(image, ".dfc", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    pixels = read_image(image)
    job = api.prepare(**request, model=model)
    _note(quiet, f"diffc: {job.title} of {pixels.shape[1]}x{pixels.shape[0]} with {job.model.name}, {_steps_text(job)}")
    start = time.perf_counter()
    with progress_bar("encoding", job.unit, quiet=quiet) as progress:
        coded = job.run(pixels, seed=seed, progress=progress)
    seconds = time.perf_counter() - start
    write_bytes(out, coded.data, force=force)
    facts = {**coded.facts, "seconds_total": seconds, "peak_memory_mib": _peak_memory_mib()}
    if stats is not None:
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(quiet, f"diffc: {len(coded.data)} bytes, {coded.summary}, {seconds:.1f} s")


def _decode_data(data: bytes, *, model: str | None, method: Method, decode_steps: int, max_bytes: int | None,
                 quiet: bool) -> Decoded:
    """Decode a stream with a progress bar; a header that cannot be decoded as asked is the user's
    error, a truncated stream a note."""
    from diffc.codec import api

    try:
        header = api.header_of(data, max_bytes)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    unit = api.PRIOR_FACTS[api.MODE_PRIORS[header.mode]].unit
    with progress_bar("decoding", unit, quiet=quiet) as progress:
        decoded = api.decode(data, model=model, method=method.value, decode_steps=decode_steps,
                             max_bytes=max_bytes, progress=progress)
    if decoded.notice:
        _note(False, f"diffc: note: {decoded.notice}")
    return decoded


def _decode_progression(data: bytes, out: Path, count: int, *, model: str | None, method: Method, decode_steps: int,
                        force: bool, quiet: bool) -> None:
    """The image at ``count`` prefix lengths as an animation (.gif, .webp) or a folder of PNGs."""
    import io

    from PIL import Image, ImageDraw

    from diffc.codec import progression

    animated = out.suffix.lower() in (".gif", ".webp")
    if animated:
        check_writable(out, force=force)
    elif out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to write into it")
    try:
        lengths = progression.prefix_lengths(data, count)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    images = []
    with progress_bar("decoding prefixes", "prefix", quiet=quiet) as progress:
        for n, decoded in progression.frames(data, lengths, model=model, method=method.value,
                                             decode_steps=decode_steps, progress=progress):
            pixels = decoded.pixels
            if not animated:
                out.mkdir(parents=True, exist_ok=True)
                write_png(out / f"{n:09d}.png", pixels, force=True)
                continue
            frame = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("RGB")
            draw = ImageDraw.Draw(frame)
            caption = f"{n} bytes ({100 * n / len(data):.1f}%)"
            draw.rectangle((0, 0, 8 + 6 * len(caption), 14), fill=(0, 0, 0))
            draw.text((4, 2), caption, fill=(255, 255, 255))
            images.append(frame)
    if animated:
        buffer = io.BytesIO()
        images[0].save(buffer, format=out.suffix[1:].upper(), save_all=True, append_images=images[1:],
                       duration=[500] * (len(images) - 1) + [2000], loop=0)
        write_bytes(out, buffer.getvalue(), force=force)
    _note(quiet, f"diffc: {len(lengths)} prefixes of {len(data)} bytes to {out}")


def _streams(folder: Path) -> list[Path]:
    """The .dfc streams of ``folder`` in name order."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".dfc")
    if not paths:
        raise UserError(f"{folder} holds no .dfc streams")
    return paths


def _decode_folder(folder: Path, out_dir: Path, part: Shard | None, decode_data: Callable[[bytes], Decoded],
                   max_bytes: int | None, *, force: bool, quiet: bool) -> None:
    """Every .dfc stream of ``folder``, or shard ``part`` of them, into ``out_dir``/NAME.png."""
    pairs = _pairs(folder, _streams(folder), out_dir, ".png", part, force)
    _note(quiet, f"diffc: decoding {_batch_label(len(pairs), 'streams', folder, part)}")

    def code(source: Path, target: Path) -> tuple[int, int]:
        data = read_bytes(source)
        pixels = decode_data(data).pixels
        write_png(target, pixels, force=force)
        return len(data[:max_bytes]), pixels.shape[0] * pixels.shape[1]

    _run_batch(pairs, out_dir, code, "images", quiet=quiet)


def decode(
    stream: Annotated[Path, typer.Argument(help="A .dfc stream, a folder of them, or - for stdin.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output PNG (default: STREAM.png; - for stdout); for a folder, the folder that gets NAME.png per stream.")] = None,
    max_bytes: Annotated[int | None, typer.Option("--max-bytes", min=1, help="Decode only this prefix of the stream (progressive).")] = None,
    method: Annotated[Method, typer.Option("--method", help="Reconstruction: probability-flow ODE, ancestral sampling, or the denoised mean.")] = Method.flow,
    decode_steps: Annotated[int, typer.Option("--decode-steps", min=1, max=1000, help="Network calls of the flow or ancestral reconstruction.")] = 16,
    model: Annotated[str | None, typer.Option("--model", "-m", help="Model to decode with (default: the one the stream names).")] = None,
    shard: ShardOption = None,
    force: ForceOption = False,
    quiet: QuietOption = False,
    stats: StatsOption = None,
    progression: Annotated[Path | None, typer.Option("--progression", help="Instead of one PNG, the image at --frames prefix lengths from the header to the whole stream: an animation (.gif or .webp, each frame captioned with its bytes) or a folder of PNGs (any other name). Lossy streams only.")] = None,
    frames: Annotated[int, typer.Option("--frames", min=2, max=200, help="Prefix lengths of --progression, evenly spaced.")] = 12,
) -> None:
    """Decompress a stream, or every stream of a folder, to PNG; any prefix of a lossy stream decodes (--max-bytes).

    Examples:

      diffc decode photo.dfc -o photo.png

      diffc decode photo.dfc --max-bytes 4000 -o preview.png

      diffc decode photo.dfc --progression photo.webp --frames 20   # watch it refine as bytes arrive

      diffc decode coded -o decoded --shard 1/4        # decoded/NAME.png for every 4th stream of coded/
    """
    part = parse_shard(shard)
    if progression is not None:
        if stream == STDIO or stream.is_dir() or max_bytes is not None or part is not None or output is not None:
            raise UsageError("--progression decodes one stream file whole, without -o, --max-bytes or --shard")
        _decode_progression(read_bytes(stream), progression, frames, model=model, method=method,
                            decode_steps=decode_steps, force=force, quiet=quiet)
        return
    decode_data = functools.partial(_decode_data, model=model, method=method, decode_steps=decode_steps,
                                    max_bytes=max_bytes, quiet=quiet)
    if stream != STDIO and stream.is_dir():
        out_dir = _batch_output(output, stats)
        _decode_folder(stream, out_dir, part, decode_data, max_bytes, force=force, quiet=quiet)
        return
    if part is not None:
        raise UsageError(f"--shard splits a folder of streams, and {stream} is not a folder")
    out = _default_output(stream, ".png", output)
    check_writable(out, force=force)
    if stats is not None:
        check_writable(stats, force=force)
    data = read_bytes(stream)
    start = time.perf_counter()
    decoded = decode_data(data)
    seconds = time.perf_counter() - start
    pixels = decoded.pixels
    write_png(out, pixels, force=force)
    if stats is not None:
        facts = {**decoded.facts, "seconds_total": seconds, "peak_memory_mib": _peak_memory_mib()}
        write_bytes(stats, (json.dumps(facts, indent=2) + "\n").encode(), force=force)
    _note(quiet, f"diffc: {pixels.shape[1]}x{pixels.shape[0]} {decoded.summary}, {seconds:.1f} s")
