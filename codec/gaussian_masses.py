"""Bin masses of discretised Gaussians in integer arithmetic, for every coder that codes Gaussians.

The masses that reach the entropy coder must be identical on every machine. Float ``erf`` / ``ndtr``
differ in the last bit between libm builds and SIMD widths, and one such bit, quantised onto the
coder's grid, is enough to break a stream (issue 19). Here the normal CDF is a table of fixed-point
tail probabilities, itself computed with Python's ``decimal`` (software arithmetic whose results
the standard fixes), read with linear interpolation in int64; means and standard deviations come
in as fixed-point integers. Everything below is numpy int64 (exact, the same on every platform).

Tail table: Q(x) = 1 - Phi(x) at the knots x_j = j 2^-KNOT_BITS, j = 0 .. KNOTS, in units of
2^-Q_BITS (Q(KNOTS 2^-KNOT_BITS) = Q(8) < 2^-50, so Q = 0 from there on). Linear interpolation
between knots h = 2^-8 apart errs by at most h^2/8 max|Q''| < 4.7e-7 (|Q''| = x phi(x) <= phi(1));
a bin mass, a difference of two, by twice that: a cost of sum delta^2 / p, nothing measurable.
"""

from __future__ import annotations

import functools
from decimal import Decimal, localcontext

import numpy as np

KNOT_BITS = 8  # knots 2^-8 apart
KNOTS = 8 << KNOT_BITS  # the last knot, x = 8
Q_BITS = 48  # tail probabilities in units of 2^-48
ONE = 1 << Q_BITS
X_FRAC = 24  # fraction bits of the standardised edges (x - mean) / std
MEAN_FRAC = 16  # fraction bits of means, in bins
STD_FRAC = 16  # fraction bits of standard deviations, in bins
MAX_RADIUS = 1 << 12  # supports of at most 2 MAX_RADIUS + 1 bins


def _pi() -> Decimal:
    """pi by Machin's formula, 16 atan(1/5) - 4 atan(1/239), at the context's precision."""
    def atan_inv(n: int) -> Decimal:
        total, term, k, sign = Decimal(0), Decimal(1) / n, 1, 1
        n2 = n * n
        while term:
            total += sign * term / k
            term /= n2
            k, sign = k + 2, -sign
        return total
    return 16 * atan_inv(5) - 4 * atan_inv(239)


@functools.cache
def tail_table() -> np.ndarray:
    """(KNOTS + 1,) int64 round(2^48 Q(x_j)), Q(x) = 1/2 - (Phi(x) - 1/2) by the Taylor series of
    Phi(x) - 1/2 summed in 80-digit decimal arithmetic (the series' largest term is below 10^12 for
    x <= 8, so about 65 correct digits remain); deterministic on every machine, 0.8 s once."""
    with localcontext() as ctx:
        ctx.prec = 80
        scale = 1 / (2 * _pi()).sqrt()  # 1 / sqrt(2 pi)
        values = []
        for j in range(KNOTS + 1):
            x = Decimal(j) / (1 << KNOT_BITS)
            # Phi(x) - 1/2 = phi(0) sum_n (-1)^n x^(2n+1) / (2^n n! (2n+1))
            total, power, n = Decimal(0), x, 0
            x2 = x * x
            while True:
                term = power / (2 * n + 1)
                if abs(term) < Decimal(10) ** -75:
                    break
                total += term if n % 2 == 0 else -term
                n += 1
                power = power * x2 / (2 * n)
            q = Decimal(1) / 2 - scale * total
            values.append(int((q * ONE).to_integral_value()))
    return np.array(values, np.int64)


def cdf(x: np.ndarray) -> np.ndarray:
    """Phi(x) 2^48 (int64) at x given with ``X_FRAC`` fraction bits (int64, |x| < 2^62), by linear
    interpolation in the tail table: with a = |x|, j = a >> 16 and f = a mod 2^16, Q = T[j] -
    ((T[j] - T[j+1]) f >> 16); T[j] - T[j+1] < 2^48 2^-8 phi(0) < 2^39, so the product < 2^55."""
    table = tail_table()
    x = np.asarray(x, np.int64)
    a = np.abs(x)
    shift = X_FRAC - KNOT_BITS
    j = np.minimum(a >> shift, KNOTS)
    f = np.where(j < KNOTS, a & ((1 << shift) - 1), 0)
    upper = table[j] - (((table[j] - table[np.minimum(j + 1, KNOTS)]) * f) >> shift)
    return np.where(x >= 0, ONE - upper, upper)


def bin_masses(mean: np.ndarray, std: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Discretised N(mean, std^2) over the 2 radius + 1 unit bins around round(mean).

    mean (n,) int64 with ``MEAN_FRAC`` fraction bits (|mean| < 2^46), in bins; std (n,) int64 > 0
    with ``STD_FRAC`` fraction bits, in bins. Returns (centre (n,) int64, masses (n, 2 radius + 1)
    int64): bin k covers [centre - radius + k - 1/2, centre - radius + k + 1/2); its mass is
    ``masses_around``'s for the mean's offset from the centre.
    """
    mean = np.asarray(mean, np.int64).reshape(-1)
    centre = (mean + (1 << (MEAN_FRAC - 1))) >> MEAN_FRAC
    return centre, masses_around(mean - (centre << MEAN_FRAC), std, radius)


def masses_around(offset: np.ndarray, std: np.ndarray, radius: int) -> np.ndarray:
    """(n, 2 radius + 1) int64 masses of N(offset, std^2) over the unit bins centred on -radius ..
    radius: 2^48 (Phi(upper edge) - Phi(lower edge)), edges standardised as floor(edge 2^24 / std).

    offset (n,) int64 with ``MEAN_FRAC`` fraction bits, |offset| <= 2^15 (half a bin); std (n,)
    int64 > 0 with ``STD_FRAC`` fraction bits. Masses are >= 0 (Phi is monotone and so is the
    interpolation) and sum to at most 2^48; the mass beyond the support is the caller's to fold in
    (a floor, an escape). Edges: |edge| <= (radius + 1) 2^16 <= 2^29, shifted by X_FRAC +
    STD_FRAC - MEAN_FRAC = 24 bits: < 2^53.
    """
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"radius must lie in [0, {MAX_RADIUS}], got {radius}")
    offset, std = np.asarray(offset, np.int64).reshape(-1), np.asarray(std, np.int64).reshape(-1)
    if np.any(std <= 0):
        raise ValueError("standard deviations must be positive")
    if np.any(np.abs(offset) > 1 << (MEAN_FRAC - 1)):
        raise ValueError("offsets must lie within half a bin of the centre")
    k = np.arange(-radius, radius + 2, dtype=np.int64)  # 2 radius + 2 edges
    edges = (k << MEAN_FRAC) - (1 << (MEAN_FRAC - 1)) - offset[:, None]  # (n, 2R + 2)
    x = np.floor_divide(edges << (X_FRAC + STD_FRAC - MEAN_FRAC), std[:, None])
    return np.diff(cdf(x), axis=1)


def to_fixed(values: np.ndarray, frac_bits: int) -> np.ndarray:
    """Float values to int64 fixed point (round half to even): for tests and float-model streams."""
    return np.round(np.asarray(values, np.float64) * 2.0**frac_bits).astype(np.int64)
