"""The diffusion chain's arithmetic that the coders share: noise-level codes, the schedule's
constants, and the VDM prior step p(z_s | z_t) in fixed point (issue 19).

- Noise levels travel as 16-bit codes, gamma = code / 2048 - 24 (``gamma_code``), the integer
  network's input too; ``exact_schedule_codes`` finds a linear schedule's codes in fractions.
- ``schedule_constants``: alpha, sigma and c of a chain, by scipy (float streams) or by 40-digit
  decimal arithmetic, whose exp, sqrt and division are correctly rounded and so the same on
  every machine (exact streams).
- ``integer_eps``: the integer network on a latent of any size.
- ``prior_step`` / ``prior_mean`` / ``draw``: p(z_s | z_t) = N(a z_t + b x_hat, std^2) (VDM eq. 27,
  32-33) on int64 fixed-point latents, from the integer network's eps_hat and decimal constants,
  so that a sample mean + std n (n a generator normal, a multiple of 2^-16) is an integer that
  every machine computes alike. Bounds: |z| <= ``Z_MAX`` (int32, ``Z_FRAC`` fraction bits), the
  constants below 2^6 (r = 1/alpha_t, gamma <= 8) or 1 (the rest), so no product exceeds 2^62.
- ``stream_hash`` / ``require_decoder``: how exact streams name their model (the integer
  network's hash), and the one check of a stream's mode, model and exact flag against the
  model that is to decode it, for the three decoders.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from decimal import Decimal, localcontext
from fractions import Fraction

import jax.numpy as jnp
import numpy as np
from scipy import special

from diffc import bitstreams
from diffc.codec.denoiser import Denoiser
from diffc.codec.randomness import QUANTILE_BITS
from diffc.models import registry
from diffc.models.integer_unet import EPS_FRAC, Z_FRAC

GAMMA_LO, GAMMA_SCALE, GAMMA_CODES = -24.0, 2048.0, 1 << 16  # gamma = code / 2048 - 24
DECIMAL_DIGITS = 40
CONST_FRAC = 30  # fraction bits of a, b, sigma_t and std (all in [0, 1])
RECIP_FRAC = 32  # fraction bits of r = 1 / alpha_t (< 2^6)
X_FRAC = 30  # fraction bits of x_hat in [-1, 1]
MEAN_FRAC = Z_FRAC + CONST_FRAC  # fraction bits of prior means
Z_MAX = (1 << 31) - (1 << 8)  # latents stay the integer network's int32 input (|z| < 2^11)


def gamma_code(gamma: float) -> int:
    """The 16-bit fixed-point code of a noise level, as streams store it."""
    return int(np.clip(round((gamma - GAMMA_LO) * GAMMA_SCALE), 0, GAMMA_CODES - 1))


def gamma_value(code: int) -> float:
    """The noise level of a ``gamma_code`` (exact in float64)."""
    return code / GAMMA_SCALE + GAMMA_LO


def exact_schedule_codes(den: Denoiser, steps: int) -> np.ndarray:
    """The gamma codes round((gamma(i / T) + 24) 2048), i = 0..T, of a linear schedule (``fixed``
    or ``affine``: gamma(t) = b + |w| t) computed with fractions from the parameters' exact values:
    no rounding but the last, so every machine gets the same codes. Learned (network) schedules
    have no such form: ValueError."""
    cfg = den.config
    if cfg.schedule == "fixed":
        b, w = Fraction(cfg.gamma_min), Fraction(cfg.gamma_max) - Fraction(cfg.gamma_min)
    elif cfg.schedule == "affine":
        linear = den.params["schedule"]["linear"]
        b = Fraction(float(np.asarray(linear["bias"], np.float32).reshape(-1)[0]))
        w = abs(Fraction(float(np.asarray(linear["kernel"], np.float32).reshape(-1)[0])))
    else:
        raise ValueError(f"exact coding needs a linear noise schedule, not {cfg.schedule!r}")
    codes = [round((b + w * Fraction(i, steps) - Fraction(GAMMA_LO)) * int(GAMMA_SCALE)) for i in range(steps + 1)]
    return np.clip(np.array(codes, np.int64), 0, GAMMA_CODES - 1)


def _alpha_sigma(g: Decimal) -> tuple[Decimal, Decimal]:
    """alpha = sqrt(sigmoid(-g)), sigma = sqrt(sigmoid(g)) (VDM eq. 4) in the caller's decimal context."""
    e = g.exp()  # e^g = sigma^2 / alpha^2
    return (1 / (1 + e)).sqrt(), (e / (1 + e)).sqrt()


