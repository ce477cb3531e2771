"""The public Python API: images (NumPy uint8 arrays) to ``.dfc`` bytes and back.

    from diffc.codec import compress, decompress
    data = compress(pixels, bpp=0.5)          # lossy: (H, W, 3) or (H, W) uint8 -> bytes
    data = compress(pixels, lossless=True)    # exact, bits-back with the VDM prior
    image = decompress(data)                  # -> (H, W, 3) or (H, W, 1) uint8

The CLI is a thin layer over these; ``lossy`` and ``bitsback`` hold the coders themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import bitsback, denoiser, lossy, rcc

Prior = Literal["diffc", "vdm"]
PRIORS: tuple[Prior, ...] = ("diffc", "vdm")
LOSSLESS_PRIOR: Prior = "vdm"
"""What ``lossless=True`` codes with when no prior is named: bits-back lands within a few hundredths
of a bit per dimension of the model's ELBO, where the DiffC stream pays reverse channel coding's
overhead on every step before its lossless tail (docs/lossless.md)."""

Progress = Callable[[int, int], None]


class UnsupportedStreamError(bitstreams.BitstreamError):
    """A well-formed stream of a mode this version cannot decode."""


def default_steps(prior: Prior) -> int:
    """Coding steps when the caller names none: lossy steps after the first, or bits-back's T."""
    return lossy.LossyConfig().steps if prior == "diffc" else bitsback.DEFAULT_STEPS


def lossy_config(steps: int, chunk_bits: int | None = None, margin: int | None = None) -> lossy.LossyConfig:
    """The lossy coder's settings, with the reverse channel coding defaults where a knob is None."""
    defaults = rcc.RccConfig()
    knobs = rcc.RccConfig(defaults.chunk_bits if chunk_bits is None else chunk_bits,
                          defaults.margin if margin is None else margin)
    return lossy.LossyConfig(steps=steps, rcc=knobs)


def compress(
    pixels: np.ndarray, *, bpp: float | None = None, lossless: bool = False, prior: Prior | None = None,
    model: str = "default", steps: int | None = None, chunk_bits: int | None = None, margin: int | None = None,
    seed: int = 0, progress: Progress | None = None,
) -> bytes:
    """Code ``pixels`` with lossy DiffC at most ``bpp`` bits per pixel (header included), or exactly
    with ``lossless=True``: by bits-back with the VDM prior (``prior="vdm"``, the default) or by a
    DiffC stream that continues until it is lossless (``prior="diffc"``, progressive)."""
    if lossless == (bpp is not None):
        raise ValueError("pass either bpp= (lossy) or lossless=True")
    chosen: Prior = prior or (LOSSLESS_PRIOR if lossless else "diffc")
    if chosen not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, not {chosen!r}")
    if chosen == "vdm" and not lossless:
        raise ValueError("the vdm prior codes losslessly only; lossy streams use the diffc prior")
    steps = default_steps(chosen) if steps is None else steps
    den = denoiser.load(model)
    if chosen == "vdm":
        return bitsback.encode(pixels, den, steps=steps, seed=seed, progress=progress).data
    config = lossy_config(steps, chunk_bits, margin)
    return lossy.encode(pixels, den, bpp=bpp, config=config, seed=seed, progress=progress).data


def decompress(
    data: bytes, *, model: str | None = None, method: lossy.Method = "flow", decode_steps: int = 16,
    max_bytes: int | None = None, progress: Progress | None = None,
) -> np.ndarray:
    """Decode a stream; ``model`` defaults to the one the stream names. A lossy stream may be cut to
    ``max_bytes`` (it decodes from its complete chunks); a lossless one decodes whole or not at all."""
    header = header_of(data, max_bytes)
    den = denoiser.load(model or header.model_id)
    if header.mode is Mode.LOSSLESS_VDM:
        return bitsback.decode(data, den, progress)
    latent = lossy.decode_latent(data, den, max_bytes=max_bytes)
    return lossy.reconstruct(latent, den, method=method, steps=decode_steps, seed=header.seed)


def header_of(data: bytes, max_bytes: int | None = None) -> bitstreams.Header:
    """The header of a stream this version decodes; ``max_bytes`` cuts lossy streams only."""
    header = bitstreams.read(data).header
    if header.mode is Mode.LOSSLESS_ARDM:
        raise UnsupportedStreamError("this diffc cannot decode lossless-ardm streams yet")
    if max_bytes is not None and header.mode is not Mode.LOSSY:
        raise ValueError(f"a {header.mode.label} stream is not progressive: it decodes whole, without --max-bytes")
    if max_bytes is not None:
        header = bitstreams.read(data[:max_bytes]).header
    return header
