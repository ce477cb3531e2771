"""Lossy DiffC (Theis, Salimans, Hoffman, Mentzer 2022): send a noisy image step by step.

The sender and receiver share a seed. Step 0 codes z at the highest noise level gamma(1) against
N(0, sigma_1^2 I); each later step t -> s of a grid codes a sample of q(z_s | z_t, x) against the
receiver's prior p(z_s | z_t) by reverse channel coding (``rcc``). The receiver can stop after any
step and denoise the z it holds (``reconstruct``), so the stream is progressive.

The grid is planned per image: the sender measures the error of the denoised mean,
||x - x_hat(z_gamma)||^2, at a few noise levels (``rate_curve``) and walks down from gamma(1) in
steps of equal predicted cost, a step t -> s costing 0.5 (SNR_s - SNR_t) ||x - x_hat(z_t)||^2 nats
(VDM eq. 14): the error at the step's start, not the continuous-time integral (eq. 17), which
underestimates large steps several-fold (planning with it put a 1 bpp budget into one step).
The steps share the budget equally, so the grid reaches the lowest noise level it can. The grid
(gamma values, 16-bit fixed point) opens chunk 0. Steps are grouped into container chunks of a
similar share of the bits; rate control keeps the longest prefix of steps that fits the budget.
With no budget the grid goes down to the noise level where the predicted bits of the steps plus
a lossless tail are fewest, and a last chunk codes the pixels with the discretised decoder
p(x | z) at that level (VDM eq. 28-30): the same stream then ends lossless.

Every number both sides draw (the RCC candidates and permutations, and the noise of ancestral
reconstruction) comes from ``randomness``, the generator the format specifies; a stream of an
older format version is decoded with the generator of its version (``randomness.for_version``).

Two paths hold the latents (header field ``exact``). The float path (0) steps z in float32 with the
float network, so the decoder rebuilds the sender's z only on the setup that encoded it, and a
lossless tail computed from that z is as fragile. The exact path (1, with the model's integer
network) keeps z in fixed point and computes p(z_s | z_t) in integers (``fixed_point``) from the
integer eps_hat, starting at the exact code of gamma(1); the chosen candidate mean + std n is an
integer, so both sides hold the same z after every step on any machine, and the tail codes the
pixels with integer masses (``exact_coding``). Only the sender's target q(z_s | z_t, x) and its
choice of candidates stay float; reconstruction, which no later step depends on, uses the float
network on both paths.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import entropy, exact_coding, fixed_point, randomness, rcc
from diffc.codec.denoiser import Denoiser
from diffc.codec.fixed_point import GAMMA_CODES, gamma_code, gamma_value
from diffc.codec.images import float_numerics_error
from diffc.models import integer_unet, vdm

Method = Literal["flow", "ancestral", "mean"]
_MIN_CHUNK_BITS = 512
_PIXEL_SLICE = 1 << 14  # pixels per table of the discretised decoder: 3 x 256 float64 each, 96 MiB


MAX_STEPS = 64  # coding steps after the first; a decoder refuses more
HEAD_FIRST_SINCE = 7  # the format version whose chunks hold their rANS words head first


def grid_steps(codes: int) -> int:
    """The "steps" of a lossy stream of ``codes`` reverse channel codes, as ``LossyConfig.steps``
    (``--steps``) bounds them, the header's ``steps`` stores them and the CLI and ``diffc info``
    report them: the steps t -> s of the grid, each a code of q(z_s | z_t, x); step 0, the code of z
    at gamma(1) against N(0, sigma_1^2 I), is not one of them."""
    return codes - 1


@dataclass(frozen=True)
class LossyConfig:
    """Knobs of the lossy coder; the defaults suit a CPU."""

    steps: int = 12
    rcc: rcc.RccConfig = field(default_factory=rcc.RccConfig)
    overhead: float = 1.15  # expected coded bits over ideal bits, to plan the grid
    chunk_share: float = 0.125  # group steps into chunks of about this share of the stream
    curve_points: int = 16  # network calls spent measuring the rate curve


@dataclass
class StepStats:
    gamma: float
    kl_bits: float
    ideal_bits: float
    chunks: int


@dataclass
class EncodeResult:
    data: bytes
    steps: list[StepStats]
    seconds: dict[str, float]
    lossless: bool
    # the sender's z after each step sent, as the decoder holds it: float32 (``Latent.z``) on the
    # float path, int64 fixed point (``Latent.fixed``) on the exact path
    latents: list[np.ndarray] = field(repr=False)

    @property
    def kl_bits(self) -> float:
        return sum(s.kl_bits for s in self.steps)


def pixels_to_model(pixels: np.ndarray) -> jax.Array:
    """(H, W), (H, W, C) or a batch (B, H, W, C) of uint8, C in {1, 3}, to the (B, H, W, 3) x in
    [-1, 1] the RGB model codes (B = 1 for one image; grayscale repeated on three channels)."""
    k = np.asarray(pixels)
    if k.ndim == 2:
        k = k[..., None]
    if k.ndim == 3:
        k = k[None]
    return vdm.pixels_to_x(jnp.asarray(np.repeat(k, 3 // k.shape[-1], axis=-1)))


def model_to_pixels(x: jax.Array, channels: int) -> np.ndarray:
    """(1, H, W, 3) x to (H, W, channels) uint8 at the nearest bin centre."""
    x = np.asarray(x[0], np.float64)
    if channels == 1:
        x = x.mean(axis=-1, keepdims=True)
    return np.clip(np.round((x + 1.0) * 128.0 - 0.5), 0, 255).astype(np.uint8)


@jax.jit
def _apply(mean: jax.Array, std: jax.Array, eps: jax.Array) -> jax.Array:
    return mean + std * eps.reshape(mean.shape)


@jax.jit
def _initial(x_shape_like: jax.Array, gamma_1: jax.Array) -> tuple[jax.Array, jax.Array]:
    """p(z_1) = N(0, sigma_1^2 I): the step-0 prior, with the variance of q(z_1 | x)."""
    _, sigma = vdm.alpha_sigma(gamma_1)
    return jnp.zeros_like(x_shape_like), jnp.broadcast_to(sigma, (1, 1, 1, 1))


@jax.jit
def _posterior_mean(z_t: jax.Array, x: jax.Array, gamma_t: jax.Array, gamma_s: jax.Array) -> jax.Array:
    return vdm.posterior(z_t, x, gamma_s.reshape(1), gamma_t.reshape(1))[0]


pixel_logits = jax.jit(vdm.decoder_logits)
"""256-way logits of p(x | z_0), jitted once for both coders' lossless ends."""


