"""diffc's coders as evaluation codecs (the ``Codec`` interface of ``contenders``), one adapter each.

``contenders.DIFFC_CODERS`` names them; they are imported only when a run asks for diffc (JAX). The
lossy coder aims at rates directly: it is asked for every target
rate plus one above the highest, so that each wanted rate has a point on both sides. Its stream does
not depend on how it is decoded, so the lossy coders of several ``--method`` share each encoding
(``lossy_coders``: one ``StreamMemo`` for the coders of one run).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffc.codec import api, bitsback, denoiser, lossy, progression
from diffc.evaluation import metrics
from diffc.evaluation.contenders import Target

DECODE_STEPS = 16


@dataclass
class StreamMemo:
    """The encodings of the image in hand, by (model, settings, target), with the seconds each took;
    an image with another digest clears it, so it holds one image's encodings at most."""

    digest: str = ""
    results: dict[tuple[Any, ...], tuple[lossy.EncodeResult, float]] = field(default_factory=dict)

    def encode(self, image: np.ndarray, key: tuple[Any, ...], encode: Any) -> tuple[lossy.EncodeResult, float]:
        """The encoding of ``image`` under ``key``, made by ``encode()`` unless already made."""
        digest = hashlib.sha256(image.tobytes() + repr(image.shape).encode()).hexdigest()
        if digest != self.digest:
            self.digest, self.results = digest, {}
        if key not in self.results:
            start = time.perf_counter()
            result = encode()
            self.results[key] = (result, time.perf_counter() - start)
        return self.results[key]


@dataclass
class LossyCoder:
    """Lossy DiffC at a target bpp, decoded with ``method`` (flow, ancestral or mean)."""

    model: str
    method: str
    config: lossy.LossyConfig = field(default_factory=lossy.LossyConfig)
    lossless: bool = False
    streams: StreamMemo = field(default_factory=StreamMemo)  # shared by coders that decode alike streams

    def __post_init__(self) -> None:
        self.den = denoiser.load(self.model)
        self.name = "diffc-lossless-diffc" if self.lossless else f"diffc-{self.method}"
        self.model_card_hash = self.den.weights_sha256

    def targets(self, bpps: Sequence[float]) -> tuple[Target, ...]:
        return (None,) if self.lossless else (*bpps, 1.5 * max(bpps))

    def encode(self, image: np.ndarray, target: Target) -> bytes:
        result, self.encode_seconds = self.streams.encode(
            image, (self.den.weights_sha256, self.config, target),
            lambda: lossy.encode(image, self.den, bpp=target, config=self.config))
        self.encode_facts = {"kl_bits": result.kl_bits, "steps": lossy.grid_steps(len(result.steps))}
        return result.data

    def decode(self, data: bytes) -> np.ndarray:
        latent = lossy.decode_latent(data, self.den)
        pixels = lossy.reconstruct(latent, self.den, method=self.method, steps=DECODE_STEPS)
        return np.repeat(pixels, 3 // pixels.shape[-1], axis=-1) if pixels.ndim == 3 else pixels

    def progression(self, image: np.ndarray, bpp: float, prefixes: int) -> dict[str, Any]:
        """PSNR against bytes for ``image``'s stream at ``bpp``, decoded from ``prefixes`` evenly
        spaced prefix lengths, header to whole (``codec.progression``)."""
        data = self.encode(image, bpp)
        lengths = progression.prefix_lengths(data, prefixes)
        psnr = [metrics.psnr(image, np.repeat(d.pixels, 3 // d.pixels.shape[-1], axis=-1))
                for _, d in progression.frames(data, lengths, model=self.den, method=self.method,
                                               decode_steps=DECODE_STEPS)]
        return {"codec": self.name, "bpp": bpp, "bytes": len(data), "lengths": lengths, "psnr": psnr}

    def settings(self) -> dict[str, Any]:
        c = self.config
        return {"library": f"diffc lossy ({self.den.name})", "swept": None,
                "options": {"method": self.method, "steps": c.steps, "chunk_bits": c.rcc.chunk_bits,
                            "margin": c.rcc.margin, "decode_steps": DECODE_STEPS}}



def lossy_coders(model: str, methods: Sequence[str]) -> list[LossyCoder]:
    """Lossy DiffC decoded with each of ``methods``, sharing each encoding."""
    streams = StreamMemo()
    return [LossyCoder(model, method, streams=streams) for method in methods]


def lossless_diffc_coders(model: str, methods: Sequence[str]) -> list[LossyCoder]:
    """The progressive DiffC stream run to its lossless tail (``--bpp max``), decoded with the first
    of ``methods``."""
    return [LossyCoder(model, methods[0], lossless=True)]


@dataclass
class LosslessCoder:
    """A lossless coder of ``api`` (``prior`` vdm: bits-back; ardm) at its default steps, with
    ``model`` (``default``: the prior's default model); ``method`` is unused. Its points add
    ``ideal_bits_per_dim``: the information the coder pushed minus what it popped, per subpixel,
    the stream's cost without rANS overhead and container (ARDM: -log2 of the quantised
    probabilities of the stream's order and plan, the model's cost)."""

    model: str
    method: str
    prior: api.Prior = "vdm"
    lossless: bool = True

    def __post_init__(self) -> None:
        self.job = api.prepare(lossless=True, prior=self.prior, model=self.model)
        self.name = f"diffc-lossless-{self.prior}"
        self.model_card_hash = self.job.model.weights_sha256

    def targets(self, bpps: Sequence[float]) -> tuple[Target, ...]:
        return (None,)

    def encode(self, image: np.ndarray, target: Target) -> bytes:
        encoded = self.job.run(image)
        self.encode_facts = {"ideal_bits_per_dim": encoded.facts["ideal_bits"] / image.size}
        return encoded.data

    def decode(self, data: bytes) -> np.ndarray:
        return api.decode(data, model=self.job.model).pixels

    def settings(self) -> dict[str, Any]:
        options = {"steps": self.job.steps}
        if self.prior == "vdm":
            options.update(
                patch_size=bitsback.DEFAULT_PATCH, max_group=bitsback.DEFAULT_MAX_GROUP, context=bitsback.DEFAULT_CONTEXT
            )
        return {"library": f"diffc {self.job.title} ({self.job.model.name})", "swept": None, "options": options}


def bits_back_coders(model: str, methods: Sequence[str]) -> list[LosslessCoder]:
    """Lossless bits-back with the VDM prior."""
    return [LosslessCoder(model, methods[0], "vdm")]


def ardm_coders(model: str, methods: Sequence[str]) -> list[LosslessCoder]:
    """Lossless ARDM; ``model`` must name an ARDM."""
    return [LosslessCoder(model, methods[0], "ardm")]
