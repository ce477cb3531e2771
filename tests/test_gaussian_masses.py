"""Integer discretised Gaussians (``codec/gaussian_masses.py``) against scipy's float64 ones."""

import numpy as np
import pytest
from scipy import special

from diffc.codec import gaussian_masses as gm


def test_tail_table_is_the_normal_tail_rounded():
    """Every knot within 2 units of 2^-48 of scipy's float64 tail (whose own error is about 1e-16
    relative), decreasing, Q(0) = 2^47 exactly, and Q(8) rounds to 0."""
    table = gm.tail_table()
    x = np.arange(gm.KNOTS + 1) / 2.0**gm.KNOT_BITS
    np.testing.assert_allclose(table, special.ndtr(-x) * 2.0**gm.Q_BITS, atol=2, rtol=0)
    assert table[0] == 1 << 47 and table[-1] == 0
    assert np.all(np.diff(table) <= 0)


def test_cdf_interpolates_within_5e_minus_7():
    """Linear interpolation 2^-8 apart: h^2 / 8 max|Q''| < 4.7e-7."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 3, 5000), [0.0, -9.0, 9.0, 8.0, -8.0, 1e-9]])
    got = gm.cdf(gm.to_fixed(x, gm.X_FRAC)) / 2.0**gm.Q_BITS
    np.testing.assert_allclose(got, special.ndtr(x), atol=5e-7, rtol=0)
    assert np.all(np.diff(gm.cdf(np.arange(-(9 << 24), 9 << 24, 4099))) >= 0)  # monotone


@pytest.mark.parametrize("std", [0.3, 1.0, 7.5])
def test_bin_masses_match_the_float_discretisation(std):
    rng = np.random.default_rng(1)
    mean_fixed = gm.to_fixed(rng.uniform(-50, 50, 200), gm.MEAN_FRAC)
    mean = mean_fixed / 2.0**gm.MEAN_FRAC  # what the integers say, exactly
    radius = int(np.ceil(6 * std)) + 1
    std_fixed = gm.to_fixed(np.full(200, std), gm.STD_FRAC)
    centre, masses = gm.bin_masses(mean_fixed, std_fixed, radius)
    std = std_fixed / 2.0**gm.STD_FRAC
    np.testing.assert_array_equal(centre, np.floor(mean + 0.5))
    edges = centre[:, None] + np.arange(-radius, radius + 2) - 0.5
    expected = np.diff(special.ndtr((edges - mean[:, None]) / std[:, None]), axis=1)
    np.testing.assert_allclose(masses / 2.0**gm.Q_BITS, expected, atol=1e-6, rtol=0)  # 2 x 4.7e-7
    assert np.all(masses >= 0) and np.all(masses.sum(axis=1) <= 1 << gm.Q_BITS)


def test_bin_masses_are_integers_of_integers():
    """Exactly reproducible by definition: the same call gives the same int64 array, and a mean
    moved by one whole bin moves the centre and keeps the masses."""
    mean, std = np.array([12345, -70001], np.int64), np.array([3 << 15, 5 << 14], np.int64)
    c1, m1 = gm.bin_masses(mean, std, 5)
    c2, m2 = gm.bin_masses(mean + (1 << gm.MEAN_FRAC), std, 5)
    np.testing.assert_array_equal(c2, c1 + 1)
    np.testing.assert_array_equal(m2, m1)
    assert m1.dtype == np.int64


def test_bin_masses_refuse_bad_arguments():
    with pytest.raises(ValueError, match="radius"):
        gm.bin_masses(np.zeros(1, np.int64), np.ones(1, np.int64), gm.MAX_RADIUS + 1)
    with pytest.raises(ValueError, match="positive"):
        gm.bin_masses(np.zeros(1, np.int64), np.zeros(1, np.int64), 3)


# --- the integer path's categoricals and chain constants -------------------------------------------------------

from fractions import Fraction  # noqa: E402

from diffc.codec import entropy  # noqa: E402
from diffc.codec.bitsback import chain as chain_module  # noqa: E402


def test_integer_probabilities_floor_and_normalise_in_integers():
    """Rows of masses become multiples of 2^-40 summing to 1 up to the floors, with the floor
    applied, and constriction codes them round trip."""
    rng = np.random.default_rng(3)
    _, masses = gm.bin_masses(gm.to_fixed(rng.uniform(-3, 3, 50), gm.MEAN_FRAC),
                              gm.to_fixed(rng.uniform(0.4, 4, 50), gm.STD_FRAC), 12)
    p = entropy.integer_probabilities(masses)
    floor = round(entropy.DEFAULT_FLOOR / entropy.PROB_QUANTUM)
    assert p.dtype == np.int64 and np.all(p >= floor)
    total = 1 << 40
    assert np.all(p.sum(axis=1) >= total - 25) and np.all(p.sum(axis=1) <= total + 25 * floor)
    np.testing.assert_allclose(p / total, masses / masses.sum(axis=1, keepdims=True), atol=floor / total + 1e-6)
    dist = entropy.categorical_from_masses(masses)
    symbols = rng.integers(0, 25, 50)
    stack = entropy.Stack()
    stack.push(symbols, dist)
    np.testing.assert_array_equal(entropy.Stack.from_bytes(stack.to_bytes()).pop(dist), symbols)


def test_integer_probabilities_refuse_bad_masses():
    with pytest.raises(entropy.EntropyCodingError, match="int64"):
        entropy.integer_probabilities(np.ones((2, 3)))
    with pytest.raises(entropy.EntropyCodingError, match="all zero"):
        entropy.integer_probabilities(np.zeros((1, 3), np.int64))
    with pytest.raises(entropy.EntropyCodingError, match="2\\^48"):
        entropy.integer_probabilities(np.full((1, 3), 1 << 48, np.int64))


def test_exact_schedule_constants_agree_with_scipy_to_the_last_bits():
    """Decimal alpha, sigma and c (correctly rounded, machine independent) are within 2 ulp of
    scipy's float64 values at every gamma code of a 100-step chain."""
    g = np.arange(-13.3, 5.0, 0.183)
    exact = chain_module.schedule_constants(g, exact=True)
    approx = chain_module.schedule_constants(g, exact=False)
    for e, a in zip(exact, approx):
        np.testing.assert_allclose(e, a, rtol=4.5e-16, atol=0)


def test_exact_schedule_codes_are_rational_arithmetic():
    """For the affine schedule gamma(t) = b + |w| t the codes are round((b + |w| i / T + 24) 2048)
    in exact fractions of the stored float32 parameters."""
    from diffc.models import configs, vdm

    class Den:
        config = configs.get_config("small")
        params = vdm.init_params(configs.get_config("tiny"), 0)

    Den.params = {**Den.params, "schedule": {"linear": {"bias": np.array([-13.3], np.float32),
                                                         "kernel": np.array([[-18.3]], np.float32)}}}
    codes = chain_module.exact_schedule_codes(Den, 7)
    b, w = Fraction(float(np.float32(-13.3))), Fraction(float(np.float32(18.3)))
    assert list(codes) == [round((b + w * Fraction(i, 7) + 24) * 2048) for i in range(8)]


def test_exact_pop_table_matches_the_float_one_and_is_dyadic():
    from diffc.codec.bitsback import dither

    exact, approx = dither.pop_table(2.0, 12, exact=True), dither.pop_table(2.0, 12)
    np.testing.assert_allclose(exact.masses, approx.masses, atol=2e-6)
    scaled = exact.cumulative * 2.0**40
    np.testing.assert_array_equal(scaled, np.round(scaled))  # every running sum a multiple of 2^-40
