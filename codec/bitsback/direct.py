"""The seed coder: one patch coded directly, without the model.

An image pays its own initial bits: the stack is empty when the first patch comes, so that patch
(and any later one the stack cannot serve, ``groups``) is coded row by row, row 0 uniform and each
pixel of a later row with a discretised Laplace around the smoothed pixels above it, its scale
fitted per patch and sent first.
"""

from __future__ import annotations

import functools
from decimal import Decimal, localcontext

import numpy as np

from diffc.codec import entropy
from diffc.models import vdm

_LAPLACE_SCALES = 2.0 ** ((np.arange(20) - 4) / 2)  # 1/4 to 181 pixel values


def _smooth_rows(rows: np.ndarray) -> np.ndarray:
    """Each (w, C) row smoothed by [1, 2, 1] / 4 along it, edges repeated: (r, w, C) -> float64."""
    a = np.pad(rows.astype(np.float64), ((0, 0), (1, 1), (0, 0)), mode="edge")
    return (a[:, :-2] + 2 * a[:, 1:-1] + a[:, 2:]) / 4


def _laplace(prediction: np.ndarray, scale: int, exact: bool) -> entropy.Categorical:
    """A discretised Laplace over the 256 values around each prediction (n,), scale
    ``_LAPLACE_SCALES[scale]``: ``exact``, from integer weights (``_laplace_weights``), else by
    float64 exp (streams of float models)."""
    if exact:
        quarters = np.abs(4 * np.arange(vdm.VOCAB) - np.round(4 * prediction).astype(np.int64)[:, None])
        return entropy.categorical_from_masses(_laplace_weights(scale)[quarters])
    return entropy.categorical_from_logits(-np.abs(np.arange(vdm.VOCAB) - prediction[:, None]) / _LAPLACE_SCALES[scale])


@functools.cache
def _laplace_weights(scale: int) -> np.ndarray:
    """round(2^40 exp(-d / s)) at d = j / 4, j = 0 .. 1020 (predictions are multiples of 1/4),
    by 40-digit decimal exp: the same integers on every machine."""
    with localcontext() as ctx:
        ctx.prec = 40
        s = Decimal(float(_LAPLACE_SCALES[scale]))
        return np.array([int(((Decimal(-j) / (4 * s)).exp() * (1 << 40)).to_integral_value())
                         for j in range(4 * (vdm.VOCAB - 1) + 1)], np.int64)


def _direct_scale(pixels: np.ndarray) -> int:
    """Index of the Laplace scale nearest (in log) to the mean absolute prediction residual, the
    scale's maximum-likelihood estimate."""
    if pixels.shape[0] < 2:
        return 0
    residual = float(np.abs(pixels[1:] - _smooth_rows(pixels[:-1])).mean())
    return int(np.argmin(np.abs(np.log2(_LAPLACE_SCALES) - np.log2(max(residual, _LAPLACE_SCALES[0])))))


def push_patch(stack: entropy.Stack, pixels: np.ndarray, exact: bool = False) -> None:
    """Push a (h, w, C) patch without the model: row 0 uniform, each later row with a Laplace
    around the smoothed row above, then the scale's index, so that the decoder pops the index, then
    the rows in order."""
    j = _direct_scale(pixels)
    predictions = _smooth_rows(pixels[:-1])
    for r in range(pixels.shape[0] - 1, 0, -1):
        stack.push(pixels[r], _laplace(predictions[r - 1].reshape(-1), j, exact))
    stack.push(pixels[0], entropy.uniform(vdm.VOCAB, pixels[0].size))
    stack.push(np.array([j]), entropy.uniform(_LAPLACE_SCALES.size, 1))


def pop_patch(stack: entropy.Stack, shape: tuple[int, int, int], exact: bool = False) -> np.ndarray:
    """Undo ``push_patch``."""
    h, w, channels = shape
    scale = int(stack.pop(entropy.uniform(_LAPLACE_SCALES.size, 1))[0])
    rows = [stack.pop(entropy.uniform(vdm.VOCAB, w * channels)).reshape(w, channels)]
    for _ in range(1, h):
        prediction = _smooth_rows(rows[-1][None])[0].reshape(-1)
        rows.append(stack.pop(_laplace(prediction, scale, exact)).reshape(w, channels))
    return np.stack(rows).astype(np.uint8)
