"""The VDM denoiser in integer arithmetic: eps_hat(z_t, gamma_t) as an exact function of integers.

A stream decodes only if the decoder computes the coder's probabilities bit for bit as the encoder
did; float32 networks differ in the last bit between CPUs, backends and XLA releases, and one ulp
is enough to break a lossless stream (DESIGN.md section 7). So the coders run this integer version
of ``unet.UNet``: the same layers, computed with the exact primitives of ``integer_ops`` (Ballé et
al., "Integer networks for data compression with latent-variable models", ICLR 2019, did this for
one entropy-model head; here it is the whole U-Net).

Number formats (every scale is fixed when the model is quantised and stored with it):

- input z_t: int16 fixed point, ``Z_FRAC`` fraction bits; the noise level: its 16-bit gamma code
  (gamma = code / 2048 - 24, the coders' grid);
- the residual stream (block inputs and outputs, skips): int32 fixed point with ``STREAM_FRAC``
  fraction bits, one scale for all, so residual adds and skip concatenations need no rescaling;
- convolution and dense inputs: int8 with a per-tensor scale; weights: int8 with a per-output-
  channel scale; biases int32 in the accumulator's scale; accumulators int32 (exact:
  ``integer_ops``' bounds), brought back to the stream by ``rescale`` (multiply and shift);
- LayerNorm: ``integer_ops.normalise`` then the learned gain and bias, rescaled to a 12-bit code
  that indexes the swish table (int8 out): nonlinearities are tables;
- Fourier features sin/cos(2^n 2 pi z) (VDM appendix B): the phase is bits of z's fixed point, read
  from a sine table; the step embedding's sinusoids take their phase from the gamma code in
  uint32 fixed point (arithmetic mod 2^32, exact);
- output eps_hat: int32 fixed point with ``EPS_FRAC`` fraction bits.

``quantise`` turns a float checkpoint into an ``IntegerUNet`` (calibrating each activation scale
on data, layer after layer through the integer network itself, so that each scale sees the errors
of the layers before it); ``IntegerUNet.eps`` is the jit-able integer forward.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from diffc.models import integer_ops as ops
from diffc.models.configs import VDMConfig
from diffc.models.unet import depth_to_space as _depth_to_space
from diffc.models.unet import space_to_depth as _space_to_depth
from diffc.models.unet import upsample as _upsample

Z_FRAC = 12  # fraction bits of the int16 input z_t: |z| < 8
STREAM_FRAC = 10  # fraction bits of the int32 residual stream
STREAM_MAX = (1 << 22) - 1  # the stream's clamp: integer_ops.normalise takes |x| < 2^22
EPS_FRAC = 16  # fraction bits of the int32 output eps_hat
NORM_FRAC = 6  # fraction bits of normalise's output
LUT_BITS = 12  # the swish table's input code: [-2^11, 2^11)
LUT_HALF = 1 << (LUT_BITS - 1)
PHASE_BITS = 12  # entries of the sine table: 2^12 per cycle
INT8_MAX = 127
GAMMA_LO, GAMMA_SCALE = -24.0, 2048.0  # the coders' gamma grid: gamma = code / 2048 - 24
CLIP_QUANTILE = 0.9999  # activation scales cover this quantile of |value| on the calibration data


def _swish(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def sine_table() -> np.ndarray:
    """round(127 sin(2 pi i / 2^12)), int8: the one table both sinusoid features read."""
    i = np.arange(1 << PHASE_BITS, dtype=np.float64)
    return np.round(INT8_MAX * np.sin(2.0 * np.pi * i / (1 << PHASE_BITS))).astype(np.int8)


@dataclass
class Requant:
    """acc (int32) -> ``rescale(acc << gain, multiplier, shift)``: one scale change, per channel or
    not; ``gain`` left shifts (saturating) make room for ratios of 1/2 and above."""

    multiplier: np.ndarray  # int32, (C,) or ()
    shift: int
    gain: int = 0

    @classmethod
    def of(cls, ratio: np.ndarray | float) -> Requant:
        """The multipliers that approximate ``ratio`` (per channel) with one shift, chosen for the
        largest ratio so that every multiplier fits 15 bits."""
        ratio = np.asarray(ratio, np.float64)
        gain = max(0, math.ceil(math.log2(float(ratio.max()))) + 1)
        _, shift = ops.multiplier_for(float(ratio.max()) / 2.0**gain)
        m = np.round(ratio / 2.0**gain * 2.0**shift).astype(np.int64)
        return cls(np.clip(m, 0, (1 << 15) - 1).astype(np.int32), shift, gain)

    def __call__(self, acc: jax.Array, lo: int, hi: int) -> jax.Array:
        if self.gain:
            top = (1 << (31 - self.gain)) - 1
            acc = jnp.clip(acc, -top, top) << self.gain
        return ops.rescale(acc, jnp.asarray(self.multiplier), self.shift, lo, hi)


class Calibration:
    """Chooses each activation scale from the values that reach it (eager, on the host)."""

    def __init__(self) -> None:
        self.scales: dict[str, float] = {}

    def scale(self, name: str, values: jax.Array, unit: float, levels: int) -> float:
        """The real step of ``levels`` codes covering ``CLIP_QUANTILE`` of |values * unit|."""
        if name not in self.scales:
            a = np.abs(np.asarray(values, np.float64).reshape(-1)) * unit
            top = float(np.quantile(a, CLIP_QUANTILE)) if a.size else 0.0
            self.scales[name] = max(top, 1e-6) / levels
        return self.scales[name]


def _quantise_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and their per-output-channel scales (last axis)."""
    w = np.asarray(w, np.float64)
    top = np.abs(w.reshape(-1, w.shape[-1])).max(axis=0)
    scale = np.maximum(top, 1e-12) / INT8_MAX
    return np.clip(np.round(w / scale), -INT8_MAX, INT8_MAX).astype(np.int8), scale


