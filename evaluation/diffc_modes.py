"""diffc's coders as evaluation codecs (the ``Codec`` interface of ``codecs``), one adapter each.

``codecs.DIFFC_CODERS`` names them; they are imported only when a run asks for diffc (JAX). The
lossy coder aims at rates directly: it is asked for every target
rate plus one above the highest, so that each wanted rate has a point on both sides.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffc.codec import denoiser, lossy
from diffc.evaluation.codecs import Target

DECODE_STEPS = 16


@dataclass
class LossyCoder:
    """Lossy DiffC at a target bpp, decoded with ``method`` (flow, ancestral or mean)."""

    model: str
    method: str
    config: lossy.LossyConfig = field(default_factory=lossy.LossyConfig)
    lossless: bool = False

    def __post_init__(self) -> None:
        self.den = denoiser.load(self.model)
        self.name = f"diffc-{self.method}"
        self.model_card_hash = self.den.weights_sha256

    def targets(self, bpps: Sequence[float]) -> tuple[Target, ...]:
        return (*bpps, 1.5 * max(bpps))

    def encode(self, image: np.ndarray, target: Target) -> bytes:
        return lossy.encode(image, self.den, bpp=target, config=self.config).data

    def decode(self, data: bytes) -> np.ndarray:
        latent = lossy.decode_latent(data, self.den)
        pixels = lossy.reconstruct(latent, self.den, method=self.method, steps=DECODE_STEPS)
        return np.repeat(pixels, 3 // pixels.shape[-1], axis=-1) if pixels.ndim == 3 else pixels

    def settings(self) -> dict[str, Any]:
        c = self.config
        return {"library": f"diffc lossy ({self.den.name})", "swept": None,
                "options": {"method": self.method, "steps": c.steps, "chunk_bits": c.rcc.chunk_bits,
                            "margin": c.rcc.margin, "decode_steps": DECODE_STEPS}}

