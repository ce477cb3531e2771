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