@dataclass
class IntegerUNet:
    """An integer eps_hat(z_t, gamma code): ``layers`` holds every integer array and scale change,
    by the float model's layer names; the forward runs in ``integer_ops`` alone."""

    config: VDMConfig
    layers: dict[str, Any]
    float_path: bool = False  # run convolutions through integer_ops' exact float32 path

    def eps(self, z: jax.Array, code: jax.Array) -> jax.Array:
        """int16 z_t (B, H, W, C) with ``Z_FRAC`` fraction bits and (B,) int32 gamma codes ->
        int32 eps_hat (B, H, W, C) with ``EPS_FRAC`` fraction bits."""
        return _forward(self.config, _Runner(self.layers, None, self.float_path), z, code)


class _Runner:
    """The forward's view of the model: the stored layers, or (quantising) the float parameters
    from which each layer is made the first time the forward reaches it."""

    def __init__(self, layers: dict[str, Any], source: dict[str, Any] | None, float_path: bool = False,
                 calibration: Calibration | None = None) -> None:
        self.layers, self.source, self.float_path = layers, source, float_path
        self.calibration = calibration

    def _conv_fn(self) -> Callable[..., jax.Array]:
        return ops.conv2d_via_float if self.float_path else ops.conv2d

    def _dense_fn(self) -> Callable[..., jax.Array]:
        return ops.dense_via_float if self.float_path else ops.dense

    def _param(self, path: str) -> dict[str, np.ndarray]:
        node = self.source
        for part in path.split("/"):
            node = node[part]
        return node

    def to_int8(self, name: str, x: jax.Array, unit: float) -> tuple[jax.Array, float]:
        """Requantise a fixed-point tensor of step ``unit`` to int8; returns (codes, their step)."""
        if name not in self.layers:
            scale = self.calibration.scale(name, x, unit, INT8_MAX)
            self.layers[name] = {"scale": scale, "requant": Requant.of(unit / scale)}
        layer = self.layers[name]
        return layer["requant"](x, -INT8_MAX, INT8_MAX).astype(jnp.int8), layer["scale"]

    def linear(self, path: str, x: jax.Array, x_step: float, out_step: float | np.ndarray, *,
               conv: bool = True, lo: int = -STREAM_MAX, hi: int = STREAM_MAX,
               extra: jax.Array | None = None) -> jax.Array:
        """conv (3x3 or 1x1, SAME) or dense of int8 ``x`` (step ``x_step``) with the float layer
        ``path``'s kernel and bias; ``extra`` (int32, in the accumulator's step) is added before
        rescaling to ``out_step``."""
        if path not in self.layers:
            p = self._param(path)
            w, w_scale = _quantise_weight(p["kernel"])
            acc_step = x_step * w_scale
            bias = np.round(np.asarray(p["bias"], np.float64) / acc_step).astype(np.int32)
            self.layers[path] = {"w": w, "bias": bias, "acc_step": acc_step,
                                 "requant": Requant.of(acc_step / np.asarray(out_step))}
        layer = self.layers[path]
        fn = self._conv_fn() if conv else self._dense_fn()
        acc = (fn(x, jnp.asarray(layer["w"]), "SAME") if conv else fn(x, jnp.asarray(layer["w"])))
        acc = acc + jnp.asarray(layer["bias"])
        if extra is not None:
            acc = acc + extra
        return layer["requant"](acc, lo, hi)

    def norm_swish(self, path: str, x: jax.Array) -> tuple[jax.Array, float]:
        """swish(LayerNorm(x)) of a stream tensor: int8 codes and their step."""
        y = ops.normalise(x, NORM_FRAC)  # about (x - mean) / std, NORM_FRAC fraction bits
        if path + "/affine" not in self.layers:
            p = self._param(path)
            gain, bias = np.asarray(p["scale"], np.float64), np.asarray(p["bias"], np.float64)
            g_step = max(np.abs(gain).max(), 1e-6) / (1 << 14)
            pre_step = g_step * 2.0**-NORM_FRAC  # the step of y * g
            self.layers[path + "/affine"] = {
                "g": np.round(gain / g_step).astype(np.int32), "b": np.round(bias / pre_step).astype(np.int32),
                "step": pre_step,
            }
        affine = self.layers[path + "/affine"]
        pre = y * jnp.asarray(affine["g"]) + jnp.asarray(affine["b"])  # |y| < 2^10, |g| <= 2^14
        return self.swish(path, pre, affine["step"])

    def swish(self, name: str, pre: jax.Array, pre_step: float) -> tuple[jax.Array, float]:
        """swish of an int32 tensor of step ``pre_step`` through a table on its 12-bit code: int8
        codes and their step."""
        if name + "/swish" not in self.layers:
            u_step = self.calibration.scale(name + "/swish", pre, pre_step, LUT_HALF - 1)
            out = _swish(np.arange(-LUT_HALF, LUT_HALF, dtype=np.float64) * u_step)
            a_step = max(np.abs(out).max(), 1e-6) / INT8_MAX
            self.layers[name + "/swish"] = {
                "requant": Requant.of(pre_step / u_step), "step": a_step,
                "table": np.clip(np.round(out / a_step), -INT8_MAX, INT8_MAX).astype(np.int8),
            }
        layer = self.layers[name + "/swish"]
        u = layer["requant"](pre, -LUT_HALF, LUT_HALF - 1)
        return ops.lookup(u, jnp.asarray(layer["table"]), LUT_HALF).astype(jnp.int8), layer["step"]


