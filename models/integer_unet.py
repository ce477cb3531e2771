"""The VDM denoiser in integer arithmetic: eps_hat(z_t, gamma_t) as an exact function of integers.

A stream decodes only if the decoder computes the coder's probabilities bit for bit as the encoder
did; float32 networks differ in the last bit between CPUs, backends and XLA releases, and one ulp
is enough to break a lossless stream (DESIGN.md section 7). So the coders run this integer version
of ``unet.UNet``: the same layers, computed with the exact primitives of ``integer_ops`` (Ballé et
al., "Integer networks for data compression with latent-variable models", ICLR 2019, did this for
one entropy-model head; here it is the whole U-Net).

Number formats (every scale is fixed when the model is quantised and stored with it):

- input z_t: int32 fixed point with ``Z_FRAC`` fraction bits (fine enough for the Fourier
  features' phase at the lowest noise level, where sigma ~ 1e-3); the stem's linear path reads it
  rounded to int16 with ``Z16_FRAC``; the noise level: its 16-bit gamma code (gamma = code / 2048
  - 24, the coders' grid);
- every tensor between layers (block inputs and outputs, skips): int32 with a step of its own,
  calibrated so that the largest value seen is ``STREAM_TARGET`` steps (headroom to
  ``STREAM_MAX`` for unseen inputs); adds and concatenations first bring their operands to the
  result's step by ``rescale``;
- convolution and dense inputs: int8 with a per-tensor step; weights: int8 with a per-output-
  channel step; biases int32 in the accumulator's step; accumulators int32 (exact:
  ``integer_ops``' bounds), brought to their output step by ``rescale`` (multiply and shift);
- LayerNorm: ``integer_ops.normalise`` then the learned gain and bias, rescaled to a 12-bit code
  that indexes the swish table (int8 out): nonlinearities are tables;
- Fourier features sin/cos(2^n 2 pi z) (VDM appendix B): the phase is bits of z's fixed point, read
  from an int16 sine table, and the stem convolves them as int16; the step embedding's sinusoids
  take their phase from the gamma code in uint32 fixed point (arithmetic mod 2^32, exact);
- output eps_hat: int32 fixed point with ``EPS_FRAC`` fraction bits.

``quantise`` turns a float checkpoint into an ``IntegerUNet`` (calibrating each activation scale
on data, layer after layer through the integer network itself, so that each scale sees the errors
of the layers before it); ``IntegerUNet.eps`` is the jit-able integer forward. The ARDM's integer
network (``integer_ardm``) shares ``Runner``, ``embedding_mlp``, ``trunk`` and the serialisation
(``layers_to_bytes``), as the float networks share ``unet.trunk``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import serialization

from diffc.models import integer_ops as ops
from diffc.models.configs import ARDMConfig, VDMConfig
from diffc.models.unet import depth_to_space as _depth_to_space
from diffc.models.unet import space_to_depth as _space_to_depth
from diffc.models.unet import upsample as _upsample

Z_FRAC = 20  # fraction bits of the int32 input z_t: |z| < 2^11
Z16_FRAC = 12  # fraction bits of z's int16 copy for the stem's linear path: |z| < 8
STREAM_TARGET = 1 << 24  # steps that the largest calibration value of a tensor spans
STREAM_MAX = (1 << 30) - 1  # every tensor's clamp: a sum of two stays inside int32
EPS_FRAC = 16  # fraction bits of the int32 output eps_hat
NORM_FRAC = 14  # fraction bits of normalise's output
LUT_MAX = (1 << 15) - 1  # the swish table's input code u: [-2^15, 2^15)
LUT_FRAC = 4  # the table holds every 2^4-th code (4097 knots); codes between are interpolated
LUT_STRIDE = 1 << LUT_FRAC
PHASE_BITS = 12  # entries of the sine tables: 2^12 per cycle
INT8_MAX, INT16_MAX = 127, (1 << 15) - 1
ACT_MAX = INT16_MAX  # activations (convolution and dense inputs) are int16
WIDE_MAX = (1 << 23) - 1  # the skip projections' inputs are 24-bit (``Runner.projection``)
GAMMA_LO, GAMMA_SCALE = -24.0, 2048.0  # the coders' gamma grid: gamma = code / 2048 - 24
CLIP_QUANTILE = 1.0  # activation steps cover this quantile of |value| on the calibration data


def _swish(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-x))


def sine_table(amplitude: int) -> np.ndarray:
    """round(amplitude sin(2 pi i / 2^12)): int8 for 127, int16 for 32767."""
    i = np.arange(1 << PHASE_BITS, dtype=np.float64)
    dtype = np.int8 if amplitude <= INT8_MAX else np.int16
    return np.round(amplitude * np.sin(2.0 * np.pi * i / (1 << PHASE_BITS))).astype(dtype)


@dataclass
class Requant:
    """acc (int32) -> ``rescale(acc << gain, multiplier, shift)``: one scale change, per channel or
    not, each channel with its own 15-bit multiplier and shift; ``gain`` left shifts (saturating)
    make room for ratios of 1/2 and above."""

    multiplier: np.ndarray  # int32, (C,) or ()
    shift: np.ndarray  # int32, like multiplier
    gain: int = 0

    @classmethod
    def of(cls, ratio: np.ndarray | float) -> Requant:
        """The multiplier and shift nearest ``ratio`` (per channel) after a common gain that brings
        every ratio below 1/2; ratios below 2^-32 of the largest become 0."""
        ratio = np.asarray(ratio, np.float64)
        gain = max(0, math.ceil(math.log2(float(ratio.max()))) + 1)
        pairs = [ops.multiplier_for(r) if r >= 2.0**-32 else (0, ops.SHIFT_MAX)
                 for r in (ratio / 2.0**gain).reshape(-1)]
        m, shift = (np.array(v, np.int32).reshape(ratio.shape) for v in zip(*pairs))
        return cls(m, shift, gain)

    def __call__(self, acc: jax.Array, lo: int = -STREAM_MAX, hi: int = STREAM_MAX) -> jax.Array:
        if self.gain:
            top = (1 << (31 - self.gain)) - 1
            acc = jnp.clip(acc, -top, top) << self.gain
        return ops.rescale(acc, jnp.asarray(self.multiplier), self.shift, lo, hi)


class Calibration:
    """Chooses each activation step from the values that reach it (eager, on the host)."""

    def __init__(self) -> None:
        self.steps: dict[str, float] = {}

    def step(self, name: str, values: np.ndarray, levels: int, quantile: float = CLIP_QUANTILE) -> float:
        """The real step of ``levels`` codes covering ``quantile`` of |values| (real numbers)."""
        if name not in self.steps:
            a = np.abs(np.asarray(values, np.float64).reshape(-1))
            top = float(np.quantile(a, quantile)) if a.size else 0.0
            self.steps[name] = max(top, 1e-9) / levels
        return self.steps[name]


def _quantise_weight(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and their per-output-channel steps (last axis)."""
    w = np.asarray(w, np.float64)
    top = np.abs(w.reshape(-1, w.shape[-1])).max(axis=0)
    step = np.maximum(top, 1e-12) / INT8_MAX
    return np.clip(np.round(w / step), -INT8_MAX, INT8_MAX).astype(np.int8), step


