"""The ARDM network in integer arithmetic: the coder's masses over the 256 values as an exact
function of integers.

A lossless ARDM stream decodes only if the decoder rebuilds every categorical bit for bit, and a
float32 network does not compute the same bits on every machine (DESIGN.md section 7). This is
``ardm_network.ARDMNet`` on ``integer_unet``'s exact layers, with the trunk, the step embedding's
MLP and the serialisation shared with the integer VDM denoiser; only the inputs, the step's phases
and the heads are the ARDM's own.

Number formats (scales fixed when the model is quantised and stored with it):

- inputs: the centre x of every subpixel's known interval and its level l / S, on int16 channels
  of step 2^-``INPUT_FRAC``: 256 x = 2 (k >> u) 2^u + 2^u - 256 with u = 8 - b l the unknown bits
  (0 where nothing is known) and 256 l / S; both exact, as are the reflect padding and the
  space-to-depth folding that follow;
- the step embedding's sinusoid i at t / (S D) has the phase t P_i / (S D) cycles, P_i =
  round(2^32 1000 f_i / 2 pi) stored with the model; the phase is computed on the host in Python
  integers (exact for any image size) and read from a 2^12-entry sine table (``step_phases``);
- trunk: ``integer_unet.trunk``;
- heads: the two 1x1 convolutions as dense layers on the trunk cells that hold coded subpixels;
  the free logits at 2^-``LOGIT_FRAC`` nats, the peak's mean m and log a at 2^-``PEAK_FRAC``;
- the peak -a (x_v - m)^2 in integers (``peak_term``), sqrt(a) from a table indexed by log a;
- masses: an integer softmax, exp by a table indexed by each logit's distance below the row's top
  (``softmax_masses``), over the values that agree with the bits already known.

Both tables are computed with Python's ``decimal`` (a correctly rounded exp, the same on every
machine), so they are part of the format and not stored. ``quantise_on_images`` makes the model
from float parameters, calibrating every activation step on images at random coding states;
``IntegerARDM.coded_masses`` is the coder's call.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from functools import cached_property
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from diffc.models import integer_ops as ops
from diffc.models.integer_ops import EXP_LEN, SOFTMAX_FRAC, exp_table
from diffc.models import integer_unet as iu
from diffc.models.ardm_network import NET_CHANNELS
from diffc.models.configs import ARDMConfig
from diffc.models.unet import depth_to_space, space_to_depth
from diffc.models.vdm import VOCAB, pad_to_multiple

FORMAT = "diffc-integer-ardm/1"
INPUT_FRAC = 8  # fraction bits of the inputs x and l / S
LOGIT_FRAC = 16  # fraction bits of logits, in nats
PEAK_FRAC = 16  # fraction bits of the peak's m (in x units) and log a
LOGIT_MAX = 1 << 28  # free logits are clipped to +-4096 nats: three channels' sum stays below 2^30
MEAN_MAX = 8 << PEAK_FRAC  # the peak's mean is clipped to [-8, 8]
LOG_A_MAX = 10 << PEAK_FRAC  # log a is clipped to [-10, 10], as the float network does
LOG_A_FRAC = 8  # log a indexes the root table at steps of 2^-8
LOG_A_CODES = 10 << LOG_A_FRAC  # the table's codes: -2560 .. 2560
W_FRAC = 11  # fraction bits of r (v - mu), in sqrt-nats
W_MAX = 16 << W_FRAC  # |r (v - mu)| <= 16: peak terms up to 256 nats


# --- tables, by decimal arithmetic ----------------------------------------------------------------


@functools.cache
def root_table() -> tuple[np.ndarray, np.ndarray]:
    """(R, s), each (2 LOG_A_CODES + 1,) int32: for log a = c 2^-8, c = -2560 .. 2560,
    r = sqrt(a) / 128 = R 2^-(14 + s) with 2^14 <= R < 2^15 and 0 <= s <= 15 (decimal's exp)."""
    roots, shifts = [], []
    with localcontext() as ctx:
        ctx.prec = 40
        for c in range(-LOG_A_CODES, LOG_A_CODES + 1):
            r = (Decimal(c) / (2 << LOG_A_FRAC)).exp() / 128
            s = 0
            while r * (1 << s) < 1:
                s += 1
            roots.append(int((r * (1 << (14 + s))).to_integral_value()))
            shifts.append(s)
    roots, shifts = np.array(roots, np.int64), np.array(shifts, np.int64)
    carry = roots == 1 << 15  # rounded up to 2^15: one shift less
    return np.where(carry, 1 << 14, roots).astype(np.int32), (shifts - carry).astype(np.int32)


# --- the peak and the softmax ---------------------------------------------------------------------


def _log_a_code(log_a: jax.Array) -> jax.Array:
    """log a (2^-16) clipped to [-10, 10] and rounded to 2^-8: the root table's code."""
    shift = PEAK_FRAC - LOG_A_FRAC
    return (jnp.clip(log_a, -LOG_A_MAX, LOG_A_MAX) + (1 << (shift - 1))) >> shift


def peak_term(mean: jax.Array, log_a: jax.Array) -> jax.Array:
    """a (x_v - m)^2 for the 256 values v, in 2^-16 nats: int32 m and log a (...) with ``PEAK_FRAC``
    fraction bits -> int32 (..., 256), at most 2^24 (256 nats; a larger term only scales masses
    that the softmax table already makes 0).

    With mu = 128 (m + 1) - 1/2 the mean in bins, a (x_v - m)^2 = (r (v - mu))^2 with
    r = sqrt(a) / 128 = R 2^-(14 + s) (``root_table`` at log a rounded to 2^-8; m clipped to
    [-8, 8]). e = (v - mu) 2^12 = ((2v - 255) 2^8 - m 2^16) 2^3 is exact, |e| < 2^23;
    t = floor(e R / 2^15) is computed from e's 15-bit halves (products below 2^30, |t| < 2^23);
    W = round(t / 2^s) = r (v - mu) 2^11, clipped to +-2^15; the term is round(W^2 / 2^6) <= 2^24.
    """
    roots, shifts = root_table()
    code = _log_a_code(log_a)[..., None]
    r = ops.lookup(code, jnp.asarray(roots), LOG_A_CODES)
    s = ops.lookup(code, jnp.asarray(shifts), LOG_A_CODES)
    m = jnp.clip(mean, -MEAN_MAX, MEAN_MAX)[..., None]
    e = (((2 * jnp.arange(VOCAB, dtype=jnp.int32) - 255) << 8) - m) << 3
    t = (e >> 15) * r + (((e & 0x7FFF) * r) >> 15)
    w = jnp.clip((t + ((1 << s) >> 1)) >> s, -W_MAX, W_MAX)
    drop = 2 * W_FRAC - LOGIT_FRAC
    return (w * w + (1 << (drop - 1))) >> drop


def softmax_masses(logits: jax.Array, allowed: jax.Array) -> jax.Array:
    """Unnormalised softmax masses of int32 logits (..., 256) at 2^-16 nats (|logit| < 2^30) over
    the ``allowed`` values (bool, same shape, at least one per row): exp_table[round((top - L) /
    2^8)] with top the row's largest allowed logit, 0 for the others; int32, at most 2^30. Taking
    the top over the allowed values keeps their masses off zero however far below the rest."""
    top = jnp.max(jnp.where(allowed, logits, ops.INT32_MIN), axis=-1, keepdims=True)
    shift = LOGIT_FRAC - SOFTMAX_FRAC
    distance = (top - logits + (1 << (shift - 1))) >> shift  # |top - L| < 2^31
    return jnp.where(allowed, ops.lookup(distance, jnp.asarray(exp_table()), 0), 0)


def allowed_values(values: jax.Array, known_bits: jax.Array) -> jax.Array:
    """(..., 256) bool: the values that agree with ``values`` (...) on their top ``known_bits``."""
    unknown = (8 - jnp.asarray(known_bits, jnp.int32))[..., None]
    v = jnp.arange(VOCAB, dtype=jnp.int32)
    return (v >> unknown) == (jnp.asarray(values, jnp.int32)[..., None] >> unknown)


# --- the network ----------------------------------------------------------------------------------


def _input_codes(cfg: ARDMConfig, k: jax.Array, levels: jax.Array) -> jax.Array:
    """int16 (B, H'/p, W'/p, 6 p^2): 256 x and 256 l / S (``ardm_network._inputs``, exactly),
    grayscale repeated on three channels, reflect-padded to the multiple and folded."""
    k, levels = jnp.asarray(k, jnp.int32), jnp.asarray(levels, jnp.int32)
    unknown = 8 - cfg.stage_bits * levels
    x = ((k >> unknown) << (unknown + 1)) + (1 << unknown) - 256
    level = levels * (256 // cfg.stages)
    if k.shape[-1] == 1:
        x, level = jnp.repeat(x, NET_CHANNELS, axis=-1), jnp.repeat(level, NET_CHANNELS, axis=-1)
    h, _ = pad_to_multiple(jnp.concatenate([x, level], axis=-1), cfg.multiple)
    for _ in range(cfg.patch_levels):
        h = space_to_depth(h)
    return h.astype(jnp.int16)


def _features(cfg: ARDMConfig, run: iu.Runner, k: jax.Array, levels: jax.Array, phases: jax.Array) -> jax.Array:
    """The trunk's output (B, H'/p, W'/p, channels), int16 codes of step layers["LayerNorm_0"]."""
    table = jnp.asarray(run.layers["embedding"]["table"])
    emb, emb_step = iu.embedding_mlp(run, jnp.asarray(phases, jnp.int32), table)
    names = iu.Names()
    h, step = run.linear(names.next("Conv"), _input_codes(cfg, k, levels), 2.0**-INPUT_FRAC)
    return iu.trunk(cfg, run, h, step, emb, emb_step, names)[0]


def _blocks(cfg: ARDMConfig, out: jax.Array, per_subpixel: int) -> jax.Array:
    """A head's output (n, p^2 3 per_subpixel) as the cells' pixel blocks (n, p, p, 3, per_subpixel)."""
    out = out[:, None, None]
    for _ in range(cfg.patch_levels):
        out = depth_to_space(out)
    return out.reshape(*out.shape[:3], NET_CHANNELS, per_subpixel)


def _heads(cfg: ARDMConfig, run: iu.Runner, cells: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The free logits (n, p, p, 3, 256) and the peak's (m, log a) (n, p, p, 3, 2) of trunk cells
    (n, channels) int16: ``ARDMNet``'s 1x1 heads "head" and "peak" as dense layers, int32."""
    step = run.layers["LayerNorm_0"]["step"]
    free, _ = run.linear("head", cells, step, 2.0**-LOGIT_FRAC, conv=False)
    peak, _ = run.linear("peak", cells, step, 2.0**-PEAK_FRAC, conv=False)
    return _blocks(cfg, free, VOCAB), _blocks(cfg, peak, 2)


def _coded_masses(cfg: ARDMConfig, run: iu.Runner, h: jax.Array, k: jax.Array, levels: jax.Array,
                  index: jax.Array) -> jax.Array:
    """int32 masses (n, 256) of the flat subpixels ``index`` (n,) of the one image k (1, H, W, C)
    whose trunk output is h: logits free - peak (grayscale: the three channels' sum, as
    ``ardm_network.coded_logits``), softmax over the values that agree with the subpixel's known
    bits (b * its level), 0 elsewhere."""
    p = 1 << cfg.patch_levels
    width, channels = k.shape[2], k.shape[3]
    pixel, channel = jnp.divmod(index, channels)
    row, col = jnp.divmod(pixel, width)
    rows = jnp.arange(index.shape[0])
    free, peak = (a[rows, row % p, col % p] for a in _heads(cfg, run, h[0, row // p, col // p]))  # (n, 3, .)
    if channels != 1:
        free, peak = (jnp.take_along_axis(a, channel[:, None, None], axis=1) for a in (free, peak))
    logits = (jnp.clip(free, -LOGIT_MAX, LOGIT_MAX) - peak_term(peak[..., 0], peak[..., 1])).sum(axis=1)
    known = cfg.stage_bits * jnp.asarray(levels, jnp.int32).reshape(-1)[index]
    return softmax_masses(logits, allowed_values(jnp.asarray(k).reshape(-1)[index], known))


def step_phases(layers: dict[str, Any], t: np.ndarray, total: int) -> np.ndarray:
    """int32 (B, E / 2): the step embedding's phases at the global steps t (B,) of ``total``
    (S D), as indices into the 2^12-entry sine table: round(2^12 (t P_i / total mod 1)), in
    Python integers (t P_i exceeds 64 bits on large images)."""
    cycles = [int(c) for c in layers["embedding"]["cycles"]]
    drop = 32 - iu.PHASE_BITS
    mask = (1 << iu.PHASE_BITS) - 1
    rows = [[((int(step) * c // total + (1 << (drop - 1))) >> drop) & mask for c in cycles]
            for step in np.reshape(t, -1)]
    return np.array(rows, np.int32)


def _embedding_layer(config: ARDMConfig) -> dict[str, np.ndarray]:
    """P_i = round(2^32 1000 f_i / 2 pi) (int64; ``unet.timestep_embedding``'s frequencies f_i)
    and the sine table: computed once in float64 at quantisation and stored."""
    half = config.embedding // 2
    freqs = np.exp(-math.log(10_000.0) * np.arange(half, dtype=np.float64) / (half - 1))
    return {"cycles": np.round(1000.0 * freqs / (2.0 * np.pi) * 2.0**32).astype(np.int64),
            "table": iu.sine_table(iu.INT16_MAX)}


@dataclass(eq=False)
class IntegerARDM:
    """An integer ARDM: ``layers`` holds every integer array and scale change by the float
    network's layer names. ``features`` and ``masses`` are the jit-able exact forward."""

    config: ARDMConfig
    layers: dict[str, Any] = field(repr=False)
    float_path: bool = False  # run convolutions through integer_ops' exact float32 path

    def _runner(self) -> iu.Runner:
        return iu.Runner(self.layers, None, self.float_path)

    def phases(self, t: np.ndarray, total: int) -> np.ndarray:
        """``step_phases`` of this model: the embedding's input at global steps t of ``total``."""
        return step_phases(self.layers, t, total)

    def features(self, k: jax.Array, levels: jax.Array, phases: jax.Array) -> jax.Array:
        """The trunk's int16 output (B, H'/p, W'/p, channels) for 8-bit values k (B, H, W, C), their
        levels (B, H, W, C) and ``phases`` (B, E / 2); unknown bits of k are never read."""
        return _features(self.config, self._runner(), k, levels, phases)

    def masses(self, h: jax.Array, k: jax.Array, levels: jax.Array, index: jax.Array) -> jax.Array:
        """int32 masses (n, 256) of the flat subpixels ``index`` (n,) of the image k (1, H, W, C)
        with trunk output h (``features``)."""
        return _coded_masses(self.config, self._runner(), h, k, levels, index)

    @cached_property
    def _compiled(self) -> tuple[Any, Any]:
        return jax.jit(self.features), jax.jit(self.masses)

    def coded_masses(self, k: jax.Array, levels: jax.Array, t: int, index: jax.Array) -> jax.Array:
        """The coder's call: int32 masses (n, 256) of the subpixels ``index`` of the one image k
        (1, H, W, C) at levels (1, H, W, C) and global step t (of S D), the trunk compiled once
        per image shape and the heads once per length of ``index``."""
        features, masses = self._compiled
        total = self.config.stages * math.prod(k.shape[1:])
        return masses(features(k, levels, self.phases(np.array([t]), total)), k, levels, index)


# --- making and storing the model -----------------------------------------------------------------


def calibration_states(config: ARDMConfig, shape: tuple[int, ...], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Coding states to calibrate on, for images of ``shape`` (B, H, W, C): levels (B, H, W, C)
    int8 and global steps t (B,), t at low-discrepancy points of 1 .. S D and the known subpixels
    of t's stage those of a uniformly random order (as ``ardm_network.step_loss`` draws them);
    numpy's PCG64 from ``seed``, so a quantisation is repeatable."""
    rng = np.random.Generator(np.random.PCG64(seed))
    b, d = shape[0], math.prod(shape[1:])
    fraction = (rng.uniform() + np.arange(b) / b) % 1.0
    t = 1 + np.floor(fraction * config.stages * d).astype(np.int64)
    stage, within = np.divmod(t - 1, d)
    ranks = np.argsort(np.argsort(rng.random((b, d)), axis=1), axis=1)
    levels = stage[:, None] + (ranks < within[:, None])
    return levels.reshape(shape).astype(np.int8), t


def quantise_on_images(config: ARDMConfig, params: dict[str, Any], crops: np.ndarray, seed: int) -> IntegerARDM:
    """The integer version of the float ARDM ``params``: weights to int8 per output channel and
    every activation step calibrated, in forward order through the integer network itself, on the
    uint8 ``crops`` (B, H, W, 3) at coding states drawn from ``seed`` (``calibration_states``)."""
    crops = np.asarray(crops, np.uint8)
    levels, t = calibration_states(config, crops.shape, seed)
    source = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    for head in ("head", "peak"):  # 1x1 convolutions, run as dense layers on the coded cells
        source[head] = {"kernel": source[head]["kernel"][0, 0], "bias": source[head]["bias"]}
    layers: dict[str, Any] = {"embedding": _embedding_layer(config)}
    run = iu.Runner(layers, source, calibration=iu.Calibration())
    h = _features(config, run, crops, levels, step_phases(layers, t, config.stages * math.prod(crops.shape[1:])))
    _heads(config, run, h[:, 0, 0])  # their output steps are fixed: this only makes their layers
    return IntegerARDM(config, layers)


def to_bytes(net: IntegerARDM) -> bytes:
    """The integer model as msgpack (``integer_unet.layers_to_bytes``, format ``FORMAT``)."""
    return iu.layers_to_bytes(FORMAT, net.layers)


def from_bytes(config: ARDMConfig, data: bytes) -> IntegerARDM:
    """The model ``to_bytes`` wrote; ValueError if ``data`` is not one."""
    return IntegerARDM(config, iu.layers_from_bytes(FORMAT, data))


# --- references: numpy int64, the semantics above written directly --------------------------------


def peak_term_ref(mean: np.ndarray, log_a: np.ndarray) -> np.ndarray:
    """``peak_term`` in int64: round(W^2 / 2^6), W = round(e R 2^-(15 + s)) clipped, directly."""
    roots, shifts = root_table()
    log_a = np.clip(np.asarray(log_a, np.int64), -LOG_A_MAX, LOG_A_MAX)
    code = ((log_a + (1 << (PEAK_FRAC - LOG_A_FRAC - 1))) >> (PEAK_FRAC - LOG_A_FRAC))[..., None]
    r, s = roots[code + LOG_A_CODES].astype(np.int64), shifts[code + LOG_A_CODES].astype(np.int64)
    m = np.clip(np.asarray(mean, np.int64), -MEAN_MAX, MEAN_MAX)[..., None]
    e = (((2 * np.arange(VOCAB, dtype=np.int64) - 255) << 8) - m) << 3
    t = (e * r) >> 15
    w = np.clip((t + ((1 << s) >> 1)) >> s, -W_MAX, W_MAX)
    return (w * w + (1 << (2 * W_FRAC - LOGIT_FRAC - 1))) >> (2 * W_FRAC - LOGIT_FRAC)


def softmax_masses_ref(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """``softmax_masses`` in int64."""
    logits = np.asarray(logits, np.int64)
    top = np.where(allowed, logits, np.iinfo(np.int64).min).max(axis=-1, keepdims=True)
    shift = LOGIT_FRAC - SOFTMAX_FRAC
    distance = np.clip((top - logits + (1 << (shift - 1))) >> shift, 0, EXP_LEN - 1)
    return np.where(allowed, exp_table()[distance], 0)
