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
  subpixel, x = (k + 1/2) / 128 - 1. From format version 7 (``DENSITY_SINCE``) it is the VDM's
  (eq. 28-30, the decoder the model is trained with): p(k | z) proportional to the density of
  N(z / alpha, (sigma / alpha)^2) at x_k, an integer softmax through ``integer_ops.exp_table``.
  Version 5 and 6 streams took the Gaussian's mass over bin k (width 1/128, the end bins taking
  the tails), which at the lowest noise level (sigma / alpha about a third of a bin) cost 15% more
  bits on the pixels, 1% of a bits-back stream (docs/portability.md); they still decode with it.
"""

from __future__ import annotations

import math

import numpy as np

from diffc.codec import entropy, gaussian_masses as gm
from diffc.models.integer_ops import EXP_LEN, SOFTMAX_FRAC, exp_table

CORE_STDS = 6  # coded bins span +-6 stds (plus one) around the centre
DENSITY_SINCE = 7  # the format version whose exact pixels use the decoder's softmax
D_FRAC = 16  # fraction bits of a value's distance from the mean, in stds
D_MAX = 64 << D_FRAC  # distances clipped to 64 stds: exp(-2048) is 0 anyway
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


def _pixel_table(z: np.ndarray, alpha: float, sigma: float, channels: int, version: int) -> entropy.Categorical:
    """p(x | z) over the 256 values of each pixel of z (n, 3) for a stream of format ``version``
    (module docstring). Mean and std in values' units, as 16-bit fixed point."""
    mean = np.round(((np.asarray(z, np.float64) / alpha + 1.0) * 128.0 - 0.5) * 2.0**gm.MEAN_FRAC).astype(np.int64)
    std = max(1, round(sigma / alpha * 128.0 * 2.0**gm.STD_FRAC))
    if version >= DENSITY_SINCE:
        return _density_table(mean, std, channels)
    return _bin_table(mean, std, channels)


def _density_table(mean: np.ndarray, std: int, channels: int) -> entropy.Categorical:
    """The VDM decoder, p(k | z) proportional to exp(-d_k^2 / 2) with d_k = (k - mean) / std (VDM
    eq. 28-30): d_k with ``D_FRAC`` fraction bits, clipped to +-64; d_k^2 / 2 rounded to 2^-8 nats;
    each value's mass from the exp table by its distance below the row's top. Grayscale
    (``channels`` 1): the three channels' terms summed, the product of their densities."""
    diff = (np.arange(VOCAB, dtype=np.int64) << gm.MEAN_FRAC) - mean[..., None]  # (n, 3, 256)
    d = np.clip(np.floor_divide(diff << (D_FRAC + gm.STD_FRAC - gm.MEAN_FRAC), std), -D_MAX, D_MAX)
    shift = 2 * D_FRAC - SOFTMAX_FRAC + 1
    half_square = (d * d + (1 << (shift - 1))) >> shift
    if channels == 1:
        half_square = half_square.sum(axis=1)
    half_square = half_square.reshape(-1, VOCAB)
    distance = np.minimum(half_square - half_square.min(axis=1, keepdims=True), EXP_LEN - 1)
    return entropy.categorical_from_masses(exp_table()[distance].astype(np.int64))


def _bin_table(mean: np.ndarray, std: int, channels: int) -> entropy.Categorical:
    """Format versions 5 and 6: p(k | z) the Gaussian's mass over bin k, the end bins taking the
    tails; grayscale: the product of the three channels' masses, each cut to 20 bits first."""
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


def push_pixels(stack: entropy.Stack, values: np.ndarray, z: np.ndarray, alpha: float, sigma: float,
                version: int) -> None:
    """Push 8-bit values (..., C) with the integer p(x | z) at the noise level (alpha, sigma), z
    (..., 3) float64, for a stream of format ``version``, in slices pushed last first so that
    ``pop_pixels`` reads them in order."""
    channels = values.shape[-1]
    flat, zs = values.reshape(-1, channels), np.reshape(z, (-1, 3))
    for part in reversed(_slices(len(flat), 3 * VOCAB)):
        stack.push(flat[part], _pixel_table(zs[part], alpha, sigma, channels, version))


def pop_pixels(stack: entropy.Stack, z: np.ndarray, alpha: float, sigma: float, channels: int,
               version: int) -> np.ndarray:
    """Undo ``push_pixels``: the uint8 values (..., ``channels``) for z (..., 3)."""
    zs = np.reshape(z, (-1, 3))
    parts = [stack.pop(_pixel_table(zs[part], alpha, sigma, channels, version))
             for part in _slices(len(zs), 3 * VOCAB)]
    return np.concatenate(parts).astype(np.uint8).reshape(*np.shape(z)[:-1], channels)
