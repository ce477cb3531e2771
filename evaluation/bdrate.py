"""Bjontegaard delta rate: the average rate difference of two rate-PSNR curves at equal PSNR.

G. Bjontegaard, "Calculation of average PSNR differences between RD-curves", VCEG-M33 (2001): fit
log(rate) as a function of PSNR for each curve, integrate both over the PSNR interval the curves
share, and turn the mean difference of log-rates back into a ratio.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.interpolate import PchipInterpolator

Method = Literal["cubic", "pchip"]


def _log_rate_integral(psnr: np.ndarray, log_rate: np.ndarray, lo: float, hi: float, method: Method) -> float:
    """Integral of log-rate over PSNR in [lo, hi] under the chosen fit of one curve."""
    if method == "cubic":
        antiderivative = np.polyint(np.polyfit(psnr, log_rate, 3))
        return float(np.polyval(antiderivative, hi) - np.polyval(antiderivative, lo))
    order = np.argsort(psnr)
    return float(PchipInterpolator(psnr[order], log_rate[order]).integrate(lo, hi))


def bd_rate(
    anchor_rate: Sequence[float],
    anchor_psnr: Sequence[float],
    test_rate: Sequence[float],
    test_psnr: Sequence[float],
    *,
    method: Method = "cubic",
) -> float:
    """Rate change of the test curve against the anchor at equal PSNR, in percent.

    Negative means the test codec needs fewer bits: -50 is half the anchor's rate. ``method``:
    "cubic" is Bjontegaard's least-squares cubic of log-rate in PSNR (at least 4 points per curve,
    the standard with 4 rate points); "pchip" interpolates the points with a monotone piecewise
    cubic (at least 2 points, PSNR strictly increasing), which follows long or densely sampled
    curves that one cubic cannot. Raises ValueError when the PSNR ranges do not overlap.
    """
    curves = []
    for rate, psnr in ((anchor_rate, anchor_psnr), (test_rate, test_psnr)):
        rate, psnr = np.asarray(rate, dtype=np.float64), np.asarray(psnr, dtype=np.float64)
        if rate.shape != psnr.shape or rate.ndim != 1:
            raise ValueError("each curve needs as many rates as PSNRs")
        needed = 4 if method == "cubic" else 2
        if len(rate) < needed:
            raise ValueError(f"the {method} fit needs at least {needed} points per curve, got {len(rate)}")
        if np.any(rate <= 0) or not np.all(np.isfinite(psnr)):
            raise ValueError("rates must be positive and PSNRs finite")
        if method == "pchip" and len(np.unique(psnr)) != len(psnr):
            raise ValueError("the pchip fit needs distinct PSNRs within a curve")
        curves.append((psnr, np.log(rate)))
    lo = max(psnr.min() for psnr, _ in curves)
    hi = min(psnr.max() for psnr, _ in curves)
    if lo >= hi:
        raise ValueError(f"the curves' PSNR ranges do not overlap (shared interval [{lo:.2f}, {hi:.2f}] dB)")
    anchor, test = (_log_rate_integral(psnr, log_rate, lo, hi, method) for psnr, log_rate in curves)
    return float((np.exp((test - anchor) / (hi - lo)) - 1.0) * 100.0)