@dataclass(frozen=True)
class RateCurve:
    """What the sender measures of an image before planning: the squared error of the denoised
    mean, err2(gamma) = ||x - x_hat(z_gamma)||^2, at ``gammas`` from gamma(1) down to gamma(0), and
    the bits of step 0 (the prior KL of z at gamma(1))."""

    gammas: np.ndarray
    err2: np.ndarray
    prior_bits: float

    @functools.cached_property
    def _log_err2(self) -> np.ndarray:
        return np.log(np.maximum(self.err2, 1e-30))

    def err2_at(self, gamma: float) -> float:
        """err2 interpolated log-linearly in gamma (the planner's inner loop calls this thousands of
        times, so the logs are taken once)."""
        return math.exp(np.interp(-gamma, -self.gammas, self._log_err2))


def rate_curve(den: Denoiser, x: jax.Array, points: int, seed: int) -> RateCurve:
    """err2 at ``points`` noise levels, one network call each (one noise draw per level, the
    sender's own: the grid it plans is sent, so the receiver never draws these)."""
    g0, g1 = den.gamma_range
    gammas = np.linspace(g1, g0, points)
    err2 = np.empty(points)
    for i, g in enumerate(gammas):
        gamma = jnp.full((1,), g, jnp.float32)
        z = vdm.diffuse(x, gamma, randomness.noise(seed, randomness.Domain.RATE_CURVE, i, x.shape))
        err2[i] = float(jnp.sum(jnp.square(x - vdm.x_hat(z, gamma, den.eps(z, gamma)))))
    alpha1_sq = 1.0 / (1.0 + math.exp(g1))
    prior = float(jnp.sum(x * x)) * alpha1_sq / (2 * (1.0 - alpha1_sq)) / math.log(2)
    return RateCurve(gammas, err2, prior)


