"""Bjontegaard delta rate on curves whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from diffc.evaluation.bdrate import bd_rate

# A JPEG-like curve: four rates and their PSNRs, PSNR growing slower than log-rate.
RATES = np.array([0.25, 0.5, 1.0, 2.0])
PSNRS = np.array([25.3, 29.4, 32.9, 36.1])


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_a_curve_against_itself_is_zero(method):
    assert bd_rate(RATES, PSNRS, RATES, PSNRS, method=method) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_half_the_rate_is_minus_fifty_percent(method):
    assert bd_rate(RATES, PSNRS, RATES / 2, PSNRS, method=method) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(RATES / 2, PSNRS, RATES, PSNRS, method=method) == pytest.approx(100.0, abs=1e-9)


@pytest.mark.parametrize("method", ["cubic", "pchip"])
def test_a_psnr_gain_on_a_log_linear_curve(method):
    # PSNR = 30 + 6 log2(rate): 1 dB more at equal rate is 2^(-1/6) of the rate at equal PSNR.
    rates = np.geomspace(0.125, 2, 5)
    psnr = 30 + 6 * np.log2(rates)
    assert bd_rate(rates, psnr, rates, psnr + 1, method=method) == pytest.approx((2 ** (-1 / 6) - 1) * 100, abs=1e-9)


def test_only_the_shared_psnr_range_counts():
    # The test curve equals the anchor where both exist and goes on to higher rates: no difference.
    rates = np.geomspace(0.125, 4, 12)
    psnr = 30 + 6 * np.log2(rates)
    assert bd_rate(rates[:8], psnr[:8], rates[3:], psnr[3:], method="pchip") == pytest.approx(0.0, abs=1e-9)


def test_points_may_come_in_any_order():
    order = [2, 0, 3, 1]
    assert bd_rate(RATES, PSNRS, RATES[order] * 0.8, PSNRS[order], method="pchip") == pytest.approx(-20.0, abs=1e-9)


def test_refuses_curves_it_cannot_compare():
    with pytest.raises(ValueError, match="do not overlap"):
        bd_rate(RATES, PSNRS, RATES, PSNRS + 20)
    with pytest.raises(ValueError, match="at least 4 points"):
        bd_rate(RATES[:3], PSNRS[:3], RATES, PSNRS, method="cubic")
    with pytest.raises(ValueError, match="positive"):
        bd_rate(RATES - 1, PSNRS, RATES, PSNRS)
