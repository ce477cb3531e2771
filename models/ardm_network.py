"""The ARDM network and its losses: order-agnostic autoregressive diffusion models (Hoogeboom et al.
2022, "ARDM"), as pure functions.

Conventions, shared with the ARDM coder (``codec/ardm.py``):

- an image k (B, H, W, C) of 8-bit values, C = 1 or 3, has D = H W C variables (subpixels);
- an order sigma is a permutation of the D flat subpixel indices (``order[i]`` is coded i-th); its
  ranks r = sigma^-1 give each subpixel's place, 0-based;
- at step t in 1..D the t - 1 subpixels of rank < t - 1 are known, x_sigma(<t), and the network
  gives p(x_k | x_sigma(<t)) for every subpixel k at once (ARDM section 3);
- all losses are in bits.

Upscale ARDMs (ARDM section 4; ``config.stages`` S > 1) code an image in S stages of D steps, each
stage with its own order, stage s coding the next b = 8 / S bits of every subpixel given the
s b bits known before it: a subpixel's *level* l in 0..S counts its stages coded, and step t of
stage s is the global step s D + t of S D. With S = 1 the level is 0 (unknown) or 1 (known) and
everything below is the plain order-agnostic ARDM.

The network sees the centre of every subpixel's known interval (x = (c + 0.5) / 128 - 1, with c
the centre in 8-bit units: the value where known, 127.5, so x = 0, where nothing is), the level
l / S and an embedding of the global step's fraction t / (S D); it is a fully convolutional U-Net,
so it runs on any image size (reflect-padded to its multiple and cropped back). It always outputs
256 logits; a stage's distribution over the next b bits is their mass over the values that agree
with the known bits (``stage_nll``). It is built for RGB: a grayscale image is shown as its value
in all three channels, and p(g) is the normalised product of the three channels' p(x_c = g), as
the VDM coder's decoder does for grayscale.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from diffc.models.configs import ARDMConfig
from diffc.models.unet import depth_to_space, space_to_depth, step_embedding, trunk
from diffc.models.vdm import VOCAB, pad_to_multiple, pixels_to_x

NET_CHANNELS = 3  # the network's image channels; grayscale is replicated


class ARDMNet(nn.Module):
    """Logits (B, H, W, 3, 256) from the centres x (B, H, W, 3) in [-1, 1] of the known intervals
    (0 where nothing is known), the levels l / S (B, H, W, 3) and t / (S D) (B,); any H and W.

    With ``features_only``, the trunk's output (B, H'/p, W'/p, channels) instead, p = 2^patch_levels:
    ``coded_logits`` runs the heads on the few cells a coder's call needs (``_cell_logits``)."""

    config: ARDMConfig

    @nn.compact
    def __call__(self, x: jax.Array, mask: jax.Array, t_frac: jax.Array, features_only: bool = False) -> jax.Array:
        cfg = self.config
        b, height, width, c = x.shape
        emb = step_embedding(t_frac, cfg.embedding)  # (B, E)

        h, _ = pad_to_multiple(jnp.concatenate([x, mask], axis=-1), cfg.multiple)  # (B, H', W', 2C)
        for _ in range(cfg.patch_levels):
            h = space_to_depth(h)  # (B, H'/p, W'/p, p^2 2C)
        h = trunk(h, emb, cfg.channels, cfg.channel_mults, cfg.blocks)
        if features_only:
            return h

        def head(per_subpixel: int, name: str) -> jax.Array:
            """(B, H, W, C, per_subpixel) outputs of a 1x1 convolution."""
            out = nn.Conv(c * per_subpixel * 4**cfg.patch_levels, (1, 1), name=name)(h)
            for _ in range(cfg.patch_levels):
                out = depth_to_space(out)  # (B, H', W', C per_subpixel)
            return out[:, :height, :width].reshape(b, height, width, c, per_subpixel)

        return _with_peak(head(VOCAB, "head"), head(2, "peak"))


