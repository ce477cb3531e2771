"""Exact integer primitives for the integer network that feeds the entropy coder.

A stream must decode bit for bit on any machine, backend and JAX version, so every number the
coder reads is computed here with integer operations whose results the operands alone define
(int8/int16/int32 adds, multiplies, shifts, comparisons, integer division, gathers): no float, no
int64 (JAX runs with x64 off). Integer addition is associative, so reductions are exact in any
order once every partial sum fits int32; each docstring gives the bounds that make it fit.

Each primitive has a numpy int64 reference of the same semantics at the end of the module
(``*_ref``); the JAX code never calls them, the tests compare the two bit for bit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from decimal import Decimal, localcontext

import jax
import jax.numpy as jnp
import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
SHIFT_MIN, SHIFT_MAX = 15, 46
CONV_MAX_TAPS = (1 << 17) - 1  # Cin*kh*kw with every |int8 product| <= 2^14 summing below 2^31
INT16_CONV_MAX_TAPS = 511  # Cin*kh*kw with every |int16 * int8 product| <= 2^22 summing below 2^31
FLOAT_EXACT_TAPS = 1 << 10  # Cin*kh*kw per group: sums of products <= 2^14 stay <= 2^24
_DIMS = ("NHWC", "HWIO", "NHWC")
_NARROW_INTS = (np.int8, np.int16, np.int32, np.uint8, np.uint16)


def _as_int32(a: jax.Array | np.ndarray | int, name: str) -> jax.Array:
    """``a`` as int32, refusing dtypes (int64, uint32, float) whose values int32 may not hold."""
    if not isinstance(a, int) and np.dtype(a.dtype) not in _NARROW_INTS:
        raise TypeError(f"{name} must be an integer array of at most 32 bits, got {a.dtype}")
    return jnp.asarray(a, jnp.int32)


def _bit_length(v: jax.Array) -> jax.Array:
    """Bits of non-negative int32 ``v`` (0 for 0), from its count of leading zeros."""
    return 32 - jax.lax.clz(v)


def _same_pads(kh: int, kw: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """XLA's "SAME" padding for stride 1: k - 1 zeros, the odd one after."""
    return ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2)


# --- rescale: multiply by M / 2^shift, round half up, clip ---------------------------------------


def rescale(acc: jax.Array, multiplier: jax.Array | int, shift: int | np.ndarray, lo: int, hi: int) -> jax.Array:
    """clip(floor((acc * M + 2^(shift-1)) / 2^shift), lo, hi): acc * M / 2^shift rounded half up.

    acc: any int32 (shape S); M = ``multiplier``, int32 broadcastable to S, 0 <= M < 2^15;
    15 <= shift <= 46, one int or a host (numpy) integer array broadcastable to S (a shift per
    channel keeps every channel's multiplier at 15 bits); INT32_MIN <= lo <= hi <= INT32_MAX. Returns int32 of shape S.

    Without int64: acc = a1 2^15 + a0 with a0 = acc & (2^15-1) in [0, 2^15), a1 = acc >> 15 in
    [-2^16, 2^16). Then a0 M <= (2^15-1)^2 < 2^30 and |a1 M| <= 2^16 (2^15-1) < 2^31, and
    t = a1 M + (a0 M >> 15) = floor(acc M / 2^15) with |t| <= 2^16 (2^15-1) = 2^31 - 2^16: it fits
    because M < 2^15. With X = acc M = t 2^15 + r, 0 <= r < 2^15:
    floor((X + 2^(s-1)) / 2^s) = floor(X / 2^s) + bit s-1 of X (the remainder mod 2^s is at least
    2^(s-1) exactly when that bit is set); floor(X / 2^s) = t >> (s - 15), and bit s-1 of X is
    bit s-16 of t for s >= 16, bit 14 of r for s = 15. Their sum is the result, which fits
    (|X + 2^(s-1)| / 2^s <= 2^31 - 2^16 + 1/2): no intermediate overflows.
    """
    shifts = np.asarray(shift)
    if shifts.dtype.kind not in "iu" or not np.all((SHIFT_MIN <= shifts) & (shifts <= SHIFT_MAX)):
        raise ValueError(f"shift {shift} outside [{SHIFT_MIN}, {SHIFT_MAX}]")
    if not INT32_MIN <= lo <= hi <= INT32_MAX:
        raise ValueError(f"need INT32_MIN <= lo <= hi <= INT32_MAX, got lo={lo}, hi={hi}")
    acc, m = _as_int32(acc, "acc"), _as_int32(multiplier, "multiplier")
    a0, a1 = acc & 0x7FFF, acc >> 15
    p0 = a0 * m  # [0, 2^30)
    t = a1 * m + (p0 >> 15)  # floor(acc * M / 2^15)
    if shifts.ndim == 0:
        half_bit = (p0 >> 14) & 1 if shift == SHIFT_MIN else (t >> (int(shift) - 16)) & 1
        return jnp.clip((t >> (int(shift) - 15)) + half_bit, lo, hi)
    s = jnp.asarray(shifts, jnp.int32)  # per element (broadcast), e.g. per output channel
    half_bit = jnp.where(s == SHIFT_MIN, (p0 >> 14) & 1, (t >> jnp.maximum(s - 16, 0)) & 1)
    return jnp.clip((t >> (s - 15)) + half_bit, lo, hi)


