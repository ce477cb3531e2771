"""The public Python API: images (NumPy uint8 arrays) to ``.dfc`` bytes and back.

    from diffc.codec import compress, decompress
    data = compress(pixels, bpp=0.5)          # lossy: (H, W, 3) or (H, W) uint8 -> bytes
    data = compress(pixels, lossless=True)    # exact (the prior ``LOSSLESS_PRIOR``)
    data = compress(pixels, lossless=True, prior="ardm")
    image = decompress(data)                  # -> (H, W, 3) or (H, W, 1) uint8

``prepare`` checks a request and loads its model (an ``EncodeJob``); ``decode`` returns the pixels
with the facts of the decode. The CLI is a thin layer over these two; ``lossy``, ``bitsback`` and
``ardm`` hold the coders themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import ardm, bitsback, denoiser, lossy, rcc

Prior = Literal["diffc", "vdm", "ardm"]
PRIORS: tuple[Prior, ...] = ("diffc", "vdm", "ardm")
LOSSLESS_PRIOR: Prior = "vdm"
"""What ``lossless=True`` codes with when no prior is named: the mode that measures best on Kodak
crops with the shipped models (bits-back 3.884 bits/dim, ARDM 5.433, the DiffC stream 5.959 on the
same three; docs/lossless.md). Bits-back lands within 1% of the VDM's T-step ELBO on full Kodak
images; ARDM is limited by its CPU-trained model."""
Bpp = float | Literal["max"] | None
Model = denoiser.Denoiser | ardm.ARDMPrior
"""A loaded model: the VDM of lossy DiffC and bits-back, or an ARDM."""

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class PriorFacts:
    """How a prior's coder is named, counts its progress and bounds its ``steps``."""

    title: str
    unit: str  # what its progress counts
    default_steps: int  # lossy steps after the first, bits-back's T, or the ARDM's network calls
    max_steps: int


PRIOR_FACTS: dict[Prior, PriorFacts] = {
    "diffc": PriorFacts("DiffC", "steps", lossy.LossyConfig().steps, lossy.MAX_STEPS),
    "vdm": PriorFacts("bits-back", "patches", bitsback.DEFAULT_STEPS, bitsback.MAX_STEPS),
    "ardm": PriorFacts("ARDM", "calls", ardm.DEFAULT_STEPS, ardm.MAX_STEPS),
}
MODE_PRIORS: dict[Mode, Prior] = {Mode.LOSSY: "diffc", Mode.LOSSLESS_VDM: "vdm", Mode.LOSSLESS_ARDM: "ardm"}


def default_steps(prior: Prior) -> int:
    """Coding steps when the caller names none."""
    return PRIOR_FACTS[prior].default_steps


def lossy_config(steps: int, chunk_bits: int | None = None, margin: int | None = None) -> lossy.LossyConfig:
    """The lossy coder's settings, with the reverse channel coding defaults where a knob is None."""
    defaults = rcc.RccConfig()
    knobs = rcc.RccConfig(defaults.chunk_bits if chunk_bits is None else chunk_bits,
                          defaults.margin if margin is None else margin)
    return lossy.LossyConfig(steps=steps, rcc=knobs)


@dataclass(frozen=True)
class Encoded:
    """A stream, the coder's ``--stats`` facts and a one-line summary of them."""

    data: bytes
    facts: dict[str, Any]
    summary: str