def _with_peak(free: jax.Array, peak: jax.Array) -> jax.Array:
    """Free logits (..., 256) plus a peak -a (x_v - m)^2 over the values' bin centres x_v, from
    (m, log a) = peak (..., 2), a = exp(log a): regressing a mean m is what a network learns first
    (on the same steps, 0.65 bits/dim lower validation loss at step 300 than free logits alone;
    docs/ardm.md), and the free logits shape the rest."""
    mean, log_a = jnp.moveaxis(peak, -1, 0)
    grid = pixels_to_x(jnp.arange(VOCAB))
    return free - jnp.exp(jnp.clip(log_a, -10.0, 10.0))[..., None] * (grid - mean[..., None]) ** 2


def _cell_logits(params: dict, config: ARDMConfig, h: jax.Array) -> jax.Array:
    """The logits (n, p, p, 3, 256) of the p x p pixel blocks of n trunk cells h (n, channels): the
    network's two 1x1 heads (``ARDMNet``'s Conv layers "head" and "peak") as matrix products."""

    def head(name: str, per_subpixel: int) -> jax.Array:
        out = (h @ params[name]["kernel"][0, 0] + params[name]["bias"])[:, None, None]
        for _ in range(config.patch_levels):
            out = depth_to_space(out)
        return out.reshape(*out.shape[:3], NET_CHANNELS, per_subpixel)

    return _with_peak(head("head", VOCAB), head("peak", 2))


def init_params(config: ARDMConfig, seed: int) -> dict:
    """Fresh parameters for ``config`` from ``seed`` (an "rbg" key, as ``vdm.init_params``)."""
    return _init(config, jax.random.key(seed, impl="rbg"))


@partial(jax.jit, static_argnums=0)
def _init(config: ARDMConfig, key: jax.Array) -> dict:
    """Initialised on a small dummy batch; compiled once per config."""
    side = 2 * config.multiple
    x = jnp.zeros((1, side, side, NET_CHANNELS), jnp.float32)
    return ARDMNet(config).init(key, x, x, jnp.zeros((1,), jnp.float32))["params"]


@partial(jax.jit, static_argnums=1)
def logits(params: dict, config: ARDMConfig, k: jax.Array, levels: jax.Array, t: jax.Array) -> jax.Array:
    """Logits of p(x_i | what is known) over the 256 values of every subpixel i: k (B, H, W, C)
    8-bit values, their levels (B, H, W, C) (with S = 1, known or not as 1 or 0, or bool), t (B,)
    the global step (known count + 1 with S = 1) -> (B, H, W, C, 256).

    The bits of k that ``levels`` do not cover are never read. The coders call this very function,
    so encoder and decoder run one compiled program.
    """
    out = ARDMNet(config).apply({"params": params}, *_inputs(config, k, levels, t))
    return out.sum(axis=-2, keepdims=True) if k.shape[-1] == 1 else out