STREAM_STEP = 2.0**-STREAM_FRAC


def _embedding_phases(config: VDMConfig) -> tuple[np.ndarray, np.ndarray]:
    """uint32 fixed-point (2^-32 cycles) a_i, b_i with phase_i = code * a_i + b_i (mod 2^32) the
    phase of ``unet.timestep_embedding``'s sinusoid i at t = (gamma - gamma_min) / (gamma_max -
    gamma_min), gamma = code / 2048 - 24."""
    half = config.embedding // 2
    freqs = np.exp(-math.log(10_000.0) * np.arange(half, dtype=np.float64) / (half - 1))
    span = config.gamma_max - config.gamma_min
    per_code = 1000.0 * freqs / (GAMMA_SCALE * span) / (2.0 * np.pi)  # cycles per code
    at_zero = 1000.0 * freqs * (GAMMA_LO - config.gamma_min) / span / (2.0 * np.pi)
    to_fixed = lambda c: (np.round(np.mod(c, 1.0) * 2.0**32).astype(np.uint64) % (1 << 32)).astype(np.uint32)
    return to_fixed(per_code), to_fixed(at_zero)


def _sin_cos(phase: jax.Array, table: jax.Array) -> tuple[jax.Array, jax.Array]:
    """int8 sin and cos of a phase given as an int32 index into the 2^12-entry sine table."""
    mask = (1 << PHASE_BITS) - 1
    quarter = 1 << (PHASE_BITS - 2)
    return ops.lookup(phase & mask, table, 0), ops.lookup((phase + quarter) & mask, table, 0)