@dataclass(frozen=True)
class EncodeJob:
    """A checked encode request with its model loaded: run it on any number of images."""

    prior: Prior
    model: Model
    bpp: Bpp
    steps: int
    lossless: bool
    chunk_bits: int | None = None
    margin: int | None = None

    @property
    def title(self) -> str:
        """What the job does, for people: 'DiffC', 'lossless DiffC', 'lossless bits-back', ..."""
        return ("lossless " if self.lossless else "") + PRIOR_FACTS[self.prior].title

    @property
    def unit(self) -> str:
        return PRIOR_FACTS[self.prior].unit

    def run(self, pixels: np.ndarray, *, seed: int = 0, progress: Progress | None = None) -> Encoded:
        """Code ``pixels`` ((H, W), (H, W, 1) or (H, W, 3) uint8)."""
        if self.prior == "vdm":
            coded = bitsback.encode(pixels, self.model, steps=self.steps, seed=seed, progress=progress)
            facts = bitsback.describe(coded)
            seeded = f"{facts['seed_patches']} of {facts['patches']} patches seeded directly"
            return Encoded(coded.data, facts, f"{facts['bpd']:.4f} bits/dim ({seeded})")
        if self.prior == "ardm":
            coded = ardm.encode(pixels, self.model, steps=self.steps, seed=seed, progress=progress)
            facts = ardm.describe(coded)
            return Encoded(coded.data, facts, f"{facts['bpd']:.4f} bits/dim, {facts['calls']} network calls")
        config = lossy_config(self.steps, self.chunk_bits, self.margin)
        target = None if self.bpp in (None, "max") else self.bpp
        coded = lossy.encode(pixels, self.model, bpp=target, config=config, seed=seed, progress=progress)
        facts = lossy.describe(coded, math.prod(np.shape(pixels)[:2]))
        summary = (f"{facts['bpp']:.4f} bpp, {lossy.grid_steps(len(coded.steps))} steps"
                   + (", lossless" if coded.lossless else "")
                   + (f", {facts['overhead_ratio']:.3f}x the KL" if facts["overhead_ratio"] else ""))
        return Encoded(coded.data, facts, summary)


def check(
    *, bpp: Bpp = None, lossless: bool = False, prior: Prior | None = None, steps: int | None = None,
    chunk_bits: int | None = None, margin: int | None = None,
) -> tuple[Prior, int]:
    """The prior and steps of a request, or ``ValueError`` saying what contradicts what (see
    ``prepare``); loads nothing."""
    if lossless and bpp is not None:
        raise ValueError("a bpp and lossless exclude each other (bpp 'max' is the lossless DiffC stream)")
    if not lossless and bpp is None:
        raise ValueError("say how much to spend: either bpp (a number or 'max') or lossless")
    if bpp is not None and bpp != "max" and not (isinstance(bpp, int | float) and bpp > 0):
        raise ValueError(f"bpp takes a positive number of bits per pixel or 'max', not {bpp!r}")
    chosen: Prior = prior or (LOSSLESS_PRIOR if lossless else "diffc")
    if chosen not in PRIORS:
        raise ValueError(f"prior must be one of {', '.join(PRIORS)}, not {chosen!r}")
    if chosen != "diffc" and not lossless:
        raise ValueError(f"the {chosen} prior codes losslessly only: ask for lossless, without a bpp")
    if chosen != "diffc" and (chunk_bits, margin) != (None, None):
        raise ValueError(f"the chunk bits and margin tune lossy DiffC; the {chosen} prior has no such knobs")
    steps = default_steps(chosen) if steps is None else steps
    limit = PRIOR_FACTS[chosen].max_steps
    if not 1 <= steps <= limit:
        raise ValueError(f"steps for the {chosen} prior lie in [1, {limit}], not {steps}")
    return chosen, steps


def prepare(
    *, bpp: Bpp = None, lossless: bool = False, prior: Prior | None = None, model: str = "default",
    steps: int | None = None, chunk_bits: int | None = None, margin: int | None = None,
) -> EncodeJob:
    """Check a request and load its model. Lossy DiffC at most ``bpp`` bits per pixel (header
    included); ``bpp="max"`` or ``lossless=True, prior="diffc"``: the DiffC stream run until it is
    lossless; ``lossless=True``: exact, with ``prior`` (default ``LOSSLESS_PRIOR``). ``model``
    ``default`` is the prior's default model. Raises ``ValueError`` on a contradictory request."""
    chosen, steps = check(bpp=bpp, lossless=lossless, prior=prior, steps=steps, chunk_bits=chunk_bits,
                          margin=margin)
    loaded = ardm.load(model) if chosen == "ardm" else denoiser.load(model)
    return EncodeJob(chosen, loaded, bpp, steps, lossless or bpp == "max", chunk_bits, margin)


