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
from diffc.codec import entropy, randomness, rcc
from diffc.codec.images import float_numerics_error
from diffc.codec.denoiser import Denoiser
from diffc.models import vdm

Method = Literal["flow", "ancestral", "mean"]
GAMMA_LO, GAMMA_SCALE, GAMMA_CODES = -24.0, 2048.0, 1 << 16  # grid gamma = code / 2048 - 24
_MIN_CHUNK_BITS = 512
_PIXEL_SLICE = 1 << 14  # pixels per table of the discretised decoder: 3 x 256 float64 each, 96 MiB


MAX_STEPS = 64  # coding steps after the first; a decoder refuses more


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
    latents: list[np.ndarray] = field(repr=False)  # the sender's z after each step sent

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


def gamma_code(gamma: float) -> int:
    """The 16-bit fixed-point code of a noise level, as streams store it (shared by the coders)."""
    return int(np.clip(round((gamma - GAMMA_LO) * GAMMA_SCALE), 0, GAMMA_CODES - 1))


def gamma_value(code: int) -> float:
    """The noise level of a ``gamma_code``."""
    return code / GAMMA_SCALE + GAMMA_LO


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


def plan_grid(curve: RateCurve, target_bits: float | None, steps: int, dims: int = 0) -> list[int]:
    """Gamma codes of at most ``steps`` steps of equal predicted bits that spend ``target_bits``
    (after step 0); or, when ``target_bits`` is None (lossless), of ``steps`` steps down to the
    noise level where the predicted bits of the steps plus the lossless tail over ``dims``
    subpixels are fewest (with few steps, stopping above gamma(0) and letting the tail code the
    rest is cheaper than paying large steps at the error of their start)."""
    if target_bits is not None:
        levels = _walk(curve, max(target_bits - curve.prior_bits, 1.0) / steps, steps)
    else:
        candidates = np.linspace(curve.gammas[0], curve.gammas[-1], 49)[1:]
        end = min(candidates, key=lambda g: _lossless_bits(curve, float(g), steps, dims))
        levels = _walk(curve, _bits_to_reach(curve, float(end), steps), steps, float(end))
        levels[-1] = float(end)
    codes = []
    previous = gamma_code(curve.gammas[0])
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
    return stack.to_bytes()


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


def _tail_bytes(pixels_rgb: np.ndarray, z_0: jax.Array, gamma_0: jax.Array) -> bytes:
    """The lossless tail: every subpixel with the discretised decoder p(x | z) at the last step's
    level (VDM eq. 28-30)."""
    stack = entropy.Stack()
    push_pixels(stack, pixels_rgb, z_0, gamma_0)
    return stack.to_bytes()


def _pop_tail(data: bytes, z_0: jax.Array, gamma_0: jax.Array, model: str) -> np.ndarray:
    try:
        stack = entropy.Stack.from_bytes(data)
        pixels = pop_pixels(stack, z_0, gamma_0, 3)[0]
    except entropy.EntropyCodingError as exc:
        raise float_numerics_error("lossless tail", model, str(exc)) from None
    if not stack.exhausted():
        raise float_numerics_error("lossless tail", model, "data left over after the last pixel")
    return pixels