def _step_embedding(cfg: VDMConfig, run: _Runner, code: jax.Array) -> tuple[jax.Array, float]:
    """``unet.step_embedding`` of the gamma code: int8 (B, 4E) and its step."""
    if "embedding" not in run.layers:
        a, b = _embedding_phases(cfg)
        run.layers["embedding"] = {"a": a, "b": b, "table": sine_table()}
    emb = run.layers["embedding"]
    phase = jnp.asarray(code, jnp.uint32)[:, None] * jnp.asarray(emb["a"]) + jnp.asarray(emb["b"])
    index = (phase >> (32 - PHASE_BITS)).astype(jnp.int32)
    s, c = _sin_cos(index, jnp.asarray(emb["table"]))
    h = jnp.concatenate([s, c], axis=-1).astype(jnp.int8)  # (B, E), step 1/127
    h = run.linear("Dense_0", h, 1.0 / INT8_MAX, STREAM_STEP, conv=False)
    h, step = run.swish("Dense_0", h, STREAM_STEP)
    h = run.linear("Dense_1", h, step, STREAM_STEP, conv=False)
    return run.to_int8("Dense_1/out", h, STREAM_STEP)


def _fourier(z: jax.Array, exponents: tuple[int, ...], table: jax.Array) -> jax.Array:
    """sin and cos of 2^n 2 pi z (``unet.fourier_features``) for z with ``Z_FRAC`` fraction bits:
    the phase in 2^-12 cycles is (z << n) mod 2^12, exact. int8, step 1/127."""
    z = z.astype(jnp.int32)
    shift = PHASE_BITS - Z_FRAC
    phases = [(z << (n + shift)) if n + shift >= 0 else (z >> -(n + shift)) for n in exponents]
    sines, cosines = zip(*(_sin_cos(p, table) for p in phases))
    return jnp.concatenate([*sines, *cosines], axis=-1).astype(jnp.int8)


def _forward(cfg: VDMConfig, run: _Runner, z: jax.Array, code: jax.Array) -> jax.Array:
    emb, emb_step = _step_embedding(cfg, run, code)
    names = _Names()

    def res_block(x: jax.Array, features: int) -> jax.Array:
        block = names.next("ResBlock")
        a, a_step = run.norm_swish(f"{block}/LayerNorm_0", x)
        first = run.linear(f"{block}/Conv_0", a, a_step, STREAM_STEP)
        # h + Dense(emb): the embedding's projection is added in the stream's step
        proj = run.linear(f"{block}/Dense_0", emb, emb_step, STREAM_STEP, conv=False)
        h = jnp.clip(first + proj[:, None, None, :], -STREAM_MAX, STREAM_MAX)
        a, a_step = run.norm_swish(f"{block}/LayerNorm_1", h)
        h = run.linear(f"{block}/Conv_1", a, a_step, STREAM_STEP)
        if x.shape[-1] != features:
            xq, x_step = run.to_int8(f"{block}/Conv_2/in", x, STREAM_STEP)
            x = run.linear(f"{block}/Conv_2", xq, x_step, STREAM_STEP)
        return jnp.clip(x + h, -STREAM_MAX, STREAM_MAX)

    if "fourier" not in run.layers:
        run.layers["fourier"] = {"table": sine_table()}
    four = _fourier(z, cfg.fourier, jnp.asarray(run.layers["fourier"]["table"]))
    zz = z
    for _ in range(cfg.patch_levels):
        zz, four = _space_to_depth(zz), _space_to_depth(four)
    h = _stem(cfg, run, zz, four, names)

    skips = [h]
    mults = cfg.channel_mults
    for level, mult in enumerate(mults):
        for _ in range(cfg.blocks):
            h = res_block(h, cfg.channels * mult)
            skips.append(h)
        if level < len(mults) - 1:
            conv = names.next("Conv")
            xq, x_step = run.to_int8(f"{conv}/in", _space_to_depth(h), STREAM_STEP)
            h = run.linear(conv, xq, x_step, STREAM_STEP)
            skips.append(h)
    h = res_block(h, h.shape[-1])
    for level, mult in reversed(list(enumerate(mults))):
        for _ in range(cfg.blocks + 1):
            h = res_block(jnp.concatenate([h, skips.pop()], axis=-1), cfg.channels * mult)
        if level > 0:
            conv = names.next("Conv")
            xq, x_step = run.to_int8(f"{conv}/in", h, STREAM_STEP)
            h = run.linear(conv, _upsample(xq), x_step, STREAM_STEP)
    a, a_step = run.norm_swish("LayerNorm_0", h)
    out = run.linear(names.next("Conv"), a, a_step, 2.0**-EPS_FRAC, lo=-(1 << 30), hi=(1 << 30))
    for _ in range(cfg.patch_levels):
        out = _depth_to_space(out)
    return out + (z.astype(jnp.int32) << (EPS_FRAC - Z_FRAC))


