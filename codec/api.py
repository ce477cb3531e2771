"""The public Python API: images (NumPy uint8 arrays) to ``.dfc`` bytes and back.

    from diffc.codec import compress, decompress
    data = compress(pixels, bpp=0.5)          # (H, W, 3) or (H, W) uint8 -> bytes
    image = decompress(data)                  # -> (H, W, 3) or (H, W, 1) uint8

The CLI is a thin layer over these; ``lossy`` holds the coder itself.
"""

from __future__ import annotations

import numpy as np

from diffc import bitstreams
from diffc.codec import denoiser, lossy, rcc


def compress(
    pixels: np.ndarray, *, bpp: float | None, model: str = "default", steps: int = 12,
    chunk_bits: int | None = None, margin: int | None = None, seed: int = 0,
) -> bytes:
    """Code ``pixels`` with lossy DiffC at most ``bpp`` bits per pixel (header included); with
    ``bpp=None`` the stream continues until it is lossless."""
    defaults = rcc.RccConfig()
    config = lossy.LossyConfig(steps=steps, rcc=rcc.RccConfig(
        defaults.chunk_bits if chunk_bits is None else chunk_bits, defaults.margin if margin is None else margin))
    return lossy.encode(pixels, denoiser.load(model), bpp=bpp, config=config, seed=seed).data


def decompress(
    data: bytes, *, model: str | None = None, method: lossy.Method = "flow", decode_steps: int = 16,
    max_bytes: int | None = None,
) -> np.ndarray:
    """Decode (a prefix of) a stream; ``model`` defaults to the one the stream names."""
    header = bitstreams.read(data[:max_bytes] if max_bytes else data).header
    den = denoiser.load(model or header.model_id)
    latent = lossy.decode_latent(data, den, max_bytes=max_bytes)
    return lossy.reconstruct(latent, den, method=method, steps=decode_steps, seed=header.seed)