def multiplier_for(ratio: float) -> tuple[int, int]:
    """(M, shift) with 2^14 <= M < 2^15 and M / 2^shift the nearest such value to ``ratio``.

    Host-side, at model export. M is ratio 2^shift rounded to the nearest integer (ties to even),
    so |M / 2^shift - ratio| <= 2^-(shift+1); a finer grid would need M >= 2^15. The ratios that
    round onto a grid with shift in [15, 46] are [2^-32 - 2^-47, 1 - 2^-16); others raise ValueError.
    """
    if not (math.isfinite(ratio) and ratio > 0):
        raise ValueError(f"ratio must be finite and positive, got {ratio}")
    shift = min(15 - math.frexp(ratio)[1], SHIFT_MAX)  # the finest grid with ratio 2^shift < 2^15
    m = round(math.ldexp(ratio, shift))  # ldexp is exact
    if m == 1 << 15:
        m, shift = 1 << 14, shift - 1
    if not (1 << 14 <= m < 1 << 15 and shift >= SHIFT_MIN):
        raise ValueError(
            f"ratio {ratio} is not M / 2^shift with 2^14 <= M < 2^15 and {SHIFT_MIN} <= shift <= "
            f"{SHIFT_MAX}: representable ratios lie in [2^-32 - 2^-47, 1 - 2^-16)"
        )
    return m, shift


# --- isqrt and normalise (the LayerNorm core) -----------------------------------------------------


def isqrt(n: jax.Array) -> jax.Array:
    """floor(sqrt(n)) for int32 0 <= n < 2^31, by 16 steps of the bit-by-bit (digit) method.

    Step j tries bit j of the root: ``root`` = r 4^(j+1), where r < 2^(15-j) is the root's bits
    above bit j, so trial = root + 4^j = (4r + 1) 4^j <= (2^(17-j) - 3) 4^j <= 2^30 + 2^28 (j = 14;
    r = 0 at j = 15) fits int32, and ``rem`` (n less the square found so far) only decreases.
    """
    rem = _as_int32(n, "n")
    root = jnp.zeros_like(rem)
    for j in range(15, -1, -1):
        trial = root + (1 << (2 * j))
        take = rem >= trial
        rem = jnp.where(take, rem - trial, rem)
        root = jnp.where(take, (root >> 1) + (1 << (2 * j)), root >> 1)
    return root