def encode(
    pixels: np.ndarray, den: Denoiser, *, bpp: float | None, config: LossyConfig = LossyConfig(), seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> EncodeResult:
    """Code ``pixels`` (H, W, C uint8) at most ``bpp`` bits per pixel (header included), or all the
    way to a lossless stream when ``bpp`` is None; ``progress(done, total)`` follows the steps."""
    if not 1 <= config.steps <= MAX_STEPS:
        raise ValueError(f"steps must lie in [1, {MAX_STEPS}], not {config.steps}")
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
    grid = plan_grid(curve, target, config.steps, dims)
    seconds["network"] += time.perf_counter() - start

    _, g1 = den.gamma_range
    gamma_t = jnp.asarray(g1, jnp.float32)
    mean, std = _initial(x, gamma_t)
    u = np.asarray(vdm.alpha_sigma(gamma_t)[0] * x / std).reshape(-1)
    codes: list[rcc.StepCode] = []
    stats: list[StepStats] = []
    latents: list[np.ndarray] = []
    z = None
    for i, code_g in enumerate([None, *grid]):
        if code_g is not None:
            t0 = time.perf_counter()
            gamma_s = jnp.asarray(gamma_value(code_g), jnp.float32)
            mean, std = den.prior_step(z, gamma_t, gamma_s)
            u = np.asarray((_posterior_mean(z, x, gamma_t, gamma_s) - mean) / std).reshape(-1)
            gamma_t = gamma_s
            seconds["network"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        code = rcc.select(seed, i, u, config.rcc)
        z = _apply(mean, std, jnp.asarray(rcc.regenerate(seed, i, dims, code)))
        seconds["rcc"] += time.perf_counter() - t0
        probe = entropy.Stack()
        ideal = rcc.push(probe, code, config.rcc)
        codes.append(code)
        latents.append(np.asarray(z))
        stats.append(StepStats(float(gamma_t), rcc.kl_bits(u), ideal, code.indices.size))
        if progress:
            progress(i + 1, len(grid) + 1)

    t0 = time.perf_counter()
    tail = _tail_bytes(np.repeat(pixels, 3 // channels, axis=-1), z, gamma_t) if lossless else None
    header_for = lambda n: bitstreams.Header(  # noqa: E731
        Mode.LOSSY, h, w, channels, seed, den.name, den.hash8,
        {"steps": grid_steps(n), "chunk_bits": config.rcc.chunk_bits, "margin": config.rcc.margin,
         "lossless_tail": int(lossless), "exact": 0},
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


def decode_latent(data: bytes, den: Denoiser, *, max_bytes: int | None = None) -> Latent:
    """Rebuild z from the complete chunks of (a prefix of) a lossy stream, with the shared
    randomness of the stream's format version."""
    if max_bytes is not None:
        data = data[:max_bytes]
    container = bitstreams.read(data)
    header = container.header
    bitstreams.require_source(header, Mode.LOSSY, den.name, den.hash8)
    p = header.params
    try:
        config = rcc.RccConfig(p.get("chunk_bits", 0), p.get("margin", 0))
    except ValueError as exc:
        raise bitstreams.CorruptStreamError(f"bad coding parameters: {exc}") from None
    if not 0 <= p.get("steps", 0) <= MAX_STEPS:
        raise bitstreams.CorruptStreamError(f"steps {p.get('steps', 0)} is outside [0, {MAX_STEPS}]")
    steps_total = p.get("steps", 0) + 1
    rng = randomness.for_version(header.version)
    x_like = jnp.zeros((1, header.height, header.width, 3), jnp.float32)
    dims = x_like.size
    _, g1 = den.gamma_range
    gamma_t = jnp.asarray(g1, jnp.float32)
    z, grid, step = None, None, 0
    lossless_chunk = p.get("lossless_tail", 0) == 1
    pixels = None
    for j, chunk in enumerate(container.chunks):
        if step == steps_total:
            if not lossless_chunk or pixels is not None:
                raise bitstreams.CorruptStreamError(f"chunk {j} follows the last step")
            pixels = _pop_tail(chunk, z, gamma_t, den.name)
            continue
        stack = entropy.Stack.from_bytes(chunk)
        if j == 0:
            grid = [int(c) for c in stack.pop(entropy.uniform(GAMMA_CODES, steps_total - 1))]
            if any(b >= a for a, b in zip([gamma_code(g1)] + grid, grid)):
                raise bitstreams.CorruptStreamError("the step grid is not decreasing")
        count = int(stack.pop(entropy.uniform(steps_total + 1, 1))[0])
        if count == 0 or step + count > steps_total:
            raise bitstreams.CorruptStreamError(f"chunk {j} declares {count} steps; {steps_total - step} remain")
        for _ in range(count):
            if step == 0:
                mean, std = _initial(x_like, gamma_t)
            else:
                gamma_s = jnp.asarray(gamma_value(grid[step - 1]), jnp.float32)
                mean, std = den.prior_step(z, gamma_t, gamma_s)
                gamma_t = gamma_s
            code = rcc.pop(stack, config, dims)
            z = _apply(mean, std, jnp.asarray(rcc.regenerate(header.seed, step, dims, code, rng)))
            step += 1
        if not stack.exhausted():
            raise bitstreams.CorruptStreamError(f"chunk {j} has data left over after its {count} steps")
    if z is None:
        raise bitstreams.TruncatedStreamError("no complete chunk: the stream holds no step to decode")
    if pixels is not None and header.channels == 1:
        pixels = pixels[..., :1]
    truncated = not container.complete or step < steps_total
    return Latent(z, float(gamma_t), header, step, steps_total, pixels, truncated)


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