def schedule_constants(g: np.ndarray, exact: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """alpha_i = sqrt(sigmoid(-g_i)), sigma_i = sqrt(sigmoid(g_i)) and c_i = -expm1(g_(i-1) - g_i)
    (i >= 1): by 40-digit decimal arithmetic (correctly rounded exp and sqrt, then one rounding to
    float64: the same on every machine) when ``exact``, else by scipy (streams of float models,
    which must keep the values they were made with)."""
    if not exact:
        return np.sqrt(special.expit(-g)), np.sqrt(special.expit(g)), -np.expm1(g[:-1] - g[1:])
    with localcontext() as ctx:
        ctx.prec = DECIMAL_DIGITS
        d = [Decimal(float(v)) for v in g]
        levels = [_alpha_sigma(v) for v in d]
        c = [float(1 - (a - b).exp()) for a, b in zip(d[:-1], d[1:])]
    return np.array([float(a) for a, _ in levels]), np.array([float(s) for _, s in levels]), np.array(c)


def _fixed(value: Decimal, frac: int) -> int:
    return int((value * (1 << frac)).to_integral_value())


@dataclass(frozen=True)
class PriorStep:
    """p(z_s | z_t) = N(a z_t + b x_hat, std^2), x_hat = clip(r (z_t - sigma_t eps_hat), -1, 1)
    (VDM eq. 27 with eq. 32-33: a = alpha_s / alpha_t (1 - c), b = alpha_s c, r = 1 / alpha_t,
    std = sigma_s sqrt(c), c = 1 - e^(gamma_s - gamma_t)), each constant a rounded integer: r with
    ``RECIP_FRAC`` fraction bits, the rest with ``CONST_FRAC``."""

    a: int
    b: int
    r: int
    sigma_t: int
    std: int


@functools.cache
def prior_step(code_t: int, code_s: int) -> PriorStep:
    """The constants of the step from noise level code ``code_t`` down to ``code_s`` < ``code_t``,
    from 40-digit decimals of the exact gammas (code / 2048 - 24)."""
    if not 0 <= code_s < code_t < GAMMA_CODES:
        raise ValueError(f"a step goes down the gamma codes, not from {code_t} to {code_s}")
    with localcontext() as ctx:
        ctx.prec = DECIMAL_DIGITS
        g_t, g_s = (Decimal(code) / int(GAMMA_SCALE) + int(GAMMA_LO) for code in (code_t, code_s))
        (alpha_t, sigma_t), (alpha_s, sigma_s) = _alpha_sigma(g_t), _alpha_sigma(g_s)
        c = 1 - (g_s - g_t).exp()
        return PriorStep(_fixed(alpha_s / alpha_t * (1 - c), CONST_FRAC), _fixed(alpha_s * c, CONST_FRAC),
                         _fixed(1 / alpha_t, RECIP_FRAC), _fixed(sigma_t, CONST_FRAC),
                         _fixed(sigma_s * c.sqrt(), CONST_FRAC))


@functools.cache
def sigma_fixed(code: int) -> int:
    """sigma at noise level ``code`` with ``CONST_FRAC`` fraction bits: the std of p(z_1) = N(0, sigma_1^2 I)."""
    with localcontext() as ctx:
        ctx.prec = DECIMAL_DIGITS
        return _fixed(_alpha_sigma(Decimal(code) / int(GAMMA_SCALE) + int(GAMMA_LO))[1], CONST_FRAC)


def integer_eps(den: Denoiser, z: np.ndarray, code: int) -> np.ndarray:
    """The integer network's eps_hat (int64, ``EPS_FRAC`` fraction bits) of z (1, H, W, 3), int
    with ``Z_FRAC`` fraction bits and |z| <= ``Z_MAX``, at gamma code ``code``: reflect-padded to
    the U-Net's multiple (as the float network pads its input) and cropped back, so any size runs."""
    h, w = z.shape[1:3]
    m = den.config.multiple
    padded = np.pad(z, ((0, 0), (0, -h % m), (0, -w % m), (0, 0)), mode="reflect").astype(np.int32)
    eps = den.integer_eps(jnp.asarray(padded), jnp.full((1,), code, jnp.int32))
    return np.asarray(eps, np.int64)[:, :h, :w]


def _round_shift(v: np.ndarray, bits: int) -> np.ndarray:
    """v / 2^bits rounded to the nearest integer, halves up (int64, arithmetic shift)."""
    return (v + (1 << (bits - 1))) >> bits


def prior_mean(step: PriorStep, z: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """The mean of p(z_s | z_t) with ``MEAN_FRAC`` fraction bits (int64), for z_t (``Z_FRAC``
    fraction bits, |z| <= ``Z_MAX``) and the integer network's eps_hat (int32, ``EPS_FRAC``).

    z_t - sigma_t eps_hat is clamped to [-1, 1] before the product with r >= 1, which the clip of
    x_hat would reach anyway; so sigma_t eps < 2^61, r d < 2^58, a z < 2^61 and b x_hat < 2^60."""
    z, eps = np.asarray(z, np.int64), np.asarray(eps, np.int64)
    d = z - _round_shift(step.sigma_t * eps, CONST_FRAC + EPS_FRAC - Z_FRAC)
    d = np.clip(d, -(1 << Z_FRAC), 1 << Z_FRAC)
    x_hat = np.clip(_round_shift(step.r * d, Z_FRAC + RECIP_FRAC - X_FRAC), -(1 << X_FRAC), 1 << X_FRAC)
    return step.a * z + _round_shift(step.b * x_hat, CONST_FRAC + X_FRAC - MEAN_FRAC)


def draw(mean: np.ndarray, std: int, normals: np.ndarray) -> np.ndarray:
    """The latent mean + std n with ``Z_FRAC`` fraction bits, clamped to +-``Z_MAX``: mean with
    ``MEAN_FRAC`` fraction bits, std with ``CONST_FRAC``, the normals n in units of 2^-16 (|n| <
    2^19, so std n < 2^49)."""
    noise = (std * np.asarray(normals, np.int64)) << (MEAN_FRAC - CONST_FRAC - QUANTILE_BITS)
    return np.clip(_round_shift(np.asarray(mean, np.int64) + noise, MEAN_FRAC - Z_FRAC), -Z_MAX, Z_MAX)


def stream_hash(den: Denoiser, exact: bool) -> bytes:
    """How a stream names its model: an exact stream by the integer network it decodes with, a
    float stream by the float weights."""
    return registry.stream_hash(den.integer_sha256) if exact else den.hash8


def require_decoder(header: bitstreams.Header, mode: bitstreams.Mode, den: Denoiser) -> bool:
    """The stream's ``exact`` flag, after refusing a model that cannot decode it: a stream of
    another mode or model, or an exact stream (made with the integer network of its model) to a
    model without one. The one check of the three decoders (``den``: a VDM or an ARDM prior)."""
    exact = bitstreams.exact_flag(header)
    if exact and den.integer is None:
        raise bitstreams.StreamMismatchError(
            f"the stream was made with the integer network of {header.model_id}; model {den.name} has none")
    bitstreams.require_source(header, mode, den.name, stream_hash(den, exact))
    return exact
