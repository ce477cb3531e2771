"""Pushes and pops of the integer probability path (issue 19), shared by the coders.

Every model here is built from integers (``gaussian_masses``) and normalised in integers
(``entropy.integer_probabilities``); the float64 steps before that (a mean divided by a bin width,
rounded to fixed point) are single IEEE operations, correctly rounded and so the same on every
machine.

- ``push_gaussian`` / ``pop_gaussian``: discretised Gaussians whose support (a worst-case bound,
  often thousands of bins) is far wider than their mass. The bins within ``CORE_STDS`` stds of the
  centre are coded with their masses plus one escape symbol; a value beyond them (probability
  below 2^-20 after the floor, about 1e-9 before) is coded as the escape and then uniformly over
  the whole support. Tables stay ~2 * 6 * std wide, whatever the support.
- ``push_pixels`` / ``pop_pixels``: the discretised decoder p(x | z_0) over the 256 values of a
  subpixel as Gaussian bin masses: x = (k + 1/2) / 128 - 1 has bins of width 1/128, and p(k | z)
  is the mass of N(z / alpha, (sigma / alpha)^2) over bin k, the end bins taking the tails.
"""

from __future__ import annotations

import math

import numpy as np

from diffc.codec import entropy, gaussian_masses as gm

CORE_STDS = 6  # coded bins span +-6 stds (plus one) around the centre
_SLICE_ENTRIES = 1 << 21  # table entries per push: memory stays ~50 MB whatever the image
VOCAB = 256


def _core(std_bins: float, radius: int) -> int:
    return min(radius, math.ceil(CORE_STDS * std_bins) + 1)


def _slices(n: int, width: int) -> list[slice]:
    rows = max(1, _SLICE_ENTRIES // width)
    return [slice(a, min(a + rows, n)) for a in range(0, n, rows)]


def _gaussian_table(mean_bins: np.ndarray, std_bins: float, core: int) -> tuple[np.ndarray, entropy.Categorical]:
    """Centres and the categoricals over the core bins plus the escape (last symbol)."""
    mean = np.round(np.asarray(mean_bins, np.float64) * 2.0**gm.MEAN_FRAC).astype(np.int64)
    std = np.full(mean.size, max(1, round(std_bins * 2.0**gm.STD_FRAC)), np.int64)
    centre, masses = gm.bin_masses(mean, std, core)
    escape = np.maximum(gm.ONE - masses.sum(axis=1, keepdims=True), 0)
    return centre, entropy.categorical_from_masses(np.concatenate([masses, escape], axis=1))


def push_gaussian(stack: entropy.Stack, symbols: np.ndarray, mean_bins: np.ndarray, std_bins: float,
                  radius: int) -> None:
    """Push grid indices ``symbols`` (n,) with N(mean, std^2) in bins, support +-``radius`` bins of
    round(mean); a symbol outside the support raises ``EntropyCodingError``."""
    symbols, mean_bins = np.asarray(symbols, np.int64).reshape(-1), np.asarray(mean_bins).reshape(-1)
    core = _core(std_bins, radius)
    for part in reversed(_slices(symbols.size, 2 * core + 2)):
        centre, table = _gaussian_table(mean_bins[part], std_bins, core)
        k = symbols[part] - centre
        if k.size and np.abs(k).max() > radius:
            raise entropy.EntropyCodingError(f"a latent lies outside its +-{radius} bin support")
        escaped = np.abs(k) > core
        stack.push(k[escaped] + radius, entropy.uniform(2 * radius + 1, int(escaped.sum())))
        stack.push(np.where(escaped, 2 * core + 1, k + core), table)


def pop_gaussian(stack: entropy.Stack, mean_bins: np.ndarray, std_bins: float, radius: int) -> np.ndarray:
    """Undo ``push_gaussian``: the grid indices (n,)."""
    mean_bins = np.asarray(mean_bins).reshape(-1)
    core = _core(std_bins, radius)
    out = []
    for part in _slices(mean_bins.size, 2 * core + 2):
        centre, table = _gaussian_table(mean_bins[part], std_bins, core)
        main = stack.pop(table)
        escaped = main == 2 * core + 1
        k = main - core
        k[escaped] = stack.pop(entropy.uniform(2 * radius + 1, int(escaped.sum()))) - radius
        out.append(centre + k)
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _pixel_table(z: np.ndarray, alpha: float, sigma: float, channels: int) -> entropy.Categorical:
    """p(x | z) over the 256 values of each pixel of z (n, 3) (module docstring); grayscale
    (``channels`` 1): the product of the three channels' masses, each cut to 20 bits first."""
    mean = np.round(((np.asarray(z, np.float64) / alpha + 1.0) * 128.0 - 0.5) * 2.0**gm.MEAN_FRAC).astype(np.int64)
    std = max(1, round(sigma / alpha * 128.0 * 2.0**gm.STD_FRAC))
    edges = (np.arange(VOCAB + 1, dtype=np.int64) << gm.MEAN_FRAC) - (1 << (gm.MEAN_FRAC - 1))
    x = np.floor_divide((edges - mean[..., None]) << (gm.X_FRAC + gm.STD_FRAC - gm.MEAN_FRAC), std)
    cdf = gm.cdf(x)
    cdf[..., 0], cdf[..., -1] = 0, gm.ONE  # the end bins take the tails
    masses = np.diff(cdf, axis=-1)  # (n, 3, 256)
    if channels == 1:
        m = masses >> 28
        masses = (m[:, 0] * m[:, 1] * m[:, 2]) >> 12  # < 2^48
        masses[masses.sum(axis=1) == 0] = 1  # three channels that agree on nothing: uniform
    return entropy.categorical_from_masses(masses.reshape(-1, VOCAB))


def push_pixels(stack: entropy.Stack, values: np.ndarray, z: np.ndarray, alpha: float, sigma: float) -> None:
    """Push 8-bit values (..., C) with the integer p(x | z) at the noise level (alpha, sigma), z
    (..., 3) float64, in slices pushed last first so that ``pop_pixels`` reads them in order."""
    channels = values.shape[-1]
    flat, zs = values.reshape(-1, channels), np.reshape(z, (-1, 3))
    for part in reversed(_slices(len(flat), 3 * VOCAB)):
        stack.push(flat[part], _pixel_table(zs[part], alpha, sigma, channels))


def pop_pixels(stack: entropy.Stack, z: np.ndarray, alpha: float, sigma: float, channels: int) -> np.ndarray:
    """Undo ``push_pixels``: the uint8 values (..., ``channels``) for z (..., 3)."""
    zs = np.reshape(z, (-1, 3))
    parts = [stack.pop(_pixel_table(zs[part], alpha, sigma, channels)) for part in _slices(len(zs), 3 * VOCAB)]
    return np.concatenate(parts).astype(np.uint8).reshape(*np.shape(z)[:-1], channels)
