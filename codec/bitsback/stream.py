"""Framing: the lossless-vdm stream, its header's parameters and their checks.

The stream is one container chunk: the rANS words of the whole stack (``groups.push_image`` on an
empty stack). Its header carries the model's name and weight hash, T, the patch size, the largest
group, the context margin, the count of direct patches and a CRC-32 of the image, all checked by
the decoder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import entropy
from diffc.codec.bitsback.chain import MAX_STEPS
from diffc.codec.bitsback.coding import DEFAULT_CONTEXT, DEFAULT_MAX_GROUP, DEFAULT_PATCH, DEFAULT_STEPS, Coding
from diffc.codec.bitsback.groups import ImageStats, Progress, pop_image, push_image
from diffc.codec.denoiser import Denoiser
from diffc.codec.fixed_point import require_decoder, stream_hash
from diffc.codec.images import as_image, check_crc32, float_numerics_error, image_crc32
from diffc.codec.result import StreamSize


@dataclass(frozen=True)
class EncodeResult(StreamSize):
    """A lossless-vdm stream and what it cost."""

    data: bytes  # the complete container
    stats: ImageStats
    seconds: float

    @property
    def dims(self) -> int:
        return self.stats.dims


def encode(
    pixels: np.ndarray, den: Denoiser, *, steps: int = DEFAULT_STEPS, patch_size: int = DEFAULT_PATCH,
    max_group: int = DEFAULT_MAX_GROUP, context: int = DEFAULT_CONTEXT, seed: int = 0,
    progress: Progress | None = None, exact: bool | None = None,
) -> EncodeResult:
    """Code an (H, W), (H, W, 1) or (H, W, 3) uint8 image exactly with ``den`` and T = ``steps``,
    in groups of at most ``max_group`` patches, the network seeing ``context`` pixels beyond each;
    ``seed`` keys the shared randomness of the pops' dithers and the windows' noise. ``exact``
    (default: whenever ``den`` has an integer network): the integer path, a stream that decodes
    on any machine (docs/portability.md), named by the integer network's hash."""
    start = time.perf_counter()
    image = as_image(pixels)
    exact = den.integer is not None if exact is None else exact
    coding = Coding.of(den, steps, patch_size, seed, max_group, context, exact)
    stack, stats = push_image(entropy.Stack(), image, coding, progress)
    params = {
        "steps": steps, "image_crc32": image_crc32(image), "patch_size": patch_size, "seed_patches": stats.seed_patches,
        "max_group": max_group, "context": context,
    }
    params["exact"] = int(exact)
    header = bitstreams.Header(Mode.LOSSLESS_VDM, *image.shape, seed, den.name, stream_hash(den, exact), params)
    data = bitstreams.write(header, [stack.to_bytes()])
    return EncodeResult(data, stats, time.perf_counter() - start)


def _checked_params(header: bitstreams.Header) -> Mapping[str, int]:
    """The header's coding parameters, each present and in range (the largest group and the
    context margin are checked by ``Coding.of``)."""
    p = bitstreams.require_params(header)
    if not 1 <= p["steps"] <= MAX_STEPS:
        raise bitstreams.CorruptStreamError(f"steps {p['steps']} is outside [1, {MAX_STEPS}]")
    if p["patch_size"] < 1:
        raise bitstreams.CorruptStreamError("patch size 0 in the header")
    size = p["patch_size"]
    patches = -(-header.height // size) * -(-header.width // size)
    if not 1 <= p["seed_patches"] <= patches or p["image_crc32"] >= 1 << 32:
        raise bitstreams.CorruptStreamError(
            f"seed patches {p['seed_patches']} or image checksum {p['image_crc32']} out of range"
        )
    return p


def decode(data: bytes, den: Denoiser, progress: Progress | None = None) -> np.ndarray:
    """The (H, W, C) uint8 image of a lossless-vdm stream; grayscale comes back as (H, W, 1)."""
    container = bitstreams.read(data)
    header = container.header
    exact = require_decoder(header, Mode.LOSSLESS_VDM, den)
    p = _checked_params(header)
    if len(container.chunks) != 1:
        raise bitstreams.CorruptStreamError(f"a lossless-vdm stream has 1 chunk, not {len(container.chunks)}")
    try:
        coding = Coding.of(den, p["steps"], p["patch_size"], header.seed, p["max_group"], p["context"], exact,
                           header.version)
    except ValueError as exc:
        raise bitstreams.CorruptStreamError(f"the stream's parameters do not fit this model: {exc}") from None
    shape = (header.height, header.width, header.channels)
    try:
        stack = entropy.Stack.from_bytes(container.chunks[0])
        pixels, direct = pop_image(stack, shape, coding, progress)
    except entropy.EntropyCodingError as exc:
        if exact:
            raise bitstreams.CorruptStreamError(f"the bits-back data is corrupt: {exc}") from None
        raise float_numerics_error("bits-back data", den.name, str(exc)) from None
    if not stack.exhausted():
        if exact:
            raise bitstreams.CorruptStreamError("the bits-back data has bits left over after the last patch")
        raise float_numerics_error("bits-back data", den.name, "bits left over after the last patch")
    if direct != p["seed_patches"]:
        raise bitstreams.CorruptStreamError(
            f"{direct} patches were coded directly; the header says {p['seed_patches']}"
        )
    check_crc32(pixels, p["image_crc32"])
    return pixels


def describe(result: EncodeResult) -> dict[str, Any]:
    """The ``--stats`` facts of an encode (None where no patch was chained)."""
    s = result.stats
    facts = {
        "bits": result.total_bits,
        "bpd": result.bpd,
        "ideal_bits": s.ideal_bits,
        "patches": s.patches,
        "groups": len(s.groups),
        "seed_patches": s.seed_patches,
        "seed_bits": s.seed_bits,
        "seed_cost_bits": s.seed_cost_bits,
        "steady_bpd": s.steady_bpd,
        "seconds": result.seconds,
    }
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in facts.items()}
