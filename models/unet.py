"""The denoiser: a fully convolutional U-Net predicting eps from z_t, conditioned on gamma_t.

As in VDM (appendix B), the input is z_t concatenated with Fourier features sin/cos(2^n 2 pi z_t),
which let the network see the fine structure of 8-bit data at low noise; the output is added to
z_t (at high noise eps ~ z_t). With ``patch_levels`` = n the input is first folded into 2^n x 2^n
patches (space-to-depth), so that the convolutions run at lower resolution: on a CPU, whose
convolution gradients are slow, this buys several times the throughput. Normalisation is per pixel (over channels only), so the network is
translation-equivariant (up to the patch grid) with a finite receptive field: a model trained on crops runs unchanged on
a whole image of any size, and tiling with a margin of ``receptive_field`` pixels is exact.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffc.models.configs import VDMConfig


def fourier_features(z: jax.Array, exponents: tuple[int, ...]) -> jax.Array:
    """sin and cos of 2^n 2 pi z for each n, stacked on the channel axis: (..., C) -> (..., 2 N C)."""
    if not exponents:
        return z[..., :0]
    freqs = 2.0 * jnp.pi * 2.0 ** jnp.asarray(exponents, jnp.float32)  # (N,)
    h = z[..., None, :] * freqs[:, None]  # (..., N, C)
    h = h.reshape(*z.shape[:-1], -1)
    return jnp.concatenate([jnp.sin(h), jnp.cos(h)], axis=-1)


def timestep_embedding(t: jax.Array, dim: int) -> jax.Array:
    """Sinusoidal embedding of t in [0, 1] (scaled by 1000, as in DDPM): (B,) -> (B, dim)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
    h = 1000.0 * t[:, None] * freqs[None, :]
    return jnp.concatenate([jnp.sin(h), jnp.cos(h)], axis=-1)


def space_to_depth(h: jax.Array) -> jax.Array:
    """(B, H, W, C) -> (B, H/2, W/2, 4C): each 2x2 block of pixels becomes one pixel."""
    b, hh, ww, c = h.shape
    h = h.reshape(b, hh // 2, 2, ww // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
    return h.reshape(b, hh // 2, ww // 2, 4 * c)


def depth_to_space(h: jax.Array) -> jax.Array:
    """The inverse of ``space_to_depth``: (B, H, W, 4C) -> (B, 2H, 2W, C)."""
    b, hh, ww, c4 = h.shape
    h = h.reshape(b, hh, ww, 2, 2, c4 // 4).transpose(0, 1, 3, 2, 4, 5)
    return h.reshape(b, 2 * hh, 2 * ww, c4 // 4)


def upsample(h: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x upsampling by broadcasting (its gradient is a cheap sum, unlike a
    gather's scatter): (B, H, W, C) -> (B, 2H, 2W, C)."""
    b, hh, ww, c = h.shape
    h = jnp.broadcast_to(h[:, :, None, :, None, :], (b, hh, 2, ww, 2, c))
    return h.reshape(b, 2 * hh, 2 * ww, c)


class ResBlock(nn.Module):
    """Pre-activation residual block with the gamma embedding added between its two convs."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array, emb: jax.Array) -> jax.Array:
        h = nn.swish(nn.LayerNorm()(x))
        h = nn.Conv(self.features, (3, 3))(h)
        h = h + nn.Dense(self.features)(emb)[:, None, None, :]
        h = nn.swish(nn.LayerNorm()(h))
        h = nn.Conv(self.features, (3, 3), kernel_init=nn.initializers.zeros)(h)
        if x.shape[-1] != self.features:
            x = nn.Conv(self.features, (1, 1))(x)
        return x + h


def step_embedding(t: jax.Array, dim: int) -> jax.Array:
    """(B,) times in [0, 1] -> (B, 4 dim): sinusoids through a two-layer MLP. Call it inside a
    compact ``__call__``: its layers join the calling module."""
    emb = nn.swish(nn.Dense(4 * dim)(timestep_embedding(t, dim)))
    return nn.Dense(4 * dim)(emb)


def trunk(h: jax.Array, emb: jax.Array, channels: int, mults: tuple[int, ...], blocks: int) -> jax.Array:
    """The U-Net from the input features h (B, H, W, F) to normalised features (B, H, W, channels *
    mults[0]): a 3x3 stem, ``blocks`` residual blocks per level with 2x down-sampling between
    levels, a middle block, and the mirrored up path with skip connections. Call it inside a
    compact ``__call__``: its layers join the calling module (VDM's and ARDM's networks share it)."""
    h = nn.Conv(channels, (3, 3))(h)
    skips = [h]
    for level, mult in enumerate(mults):
        for _ in range(blocks):
            h = ResBlock(channels * mult)(h, emb)
            skips.append(h)
        if level < len(mults) - 1:
            h = nn.Conv(h.shape[-1], (1, 1))(space_to_depth(h))  # (B, H/2, W/2, F)
            skips.append(h)
    h = ResBlock(h.shape[-1])(h, emb)
    for level, mult in reversed(list(enumerate(mults))):
        for _ in range(blocks + 1):
            h = ResBlock(channels * mult)(jnp.concatenate([h, skips.pop()], axis=-1), emb)
        if level > 0:
            h = nn.Conv(h.shape[-1], (3, 3))(upsample(h))  # (B, 2H, 2W, F)
    return nn.swish(nn.LayerNorm()(h))


class UNet(nn.Module):
    """eps_hat(z_t, gamma_t): (B, H, W, C) and (B,) -> (B, H, W, C); H and W multiples of
    ``config.multiple``."""

    config: VDMConfig

    @nn.compact
    def __call__(self, z: jax.Array, gamma: jax.Array) -> jax.Array:
        cfg = self.config
        gamma = jnp.broadcast_to(jnp.asarray(gamma, jnp.float32), z.shape[:1])
        t = (gamma - cfg.gamma_min) / (cfg.gamma_max - cfg.gamma_min)
        emb = step_embedding(t, cfg.embedding)  # (B, E)

        h = jnp.concatenate([z, fourier_features(z, cfg.fourier)], axis=-1)
        for _ in range(cfg.patch_levels):
            h = space_to_depth(h)  # (B, H/p, W/p, p^2 F)
        h = trunk(h, emb, cfg.channels, cfg.channel_mults, cfg.blocks)
        h = nn.Conv(z.shape[-1] * 4**cfg.patch_levels, (3, 3), kernel_init=nn.initializers.zeros)(h)
        for _ in range(cfg.patch_levels):
            h = depth_to_space(h)  # (B, H, W, C)
        return z + h