def _walk(curve: RateCurve, step_bits: float, steps: int, floor: float | None = None) -> list[float]:
    """Noise levels of up to ``steps`` steps of ``step_bits`` each from gamma(1), stopping at
    ``floor`` (default gamma(0)).

    A step t -> s costs KL(q(z_s|z_t,x) || p(z_s|z_t)) = 0.5 (SNR_s - SNR_t) ||x - x_hat(z_t)||^2
    nats (VDM eq. 14 with SNR = e^-gamma): the error of the denoised mean at the step's *start*,
    which is why a few large steps cost far more than the continuous-time integral."""
    g0, g = curve.gammas[-1] if floor is None else floor, curve.gammas[0]
    levels = []
    for _ in range(steps):
        snr = math.exp(-g) + 2 * step_bits * math.log(2) / curve.err2_at(g)
        g = max(-math.log(snr), g0)
        levels.append(g)
        if g == g0:
            break
    return levels


def _bits_to_reach(curve: RateCurve, end: float, steps: int) -> float:
    """The fewest bits per step with which ``steps`` equal steps reach ``end`` (bisection)."""
    lo, hi = 1e-3, 1e12
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        lo, hi = (lo, mid) if _walk(curve, mid, steps, end)[-1] == end else (mid, hi)
    return hi


def tail_bits_per_dim(gamma: float) -> float:
    """Entropy in bits of an 8-bit value under the discretised decoder p(x | z_gamma) (VDM eq. 28-30)
    when z is distributed as the model assumes: a Gaussian of std sigma/alpha (in units of the
    2/255 bins) discretised to the bins, what the lossless tail pays per subpixel at that level."""
    std = math.sqrt(math.exp(gamma)) * 127.5  # sigma / alpha = e^(gamma / 2), in bins
    k = np.arange(-math.ceil(8 * std + 2), math.ceil(8 * std + 2) + 1)
    p = np.diff(special.ndtr((np.append(k, k[-1] + 1) - 0.5) / std))
    p = p[p > 0]
    return float(-np.sum(p * np.log2(p)))


def _lossless_bits(curve: RateCurve, end: float, steps: int, dims: int) -> float:
    """Predicted bits of a lossless stream whose steps end at ``end``: the steps, then the tail."""
    if end >= curve.gammas[0]:
        return math.inf
    return steps * _bits_to_reach(curve, end, steps) + dims * tail_bits_per_dim(end)


def plan_grid(curve: RateCurve, target_bits: float | None, steps: int, top: int, dims: int = 0) -> list[int]:
    """Gamma codes, strictly decreasing from ``top`` (the code of step 0's level), of at most
    ``steps`` steps of equal predicted bits that spend ``target_bits`` (after step 0); or, when
    ``target_bits`` is None (lossless), of ``steps`` steps down to the noise level where the
    predicted bits of the steps plus the lossless tail over ``dims`` subpixels are fewest (with few
    steps, stopping above gamma(0) and letting the tail code the rest is cheaper than paying large
    steps at the error of their start)."""
    if target_bits is not None:
        levels = _walk(curve, max(target_bits - curve.prior_bits, 1.0) / steps, steps)
    else:
        candidates = np.linspace(curve.gammas[0], curve.gammas[-1], 49)[1:]
        end = min(candidates, key=lambda g: _lossless_bits(curve, float(g), steps, dims))
        levels = _walk(curve, _bits_to_reach(curve, float(end), steps), steps, float(end))
        levels[-1] = float(end)
    codes = []
    previous = top
    for g in levels:
        code = max(min(gamma_code(g), previous - 1), 0)  # strictly decreasing
        codes.append(code)
        previous = code
    return codes


def _group(step_bits: list[float], share: float) -> list[int]:
    """Number of steps in each chunk: consecutive steps until a chunk holds ``share`` of the bits."""
    limit = max(share * sum(step_bits), _MIN_CHUNK_BITS)
    groups, current, bits = [], 0, 0.0
    for b in step_bits:
        current, bits = current + 1, bits + b
        if bits >= limit:
            groups.append(current)
            current, bits = 0, 0.0
    if current:
        groups.append(current)
    return groups


