"""Small things several test files use: test images and fast compilation."""

import jax
import numpy as np

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def compiled(fn, *args):
    """``fn`` jitted and compiled with ``FAST_COMPILE`` for the shapes and types of ``args``."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)


def smooth_image(h: int, w: int, channels: int, seed: int = 0) -> np.ndarray:
    """A (h, w, channels) uint8 image of random walks along the rows: photo-like, compressible."""
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(h, w, channels)) * 12, axis=1) + 128
    return np.clip(walk, 0, 255).astype(np.uint8)


class RawCodec:
    """A lossless codec that stores the raw bytes, and fails (ValueError) on images of
    ``failing_height`` rows: for the parallel runner's worker processes, which import it by name."""

    name = "raw"
    lossless = True

    def __init__(self, failing_height: int):
        self.failing_height = failing_height

    def targets(self, bpps):
        return (None,)

    def encode(self, image, target):
        if image.shape[0] == self.failing_height:
            raise ValueError(f"cannot code {image.shape[0]} rows")
        return bytes(image.shape[:2]) + image.tobytes()

    def decode(self, data):
        return np.frombuffer(data[2:], np.uint8).reshape(data[0], data[1], 3)

    def settings(self):
        return {"library": "test", "options": {}, "swept": None}


def raw_codecs(failing_height: int) -> list[RawCodec]:
    return [RawCodec(failing_height)]