def normalise(x: jax.Array, frac_bits: int) -> jax.Array:
    """Integer LayerNorm over the last axis: about (x - mean) / std, with ``frac_bits`` fraction bits.

    x: int32 (..., C), 2 <= C <= 256, |x| < 2^31 - 1; 0 <= frac_bits <= 16. Per pixel (the shifts
    are per pixel too, so a pixel of small values keeps every bit whatever its neighbours hold):
      k0 = max(0, bitlength(max |x|) - 22); x0 = x >> k0   (|x0| < 2^22);
      d = x0 - floor(sum x0 / C); m = bitlength(max |d|);
      e = d >> max(0, m - 11)   (11 bits, for the variance): sd = max(1, isqrt(floor(sum e^2 / C) << 8))
        (16 std(e): 4 fraction bits);
      e2 = d >> max(0, m - 18)   (18 bits, for the output); sd2 = sd << (max(0, m - 11) - max(0, m - 18))
        (16 std(e2));
      y = floor((e2 2^(frac_bits+4) + floor(sd2 / 2)) / sd2)   (e2 / std(e2), rounded half up).
    Bounds: |sum x0| < 2^8 2^22 = 2^30; |d| < 2^23; e in [-2^11, 2^11), e^2 <= 2^22, sum e^2 <= 2^30,
    (sum e^2 / C) << 8 <= 2^30, sd <= 2^15; the two shifts differ by at most 7, so sd2 <= 2^22;
    |e2| <= 2^18. y is computed as a long division in two parts so that nothing exceeds int32:
    t = e2 2^12 (|t| <= 2^30), q = floor(t / sd2), r = t - q sd2 in [0, sd2); with R = frac_bits - 8
    > 0, y = q 2^R + floor((r 2^R + floor(sd2 / 2)) / sd2) (exact: e2 2^(frac_bits+4) = q sd2 2^R +
    r 2^R), where r 2^R < 2^30; for R <= 0 the formula is evaluated directly (|e2 2^12| <= 2^30).
    |y| < 2^25 (|y| is about |d| / std(d) 2^frac_bits <= 16 2^frac_bits, and a few units more
    where the floored variance of a tiny spread is 0). The output resolves d to 2^-18 of the
    pixel's largest |d|; the standard deviation is known to about 2^-10. Pixels of a spread of a
    few units are coarse (mean and variance are floored), so give x enough fraction bits.
    """
    if not 2 <= x.shape[-1] <= 256:
        raise ValueError(f"normalise needs 2 <= C <= 256 channels, got {x.shape[-1]}")
    if not 0 <= frac_bits <= 16:
        raise ValueError(f"frac_bits must be in [0, 16], got {frac_bits}")
    x = _as_int32(x, "x")
    c = x.shape[-1]
    top = lambda v: _bit_length(jnp.max(jnp.abs(v), axis=-1, keepdims=True))  # noqa: E731
    x0 = x >> jnp.maximum(0, top(x) - 22)
    d = x0 - jnp.floor_divide(jnp.sum(x0, axis=-1, keepdims=True), c)  # (..., C)
    m = top(d)  # (..., 1)
    k, k2 = jnp.maximum(0, m - 11), jnp.maximum(0, m - 18)
    e = d >> k
    sd = jnp.maximum(1, isqrt(jnp.floor_divide(jnp.sum(e * e, axis=-1, keepdims=True), c) << 8))
    sd2 = sd << (k - k2)
    e2, rest = d >> k2, frac_bits - 8
    if rest <= 0:
        return jnp.floor_divide(e2 * (1 << (frac_bits + 4)) + (sd2 >> 1), sd2)
    q = jnp.floor_divide(e2 << 12, sd2)
    r = (e2 << 12) - q * sd2
    return (q << rest) + jnp.floor_divide((r << rest) + (sd2 >> 1), sd2)


# --- lookup tables ---------------------------------------------------------------------------------


SOFTMAX_FRAC = 8  # the exp table's step: 2^-8 nats
MASS_BITS = 30  # a row's top value has mass 2^30
EXP_LEN = 22 << SOFTMAX_FRAC  # 2^30 exp(-22) < 1/2: further below the top, mass 0


@functools.cache
def exp_table() -> np.ndarray:
    """(EXP_LEN,) int32 round(2^30 exp(-i 2^-8)): a value's mass by its logit's distance i below
    the row's top, in 2^-8 nats: the integer softmax of the ARDM heads and of the exact pixel
    decoder. decimal's exp is correctly rounded, so every machine builds it alike."""
    with localcontext() as ctx:
        ctx.prec = 40
        top = Decimal(1 << MASS_BITS)
        values = [int((top * (Decimal(-i) / (1 << SOFTMAX_FRAC)).exp()).to_integral_value())
                  for i in range(EXP_LEN)]
    return np.array(values, np.int32)


def lookup(x: jax.Array, table: jax.Array, offset: int) -> jax.Array:
    """table[clip(x + offset, 0, len(table) - 1)]: an exact gather for nonlinearities and sin/cos.

    x: int8/int16/int32, any shape; table: 1-D int8/int16/int32. x is clipped before the offset is
    added, so no int32 overflows for any x. Returns the table's dtype, x's shape.
    """
    if table.ndim != 1 or np.dtype(table.dtype) not in (np.int8, np.int16, np.int32):
        raise TypeError(f"table must be 1-D int8/int16/int32, got {table.dtype}{table.shape}")
    top = table.shape[0] - 1 - offset
    if not INT32_MIN <= -offset <= top <= INT32_MAX:
        raise ValueError(f"offset {offset} puts the table's index range outside int32")
    return jnp.asarray(table)[jnp.clip(_as_int32(x, "x"), -offset, top) + offset]