class _Names:
    """Flax's automatic layer names (``Conv_0``, ``ResBlock_3``, ...) in the order the float
    network creates them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def next(self, kind: str) -> str:
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        return f"{kind}_{n}"


def _stem(cfg: VDMConfig, run: _Runner, z: jax.Array, four: jax.Array, names: _Names) -> jax.Array:
    """The first 3x3 conv over [z, Fourier features] (folded into patches): z's int16 channels and
    the features' int8 channels through their slices of the kernel, each rescaled to the stream."""
    conv = names.next("Conv")
    if conv not in run.layers:
        p = run._param(conv)
        c_in = z.shape[-1] // 4**cfg.patch_levels  # image channels
        # the float stem's input channels: per folded pixel, z's channels then their features
        idx = np.arange(p["kernel"].shape[2]).reshape(-1, c_in * (1 + 2 * len(cfg.fourier)))
        z_idx, f_idx = idx[:, :c_in].reshape(-1), idx[:, c_in:].reshape(-1)
        kernel = np.asarray(p["kernel"], np.float64)
        wz, sz = _quantise_weight(kernel[:, :, z_idx])
        wf, sf = _quantise_weight(kernel[:, :, f_idx])
        f_acc = sf / INT8_MAX
        run.layers[conv] = {
            "wz": wz, "wf": wf, "bias": np.round(np.asarray(p["bias"]) / STREAM_STEP).astype(np.int32),
            "rz": Requant.of(sz * 2.0**-Z_FRAC / STREAM_STEP), "rf": Requant.of(f_acc / STREAM_STEP),
        }
    layer = run.layers[conv]
    conv_fn = run._conv_fn()
    hz = layer["rz"](ops.int16_conv2d(z, jnp.asarray(layer["wz"]), "SAME"), -STREAM_MAX, STREAM_MAX)
    hf = layer["rf"](conv_fn(four, jnp.asarray(layer["wf"]), "SAME"), -STREAM_MAX, STREAM_MAX)
    return jnp.clip(hz + hf + jnp.asarray(layer["bias"]), -STREAM_MAX, STREAM_MAX)


def to_fixed(z: np.ndarray | jax.Array) -> jax.Array:
    """Float z_t to the int16 input of ``IntegerUNet.eps`` (round to nearest, clamped to |z| < 8)."""
    top = (1 << 15) - 1
    return jnp.clip(jnp.round(jnp.asarray(z, jnp.float32) * 2.0**Z_FRAC), -top, top).astype(jnp.int16)


def gamma_codes(gamma: np.ndarray | jax.Array) -> jax.Array:
    """Noise levels to the coders' 16-bit gamma codes (gamma = code / 2048 - 24)."""
    code = jnp.round((jnp.asarray(gamma, jnp.float32) - GAMMA_LO) * GAMMA_SCALE)
    return jnp.clip(code, 0, (1 << 16) - 1).astype(jnp.int32)


def quantise(config: VDMConfig, params: dict[str, Any], z: np.ndarray, gamma: np.ndarray) -> IntegerUNet:
    """The integer version of the float U-Net ``params["unet"]``: weights to int8 per output
    channel, and every activation scale calibrated on the float latents ``z`` (B, H, W, C) at noise
    levels ``gamma`` (B,), in forward order through the integer network itself."""
    layers: dict[str, Any] = {}
    source = jax.tree.map(lambda a: np.asarray(a, np.float32), params["unet"])
    _forward(config, _Runner(layers, source, calibration=Calibration()), to_fixed(z), gamma_codes(gamma))
    return IntegerUNet(config, layers)