def _quantise_weight_fine(w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """int8 weights, their per-output-channel steps and an int8 correction in 1/128ths of a step
    (|w / step - coarse| <= 1/2, so |fine| <= 64): w ~ (coarse + fine / 128) step, about 15 bits.
    For the stem, whose int8 rounding alone costs 2% bits/dim on a well-trained vdm-small
    (docs/portability.md): it reads z, and at low noise eps_hat depends on z to 1e-3 of sigma."""
    coarse, step = _quantise_weight(w)
    fine = np.round((np.asarray(w, np.float64) / step - coarse) * 128)
    return coarse, np.clip(fine, -64, 64).astype(np.int8), step


def _real(x: jax.Array, step: float | np.ndarray) -> np.ndarray:
    """The real values of a fixed-point tensor (calibration only)."""
    return np.asarray(x, np.float64) * np.asarray(step, np.float64)


@dataclass
class IntegerUNet:
    """An integer eps_hat(z_t, gamma code): ``layers`` holds every integer array and scale change,
    by the float model's layer names; the forward runs in ``integer_ops`` alone."""

    config: VDMConfig
    layers: dict[str, Any]
    float_path: bool = False  # run convolutions through integer_ops' exact float32 path

    def eps(self, z: jax.Array, code: jax.Array) -> jax.Array:
        """int32 z_t (B, H, W, C) with ``Z_FRAC`` fraction bits and (B,) int32 gamma codes ->
        int32 eps_hat (B, H, W, C) with ``EPS_FRAC`` fraction bits."""
        return _forward(self.config, Runner(self.layers, None, self.float_path), z, code)


class Runner:
    """The forward's view of the model: the stored layers, or (quantising) the float parameters
    from which each layer is made, and each step calibrated, the first time the forward reaches it."""

    def __init__(self, layers: dict[str, Any], source: dict[str, Any] | None, float_path: bool = False,
                 calibration: Calibration | None = None, wide_projections: bool = False) -> None:
        self.layers, self.source, self.float_path = layers, source, float_path
        self.calibration = calibration
        self.wide_projections = wide_projections  # quantising: give skip projections 24-bit inputs

    def conv_fn(self) -> Callable[..., jax.Array]:
        return ops.conv2d_via_float if self.float_path else ops.conv2d

    def _dense_fn(self) -> Callable[..., jax.Array]:
        return ops.dense_via_float if self.float_path else ops.dense

    def param(self, path: str) -> dict[str, np.ndarray]:
        node = self.source
        for part in path.split("/"):
            node = node[part]
        return node

    def stream_step(self, name: str, real: Callable[[], np.ndarray]) -> float:
        """A tensor's calibrated step: its largest value seen spans ``STREAM_TARGET`` steps."""
        return self.calibration.step(name, real(), STREAM_TARGET, quantile=1.0)

    def to_act(self, name: str, x: jax.Array, step: float, top: int = ACT_MAX) -> tuple[jax.Array, float]:
        """Requantise a tensor of step ``step`` to an activation of codes in [-top, top] (int16
        for ``ACT_MAX``, else int32); returns (codes, their step)."""
        if name not in self.layers:
            out = self.calibration.step(name, _real(x, step), top)
            self.layers[name] = {"step": out, "requant": Requant.of(step / out)}
        layer = self.layers[name]
        codes = layer["requant"](x, -top, top)
        return (codes.astype(jnp.int16) if top == ACT_MAX else codes), layer["step"]

    def projection(self, path: str, x: jax.Array, step: float) -> tuple[jax.Array, float]:
        """A residual block's 1x1 skip projection (``unet.ResBlock``'s Conv_2) of the stream x.

        Its input is a concatenation whose parts differ in scale by orders of magnitude: in the
        up path it holds the stem's output, which carries z_t to a fraction of sigma, beside
        features a hundred times larger. One int16 step for all of it cost vdm-small +1.2%
        bits/dim, nearly all at the low-noise end (docs/portability.md), so networks quantised
        with ``wide_projections`` give it 24-bit inputs (``integer_ops.conv2d_parts24``); the
        stored layer says which (its ``top`` part), so older networks compute as they did."""
        stored = self.layers.get(path)
        wide = "top" in stored if stored is not None else self.wide_projections
        xq, xq_step = self.to_act(f"{path}/in", x, step, WIDE_MAX if wide else ACT_MAX)
        return self.linear(path, xq, xq_step)

    def linear(self, path: str, x: jax.Array, x_step: float, out_step: float | None = None, *,
               conv: bool = True) -> tuple[jax.Array, float]:
        """conv (SAME) or dense of an int16 activation ``x`` (step ``x_step``) with the float layer
        ``path``'s kernel and bias, at ``out_step`` (None: calibrated); returns (int32 output, its
        step). The two int8 halves of x are convolved and rescaled apart (``conv2d_parts``); a
        24-bit x (int32, convolutions only) in three parts (``conv2d_parts24``)."""
        if path not in self.layers:
            p = self.param(path)
            w, w_step = _quantise_weight(p["kernel"])
            self.layers[path] = {"w": w, "acc_step": x_step * w_step, "bias": np.asarray(p["bias"], np.float64)}
        layer = self.layers[path]
        w = jnp.asarray(layer["w"])
        if x.dtype == jnp.int32:
            parts = dict(zip(("top", "high", "low"), ops.conv2d_parts24(x, w, "SAME", self.conv_fn())))
        else:
            parts = dict(zip(("high", "low"), ops.conv2d_parts(x, w, "SAME", self.conv_fn()) if conv
                             else ops.dense_parts(x, w, self._dense_fn())))
        weight = {"top": 1 << 16, "high": 1 << 8, "low": 1}  # each part's place in x's fixed point
        if "step" not in layer:
            acc_step, bias = layer.pop("acc_step"), layer.pop("bias")
            if out_step is None:
                out_step = self.stream_step(path, lambda: _real(
                    sum(weight[k] * np.asarray(a, np.float64) for k, a in parts.items()), acc_step) + bias)
            layer.update(step=out_step, b=np.round(bias / out_step).astype(np.int32),
                         **{k: Requant.of(weight[k] * acc_step / out_step) for k in parts})
        if "top" in parts:  # three parts of up to STREAM_MAX each: clamp after every sum
            y = jnp.clip(layer["top"](parts["top"]) + jnp.asarray(layer["b"]), -STREAM_MAX, STREAM_MAX)
            y = jnp.clip(y + layer["high"](parts["high"]), -STREAM_MAX, STREAM_MAX) + layer["low"](parts["low"])
        else:
            y = layer["high"](parts["high"]) + layer["low"](parts["low"]) + jnp.asarray(layer["b"])
        return jnp.clip(y, -STREAM_MAX, STREAM_MAX), layer["step"]

    def restep(self, name: str, x: jax.Array, step: float, out_step: float) -> jax.Array:
        """A tensor of step ``step`` at ``out_step``."""
        if name not in self.layers:
            self.layers[name] = {"requant": Requant.of(step / out_step)}
        return self.layers[name]["requant"](x)

    def join(self, name: str, parts: list[tuple[jax.Array, float]], add: bool) -> tuple[jax.Array, float]:
        """The sum (``add``) or channel concatenation of (tensor, step) pairs, at a calibrated step."""
        real = lambda: sum(_real(x, s) for x, s in parts) if add else np.concatenate(  # noqa: E731
            [_real(x, s).reshape(-1) for x, s in parts])
        if name not in self.layers:
            self.layers[name] = {"step": self.stream_step(name, real)}
        step = self.layers[name]["step"]
        moved = [self.restep(f"{name}/{i}", x, s, step) for i, (x, s) in enumerate(parts)]
        out = jnp.clip(moved[0] + moved[1], -STREAM_MAX, STREAM_MAX) if add else jnp.concatenate(moved, axis=-1)
        return out, step

    def norm_swish(self, path: str, x: jax.Array) -> tuple[jax.Array, float]:
        """swish(LayerNorm(x)) of a tensor (any step: LayerNorm does not see it): int16 codes and
        their step. The learned gain g and bias b go straight onto the swish table's code u:
        u = rescale(sign(g) y, |g| 2^-NORM_FRAC / u_step) + round(b / u_step), per channel."""
        y = ops.normalise(x, NORM_FRAC)  # about (x - mean) / std, NORM_FRAC fraction bits
        if path not in self.layers:
            p = self.param(path)
            gain, bias = np.asarray(p["scale"], np.float64), np.asarray(p["bias"], np.float64)
            u_step = self.calibration.step(path, _real(y, 2.0**-NORM_FRAC) * gain + bias, LUT_MAX)
            self.layers[path] = {
                "sign": np.where(gain < 0, -1, 1).astype(np.int32),
                "requant": Requant.of(np.maximum(np.abs(gain), 1e-12) * 2.0**-NORM_FRAC / u_step),
                "b": np.round(bias / u_step).astype(np.int32), **_swish_table(u_step),
            }
        layer = self.layers[path]
        u = layer["requant"](y * jnp.asarray(layer["sign"])) + jnp.asarray(layer["b"])
        return _interpolate(layer, u), layer["step"]

    def swish(self, name: str, pre: jax.Array, pre_step: float) -> tuple[jax.Array, float]:
        """swish of an int32 tensor of step ``pre_step`` through the table: int16 codes and their step."""
        if name + "/swish" not in self.layers:
            u_step = self.calibration.step(name + "/swish", _real(pre, pre_step), LUT_MAX)
            self.layers[name + "/swish"] = {"requant": Requant.of(pre_step / u_step), **_swish_table(u_step)}
        layer = self.layers[name + "/swish"]
        return _interpolate(layer, layer["requant"](pre)), layer["step"]


def _swish_table(u_step: float) -> dict[str, Any]:
    """swish at every ``LUT_STRIDE``-th code u (u_step apart), as int16 codes of a step that
    spans the table's largest |value| (``_interpolate`` reads it)."""
    knots = np.arange(-LUT_MAX - 1, LUT_MAX + 2, LUT_STRIDE, dtype=np.float64) * u_step
    out = _swish(knots)
    step = max(np.abs(out).max(), 1e-9) / ACT_MAX
    return {"table": np.clip(np.round(out / step), -ACT_MAX, ACT_MAX).astype(np.int32), "step": step}


def _interpolate(layer: dict[str, Any], u: jax.Array) -> jax.Array:
    """The table at code u (clipped to 16 bits), linear between its knots: with i = u >> 4 and
    f = u & 15, T[i] + round((T[i+1] - T[i]) f / 16); |T| <= 2^15, so nothing overflows. int16."""
    u = jnp.clip(u, -LUT_MAX - 1, LUT_MAX)
    table = jnp.asarray(layer["table"])
    i, f = (u >> LUT_FRAC) + (LUT_MAX + 1) // LUT_STRIDE, u & (LUT_STRIDE - 1)
    lo, hi = ops.lookup(i, table, 0), ops.lookup(i + 1, table, 0)
    return (lo + (((hi - lo) * f + LUT_STRIDE // 2) >> LUT_FRAC)).astype(jnp.int16)


def _embedding_phases(config: VDMConfig) -> tuple[np.ndarray, np.ndarray]:
    """uint32 fixed-point (2^-32 cycles) a_i, b_i with phase_i = code * a_i + b_i (mod 2^32) the
    phase of ``unet.timestep_embedding``'s sinusoid i at t = (gamma - gamma_min) / (gamma_max -
    gamma_min), gamma = code / 2048 - 24."""
    half = config.embedding // 2
    freqs = np.exp(-math.log(10_000.0) * np.arange(half, dtype=np.float64) / (half - 1))
    span = config.gamma_max - config.gamma_min
    per_code = 1000.0 * freqs / (GAMMA_SCALE * span) / (2.0 * np.pi)  # cycles per code
    at_zero = 1000.0 * freqs * (GAMMA_LO - config.gamma_min) / span / (2.0 * np.pi)
    to_fixed = lambda c: (np.round(np.mod(c, 1.0) * 2.0**32).astype(np.uint64) % (1 << 32)).astype(np.uint32)  # noqa: E731
    return to_fixed(per_code), to_fixed(at_zero)


def _sin_cos(phase: jax.Array, table: jax.Array) -> tuple[jax.Array, jax.Array]:
    """sin and cos (the table's dtype) of a phase given as an int32 index into a 2^12-entry sine table."""
    mask = (1 << PHASE_BITS) - 1
    quarter = 1 << (PHASE_BITS - 2)
    return ops.lookup(phase & mask, table, 0), ops.lookup((phase + quarter) & mask, table, 0)


def embedding_mlp(run: Runner, index: jax.Array, table: jax.Array) -> tuple[jax.Array, float]:
    """``unet.step_embedding`` from its sinusoids' phases, given as int32 indices (B, E / 2) into the
    2^12-entry sine ``table``: int16 (B, 4E) and its step. The VDM and ARDM networks share it; they
    differ only in how the phase follows from the noise level or the step."""
    s, c = _sin_cos(index, table)
    h = jnp.concatenate([s, c], axis=-1).astype(jnp.int16)  # (B, E), step 1/32767
    h, step = run.linear("Dense_0", h, 1.0 / INT16_MAX, conv=False)
    h, step = run.swish("Dense_0", h, step)
    h, step = run.linear("Dense_1", h, step, conv=False)
    return run.to_act("Dense_1/out", h, step)


def _step_embedding(cfg: VDMConfig, run: Runner, code: jax.Array) -> tuple[jax.Array, float]:
    """``unet.step_embedding`` of the gamma code: int16 (B, 4E) and its step."""
    if "embedding" not in run.layers:
        a, b = _embedding_phases(cfg)
        run.layers["embedding"] = {"a": a, "b": b, "table": sine_table(INT16_MAX)}
    emb = run.layers["embedding"]
    phase = jnp.asarray(code, jnp.uint32)[:, None] * jnp.asarray(emb["a"]) + jnp.asarray(emb["b"])
    index = (phase >> (32 - PHASE_BITS)).astype(jnp.int32)
    return embedding_mlp(run, index, jnp.asarray(emb["table"]))


def _phase(z: jax.Array, n: int) -> jax.Array:
    """round(2^n z) in 2^-12 cycles, mod 2^12 (the caller masks): z's bits, shifted; exact."""
    shift = Z_FRAC - PHASE_BITS - n  # right shift of z's fixed point that leaves the phase
    if shift <= 0:
        return z << -shift
    return ((z >> (shift - 1)) + 1) >> 1


def _fourier(z: jax.Array, exponents: tuple[int, ...], table: jax.Array) -> jax.Array:
    """sin and cos of 2^n 2 pi z (``unet.fourier_features``, same channel order) for int32 z with
    ``Z_FRAC`` fraction bits: int16, step 1/32767."""
    sines, cosines = zip(*(_sin_cos(_phase(z, n), table) for n in exponents))
    return jnp.concatenate([*sines, *cosines], axis=-1).astype(jnp.int16)


def _res_block(run: Runner, names: Names, x: jax.Array, x_step: float, features: int, emb: jax.Array,
               emb_step: float) -> tuple[jax.Array, float]:
    """``unet.ResBlock``: the next block by Flax's naming, its output at a calibrated step."""
    block = names.next("ResBlock")
    a, a_step = run.norm_swish(f"{block}/LayerNorm_0", x)
    first, step = run.linear(f"{block}/Conv_0", a, a_step)
    proj, _ = run.linear(f"{block}/Dense_0", emb, emb_step, step, conv=False)  # in Conv_0's step
    h = jnp.clip(first + proj[:, None, None, :], -STREAM_MAX, STREAM_MAX)
    a, a_step = run.norm_swish(f"{block}/LayerNorm_1", h)
    h, h_step = run.linear(f"{block}/Conv_1", a, a_step)
    if x.shape[-1] != features:
        x, x_step = run.projection(f"{block}/Conv_2", x, x_step)
    return run.join(f"{block}/out", [(x, x_step), (h, h_step)], add=True)


def trunk(cfg: VDMConfig | ARDMConfig, run: Runner, h: jax.Array, step: float, emb: jax.Array, emb_step: float,
          names: Names) -> tuple[jax.Array, float]:
    """``unet.trunk`` after its stem: from the stem's output h (int32, step ``step``) to the
    normalised features, int16 codes and their step. The VDM and ARDM networks share it (their
    stems differ); ``names`` has counted the stem's Conv."""
    skips = [(h, step)]
    mults = cfg.channel_mults
    for level, mult in enumerate(mults):
        for _ in range(cfg.blocks):
            h, step = _res_block(run, names, h, step, cfg.channels * mult, emb, emb_step)
            skips.append((h, step))
        if level < len(mults) - 1:
            conv = names.next("Conv")
            xq, xq_step = run.to_act(f"{conv}/in", _space_to_depth(h), step)
            h, step = run.linear(conv, xq, xq_step)
            skips.append((h, step))
    h, step = _res_block(run, names, h, step, h.shape[-1], emb, emb_step)
    for level, mult in reversed(list(enumerate(mults))):
        for _ in range(cfg.blocks + 1):
            block = f"ResBlock_{names.counts['ResBlock']}"
            h, step = run.join(f"{block}/in", [(h, step), skips.pop()], add=False)
            h, step = _res_block(run, names, h, step, cfg.channels * mult, emb, emb_step)
        if level > 0:
            conv = names.next("Conv")
            xq, xq_step = run.to_act(f"{conv}/in", h, step)
            h, step = run.linear(conv, _upsample(xq), xq_step)
    return run.norm_swish("LayerNorm_0", h)


def _forward(cfg: VDMConfig, run: Runner, z: jax.Array, code: jax.Array) -> jax.Array:
    emb, emb_step = _step_embedding(cfg, run, code)
    names = Names()
    z = jnp.asarray(z, jnp.int32)
    if "fourier" not in run.layers:
        run.layers["fourier"] = {"table": sine_table(INT16_MAX)}
    four = _fourier(z, cfg.fourier, jnp.asarray(run.layers["fourier"]["table"]))
    shift = Z_FRAC - Z16_FRAC
    z16 = jnp.clip(((z >> (shift - 1)) + 1) >> 1, -INT16_MAX, INT16_MAX).astype(jnp.int16)
    zz = z16
    for _ in range(cfg.patch_levels):
        zz, four = _space_to_depth(zz), _space_to_depth(four)
    h, step = _stem(cfg, run, zz, four, names)
    a, a_step = trunk(cfg, run, h, step, emb, emb_step, names)
    out, _ = run.linear(names.next("Conv"), a, a_step, 2.0**-EPS_FRAC)
    for _ in range(cfg.patch_levels):
        out = _depth_to_space(out)
    return out + (z16.astype(jnp.int32) << (EPS_FRAC - Z16_FRAC))


class Names:
    """Flax's automatic layer names (``Conv_0``, ``ResBlock_3``, ...) in the order the float
    network creates them."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def next(self, kind: str) -> str:
        n = self.counts.get(kind, 0)
        self.counts[kind] = n + 1
        return f"{kind}_{n}"


def _stem(cfg: VDMConfig, run: Runner, z: jax.Array, four: jax.Array, names: Names) -> tuple[jax.Array, float]:
    """The first 3x3 conv over [z, Fourier features] (folded into patches): z's and the features'
    int16 channels through their slices of the kernel, in coarse and fine int8 parts
    (``_quantise_weight_fine``), each of the four accumulators brought to the output's step."""
    conv = names.next("Conv")
    if conv not in run.layers:
        p = run.param(conv)
        c_in = z.shape[-1] // 4**cfg.patch_levels  # image channels
        # the float stem's input channels: per folded pixel, z's channels then their features
        idx = np.arange(p["kernel"].shape[2]).reshape(-1, c_in * (1 + 2 * len(cfg.fourier)))
        z_idx, f_idx = idx[:, :c_in].reshape(-1), idx[:, c_in:].reshape(-1)
        kernel = np.asarray(p["kernel"], np.float64)
        wz, wz_fine, sz = _quantise_weight_fine(kernel[:, :, z_idx])
        wf, wf_fine, sf = _quantise_weight_fine(kernel[:, :, f_idx])
        run.layers[conv] = {"wz": wz, "wz_fine": wz_fine, "wf": wf, "wf_fine": wf_fine,
                            "z_step": sz * 2.0**-Z16_FRAC, "f_step": sf / INT16_MAX,
                            "bias": np.asarray(p["bias"], np.float64)}
    layer = run.layers[conv]
    parts = {  # accumulator -> its real step: coarse and fine weights on z and on the features
        "rz": (z, "wz", layer["z_step"]), "rz_fine": (z, "wz_fine", layer["z_step"] / 128),
        "rf": (four, "wf", layer["f_step"]), "rf_fine": (four, "wf_fine", layer["f_step"] / 128),
    }
    accs = {name: ops.int16_conv2d(x, jnp.asarray(layer[w]), "SAME", conv=run.conv_fn())
            for name, (x, w, _) in parts.items()}
    if "step" not in layer:
        real = lambda: sum(_real(accs[n], parts[n][2]) for n in parts) + layer["bias"]  # noqa: E731
        step = run.stream_step(conv, real)
        layer.update(step=step, b=np.round(layer["bias"] / step).astype(np.int32),
                     **{n: Requant.of(parts[n][2] / step) for n in parts})
    h = jnp.clip(jnp.asarray(layer["b"]), -STREAM_MAX, STREAM_MAX)
    for n in parts:  # each sum of two values within STREAM_MAX stays inside int32
        h = jnp.clip(h + layer[n](accs[n]), -STREAM_MAX, STREAM_MAX)
    return h, layer["step"]


def to_fixed(z: np.ndarray | jax.Array) -> jax.Array:
    """Float z_t to the int32 input of ``IntegerUNet.eps`` (round to nearest, clamped to |z| < 2^11)."""
    top = (1 << 31) - (1 << 8)  # float32-representable, below 2^31
    return jnp.clip(jnp.round(jnp.asarray(z, jnp.float32) * 2.0**Z_FRAC), -top, top).astype(jnp.int32)


def gamma_codes(gamma: np.ndarray | jax.Array) -> jax.Array:
    """Noise levels to the coders' 16-bit gamma codes (gamma = code / 2048 - 24)."""
    code = jnp.round((jnp.asarray(gamma, jnp.float32) - GAMMA_LO) * GAMMA_SCALE)
    return jnp.clip(code, 0, (1 << 16) - 1).astype(jnp.int32)


FORMAT = "diffc-integer-unet/3"  # 2: the stem's weights in coarse and fine int8 parts; 3: 24-bit skip projections
READABLE = ("diffc-integer-unet/2", FORMAT)  # a /2 network has no 24-bit layer and computes as it did


def layers_to_bytes(fmt: str, layers: dict[str, Any]) -> bytes:
    """An integer network's layers as msgpack under format name ``fmt``: every array and integer (a
    ``Requant`` as its three fields), so that a decoder rebuilds it without computing anything; the
    real steps that calibration chose ride along as documentation (the forward never reads them)."""
    def plain(node: Any) -> Any:
        if isinstance(node, Requant):
            return {"multiplier": node.multiplier, "shift": node.shift, "gain": node.gain}
        if isinstance(node, dict):
            return {k: plain(v) for k, v in node.items()}
        return node
    return serialization.msgpack_serialize({"format": fmt, "layers": plain(layers)})


def layers_from_bytes(fmt: str | tuple[str, ...], data: bytes) -> dict[str, Any]:
    """The layers ``layers_to_bytes`` wrote under format ``fmt`` (or one of several); ValueError if
    ``data`` is not that."""
    try:
        state = serialization.msgpack_restore(data)
    except Exception as err:  # msgpack raises several unrelated types on bad bytes
        raise ValueError(f"not an integer model: {err}") from None
    formats = (fmt,) if isinstance(fmt, str) else fmt
    if not isinstance(state, dict) or state.get("format") not in formats:
        raise ValueError(f"not an integer model of format {' or '.join(formats)}")

    def typed(node: Any) -> Any:
        if isinstance(node, dict) and set(node) == {"multiplier", "shift", "gain"}:
            return Requant(np.asarray(node["multiplier"], np.int32), np.asarray(node["shift"], np.int32),
                           int(node["gain"]))
        if isinstance(node, dict):
            return {k: typed(v) for k, v in node.items()}
        return node
    return typed(state["layers"])


def to_bytes(net: IntegerUNet) -> bytes:
    """The integer model as msgpack (``layers_to_bytes``, format ``FORMAT``)."""
    return layers_to_bytes(FORMAT, net.layers)


def from_bytes(config: VDMConfig, data: bytes) -> IntegerUNet:
    """The model ``to_bytes`` wrote; ValueError if ``data`` is not one."""
    return IntegerUNet(config, layers_from_bytes(READABLE, data))


def quantise(config: VDMConfig, params: dict[str, Any], z: np.ndarray, gamma: np.ndarray,
             wide_projections: bool = True) -> IntegerUNet:
    """The integer version of the float U-Net ``params["unet"]``: weights to int8 per output
    channel, and every activation step calibrated on the float latents ``z`` (B, H, W, C) at noise
    levels ``gamma`` (B,), in forward order through the integer network itself. Without
    ``wide_projections``, the skip projections read int16 as format 2 networks did."""
    layers: dict[str, Any] = {}
    source = jax.tree.map(lambda a: np.asarray(a, np.float32), params["unet"])
    _forward(config, Runner(layers, source, calibration=Calibration(), wide_projections=wide_projections),
             to_fixed(z), gamma_codes(gamma))
    return IntegerUNet(config, layers)
