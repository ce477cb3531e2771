"""Small things several test files use: test images and fast compilation."""

import functools
import io
import os
from pathlib import Path

import jax
import pytest
import numpy as np
from PIL import Image

from diffc import samples
from diffc.codec.denoiser import Denoiser
from diffc.models import configs, integer_unet, vdm

TINY = configs.get_config("tiny")

FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}


def compiled(fn, *args):
    """``fn`` jitted and compiled with ``FAST_COMPILE`` for the shapes and types of ``args``."""
    return jax.jit(fn).lower(*args).compile(compiler_options=FAST_COMPILE)


KODAK_ENV = "DIFFC_KODAK"
KODAK_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "kodak"


def require_kodak() -> Path:
    """The Kodak folder, $DIFFC_KODAK or else ../shared/data/kodak beside the repository; skips the
    calling test, saying where it looked, when that folder lacks any of kodim01.png ... kodim24.png.
    Tests take it through conftest's ``kodak`` fixture."""
    folder = Path(os.environ.get(KODAK_ENV) or KODAK_DEFAULT)
    missing = [f"kodim{i:02d}.png" for i in range(1, 25) if not (folder / f"kodim{i:02d}.png").is_file()]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        pytest.skip(f"needs the Kodak images: {folder} lacks {missing[0]}{more}; "
                    f"set {KODAK_ENV} to a folder of kodim01.png ... kodim24.png")
    return folder


def sample_photo() -> np.ndarray:
    """The photo shipped with diffc (``diffc.samples``): (256, 256, 3) uint8, always present."""
    with Image.open(io.BytesIO(samples.read_bytes())) as im:
        return np.asarray(im.convert("RGB"))


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


@functools.lru_cache(maxsize=2)
def tiny_exact_denoiser(with_integer: bool = True) -> Denoiser:
    """The tiny config with random weights (coding must be exact whatever the model) and, unless
    ``with_integer`` is false, its integer network calibrated on random latents; built once per
    test session (quantising takes most of a minute on 2 cores)."""
    params = vdm.init_params(TINY, 0)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
    params = jax.tree.unflatten(tree, [a + 0.05 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)])
    if not with_integer:
        return Denoiser(TINY, params, "tiny-exact", "cd" * 32)
    x = vdm.pixels_to_x(np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8))
    gamma = np.linspace(TINY.gamma_min, TINY.gamma_max, 4).astype(np.float32)
    z = vdm.diffuse(x, gamma, jax.random.normal(jax.random.PRNGKey(2), x.shape))
    net = integer_unet.quantise(TINY, params, np.asarray(z), gamma)
    return Denoiser(TINY, params, "tiny-exact", "cd" * 32, net, "ab" * 32)
