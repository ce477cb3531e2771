"""Context windows: what the network sees around a group of patches.

The network runs once per step on a group's whole rectangle, plus a margin of ``context`` pixels
below it and to its right: pixels coded after the group, which the decoder (popping the last group
first) already has. Those are diffused to the step's noise level with shared noise,
alpha_i x + sigma_i eps, so the window holds a sample of q(z_i | x) as the network saw in
training, and a group is coded almost as well as by the whole image's ELBO (measured on a kodim01
crop, T = 100: 32 x 32 patches alone cost +0.075 bits/dim of diffusion loss over the whole image,
rectangles +0.024, rectangles with 16 pixels of context +0.012, with 32 or 64 no less).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from diffc.codec import randomness
from diffc.codec.bitsback.chain import MAX_STEPS, Chain
from diffc.codec.bitsback.numerics import model_input
from diffc.models import integer_unet

CONTEXT_KEY = MAX_STEPS + 1  # the PCG64 key (seed, group, CONTEXT_KEY) of a window's noise


@dataclass(frozen=True)
class Window:
    """What the network sees around a group: the group's latents in the top-left corner, and the
    pixels below and to the right, coded after the group, diffused to the same noise level with
    shared noise."""

    x: np.ndarray  # (1, H', W', 3) float64 model input; the group's own corner is never read
    noise: np.ndarray  # (1, H', W', 3) float64 standard normals, the same at every step

    def latents(self, chain: Chain, i: int, z: np.ndarray) -> jax.Array:
        """The window at step i: alpha_i x + sigma_i noise around the group's z_i (grid indices)."""
        return jnp.asarray(self._values(chain, i, z), jnp.float32)

    def latents_fixed(self, chain: Chain, i: int, z: np.ndarray) -> np.ndarray:
        """The window at step i as the integer network's int32 input (``integer_unet.Z_FRAC``
        fraction bits): float64 products and sums, each correctly rounded, then one rounding."""
        top = float((1 << 31) - (1 << 8))
        scaled = np.clip(np.round(self._values(chain, i, z) * 2.0**integer_unet.Z_FRAC), -top, top)
        return scaled.astype(np.int32)

    def _values(self, chain: Chain, i: int, z: np.ndarray) -> np.ndarray:
        h, w = z.shape[1:3]
        window = chain.alphas[i] * self.x + chain.sigmas[i] * self.noise
        window[:, :h, :w] = z * chain.widths[i]
        return window


def window(seed: int, pixels: np.ndarray, first: int, exact: bool = False) -> Window:
    """The ``Window`` of the group from patch ``first`` over ``pixels`` (H', W', C), the group's
    rectangle and its context (``groups.Grid.window``), whose part after the group must be known.
    The noise comes from the raw words w of numpy's PCG64 keyed (seed, first, CONTEXT_KEY): with
    ``exact``, the integer inverse CDF of ``randomness.normal_fixed`` on their top 32 bits
    (multiples of 2^-16, the same everywhere); otherwise scipy's ndtri of ((w >> 11) + 1/2) 2^-53
    (streams of float models)."""
    x = model_input(pixels)
    words = np.random.PCG64([seed, first, CONTEXT_KEY]).random_raw(x.size)
    if exact:
        fixed = randomness.normal_fixed(jnp.asarray((words >> np.uint64(32)).astype(np.uint32)))
        noise = np.asarray(fixed, np.float64) * 2.0**-randomness.QUANTILE_BITS
    else:
        noise = special.ndtri(((words >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53)
    return Window(x, noise.reshape(x.shape))