def compress(
    pixels: np.ndarray, *, bpp: Bpp = None, lossless: bool = False, prior: Prior | None = None,
    model: str = "default", steps: int | None = None, chunk_bits: int | None = None, margin: int | None = None,
    seed: int = 0, progress: Progress | None = None,
) -> bytes:
    """Code ``pixels`` as ``prepare`` describes; the stream's bytes."""
    job = prepare(bpp=bpp, lossless=lossless, prior=prior, model=model, steps=steps, chunk_bits=chunk_bits,
                  margin=margin)
    return job.run(pixels, seed=seed, progress=progress).data


@dataclass(frozen=True)
class Decoded:
    """Decoded pixels ((H, W, C) uint8), the ``--stats`` facts, and, for a cut lossy stream, a
    notice saying how much of it decoded."""

    pixels: np.ndarray
    facts: dict[str, Any]
    summary: str
    notice: str | None = None


def decode(
    data: bytes, *, model: str | Model | None = None, method: lossy.Method = "flow", decode_steps: int = 16,
    max_bytes: int | None = None, progress: Progress | None = None,
) -> Decoded:
    """Decode a stream with ``model`` (a name or path, or a loaded model; default: the one the
    stream names). A lossy stream may be cut to ``max_bytes`` (it decodes from its complete
    chunks); a lossless one decodes whole or not at all."""
    header = header_of(data, max_bytes)
    if isinstance(model, Model):
        den = model
    else:
        load = ardm.load if header.mode is Mode.LOSSLESS_ARDM else denoiser.load
        den = load(model or header.model_id)
    if header.mode is Mode.LOSSLESS_ARDM:
        pixels = ardm.decode(data, den, progress)
        return Decoded(pixels, {"mode": header.mode.label, "lossless": True}, "losslessly")
    if header.mode is Mode.LOSSLESS_VDM:
        pixels = bitsback.decode(data, den, progress)
        return Decoded(pixels, {"mode": header.mode.label, "lossless": True}, "losslessly")
    latent = lossy.decode_latent(data, den, max_bytes=max_bytes)
    pixels = lossy.reconstruct(latent, den, method=method, steps=decode_steps, seed=header.seed)
    # step 0 (z at gamma(1)) is not one of the grid's steps; a prefix may end before it is whole
    decoded, total = max(lossy.grid_steps(latent.steps_decoded), 0), lossy.grid_steps(latent.steps_total)
    facts = {
        "mode": header.mode.label, "steps_decoded": decoded, "steps_total": total,
        "next_step_share": latent.fraction, "gamma": latent.gamma, "lossless": latent.pixels is not None,
        "method": method,
    }
    partial = f" and {latent.fraction:.0%} of the next" if latent.fraction else ""
    notice = None
    if latent.truncated:
        notice = f"the stream is truncated; decoded {decoded} of {total} steps{partial}"
    return Decoded(pixels, facts, f"from {decoded} steps{partial}", notice)


def decompress(
    data: bytes, *, model: str | Model | None = None, method: lossy.Method = "flow", decode_steps: int = 16,
    max_bytes: int | None = None, progress: Progress | None = None,
) -> np.ndarray:
    """The pixels of ``decode``."""
    return decode(data, model=model, method=method, decode_steps=decode_steps, max_bytes=max_bytes,
                  progress=progress).pixels


def header_of(data: bytes, max_bytes: int | None = None) -> bitstreams.Header:
    """The header of a stream, checked with its chunks; ``max_bytes`` (lossy streams only) cuts
    the stream first, so only the chunks before the cut are read. A cut inside the header is a
    ``TruncatedStreamError`` that says how many bytes the header takes."""
    if max_bytes is None:
        return bitstreams.read(data).header
    header, header_bytes = bitstreams.read_header(data)
    if header.mode is not Mode.LOSSY:
        raise ValueError(f"a {header.mode.label} stream is not progressive: it decodes whole, without --max-bytes")
    if max_bytes < header_bytes:
        raise bitstreams.TruncatedStreamError(
            f"--max-bytes {max_bytes} cuts inside the header: this stream decodes from {header_bytes} bytes on")
    return bitstreams.read(data[:max_bytes]).header
