"""The negative ELBO of a VDM prior on whole images, in bits/dim: what ``diffc eval elbo`` reports
and what the lossless bits-back coder's rate is measured against.

Each image is evaluated at full size (the U-Net is fully convolutional) with ``samples`` diffusion
times spread over [0, 1] with one random offset (VDM appendix I.1), in batches of ``batch`` copies
to bound memory. The continuous-time ELBO (VDM eq. 11 with eq. 17) and the T-step discrete one
(eq. 14-15, with the clipped x_hat the coders use) share the prior and reconstruction terms.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from diffc.models import vdm
from diffc.models.configs import VDMConfig


@dataclass(frozen=True)
class ImageElbo:
    """Negative ELBO terms of one image, bits/dim; ``discrete`` is None without ``steps``,
    ``continuous`` None when it was skipped."""

    prior: float
    recon: float
    diffusion: float | None
    discrete_diffusion: float | None

    @property
    def continuous(self) -> float | None:
        if self.diffusion is None:
            return None
        return self.prior + self.recon + self.diffusion

    @property
    def discrete(self) -> float | None:
        if self.discrete_diffusion is None:
            return None
        return self.prior + self.recon + self.discrete_diffusion


@functools.partial(jax.jit, static_argnames=("config", "steps"))
def _terms(params, k: jax.Array, times: jax.Array, key: jax.Array, config: VDMConfig, steps: int) -> dict:
    gamma_fn, eps_fn = vdm.bound_fns(config, params)
    return vdm.elbo_terms(k, key, gamma_fn, eps_fn, steps=steps, clip=steps > 0, times=times)


def image_elbo(
    config: VDMConfig, params, pixels: np.ndarray, *, samples: int = 8, steps: int = 0, batch: int = 4,
    seed: int = 0, continuous: bool = True,
) -> ImageElbo:
    """The negative ELBO of one (H, W, 3) uint8 image, averaged over ``samples`` diffusion times;
    with ``steps`` > 0 also the ``steps``-step discrete ELBO from the same times and noise. Without
    ``continuous`` only the discrete one, at half the network calls (the same values)."""
    if not (continuous or steps):
        raise ValueError("without the continuous ELBO, steps must be positive")
    key = jax.random.PRNGKey(seed)
    times = np.asarray(vdm.low_discrepancy_times(jax.random.fold_in(key, 0), samples))
    k = jnp.broadcast_to(jnp.asarray(pixels, jnp.uint8)[None], (min(batch, samples), *pixels.shape))
    sums = {"prior": 0.0, "recon": 0.0, "diffusion": 0.0, "discrete": 0.0}
    for start in range(0, samples, batch):
        t = np.resize(times[start : start + batch], k.shape[0])  # the last batch repeats times...
        n = min(batch, samples - start)  # ...and keeps only the first n
        key_b = jax.random.fold_in(key, 1 + start)
        if continuous:
            cont = jax.device_get(_terms(params, k, jnp.asarray(t), key_b, config, 0))
            for name in ("prior", "recon", "diffusion"):
                sums[name] += float(np.sum(cont[name][:n]))
        if steps:
            disc = jax.device_get(_terms(params, k, jnp.asarray(t), key_b, config, steps))
            sums["discrete"] += float(np.sum(disc["diffusion"][:n]))
            if not continuous:  # the same prior and reconstruction terms as the continuous call's
                for name in ("prior", "recon"):
                    sums[name] += float(np.sum(disc[name][:n]))
    return ImageElbo(
        sums["prior"] / samples, sums["recon"] / samples, sums["diffusion"] / samples if continuous else None,
        sums["discrete"] / samples if steps else None,
    )