# --- convolutions and dense layers -----------------------------------------------------------------


def _check_int8(x: jax.Array, w: jax.Array, taps: int, max_taps: int, x_dtype: type = jnp.int8) -> None:
    """Refuse operand types the convolution is not exact for, and kernels whose sums could overflow."""
    if x.dtype != x_dtype or w.dtype != jnp.int8:
        raise TypeError(f"need {np.dtype(x_dtype)} inputs and int8 weights, got {x.dtype} and {w.dtype}")
    if taps > max_taps:
        raise ValueError(f"Cin*kh*kw = {taps} exceeds {max_taps}: the int32 accumulator could overflow")


def _conv(x: jax.Array, w: jax.Array, padding: str, out: type,
          precision: jax.lax.Precision | None = None) -> jax.Array:
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), padding, dimension_numbers=_DIMS,
        precision=precision, preferred_element_type=out,
    )


def _dense(x: jax.Array, w: jax.Array, out: type, precision: jax.lax.Precision | None = None) -> jax.Array:
    contract = (((x.ndim - 1,), (0,)), ((), ()))
    return jax.lax.dot_general(x, w, contract, precision=precision, preferred_element_type=out)


def conv2d(x: jax.Array, w: jax.Array, padding: str) -> jax.Array:
    """Stride-1 convolution, int8 x (B, H, W, Cin) with int8 w (kh, kw, Cin, Cout) -> int32.

    ``padding`` "SAME" or "VALID". Exact while Cin kh kw <= CONV_MAX_TAPS = 2^17 - 1: every
    product is at most 128^2 = 2^14 in magnitude, so every partial sum, in any order, is below 2^31.
    """
    _check_int8(x, w, math.prod(w.shape[:3]), CONV_MAX_TAPS)
    return _conv(x, w, padding, jnp.int32)


def dense(x: jax.Array, w: jax.Array) -> jax.Array:
    """int8 x (..., Cin) @ int8 w (Cin, Cout) -> int32 (..., Cout); exact while Cin <= CONV_MAX_TAPS."""
    _check_int8(x, w, w.shape[0], CONV_MAX_TAPS)
    return _dense(x, w, jnp.int32)


def _float_groups(op: Callable[[jax.Array, jax.Array], jax.Array], x: jax.Array, w: jax.Array,
                  taps_per_channel: int) -> jax.Array:
    """Sum over groups of input channels of op(x group, w group) run in float32, each exact."""
    group = FLOAT_EXACT_TAPS // taps_per_channel
    if group == 0:
        raise ValueError(f"a {taps_per_channel}-tap kernel exceeds {FLOAT_EXACT_TAPS} taps per channel")
    total = None
    for start in range(0, x.shape[-1], group):
        part = op(x[..., start:start + group].astype(jnp.float32),
                  w[..., start:start + group, :].astype(jnp.float32))
        part = jnp.round(part).astype(jnp.int32)  # already an integer: see conv2d_via_float
        total = part if total is None else total + part
    return total


def conv2d_via_float(x: jax.Array, w: jax.Array, padding: str) -> jax.Array:
    """``conv2d`` computed in float32, for backends without int8 convolution: identical results.

    Input channels go in groups of g = FLOAT_EXACT_TAPS // (kh kw), so g kh kw <= 2^10. Each
    product of two int8 is an integer of magnitude <= 2^14, and any partial sum of a group, in any
    order or tree (FMA included), is an integer of magnitude <= 2^10 2^14 = 2^24: float32 holds
    every such integer, so no addition rounds and each group's result is exact whatever the
    backend's summation order (provided it sums products, as direct and GEMM algorithms do;
    Winograd or FFT convolutions would not be exact). Precision HIGHEST keeps TF32/bf16 out.
    Each group is converted to int32 (rounded, a no-op on an integer, so that truncation could not
    turn a value a hair below an integer into the one below) and the groups are added in int32,
    exact under conv2d's bound.
    """
    _check_int8(x, w, math.prod(w.shape[:3]), CONV_MAX_TAPS)
    op = lambda xg, wg: _conv(xg, wg, padding, jnp.float32, jax.lax.Precision.HIGHEST)  # noqa: E731
    return _float_groups(op, x, w, w.shape[0] * w.shape[1])


def dense_via_float(x: jax.Array, w: jax.Array) -> jax.Array:
    """``dense`` computed in float32 groups of 2^10 input channels: identical results (see
    ``conv2d_via_float``)."""
    _check_int8(x, w, w.shape[0], CONV_MAX_TAPS)
    op = lambda xg, wg: _dense(xg, wg, jnp.float32, jax.lax.Precision.HIGHEST)  # noqa: E731
    return _float_groups(op, x, w, 1)


