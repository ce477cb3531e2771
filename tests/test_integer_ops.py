"""The exact integer primitives (``diffc.models.integer_ops``) equal their numpy int64 references
bit for bit, eagerly and under jit, over their full input ranges and at the adversarial points:
int32 extremes, rounding ties, zero variance, a single huge channel, image borders."""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from diffc.models import integer_ops as ops

I32 = (ops.INT32_MIN, ops.INT32_MAX)
X_MAX = (1 << 31) - 2  # normalise's input bound: |x| < 2^31 - 1
SHIFTS = range(ops.SHIFT_MIN, ops.SHIFT_MAX + 1)


def check(fn, expected, *arrays, dtype=jnp.int32, **static) -> None:
    """fn(*arrays, **static) equals ``expected`` exactly and has ``dtype``, eagerly and under jit."""
    f = functools.partial(fn, **static)
    for got in (f(*arrays), jax.jit(f)(*arrays)):
        assert got.dtype == dtype
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def int8(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.integers(-128, 128, shape).astype(np.int8)


# --- rescale -----------------------------------------------------------------------------------------


def test_rescale_rounds_half_up_by_hand():
    """Values worked by hand: 3 * 2^14 / 2^15 = 1.5 -> 2, -1.5 -> -1, 2.5 -> 3, -2.5 -> -2."""
    acc = np.array([3, -3, 5, -5, 1, -1, 0], np.int32)
    np.testing.assert_array_equal(ops.rescale(acc, 1 << 14, 15, *I32), [2, -1, 3, -2, 1, 0, 0])
    np.testing.assert_array_equal(ops.rescale(acc, 1 << 14, 15, -1, 2), [2, -1, 2, -1, 1, 0, 0])


@pytest.mark.parametrize("shift", [15, 16, 17, 30, 31, 46])
def test_rescale_random_full_range(shift):
    rng = np.random.default_rng(shift)
    acc = rng.integers(*I32, (64, 8), endpoint=True, dtype=np.int64).astype(np.int32)
    m = rng.integers(0, 1 << 15, (8,)).astype(np.int32)  # per output channel
    for lo, hi in (I32, (-128, 127)):
        check(ops.rescale, ops.rescale_ref(acc, m, shift, lo, hi), acc, m, shift=shift, lo=lo, hi=hi)


def test_rescale_extremes_every_shift():
    """acc at the int32 ends (-2^31 included) times M at 0, 1, 2^14 and 2^15 - 1, every shift."""
    acc = np.array([ops.INT32_MIN, ops.INT32_MIN + 1, -(1 << 30), -1, 0, 1, 1 << 30, ops.INT32_MAX])
    m = np.array([0, 1, 1 << 14, (1 << 15) - 1])
    acc, m = (a.astype(np.int32) for a in np.broadcast_arrays(acc[:, None], m[None, :]))
    for shift in SHIFTS:
        np.testing.assert_array_equal(
            ops.rescale(acc, m, shift, *I32), ops.rescale_ref(acc, m, shift, *I32), err_msg=f"shift {shift}"
        )
    extreme = ops.rescale(acc, m, 15, *I32)
    assert int(extreme.max()) == (1 << 31) - (1 << 16) - 1 and int(extreme.min()) == -(1 << 31) + (1 << 16)
    check(ops.rescale, ops.rescale_ref(acc, m, 15, *I32), acc, m, shift=15, lo=I32[0], hi=I32[1])


def ties(shift: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(acc, M) with acc M an odd multiple of 2^(shift-1), both signs: exact .5 after scaling.
    M = odd 2^z, so acc = odd' 2^(shift-1-z), which int32 holds for shift - 1 - z <= 30."""
    accs, ms = [], []
    for z in range(15):  # M's trailing zeros
        a = shift - 1 - z
        for _ in range(4) if 0 <= a <= 30 else ():
            m = (2 * int(rng.integers(0, 1 << (14 - z))) + 1) << z
            odd = 2 * int(rng.integers(0, 1 << (30 - a))) + 1
            accs += [odd << a, -(odd << a)]
            ms += [m, m]
    if not accs:  # shift 46: only -2^31 2^14 = -2^45 is such a multiple below 2^46
        accs, ms = [ops.INT32_MIN], [1 << 14]
    return np.array(accs, np.int32), np.array(ms, np.int32)


@pytest.mark.parametrize("jit_shift", [15, 31])
def test_rescale_ties_round_up_both_signs(jit_shift):
    rng = np.random.default_rng(jit_shift)
    for shift in SHIFTS:
        acc, m = ties(shift, rng)
        product = acc.astype(np.int64) * m
        assert np.all(product % (1 << shift) == 1 << (shift - 1))  # really ties
        expected = (product >> shift) + 1  # half up: floor + 1
        np.testing.assert_array_equal(ops.rescale_ref(acc, m, shift, *I32), expected)
        if shift == jit_shift:
            check(ops.rescale, expected, acc, m, shift=shift, lo=I32[0], hi=I32[1])
        else:
            np.testing.assert_array_equal(ops.rescale(acc, m, shift, *I32), expected, err_msg=f"shift {shift}")


@settings(max_examples=60, deadline=None)
@given(
    acc=hnp.arrays(np.int32, st.integers(1, 16)),
    m=st.integers(0, (1 << 15) - 1),
    shift=st.integers(ops.SHIFT_MIN, ops.SHIFT_MAX),
    bounds=st.lists(st.integers(*I32), min_size=2, max_size=2).map(sorted),
)
def test_rescale_property(acc, m, shift, bounds):
    np.testing.assert_array_equal(ops.rescale(acc, m, shift, *bounds), ops.rescale_ref(acc, m, shift, *bounds))


def test_rescale_per_channel_shifts():
    """A shift per channel (every shift in [15, 46] once, on the last axis) equals the reference,
    under jit too, over the full int32 range and every multiplier size."""
    rng = np.random.default_rng(5)
    shifts = np.arange(ops.SHIFT_MIN, ops.SHIFT_MAX + 1)
    acc = np.concatenate([rng.integers(*I32, (50, shifts.size), endpoint=True),
                          np.full((1, shifts.size), I32[0]), np.full((1, shifts.size), I32[1])]).astype(np.int32)
    m = rng.integers(0, 1 << 15, shifts.size).astype(np.int32)
    check(ops.rescale, ops.rescale_ref(acc, m, shifts, *I32), acc, m, shift=shifts, lo=I32[0], hi=I32[1])
    with pytest.raises(ValueError, match="outside"):
        ops.rescale(acc, m, shifts - 1, *I32)


def test_rescale_refuses_bad_arguments():
    acc = np.zeros(3, np.int32)
    with pytest.raises(ValueError, match="shift 14"):
        ops.rescale(acc, 1, 14, *I32)
    with pytest.raises(ValueError, match="lo <= hi"):
        ops.rescale(acc, 1, 20, 5, 4)
    with pytest.raises(TypeError, match="int64"):
        ops.rescale(acc.astype(np.int64), 1, 20, *I32)


def test_multiplier_for_known_values():
    assert ops.multiplier_for(0.5) == (1 << 14, 15)
    assert ops.multiplier_for(0.75) == (3 << 13, 15)
    assert ops.multiplier_for(2.0**-32) == (1 << 14, 46)
    assert ops.multiplier_for(2.0**-32 - 2.0**-47) == (1 << 14, 46)  # the lowest ratio: a tie, to even
    assert ops.multiplier_for(1 - 2.0**-15) == ((1 << 15) - 1, 15)
    assert ops.multiplier_for(1 / 3) == (21845, 16)  # 2^16 / 3 = 21845.33


@pytest.mark.parametrize("ratio", [0.0, -0.5, 1.0, 1 - 2.0**-16, 3.0, 2.0**-32 - 2.0**-46, math.nan, math.inf])
def test_multiplier_for_refuses_unrepresentable(ratio):
    with pytest.raises(ValueError, match="ratio"):
        ops.multiplier_for(ratio)


@settings(max_examples=200, deadline=None)
@given(st.floats(2.0**-32 - 2.0**-47, 1 - 2.0**-16, exclude_max=True))
def test_multiplier_for_is_nearest(ratio):
    m, shift = ops.multiplier_for(ratio)
    assert 1 << 14 <= m < 1 << 15 and ops.SHIFT_MIN <= shift <= ops.SHIFT_MAX
    assert abs(m / 2.0**shift - ratio) <= 2.0 ** -(shift + 1)


# --- isqrt ---------------------------------------------------------------------------------------------


def test_isqrt_squares_neighbours_and_random():
    """Every perfect square below 2^31, every square minus one, 2^31 - 1 and random values."""
    k = np.arange(46341, dtype=np.int64)  # 46340^2 < 2^31 <= 46341^2
    n = np.concatenate([k * k, k[1:] * k[1:] - 1, [ops.INT32_MAX],
                        np.random.default_rng(0).integers(0, 1 << 31, 20000)]).astype(np.int32)
    expected = ops.isqrt_ref(n)
    np.testing.assert_array_equal(expected[: 2 * 46341 - 1], np.concatenate([k, k[1:] - 1]))
    check(ops.isqrt, expected, n)


# --- normalise -------------------------------------------------------------------------------------------


def test_normalise_by_hand():
    """x = (-2, -2, 2, 2): std 2, so y = (-1, -1, 1, 1) in 4 fraction bits; all equal: y = 0."""
    x = np.array([[-2, -2, 2, 2], [7, 7, 7, 7]], np.int32)
    np.testing.assert_array_equal(ops.normalise(x, 4), [[-16, -16, 16, 16], [0, 0, 0, 0]])


@pytest.mark.parametrize("c", [2, 3, 17, 256])
def test_normalise_random_full_range(c):
    rng = np.random.default_rng(c)
    x = np.concatenate([
        rng.integers(-X_MAX, X_MAX, (3, 5, c), endpoint=True),  # full range
        rng.integers(-X_MAX, X_MAX, (3, 1, 1)) + rng.integers(-300, 300, (3, 5, c)),  # small spread
    ]).astype(np.int32)
    for frac_bits in (0, 8, 9, 16):
        check(ops.normalise, ops.normalise_ref(x, frac_bits), x, frac_bits=frac_bits)


@pytest.mark.parametrize("c", [2, 256])
def test_normalise_adversarial(c):
    """Zero variance at the bounds, one huge channel, alternating extremes (largest d and sum e^2),
    negative sums that floor division rounds away from zero."""
    rows = [np.full(c, v) for v in (X_MAX, -X_MAX, 0, -1)]
    rows += [np.where(np.arange(c) == 0, X_MAX, v) for v in (-X_MAX, 0)]
    rows += [np.where(np.arange(c) == c - 1, -X_MAX, X_MAX)]
    rows += [np.where(np.arange(c) % 2 == 0, X_MAX, -X_MAX), np.where(np.arange(c) % 2 == 0, -X_MAX, X_MAX)]
    rows += [np.where(np.arange(c) == 0, -1, 0), np.where(np.arange(c) == 0, -2047, 0), np.arange(c) - 4096]
    x = np.stack(rows).astype(np.int32)
    for frac_bits in (0, 3, 8, 16):
        expected = ops.normalise_ref(x, frac_bits)
        check(ops.normalise, expected, x, frac_bits=frac_bits)
        assert np.all(expected[:4] == 0)  # zero variance gives zero


@pytest.mark.parametrize("spread", [3e3, 5e4, 1e8])
def test_normalise_approximates_layer_norm(spread):
    """With a spread of thousands of units or more the result is (x - mean) / std to within about
    one output step, the floored mean's unit and 0.2%, and pixels of small values next to pixels of large ones keep
    that accuracy (the shifts are per pixel)."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, spread, (200, 32)) * np.where(np.arange(200) % 2 == 0, 1.0, 1e4 if spread < 1e5 else 1)[:, None]
    x = np.clip(x, -X_MAX, X_MAX).astype(np.int32)
    exact = (x - x.mean(-1, keepdims=True)) / x.std(-1, keepdims=True)
    for frac_bits in (8, 14):
        got = np.asarray(ops.normalise(x, frac_bits)) / 2**frac_bits
        np.testing.assert_allclose(got, exact, atol=1.5 * 2**-frac_bits + 2 / spread, rtol=0.002)


@settings(max_examples=60, deadline=None)
@given(
    x=hnp.arrays(np.int32, st.tuples(st.just(2), st.sampled_from([2, 5, 64, 256])),  # few shapes: few compiles
                 elements=st.integers(-X_MAX, X_MAX)),
    frac_bits=st.integers(0, 16),
)
def test_normalise_property(x, frac_bits):
    np.testing.assert_array_equal(ops.normalise(x, frac_bits), ops.normalise_ref(x, frac_bits))


# --- lookup ---------------------------------------------------------------------------------------------------


def test_lookup_int8_codes_through_a_swish_table():
    table = np.round(np.arange(-128, 128) / 16 / (1 + np.exp(-np.arange(-128, 128) / 16)) * 16).astype(np.int8)
    x = np.arange(-128, 128, dtype=np.int8).reshape(16, 16)
    check(ops.lookup, ops.lookup_ref(x, table, 128), x, jnp.asarray(table), offset=128, dtype=jnp.int8)
    np.testing.assert_array_equal(ops.lookup(x, table, 128), table.reshape(16, 16))  # x + 128 indexes


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
@pytest.mark.parametrize("offset", [0, 37, -5, (1 << 31) - 1])
def test_lookup_clips_any_int32(dtype, offset):
    rng = np.random.default_rng(offset % 1000)
    table = rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max, 100).astype(dtype)
    x = np.concatenate([rng.integers(-10 - offset, 110 - offset, 200), [*I32, -offset, 99 - offset]])
    x = np.clip(x, *I32).astype(np.int32)
    check(ops.lookup, ops.lookup_ref(x, table, offset), x, jnp.asarray(table), offset=offset, dtype=dtype)


# --- conv2d, dense and the float path ---------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [(3, 3), (1, 1), (2, 2), (1, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_equals_reference_and_float_path(kernel, padding):
    rng = np.random.default_rng(kernel[0] * 10 + kernel[1])
    x, w = int8(rng, (2, 5, 6, 5)), int8(rng, (*kernel, 5, 3))
    expected = ops.conv2d_ref(x, w, padding)
    check(ops.conv2d, expected, x, w, padding=padding)
    check(ops.conv2d_via_float, expected, x, w, padding=padding)


def test_conv2d_cin_256_extremes_and_random():
    """Cin = 256, 3x3 (3 float groups): all -128 gives 2304 * 2^14 > 2^24 at interior pixels."""
    rng = np.random.default_rng(2)
    x = np.concatenate([np.full((1, 4, 4, 256), -128), int8(rng, (1, 4, 4, 256))]).astype(np.int8)
    w = np.concatenate([np.full((3, 3, 256, 1), -128), int8(rng, (3, 3, 256, 3))], axis=-1).astype(np.int8)
    expected = ops.conv2d_ref(x, w, "SAME")
    assert expected[0, 1, 1, 0] == 2304 << 14
    check(ops.conv2d, expected, x, w, padding="SAME")
    check(ops.conv2d_via_float, expected, x, w, padding="SAME")


@pytest.mark.parametrize("cin", [7, 1024, 3000])
def test_dense_equals_reference_and_float_path(cin):
    rng = np.random.default_rng(cin)
    x, w = int8(rng, (2, 3, cin)), int8(rng, (cin, 4))
    x[0, 0], w[:, 0] = -128, -128  # the largest sum, cin * 2^14
    expected = ops.dense_ref(x, w)
    check(ops.dense, expected, x, w)
    check(ops.dense_via_float, expected, x, w)


def one_term_past_2_24(taps: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 operands whose products are 2^14 except one, which is 1: a sum of 2^24 + 1 for 1025 taps."""
    x = np.full(taps, -128, np.int8)
    w = np.full(taps, -128, np.int8)
    x[0] = w[0] = 1
    return x, w


def test_float_path_exact_where_one_float32_product_sum_cannot_be():
    """The exact sum 2^24 + 2^14 + 1 (dense: 2^24 + 1) is no float32, so one float32 contraction
    must be wrong whatever its order; the grouped path gets it."""
    highest = jax.lax.Precision.HIGHEST
    x, w = one_term_past_2_24(1025)
    x, w = x.reshape(1, 1025), w.reshape(1025, 1)
    plain = jnp.dot(x.astype(jnp.float32), w.astype(jnp.float32), precision=highest)
    assert int(ops.dense_ref(x, w)[0, 0]) == (1 << 24) + 1 != int(plain[0, 0])
    check(ops.dense_via_float, ops.dense_ref(x, w), x, w)

    x, w = one_term_past_2_24(3 * 3 * 114)  # a 3x3 VALID conv over 114 channels: one output
    x, w = x.reshape(1, 3, 3, 114), w.reshape(3, 3, 114, 1)
    expected = ops.conv2d_ref(x, w, "VALID")
    plain = jax.lax.conv_general_dilated(x.astype(jnp.float32), w.astype(jnp.float32), (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=highest)
    assert int(expected.item()) == (1 << 24) + (1 << 14) + 1 != int(plain.item())
    check(ops.conv2d, expected, x, w, padding="VALID")
    check(ops.conv2d_via_float, expected, x, w, padding="VALID")


def test_conv_refuses_wrong_types_and_overflowing_sizes():
    x, w = np.zeros((1, 3, 3, 2), np.int8), np.zeros((3, 3, 2, 1), np.int8)
    with pytest.raises(TypeError, match="int8"):
        ops.conv2d(x.astype(np.int16), w, "SAME")
    with pytest.raises(TypeError, match="int16"):
        ops.int16_conv2d(x, w, "SAME")
    with pytest.raises(ValueError, match="512 exceeds 511"):
        ops.int16_conv2d(np.zeros((1, 1, 1, 512), np.int16), np.zeros((1, 1, 512, 1), np.int8), "VALID")


# --- int16_conv2d -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel", [(3, 3), (2, 2), (1, 1)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_int16_conv2d_equals_reference_at_borders(kernel, padding):
    """A 4x5 image, so most outputs of a SAME convolution touch the border; full int16 range."""
    rng = np.random.default_rng(kernel[0])
    x = rng.integers(-(1 << 15), 1 << 15, (2, 4, 5, 6)).astype(np.int16)
    x[0, 0, 0] = -(1 << 15)
    x[0, -1, -1] = (1 << 15) - 1
    w = int8(rng, (*kernel, 6, 3))
    check(ops.int16_conv2d, ops.conv2d_ref(x, w, padding), x, w, padding=padding)
    np.testing.assert_array_equal(ops.int16_conv2d(x, w, padding, conv=ops.conv2d_via_float),
                                  ops.conv2d_ref(x, w, padding))


def test_int16_conv2d_at_the_tap_bound():
    """511 taps of (-2^15)(-128) = 2^22 each: 2^31 - 2^22, the largest sum, comes out exact."""
    x = np.concatenate([np.full((1, 2, 2, 511), -(1 << 15)), np.full((1, 2, 2, 511), (1 << 15) - 1)])
    w = np.full((1, 1, 511, 2), -128)
    w[..., 1] = 127
    x, w = x.astype(np.int16), w.astype(np.int8)
    expected = ops.conv2d_ref(x, w, "SAME")
    assert expected.max() == (1 << 31) - (1 << 22)
    check(ops.int16_conv2d, expected, x, w, padding="SAME")


# --- conv2d_parts / dense_parts: int16 activations of any width --------------------------------------------------


def test_conv2d_parts_of_a_wide_layer_equal_the_reference():
    """2304 taps (256 channels, 3x3): far past int16_conv2d's 511, exact as 256 A + B in int64,
    through the int8 and the float32 convolutions alike, at the int16 extremes too."""
    rng = np.random.default_rng(11)
    x = rng.integers(-(1 << 15), 1 << 15, (1, 5, 4, 256)).astype(np.int16)
    x[0, 0] = -(1 << 15)
    x[0, -1] = (1 << 15) - 1
    w = int8(rng, (3, 3, 256, 4))
    expected = ops.conv2d_ref(x, w, "SAME")
    for conv in (ops.conv2d, ops.conv2d_via_float):
        high, low = jax.jit(functools.partial(ops.conv2d_parts, padding="SAME", conv=conv))(x, w)
        assert high.dtype == low.dtype == jnp.int32
        np.testing.assert_array_equal(256 * np.asarray(high, np.int64) + np.asarray(low), expected)


def test_dense_parts_equal_the_reference():
    rng = np.random.default_rng(12)
    x = rng.integers(-(1 << 15), 1 << 15, (3, 1000)).astype(np.int16)
    w = int8(rng, (1000, 7))
    expected = x.astype(np.int64) @ w.astype(np.int64)
    for dense in (ops.dense, ops.dense_via_float):
        high, low = ops.dense_parts(x, w, dense)
        np.testing.assert_array_equal(256 * np.asarray(high, np.int64) + np.asarray(low), expected)


@pytest.mark.parametrize("kernel", [(1, 1), (3, 3)])
@pytest.mark.parametrize("padding", ["SAME", "VALID"])
def test_conv2d_parts24_equal_the_reference(kernel, padding):
    """24-bit inputs (the skip projections'), 640 channels: 2^16 A + 2^8 B + C is the int64
    convolution exactly, through the int8 and the float32 convolutions, at +-(2^23 - 1), at the
    image borders and at values whose low byte is 0 or 255."""
    rng = np.random.default_rng(13)
    x = rng.integers(-(1 << 23) + 1, 1 << 23, (2, 5, 6, 640)).astype(np.int32)
    x[0, 0], x[0, -1], x[1, :, 0] = -(1 << 23) + 1, (1 << 23) - 1, 256 * 1234
    x[1, 2, 3] = -256 * 77 + 255
    w = int8(rng, (*kernel, 640, 5))
    expected = ops.conv2d_ref(x, w, padding)
    for conv in (ops.conv2d, ops.conv2d_via_float):
        parts = jax.jit(functools.partial(ops.conv2d_parts24, padding=padding, conv=conv))(x, w)
        assert all(p.dtype == jnp.int32 for p in parts)
        top, high, low = (np.asarray(p, np.int64) for p in parts)
        np.testing.assert_array_equal((top << 16) + (high << 8) + low, expected)


def test_conv2d_parts24_refuses_float_weights_and_overflowing_sizes():
    x = np.zeros((1, 3, 3, 4), np.int32)
    with pytest.raises(TypeError, match="int8 weights"):
        ops.conv2d_parts24(x, np.zeros((1, 1, 4, 2), np.float32), "SAME")
    with pytest.raises(ValueError, match="exceeds"):
        ops.conv2d_parts24(np.zeros((1, 3, 3, 1 << 16), np.int32), np.zeros((1, 1, 1 << 16, 1), np.int8), "SAME")