def _chunk_bytes(codes: list[rcc.StepCode], grid: list[int] | None, config: LossyConfig, max_steps: int) -> bytes:
    """One chunk: its steps' codes, then the count of steps, then (chunk 0) the grid, pushed in
    reverse so that the decoder pops grid, count, step codes in order."""
    stack = entropy.Stack()
    for code in reversed(codes):
        rcc.push(stack, code, config.rcc)
    stack.push(np.array([len(codes)]), entropy.uniform(max_steps + 1, 1))
    if grid is not None:
        stack.push(np.array(grid), entropy.uniform(GAMMA_CODES, len(grid)))
    return stack.to_bytes(head_first=True)


def _decoder_table(z: jax.Array, gamma: jax.Array, channels: int) -> entropy.Categorical:
    """p(x | z) per subpixel of the pixels z (n, 3), the discretised decoder (VDM eq. 28-30); a
    grayscale value g (``channels`` 1) with p(g | z) proportional to the product of its three
    channels' p(x_c = g | z_c)."""
    logits = np.asarray(pixel_logits(z, gamma), np.float64)  # (n, 3, 256)
    if channels == 1:
        logits = logits.sum(axis=-2)
    return entropy.categorical_from_logits(logits.reshape(-1, vdm.VOCAB))


def push_pixels(stack: entropy.Stack, values: np.ndarray, z: jax.Array, gamma: jax.Array) -> None:
    """Push 8-bit values (..., C) with the discretised decoder p(x | z) at noise level ``gamma``, z
    (..., 3), in slices of ``_PIXEL_SLICE`` pixels, the last first, so that ``pop_pixels`` reads
    them in order and no table is larger than a slice's."""
    channels = values.shape[-1]
    flat, zs = values.reshape(-1, channels), jnp.reshape(z, (-1, 3))
    for start in reversed(range(0, len(flat), _PIXEL_SLICE)):
        end = start + _PIXEL_SLICE
        stack.push(flat[start:end], _decoder_table(zs[start:end], gamma, channels))


def pop_pixels(stack: entropy.Stack, z: jax.Array, gamma: jax.Array, channels: int) -> np.ndarray:
    """Undo ``push_pixels``: the uint8 values (..., ``channels``) for z (..., 3)."""
    zs = jnp.reshape(z, (-1, 3))
    slices = [stack.pop(_decoder_table(zs[start : start + _PIXEL_SLICE], gamma, channels))
              for start in range(0, zs.shape[0], _PIXEL_SLICE)]
    return np.concatenate(slices).astype(np.uint8).reshape(*z.shape[:-1], channels)