def _split16(x16: jax.Array) -> tuple[jax.Array, jax.Array]:
    """int16 x = 256 hi + lo + 128 with hi = x >> 8 in [-128, 127] and lo = (x & 255) - 128 in
    [-128, 127]: two int8 halves."""
    return (x16 >> 8).astype(jnp.int8), ((x16 & 255) - 128).astype(jnp.int8)


def conv2d_parts(x16: jax.Array, w: jax.Array, padding: str,
                 conv: Callable[[jax.Array, jax.Array, str], jax.Array] = conv2d) -> tuple[jax.Array, jax.Array]:
    """Stride-1 convolution of int16 x (B, H, W, Cin) with int8 w (kh, kw, Cin, Cout) as two int32
    parts (A, B) with conv(x) = 256 A + B exactly: int16 activations on int8 convolutions.

    With x = 256 hi + lo + 128 (``_split16``), A = conv(hi) and B = conv(lo) + 128 sum(w), each an
    int8 convolution (``conv``: ``conv2d`` or ``conv2d_via_float``, identical results). "SAME" pads
    x with zeros first (hi = 0, lo = -128 there), so every tap of the VALID convolutions lies in
    the padded image and the last term is the whole kernel sum per output channel. Any int16 x;
    exact while Cin kh kw <= CONV_MAX_TAPS: |A| <= 2^14 taps, |B| <= 2^15 taps < 2^31 for taps
    <= 2^16 (and A's bound is ``conv2d``'s). The parts are rescaled separately, so a layer of any
    width takes 16-bit inputs.
    """
    kh, kw = w.shape[:2]
    _check_int8(x16, w, kh * kw * w.shape[2], CONV_MAX_TAPS >> 1, jnp.int16)
    if padding not in ("SAME", "VALID"):
        raise ValueError(f'padding must be "SAME" or "VALID", got {padding!r}')
    if padding == "SAME":
        x16 = jnp.pad(x16, ((0, 0), *_same_pads(kh, kw), (0, 0)))
    hi, lo = _split16(x16)
    kernel_sum = jnp.sum(w, axis=(0, 1, 2), dtype=jnp.int32)  # (Cout,)
    return conv(hi, w, "VALID"), conv(lo, w, "VALID") + 128 * kernel_sum


