"""From measured points to the numbers the tables and the plot show.

Choices, stated once (summary.md repeats them):

- A lossy codec's curve on one image is its Pareto front: points sorted by rate, dropping any
  point that a cheaper one matches or beats in PSNR (and points decoded exactly, PSNR infinite).
- Values at a rate are read per image, linearly in log(bpp) between the two neighbouring points
  of that image's curve, never extrapolated; the set's value is the mean over images of these
  per-image values (so PSNR over the set is the mean of per-image PSNRs, not a pooled MSE), and it
  is missing when some image's sweep does not reach the rate.
- A codec's set curve is that mean as a function of rate, over the rates every image reaches.
- BD-rate compares set curves between the lowest and highest target rate, with the pchip fit of
  ``bdrate.bd_rate`` on 64 log-spaced samples of each curve.
- Lossless bits/dim over the set is pooled: all bits over all subpixels. Seconds per megapixel
  are pooled too: all encode (decode) time of a codec over all the megapixels it coded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from diffc.evaluation.bdrate import bd_rate

Metric = Literal["psnr", "ms_ssim"]
SAMPLES = 64


@dataclass(frozen=True)
class Curve:
    """One lossy codec on one image: its Pareto front, rates strictly increasing."""

    bpp: np.ndarray
    psnr: np.ndarray
    ms_ssim: np.ndarray

    @classmethod
    def from_points(cls, points: Sequence[dict[str, Any]]) -> Curve:
        front: list[dict[str, Any]] = []
        for p in sorted((p for p in points if p["psnr"] is not None), key=lambda p: (p["bpp"], -p["psnr"])):
            if not front or p["psnr"] > front[-1]["psnr"]:
                front.append(p)
        return cls(*(np.array([p[key] for p in front], dtype=np.float64) for key in ("bpp", "psnr", "ms_ssim")))

    @property
    def low(self) -> float:
        return float(self.bpp[0]) if len(self.bpp) else np.inf

    @property
    def high(self) -> float:
        return float(self.bpp[-1]) if len(self.bpp) else -np.inf

    def at(self, rates: np.ndarray, metric: Metric) -> np.ndarray:
        """``metric`` at ``rates``, linear in log(bpp); NaN outside the swept rates."""
        if not len(self.bpp):
            return np.full(rates.shape, np.nan)
        values = np.interp(np.log(rates), np.log(self.bpp), getattr(self, metric))
        return np.where((rates < self.low) | (rates > self.high), np.nan, values)


@dataclass(frozen=True)
class LossyCodec:
    """A lossy codec over the set: a curve per image and its speed."""

    name: str
    curves: dict[str, Curve]  # by image name
    encode_s_per_mp: float
    decode_s_per_mp: float

    def per_image(self, rates: Sequence[float], metric: Metric) -> dict[str, np.ndarray]:
        return {image: curve.at(np.asarray(rates, dtype=np.float64), metric) for image, curve in self.curves.items()}

    def mean(self, rates: Sequence[float], metric: Metric) -> np.ndarray:
        """The set's value at each rate (mean over images; NaN where an image's sweep falls short)."""
        return np.mean(list(self.per_image(rates, metric).values()), axis=0)

    def rate_range(self) -> tuple[float, float]:
        """The rates every image's curve covers (empty when low > high)."""
        return max(c.low for c in self.curves.values()), min(c.high for c in self.curves.values())

    def set_curve(self, low: float, high: float, metric: Metric = "psnr") -> tuple[np.ndarray, np.ndarray] | None:
        """(rates, set value) on log-spaced rates within [low, high] and the covered range."""
        lo, hi = self.rate_range()
        lo, hi = max(lo, low), min(hi, high)
        if lo >= hi:
            return None
        rates = np.geomspace(lo, hi, SAMPLES)
        return rates, self.mean(rates, metric)


@dataclass(frozen=True)
class LosslessCodec:
    name: str
    bits_per_dim: float
    encode_s_per_mp: float
    decode_s_per_mp: float
    per_image: dict[str, float]  # bits/dim of each image


@dataclass(frozen=True)
class Analysis:
    bpps: tuple[float, ...]
    images: list[str]
    lossy: list[LossyCodec]
    lossless: list[LosslessCodec]

    def bd_rates(self) -> dict[tuple[str, str], float | None]:
        """BD-rate in percent of each lossy codec (first) against each other (second); None where
        the curves share no PSNR range between the lowest and highest target rate."""
        curves = {c.name: c.set_curve(min(self.bpps), max(self.bpps)) for c in self.lossy}
        table: dict[tuple[str, str], float | None] = {}
        for test, test_curve in curves.items():
            for anchor, anchor_curve in curves.items():
                if test == anchor:
                    continue
                table[test, anchor] = None
                if test_curve is not None and anchor_curve is not None:
                    with contextlib.suppress(ValueError):  # the curves share no PSNR range
                        table[test, anchor] = bd_rate(*anchor_curve, *test_curve, method="pchip")
        return table


def _seconds_per_mp(points: Sequence[dict[str, Any]], key: str) -> float:
    return sum(p[key] for p in points) / sum(p["megapixels"] for p in points)


def analyse(results: dict[str, Any]) -> Analysis:
    """Curves, set values and totals of every codec in ``results``, in the run's codec order."""
    images = [image["name"] for image in results["settings"]["images"]]
    lossy, lossless = [], []
    for name, codec in results["settings"]["codecs"].items():
        points = [p for p in results["points"] if p["codec"] == name]
        if not points:
            continue
        speed = (_seconds_per_mp(points, "encode_s"), _seconds_per_mp(points, "decode_s"))
        if codec["lossless"]:
            per_image = {p["image"]: p["bits_per_dim"] for p in points}
            bits = sum(8 * p["bytes"] for p in points)
            subpixels = sum(8 * p["bytes"] / p["bits_per_dim"] for p in points)
            lossless.append(LosslessCodec(name, bits / subpixels, *speed, per_image))
        else:
            curves = {image: Curve.from_points([p for p in points if p["image"] == image]) for image in images}
            lossy.append(LossyCodec(name, curves, *speed))
    return Analysis(tuple(results["settings"]["bpp"]), images, lossy, lossless)