class FloatPath:
    """The float path (``exact`` 0): z float32, p(z_s | z_t) from the float network
    (``Denoiser.prior_step``, VDM eq. 27) at float32 noise levels from the float gamma(1), the
    tail's p(x | z) from float logits: exact only on the setup that made the stream. A level is a
    float32 gamma."""

    exact = False

    def __init__(self, den: Denoiser) -> None:
        self.den = den
        self.gamma_1 = den.gamma_range[1]
        self.top = gamma_code(self.gamma_1)  # the grid's codes lie below this

    def levels(self, grid: list[int]) -> list[jax.Array]:
        """Step 0's level, then the grid's."""
        return [jnp.asarray(self.gamma_1, jnp.float32), *(jnp.asarray(gamma_value(c), jnp.float32) for c in grid)]

    def gamma(self, level: jax.Array) -> jax.Array:
        return level

    def initial(self, shape: tuple[int, ...], level: jax.Array) -> tuple[jax.Array, jax.Array]:
        return _initial(jnp.zeros(shape, jnp.float32), level)

    def prior(self, z: jax.Array, level_t: jax.Array, level_s: jax.Array) -> tuple[jax.Array, jax.Array]:
        return self.den.prior_step(z, level_t, level_s)

    def standardised(self, aim: jax.Array, mean: jax.Array, std: jax.Array) -> np.ndarray:
        """u = (mu_q - mu_p) / s, what the sender's RCC scores candidates against (DESIGN section 4)."""
        return np.asarray((aim - mean) / std).reshape(-1)

    def draw(self, mean: jax.Array, std: jax.Array, eps: np.ndarray) -> jax.Array:
        return _apply(mean, std, jnp.asarray(eps))

    def value(self, z: jax.Array) -> jax.Array:
        return z

    def push_tail(self, stack: entropy.Stack, pixels: np.ndarray, z: jax.Array, level: jax.Array) -> None:
        push_pixels(stack, np.repeat(pixels, 3 // pixels.shape[-1], axis=-1), z, level)

    def pop_tail(self, stack: entropy.Stack, z: jax.Array, level: jax.Array, channels: int) -> np.ndarray:
        return pop_pixels(stack, z, level, 3)[0][..., :channels]

    def tail_error(self, detail: str) -> bitstreams.CorruptStreamError:
        return float_numerics_error("lossless tail", self.den.name, detail)


class ExactPath:
    """The exact path (``exact`` 1): z int64 fixed point (``integer_unet.Z_FRAC`` fraction bits),
    p(z_s | z_t) in integers from the integer network (``fixed_point``) at gamma codes from the
    exact code of gamma(1), the tail's p(x | z) from integer masses (``exact_coding``, the image's
    own channels): the same on every machine. A level is a gamma code."""

    exact = True

    def __init__(self, den: Denoiser, version: int = bitstreams.VERSION) -> None:
        if den.integer is None:
            raise ValueError(f"model {den.name} has no integer network for exact coding")
        self.den, self.version = den, version  # the stream's format version: its tail's pixel model
        self.top = int(fixed_point.exact_schedule_codes(den, 1)[-1])

    def levels(self, grid: list[int]) -> list[int]:
        return [self.top, *grid]

    def gamma(self, level: int) -> jax.Array:
        return jnp.asarray(gamma_value(level), jnp.float32)

    def initial(self, shape: tuple[int, ...], level: int) -> tuple[np.ndarray, int]:
        """p(z_1) = N(0, sigma_1^2 I)."""
        return np.zeros(shape, np.int64), fixed_point.sigma_fixed(level)

    def prior(self, z: np.ndarray, level_t: int, level_s: int) -> tuple[np.ndarray, int]:
        step = fixed_point.prior_step(level_t, level_s)
        return fixed_point.prior_mean(step, z, fixed_point.integer_eps(self.den, z, level_t)), step.std

    def standardised(self, aim: jax.Array, mean: np.ndarray, std: int) -> np.ndarray:
        mean_f = mean * 2.0**-fixed_point.MEAN_FRAC
        return ((np.asarray(aim, np.float64) - mean_f) / (std * 2.0**-fixed_point.CONST_FRAC)).reshape(-1)

    def draw(self, mean: np.ndarray, std: int, eps: np.ndarray) -> np.ndarray:
        """mean + std n with n the generator's normals as the integers they are (float32 multiples
        of 2^-16: scaling by 2^16 is exact)."""
        normals = (np.asarray(eps, np.float64) * 2.0**randomness.QUANTILE_BITS).astype(np.int64)
        return fixed_point.draw(mean, std, normals.reshape(mean.shape))

    def value(self, z: np.ndarray) -> jax.Array:
        return jnp.asarray(z * 2.0**-integer_unet.Z_FRAC, jnp.float32)

    def _tail_args(self, z: np.ndarray, level: int) -> tuple[np.ndarray, float, float]:
        """z as float64 (exact) and the decimal alpha and sigma of the level, as ``exact_coding`` takes them."""
        alphas, sigmas, _ = fixed_point.schedule_constants(np.array([gamma_value(level)]), exact=True)
        return z * 2.0**-integer_unet.Z_FRAC, float(alphas[0]), float(sigmas[0])

    def push_tail(self, stack: entropy.Stack, pixels: np.ndarray, z: np.ndarray, level: int) -> None:
        exact_coding.push_pixels(stack, pixels, *self._tail_args(z, level), self.version)

    def pop_tail(self, stack: entropy.Stack, z: np.ndarray, level: int, channels: int) -> np.ndarray:
        return exact_coding.pop_pixels(stack, *self._tail_args(z, level), channels, self.version)[0]

    def tail_error(self, detail: str) -> bitstreams.CorruptStreamError:
        return bitstreams.CorruptStreamError(f"the lossless tail is corrupt: {detail}")


Path = FloatPath | ExactPath


def _tail_bytes(path: Path, pixels: np.ndarray, z: Any, level: Any) -> bytes:
    """The lossless tail: every subpixel with the discretised decoder p(x | z) at the last step's
    level (VDM eq. 28-30)."""
    stack = entropy.Stack()
    path.push_tail(stack, pixels, z, level)
    return stack.to_bytes(head_first=True)


def _pop_tail(data: bytes, path: Path, z: Any, level: Any, channels: int, head_first: bool) -> np.ndarray:
    try:
        stack = entropy.Stack.from_bytes(data, head_first=head_first)
        pixels = path.pop_tail(stack, z, level, channels)
    except entropy.EntropyCodingError as exc:
        raise path.tail_error(str(exc)) from None
    if not stack.exhausted():
        raise path.tail_error("data left over after the last pixel")
    return pixels


def encode(
    pixels: np.ndarray, den: Denoiser, *, bpp: float | None, config: LossyConfig = LossyConfig(), seed: int = 0,
    progress: Callable[[int, int], None] | None = None, exact: bool | None = None,
) -> EncodeResult:
    """Code ``pixels`` (H, W, C uint8) at most ``bpp`` bits per pixel (header included), or all the
    way to a lossless stream when ``bpp`` is None; ``progress(done, total)`` follows the steps.
    ``exact`` (default: whenever ``den`` has an integer network): the exact path, a stream whose
    latents and tail decode alike on any machine (docs/portability.md), named by the integer
    network's hash."""
    if not 1 <= config.steps <= MAX_STEPS:
        raise ValueError(f"steps must lie in [1, {MAX_STEPS}], not {config.steps}")
    path = ExactPath(den) if (den.integer is not None if exact is None else exact) else FloatPath(den)
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    h, w, channels = pixels.shape
    x = pixels_to_model(pixels)
    dims = x.size
    seconds = {"network": 0.0, "rcc": 0.0, "entropy": 0.0}
    lossless = bpp is None
    budget = None if lossless else bpp * h * w

    start = time.perf_counter()
    curve = rate_curve(den, x, config.curve_points, seed)
    header_guess = 8 * (40 + len(den.name)) + config.steps * 48
    target = None if lossless else max(budget - header_guess, 0.0) / config.overhead
    grid = plan_grid(curve, target, config.steps, path.top, dims)
    levels = path.levels(grid)
    seconds["network"] += time.perf_counter() - start

    codes: list[rcc.StepCode] = []
    stats: list[StepStats] = []
    latents: list[np.ndarray] = []
    z = None
    for i, level in enumerate(levels):
        t0 = time.perf_counter()
        if i == 0:
            mean, std = path.initial(x.shape, level)
            aim = vdm.alpha_sigma(path.gamma(level))[0] * x  # the mean of q(z_1 | x)
        else:
            mean, std = path.prior(z, levels[i - 1], level)
            aim = _posterior_mean(path.value(z), x, path.gamma(levels[i - 1]), path.gamma(level))
        u = path.standardised(aim, mean, std)
        seconds["network"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        code = rcc.select(seed, i, u, config.rcc)
        z = path.draw(mean, std, rcc.regenerate(seed, i, dims, code))
        seconds["rcc"] += time.perf_counter() - t0
        probe = entropy.Stack()
        ideal = rcc.push(probe, code, config.rcc)
        codes.append(code)
        latents.append(np.asarray(z))
        stats.append(StepStats(float(path.gamma(level)), rcc.kl_bits(u), ideal, code.indices.size))
        if progress:
            progress(i + 1, len(levels))

    t0 = time.perf_counter()
    tail = _tail_bytes(path, pixels, z, levels[-1]) if lossless else None
    header_for = lambda n: bitstreams.Header(  # noqa: E731
        Mode.LOSSY, h, w, channels, seed, den.name, fixed_point.stream_hash(den, path.exact),
        {"steps": grid_steps(n), "chunk_bits": config.rcc.chunk_bits, "margin": config.rcc.margin,
         "lossless_tail": int(lossless), "exact": int(path.exact)},
    )
    for n in range(len(codes), 0, -1):  # the longest prefix of steps that fits the budget
        groups = _group([s.ideal_bits for s in stats[:n]], config.chunk_share)
        chunks, first = [], 0
        for j, count in enumerate(groups):
            chunk_grid = grid[: n - 1] if j == 0 else None
            chunks.append(_chunk_bytes(codes[first : first + count], chunk_grid, config, n))
            first += count
        if tail is not None and n == len(codes):
            chunks.append(tail)
        data = bitstreams.write(header_for(n), chunks)
        if budget is None or 8 * len(data) <= budget or n == 1:
            break
    seconds["entropy"] += time.perf_counter() - t0
    return EncodeResult(data, stats[:n], seconds, lossless and n == len(codes), latents[:n])


@dataclass
class Latent:
    """What the receiver holds after the chunks present: z at noise level gamma."""

    z: jax.Array
    gamma: float
    header: bitstreams.Header
    steps_decoded: int
    steps_total: int
    pixels: np.ndarray | None  # the exact image when the lossless tail was decoded
    truncated: bool
    fixed: np.ndarray | None = None  # the exact path's z: int64 with ``integer_unet.Z_FRAC`` fraction bits
    fraction: float = 0.0  # the share of step ``steps_decoded``'s RCC chunks in z (a prefix cut inside it)


def _decoding_path(header: bitstreams.Header, den: Denoiser) -> Path:
    """The path a stream was made on, checked against the model: an exact stream needs the
    integer network its header names, a float stream the float weights."""
    exact = fixed_point.require_decoder(header, Mode.LOSSY, den)
    if not exact:
        return FloatPath(den)
    try:
        return ExactPath(den, header.version)
    except ValueError as exc:
        raise bitstreams.StreamMismatchError(f"model {den.name} cannot decode exact streams: {exc}") from None


def decode_latent(data: bytes, den: Denoiser, *, max_bytes: int | None = None) -> Latent:
    """Rebuild z from (a prefix of) a lossy stream, with the shared randomness of the stream's
    format version. From version 7 (``HEAD_FIRST_SINCE``) a prefix that ends inside a chunk
    yields every symbol its whole words determine: the grid, then each step's plan and the
    indices of its first RCC chunks; a step cut short takes the coded values in the chunks that
    arrived and the prior's mean in the rest (``rcc.regenerate``), so z moves towards the next
    level by the share that arrived. A prefix of the header alone gives z = 0 at gamma(1), the
    prior's mean; a lossless tail cut short is left out."""
    if max_bytes is not None:
        data = data[:max_bytes]
    container = bitstreams.read(data)
    header = container.header
    path = _decoding_path(header, den)
    p = header.params
    try:
        config = rcc.RccConfig(p.get("chunk_bits", 0), p.get("margin", 0))
    except ValueError as exc:
        raise bitstreams.CorruptStreamError(f"bad coding parameters: {exc}") from None
    if not 0 <= p.get("steps", 0) <= MAX_STEPS:
        raise bitstreams.CorruptStreamError(f"steps {p.get('steps', 0)} is outside [0, {MAX_STEPS}]")
    steps_total = p.get("steps", 0) + 1
    rng = randomness.for_version(header.version)
    shape = (1, header.height, header.width, 3)
    dims = math.prod(shape)
    head_first = header.version >= HEAD_FIRST_SINCE
    chunks = [(chunk, False) for chunk in container.chunks]
    if container.partial and head_first:
        chunks.append((container.partial, True))
    levels = path.levels([])  # step 0's level is known before the grid arrives
    z, at, step, fraction = None, 0, 0, 0.0  # z is at levels[at]; step: complete steps
    lossless_chunk = p.get("lossless_tail", 0) == 1
    pixels = None
    for j, (chunk, cut) in enumerate(chunks):
        if step == steps_total:
            if cut:  # a tail cut short: the lossy image of the steps before it
                break
            if not lossless_chunk or pixels is not None:
                raise bitstreams.CorruptStreamError(f"chunk {j} follows the last step")
            pixels = _pop_tail(chunk, path, z, levels[-1], header.channels, head_first)
            continue
        stack = entropy.Stack.from_prefix(chunk) if cut else entropy.Stack.from_bytes(chunk, head_first=head_first)
        if stack is None:
            break
        take = stack.pop_available if cut else stack.pop
        if j == 0:
            grid = [int(c) for c in take(entropy.uniform(GAMMA_CODES, steps_total - 1))]
            if len(grid) < steps_total - 1:
                break
            if any(b >= a for a, b in zip([path.top] + grid, grid)):
                raise bitstreams.CorruptStreamError("the step grid is not decreasing")
            levels = path.levels(grid)
        counted = take(entropy.uniform(steps_total + 1, 1))
        if not counted.size:
            break
        count = int(counted[0])
        if count == 0 or step + count > steps_total:
            raise bitstreams.CorruptStreamError(f"chunk {j} declares {count} steps; {steps_total - step} remain")
        for _ in range(count):
            code = rcc.pop_available(stack, config, dims) if cut else rcc.pop(stack, config, dims)
            if code is None or not code.indices.size:
                break
            if step == 0:
                mean, std = path.initial(shape, levels[0])
            else:
                mean, std = path.prior(z, levels[step - 1], levels[step])
            z, at = path.draw(mean, std, rcc.regenerate(header.seed, step, dims, code, rng)), step
            n_chunks, _ = rcc.chunk_layout(code.ladder_index, dims)
            if code.indices.size < n_chunks:
                fraction = code.indices.size / n_chunks
                break
            step += 1
        if cut:
            break
        if not stack.exhausted():
            raise bitstreams.CorruptStreamError(f"chunk {j} has data left over after its {count} steps")
    if z is None:
        mean, std = path.initial(shape, levels[0])
        z = path.draw(mean, std, np.zeros(dims, np.float32))
    truncated = not container.complete or step < steps_total
    return Latent(path.value(z), float(path.gamma(levels[at])), header, step, steps_total, pixels, truncated,
                  z if path.exact else None, fraction)


@jax.jit
def _ddim_step(z: jax.Array, eps_hat: jax.Array, gamma_t: jax.Array, gamma_s: jax.Array) -> jax.Array:
    """Probability-flow (DDIM, eta = 0) step: z_s = alpha_s x_hat + sigma_s eps_hat', with eps_hat'
    recomputed from the clipped x_hat so that the step stays on the image manifold."""
    alpha_t, sigma_t = vdm.alpha_sigma(gamma_t)
    alpha_s, sigma_s = vdm.alpha_sigma(gamma_s)
    x = jnp.clip((z - sigma_t * eps_hat) / alpha_t, -1.0, 1.0)
    eps = (z - alpha_t * x) / sigma_t
    return alpha_s * x + sigma_s * eps


def reconstruct(
    latent: Latent, den: Denoiser, *, method: Method = "flow", steps: int = 16, seed: int = 0
) -> np.ndarray:
    """Pixels (H, W, C uint8) from the receiver's z: the lossless pixels if present, else the
    denoised mean (``mean``, one network call), the probability-flow ODE (``flow``) or ancestral
    sampling (``ancestral``) from z's noise level down to gamma(0) in ``steps`` steps; ancestral
    noise comes from ``seed`` (callers pass the header's) and the stream version's generator."""
    channels = latent.header.channels
    if latent.pixels is not None:
        return latent.pixels
    g0, _ = den.gamma_range
    z, gamma_t = latent.z, jnp.asarray(latent.gamma, jnp.float32)
    if method != "mean" and latent.gamma > g0 + 1e-6:
        noises = randomness.for_version(latent.header.version).ancestral_noise(seed, tuple(z.shape))
        for g in np.linspace(latent.gamma, g0, steps + 1)[1:]:
            gamma_s = jnp.asarray(g, jnp.float32)
            if method == "flow":
                z = _ddim_step(z, den.eps(z, gamma_t.reshape(1)), gamma_t, gamma_s)
            else:
                mean, std = den.prior_step(z, gamma_t, gamma_s)
                z = _apply(mean, std, next(noises))
            gamma_t = gamma_s
    x = vdm.x_hat(z, gamma_t.reshape(1), den.eps(z, gamma_t.reshape(1)))
    return model_to_pixels(x, channels)


def describe(result: EncodeResult, pixels: int) -> dict[str, Any]:
    """The ``--stats`` facts of an encode."""
    bits = 8 * len(result.data)
    return {
        "bits": bits,
        "bpp": bits / pixels,
        "kl_bits": result.kl_bits,
        "overhead_ratio": bits / result.kl_bits if result.kl_bits else None,
        "lossless": result.lossless,
        "steps": [s.__dict__ for s in result.steps],
        "seconds": result.seconds,
    }