def conv2d_parts24(x24: jax.Array, w: jax.Array, padding: str,
                   conv: Callable[[jax.Array, jax.Array, str], jax.Array] = conv2d
                   ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Stride-1 convolution of 24-bit x (int32, |x| < 2^23) with int8 w as three int32 parts
    (A, B, C) with conv(x) = 2^16 A + 2^8 B + C exactly: for the layers whose inputs int16 cannot
    resolve (docs/portability.md).

    x = 256 x16 + lo + 128 with x16 = x >> 8 (int16) and lo = (x & 255) - 128 (int8); (A, B) =
    ``conv2d_parts(x16)`` and C = conv(lo) + 128 sum(w). "SAME" pads x with zeros first, as in
    ``conv2d_parts``. Exact while Cin kh kw <= CONV_MAX_TAPS / 2 (the bounds of ``conv2d_parts``;
    |C| <= 2^15 taps likewise).
    """
    kh, kw = w.shape[:2]
    x24 = _as_int32(x24, "x")
    if w.dtype != jnp.int8:
        raise TypeError(f"need int8 weights, got {w.dtype}")
    if kh * kw * w.shape[2] > CONV_MAX_TAPS >> 1:
        raise ValueError(f"Cin*kh*kw = {kh * kw * w.shape[2]} exceeds {CONV_MAX_TAPS >> 1}: the int32 accumulator could overflow")
    if padding not in ("SAME", "VALID"):
        raise ValueError(f'padding must be "SAME" or "VALID", got {padding!r}')
    if padding == "SAME":
        x24 = jnp.pad(x24, ((0, 0), *_same_pads(kh, kw), (0, 0)))
    x16, lo = (x24 >> 8).astype(jnp.int16), ((x24 & 255) - 128).astype(jnp.int8)
    high, mid = conv2d_parts(x16, w, "VALID", conv)
    return high, mid, conv(lo, w, "VALID") + 128 * jnp.sum(w, axis=(0, 1, 2), dtype=jnp.int32)


def dense_parts(x16: jax.Array, w: jax.Array,
                dense_fn: Callable[[jax.Array, jax.Array], jax.Array] = dense) -> tuple[jax.Array, jax.Array]:
    """int16 x (..., Cin) @ int8 w (Cin, Cout) as parts (A, B) with x @ w = 256 A + B exactly
    (``conv2d_parts``' split); exact while Cin <= CONV_MAX_TAPS / 2."""
    _check_int8(x16, w, w.shape[0], CONV_MAX_TAPS >> 1, jnp.int16)
    hi, lo = _split16(x16)
    return dense_fn(hi, w), dense_fn(lo, w) + 128 * jnp.sum(w, axis=0, dtype=jnp.int32)


def int16_conv2d(x16: jax.Array, w: jax.Array, padding: str,
                 conv: Callable[[jax.Array, jax.Array, str], jax.Array] = conv2d) -> jax.Array:
    """Stride-1 convolution of int16 x (B, H, W, Cin) with int8 w (kh, kw, Cin, Cout) -> int32
    in one tensor: 256 A + B of ``conv2d_parts``, for first layers of few input channels.

    Exact while Cin kh kw <= INT16_CONV_MAX_TAPS = 511: |x w| <= 2^15 2^7 = 2^22 per tap, and B
    (which is conv(lo + 128), |(lo + 128) w| < 2^15 per tap) plus 256 A is conv(x), so every
    result and intermediate is at most 511 2^22 < 2^31.
    """
    _check_int8(x16, w, math.prod(w.shape[:3]), INT16_CONV_MAX_TAPS, jnp.int16)
    high, low = conv2d_parts(x16, w, padding, conv)
    return low + 256 * high


# --- references: numpy int64, the semantics above written directly -----------------------------


def rescale_ref(acc: np.ndarray, multiplier: np.ndarray | int, shift: int | np.ndarray, lo: int, hi: int) -> np.ndarray:
    """clip(floor((acc M + 2^(shift-1)) / 2^shift), lo, hi) in int64 (|acc M| < 2^46)."""
    product = np.asarray(acc, np.int64) * np.asarray(multiplier, np.int64)
    s = np.asarray(shift, np.int64)
    return np.clip((product + (np.int64(1) << (s - 1))) >> s, lo, hi)


def isqrt_ref(n: np.ndarray) -> np.ndarray:
    """floor(sqrt(n)) by Python's math.isqrt."""
    return np.vectorize(math.isqrt, otypes=[np.int64])(np.asarray(n, np.int64))


def normalise_ref(x: np.ndarray, frac_bits: int) -> np.ndarray:
    """``normalise``'s steps in int64."""
    x = np.asarray(x, np.int64)
    c = x.shape[-1]
    top = lambda v: np.vectorize(int.bit_length, otypes=[np.int64])(np.abs(v).max(-1, keepdims=True))  # noqa: E731
    x0 = x >> np.maximum(0, top(x) - 22)
    d = x0 - x0.sum(-1, keepdims=True) // c
    m = top(d)
    k, k2 = np.maximum(0, m - 11), np.maximum(0, m - 18)
    e = d >> k
    sd = np.maximum(1, isqrt_ref(((e * e).sum(-1, keepdims=True) // c) << 8))
    sd2 = sd << (k - k2)
    return ((d >> k2) * (1 << (frac_bits + 4)) + sd2 // 2) // sd2


def lookup_ref(x: np.ndarray, table: np.ndarray, offset: int) -> np.ndarray:
    """table[clip(x + offset, 0, len(table) - 1)] in int64 indices."""
    table = np.asarray(table)
    return table[np.clip(np.asarray(x, np.int64) + offset, 0, len(table) - 1)]


def conv2d_ref(x: np.ndarray, w: np.ndarray, padding: str) -> np.ndarray:
    """Stride-1 convolution of any integer x (B, H, W, Cin), w (kh, kw, Cin, Cout) in int64."""
    x, w = np.asarray(x, np.int64), np.asarray(w, np.int64)
    kh, kw = w.shape[:2]
    if padding == "SAME":
        x = np.pad(x, ((0, 0), *_same_pads(kh, kw), (0, 0)))
    h, wd = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    return sum(
        np.einsum("bhwc,co->bhwo", x[:, i:i + h, j:j + wd], w[i, j])
        for i in range(kh) for j in range(kw)
    )


def dense_ref(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """x (..., Cin) @ w (Cin, Cout) in int64."""
    return np.asarray(x, np.int64) @ np.asarray(w, np.int64)