def _inputs(
    config: ARDMConfig, k: jax.Array, levels: jax.Array, t: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The network's inputs for 8-bit values k (B, H, W, C), their levels (B, H, W, C) and the
    global step t (B,): the centres x of the known intervals and the levels l / S on three channels
    (grayscale repeated), and t / (S D)."""
    levels = jnp.asarray(levels, jnp.int32)
    unknown_bits = 8 - config.stage_bits * levels
    width = jnp.left_shift(1, unknown_bits)
    centre = (jnp.right_shift(jnp.asarray(k, jnp.int32), unknown_bits) * width).astype(jnp.float32)
    x = pixels_to_x(centre + (width - 1).astype(jnp.float32) / 2.0)
    mask = levels.astype(jnp.float32) / config.stages
    if k.shape[-1] == 1:
        x, mask = jnp.repeat(x, NET_CHANNELS, axis=-1), jnp.repeat(mask, NET_CHANNELS, axis=-1)
    return x, mask, jnp.asarray(t, jnp.float32) / (config.stages * math.prod(k.shape[1:]))


def coded_logits(
    params: dict, config: ARDMConfig, k: jax.Array, levels: jax.Array, t: jax.Array, index: jax.Array
) -> jax.Array:
    """The rows of ``logits`` for the flat subpixel indices ``index`` (n,) of the one image in k
    (1, H, W, C): (n, 256), with the heads run only on the trunk cells that hold them. The trunk
    compiles once per image shape, the heads once per length of ``index``. Encoder and decoder call
    this very function on the same shapes, so they agree bit for bit (the rows may differ from
    ``logits``' in the last float bits)."""
    batch, _, width, channels = k.shape
    if batch != 1:
        raise ValueError(f"coded_logits takes one image, not {batch}")
    return _coded_heads(params, config, _trunk(params, config, k, levels, t), width, channels, index)


@partial(jax.jit, static_argnums=1)
def _trunk(params: dict, config: ARDMConfig, k: jax.Array, levels: jax.Array, t: jax.Array) -> jax.Array:
    return ARDMNet(config).apply({"params": params}, *_inputs(config, k, levels, t), features_only=True)


@partial(jax.jit, static_argnums=(1, 3, 4))
def _coded_heads(
    params: dict, config: ARDMConfig, h: jax.Array, width: int, channels: int, index: jax.Array
) -> jax.Array:
    p = 2**config.patch_levels
    pixel, channel = jnp.divmod(index, channels)
    row, col = jnp.divmod(pixel, width)
    blocks = _cell_logits(params, config, h[0, row // p, col // p])[jnp.arange(index.size), row % p, col % p]
    if channels == 1:
        return blocks.sum(axis=1)
    return jnp.take_along_axis(blocks, channel[:, None, None], axis=1)[:, 0]


def stage_nll(logits: jax.Array, k: jax.Array, levels: jax.Array, stage_bits: int) -> jax.Array:
    """-log2 of the probability of the next ``stage_bits`` bits of k (...) given the bits its level
    (...) knows, under the 256 ``logits`` (..., 256): log of the mass of the values that agree with
    k on levels + 1 stages over the mass of those that agree on levels stages. With 8 stage bits
    and level 0 it is -log2 softmax(logits)[k]; levels of 8 / stage_bits give 0."""
    k = jnp.asarray(k, jnp.int32)
    stages = 8 // stage_bits
    agree = []  # log-mass of the values sharing k's first j stages, j = 0..S
    for j in range(stages + 1):
        groups = logits.reshape(*logits.shape[:-1], 1 << (j * stage_bits), -1)
        mass = jax.nn.logsumexp(groups, axis=-1)
        agree.append(jnp.take_along_axis(mass, jnp.right_shift(k, 8 - j * stage_bits)[..., None], axis=-1)[..., 0])
    agree = jnp.stack(agree, axis=-1)
    levels = jnp.asarray(levels, jnp.int32)[..., None]
    before = jnp.take_along_axis(agree, levels, axis=-1)[..., 0]
    after = jnp.take_along_axis(agree, jnp.minimum(levels + 1, stages), axis=-1)[..., 0]
    return (before - after) / math.log(2.0)


def subpixel_nll(params: dict, config: ARDMConfig, k: jax.Array, levels: jax.Array, t: jax.Array) -> jax.Array:
    """-log2 p of every subpixel's next stage bits given the bits its level (B, H, W, C) knows, at
    the global step t (B,): (B, H, W, C); with S = 1, -log2 p(k_i | x_known)."""
    return stage_nll(logits(params, config, k, levels, t), k, levels, config.stage_bits)


def random_ranks(key: jax.Array, batch: int, dims: int) -> jax.Array:
    """The ranks (B, D) of ``batch`` orders drawn uniformly from the D! permutations."""
    u = jax.random.uniform(key, (batch, dims))
    return jnp.argsort(jnp.argsort(u, axis=-1), axis=-1)


@partial(jax.jit, static_argnums=1)
def step_loss(params: dict, config: ARDMConfig, k: jax.Array, ranks: jax.Array, t: jax.Array) -> jax.Array:
    """The mean cost in bits of the subpixels still to code at the global step t (B,) of S D, the
    orders of its stage given by their ranks (B, D). With S = 1 it is

        -1 / (D - t + 1) * sum_{k in sigma(>=t)} log2 p(x_k | x_sigma(<t)),

    a one-sample estimate of -L_t in ARDM's bound (section 3)

        log p(x) >= E_{t ~ U(1..D)} [D L_t],
        L_t = 1 / (D - t + 1) E_{sigma ~ U(S_D)} sum_{k in sigma(>=t)} log p(x_k | x_sigma(<t)).

    Upscale ARDMs sum the bounds of their S stages, log p(x) >= S E_{t ~ U(1..S D)} [D L_t], step
    t' = t - s D of stage s = floor((t - 1) / D) knowing s + 1 stages of the subpixels of rank
    < t' - 1 and s of the rest. As a function of t this is also the per-step loss that plans the
    coder's calls (``codec/ardm_plan.py``). Jitted whole: a checkpoint's save evaluates it at S x 33
    steps, 7x faster than with only the network compiled.
    """
    d = math.prod(k.shape[1:])
    t = jnp.asarray(t, jnp.int32)
    stage, within = jnp.divmod(t - 1, d)  # within = t' - 1
    done = (ranks < within[:, None]).reshape(k.shape)
    stage = stage[:, None, None, None]
    nll = jnp.where(done, 0.0, subpixel_nll(params, config, k, stage + done, t))
    return nll.reshape(k.shape[0], -1).sum(-1) / (d - within)


def ardm_loss(params: dict, config: ARDMConfig, k: jax.Array, key: jax.Array) -> jax.Array:
    """The training loss in bits/dim: S times the mean over the batch k (B, H, W, C) of
    ``step_loss`` at one t ~ U(1..S D) and one uniformly random order per image, an unbiased
    estimate of the bound on -log2 p(x) / D."""
    b, d = k.shape[0], math.prod(k.shape[1:])
    key_t, key_order = jax.random.split(key)
    t = jax.random.randint(key_t, (b,), 1, config.stages * d + 1)
    return config.stages * step_loss(params, config, k, random_ranks(key_order, b, d), t).mean()


def loss_curve(params: dict, config: ARDMConfig, k: jax.Array, key: jax.Array, points: int) -> np.ndarray:
    """Estimates of the per-step loss L_t (``step_loss``) in bits per subpixel at ``points`` known
    fractions f = i / (points - 1) of each stage, t = s D + 1 + round(f (D - 1)), averaged over the
    images k (B, H, W, C) with fresh random orders: (S points,), stage by stage, the curve that
    ``codec/ardm_plan.py`` plans with."""
    b, d = k.shape[0], math.prod(k.shape[1:])
    curve = []
    for s in range(config.stages):
        for i, f in enumerate(np.linspace(0.0, 1.0, points)):
            t = jnp.full((b,), s * d + 1 + round(f * (d - 1)), jnp.int32)
            ranks = random_ranks(jax.random.fold_in(key, s * points + i), b, d)
            curve.append(float(step_loss(params, config, k, ranks, t).mean()))
    return np.array(curve)


def plan_nll(
    params: dict, config: ARDMConfig, k: jax.Array, order: np.ndarray, starts: Sequence[int]
) -> jax.Array:
    """The exact -log2 p(x) per image (B,) of images k (B, H, W, C) coded in ``order`` (S D,: the
    stages' orders end to end) with one network call per planned step: the call at global step
    ``starts[i]`` (1-based, starts[0] = 1) of stage s sees the subpixels that rank below
    starts[i] - 1 - s D in stage s's order at level s + 1, the rest at level s, and codes global
    ranks starts[i] - 1 .. starts[i+1] - 2 (the last call codes the rest of the image) with its own
    distributions, as the coder does. A call may not span two stages (``ValueError``)."""
    d = math.prod(k.shape[1:])
    ranks = np.empty((config.stages, d), np.int64)
    np.put_along_axis(ranks, np.asarray(order).reshape(config.stages, d), np.arange(d)[None], axis=1)
    bounds = [s - 1 for s in starts] + [config.stages * d]
    total = jnp.zeros(k.shape[0])
    for a, b in zip(bounds[:-1], bounds[1:]):
        stage, within = divmod(a, d)
        if b > (stage + 1) * d:
            raise ValueError(f"the call at step {a + 1} spans stages {stage} and {stage + 1}")
        levels = np.broadcast_to((stage + (ranks[stage] < within)).reshape(k.shape[1:]), k.shape)
        coded = ((ranks[stage] >= within) & (ranks[stage] < b - stage * d)).reshape(k.shape[1:])
        nll = subpixel_nll(params, config, k, levels, jnp.full((k.shape[0],), a + 1, jnp.int32))
        total = total + jnp.where(coded, nll, 0.0).reshape(k.shape[0], -1).sum(-1)
    return total
