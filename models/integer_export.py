"""Turning a float checkpoint into its integer network: the export step of the exact path.

A model's integer network (``integer_unet`` for VDM priors, ``integer_ardm`` for ARDMs) is what
exact streams are coded with (docs/portability.md). Its weights are the float weights rounded to
int8 per output channel; its activation steps are calibrated on crops of training images, so the
export is post-training quantisation, and the integer model's cost against the float one is
measured (``benchmarks/integer_accuracy.py``) rather than assumed. The result is stored beside the
checkpoint as ``NAME.int.msgpack`` and named in the card (``checkpoint.write_integer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from diffc.models import checkpoint, data, families, integer_unet, vdm

DEFAULT_CROPS = 32  # calibration crops: enough for stable per-tensor maxima (docs/portability.md)
DEFAULT_CROP = 32
EXACT_SCHEDULES = ("fixed", "affine")  # the schedules whose gamma codes fixed_point computes exactly


def vdm_calibration(config: Any, params: Any, crops: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy latents z_t (B, H, W, C) and their gamma_t (B,) for calibrating a VDM's integer
    network: the crops diffused (VDM eq. 1) at low-discrepancy times over [0, 1], so every noise
    level the coders visit is seen; the draws come from numpy's PCG64 so an export is repeatable."""
    rng = np.random.Generator(np.random.PCG64(seed))
    n = len(crops)
    t = (rng.uniform() + np.arange(n) / n) % 1.0
    gamma_fn, _ = vdm.bound_fns(config, params)
    gamma = np.asarray(gamma_fn(jnp.asarray(t, jnp.float32)), np.float32)
    x = np.asarray(vdm.pixels_to_x(crops), np.float32)
    noise = rng.standard_normal(x.shape).astype(np.float32)
    z = vdm.diffuse(jnp.asarray(x), jnp.asarray(gamma), jnp.asarray(noise))
    return np.asarray(z, np.float32), gamma


def quantise(path: Path, folders: Sequence[Path], *, crops: int = DEFAULT_CROPS, crop: int = DEFAULT_CROP,
             seed: int = 1) -> tuple[bytes, dict[str, Any]]:
    """The integer network of the checkpoint at ``path`` calibrated on ``crops`` random crops of
    the images in ``folders``: its bytes and the facts its card entry records."""
    config, payload, card = checkpoint.load_model(path)
    family = families.of(config).name
    images = [data.load_image(p) for p in data.list_images(folders)]
    batch = data.fixed_crops(images, crop, crops, seed=seed)
    if family == "vdm":
        if config.schedule not in EXACT_SCHEDULES:
            raise ValueError(f"exact coding needs a linear noise schedule ({' or '.join(EXACT_SCHEDULES)}), "
                             f"and this model's is {config.schedule!r}: its integer network could code nothing")
        z, gamma = vdm_calibration(config, payload, batch, seed)
        blob, fmt = integer_unet.to_bytes(integer_unet.quantise(config, payload, z, gamma)), integer_unet.FORMAT
    else:
        from diffc.models import integer_ardm

        blob = integer_ardm.to_bytes(integer_ardm.quantise_on_images(config, payload["params"], batch, seed))
        fmt = integer_ardm.FORMAT
    facts = {
        "format": fmt,
        "from_sha256": card["sha256"],
        "calibration": {"data": [str(f) for f in folders], "crops": crops, "crop": crop, "seed": seed},
    }
    return blob, facts


def export(path: Path, folders: Sequence[Path], **options: Any) -> dict[str, Any]:
    """Quantise the checkpoint at ``path`` and store its integer network beside it; the card entry."""
    blob, facts = quantise(path, folders, **options)
    return checkpoint.write_integer(path, blob, facts)
