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
