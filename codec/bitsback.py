"""Lossless coding with the VDM prior: bits-back along the diffusion chain, in Bit-Swap order.

A patch x of the image is coded with the VDM's latent chain z_0, z_1, ..., z_T on the time grid
t_i = i / T (Kingma et al. 2021, "VDM"), in the order of Bit-Swap (Kingma, Abbeel, Ho 2019):

    pop z_0 ~ q(z_0 | x), push x with p(x | z_0);
    for i = 1 .. T: pop z_i ~ q(z_i | z_(i-1)), push z_(i-1) with p(z_(i-1) | z_i);
    push z_T with p(z_1) = N(0, I).

Each pop takes back bits that an earlier push left on the stack, so the net cost of a patch
(pushed minus popped information) is the T-step negative ELBO of the discretised chain, and the
stack only ever needs about one step's pops worth of bits beneath the patch. The decoder runs the
same operations backwards, pushing what the encoder popped.

Discretisation. In this order a latent is popped before the latent that conditions its push
exists, so its bins cannot depend on its neighbours in the chain: z_i lives on a fixed grid
``k * delta_i`` (stored as the integer k, so both sides rebuild it exactly), ``delta_i`` being the
smaller of the stds of its pop and its push divided by ``2 ** GRID_BITS``; every distribution's
support is centred on its own mean. Pops span ``POP_TAIL`` stds; each push's support is as wide as
a worst-case bound on how far the latent can lie from the model's mean (``plan_chain``), which
holds whatever the network predicts, so any image codes with any weights.

Dithered pops. Right after a push, the bits on top of the stack are tied to the symbols just
pushed, so a plain pop would not sample q (``Dithered``); each pop's table is rotated by shared
randomness from the header's seed, which makes its samples follow q whatever the stack holds.

Seeding. A single image pays its own initial bits: it is cut into ``patch_size`` squares coded in
raster order on one stack, and a patch that the stack cannot yet serve (its pops run dry) is coded
directly: row by row, each pixel with a Laplace around the smoothed pixels above it, its scale
fitted per patch. A one-bit flag after each patch tells the decoder which coder it used. The first
patch is always direct; the rest chain with bits-back once the stack is deep enough.

The stream is one container chunk: the rANS words of the whole stack. Its header carries the
model's name and weight hash, T, the patch size, the count of direct patches and a CRC-32 of the
image, all checked by the decoder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import special

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import entropy
from diffc.codec.denoiser import Denoiser
from diffc.codec.images import as_image, check_crc32, image_crc32
from diffc.codec.result import StreamSize
from diffc.codec.lossy import GAMMA_CODES, gamma_code, gamma_value, pixel_logits, pixels_to_model
from diffc.models import vdm

DEFAULT_STEPS = 100
DEFAULT_PATCH = 32
MAX_STEPS = 4096  # a decoder refuses more
# bins per std of the narrower of a latent's two distributions: 2 ** GRID_BITS. Measured against
# the exact T-step ELBO (T = 500, network-free model): +0.035 bits/dim with 1 bin per std, +0.007
# with 2, +0.016 with 4; with 2 a chained patch also needs a bit per dimension fewer initial bits
# than with 4.
GRID_BITS = 1
POP_TAIL = 6  # pops span +-POP_TAIL stds
_RADIUS_SAFETY = 1.01  # relative slack of push radii over their bound (float32 network means)
_LAPLACE_SCALES = 2.0 ** ((np.arange(20) - 4) / 2)  # of the direct coder, 1/4 to 181 pixel values
_FLAG = entropy.uniform(2, 1)  # per patch: 0 coded directly, 1 chained with bits-back


@dataclass(frozen=True)
class Chain:
    """The latent chain z_0 .. z_T on the grid t_i = i / T: per latent, its noise level, bin width
    and the support radii (in bins) of its pop and its push."""

    gammas: np.ndarray  # (T+1,) gamma(t_i), increasing
    alphas: np.ndarray  # (T+1,) alpha_i
    widths: np.ndarray  # (T+1,) delta_i
    pop_stds: np.ndarray  # (T+1,) std of q(z_0 | x) (i = 0) and of q(z_i | z_(i-1))
    pop_radii: np.ndarray  # (T+1,) int
    push_radii: np.ndarray  # (T+1,) int, of p(z_i | z_(i+1)) (i < T) and of p(z_1) (i = T)

    @property
    def steps(self) -> int:
        return self.gammas.size - 1


def time_grid(den: Denoiser, steps: int) -> np.ndarray:
    """gamma(i / T) for i = 0..T from the model's schedule, rounded to the 1/2048 grid of the lossy
    coder's gamma codes and made strictly increasing (every step must add noise)."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must lie in [1, {MAX_STEPS}], not {steps}")
    gamma_fn, _ = vdm.bound_fns(den.config, den.params)
    raw = np.asarray(gamma_fn(jnp.arange(steps + 1, dtype=jnp.float32) / steps), np.float64)
    rise = np.arange(steps + 1)
    codes = np.maximum.accumulate(np.array([gamma_code(float(g)) for g in raw]) - rise) + rise
    if codes[-1] >= GAMMA_CODES:
        raise ValueError(f"{steps} steps do not fit the schedule's gamma range on a 1/2048 grid")
    return np.array([gamma_value(int(c)) for c in codes])


def plan_chain(gammas: np.ndarray) -> Chain:
    """Bin widths and support radii of the latents z_i at noise levels ``gammas`` (T+1,).

    With c_i = 1 - SNR(t_i) / SNR(t_(i-1)), the forward step q(z_i | z_(i-1)) has std
    sigma_i sqrt(c_i) and the posterior q(z_(i-1) | z_i, x), hence p(z_(i-1) | z_i), has std
    sigma_(i-1) sqrt(c_i) (VDM eq. 32-33). z_i's width is the narrower of its pop's and its push's
    stds over 2 ** GRID_BITS.

    Push radii bound |z_(i-1) - mean of p(z_(i-1) | z_i)| for any network: writing z_i =
    alpha_(i|i-1) z_(i-1) + e_i, that gap is c_i (z_(i-1) - alpha_(i-1) x_hat) - e_i (1 - c_i) /
    alpha_(i|i-1), where |x - x_hat| <= 2 (x_hat is clipped), each popped e_i lies within its
    support, and |z_i - alpha_i x| accumulates those supports along the chain.
    """
    g = np.asarray(gammas, np.float64)
    alphas, sigmas = np.sqrt(special.expit(-g)), np.sqrt(special.expit(g))
    c = -np.expm1(g[:-1] - g[1:])  # (T,)
    pop_stds = np.concatenate([sigmas[:1], sigmas[1:] * np.sqrt(c)])
    push_stds = np.concatenate([sigmas[:-1] * np.sqrt(c), [1.0]])
    widths = np.minimum(pop_stds, push_stds) / 2**GRID_BITS
    pop_radii = np.ceil(POP_TAIL * pop_stds / widths).astype(np.int64)
    reach = (pop_radii + 1) * widths  # a popped z_i lies within this of its pop's mean
    ratio = alphas[1:] / alphas[:-1]  # alpha_(i|i-1)
    noise = np.empty_like(g)  # bounds |z_i - alpha_i x|
    noise[0] = reach[0]
    for i in range(1, g.size):
        noise[i] = ratio[i - 1] * noise[i - 1] + reach[i]
    step_gaps = c * (2 * alphas[:-1] + noise[:-1]) + (1 - c) / ratio * reach[1:]
    gaps = np.concatenate([step_gaps, [alphas[-1] + noise[-1]]])  # the last: |z_T| under p(z_1)
    push_radii = np.ceil(_RADIUS_SAFETY * gaps / widths + 2).astype(np.int64)
    if push_radii.max() >= 1 << 23:
        raise ValueError("the chain's supports exceed the coder's 2**23 bins; use fewer steps")
    return Chain(g, alphas, widths, pop_stds, pop_radii, push_radii)


@dataclass(frozen=True)
class Coding:
    """What encoder and decoder share besides the stream: the model, its chain, the patch size and
    the seed of the dithers."""

    den: Denoiser
    chain: Chain
    patch_size: int
    seed: int

    @classmethod
    def of(cls, den: Denoiser, steps: int, patch_size: int, seed: int) -> Coding:
        if patch_size < 1:
            raise ValueError(f"patch size must be positive, not {patch_size}")
        if not 0 <= seed < 1 << 32:
            raise ValueError(f"seed must be a 32-bit unsigned integer, not {seed}")
        return cls(den, plan_chain(time_grid(den, steps)), patch_size, seed)


# --- the chain's distributions, on the latents' grids (latents are int64 grid indices) ---------


@dataclass(frozen=True)
class Dithered:
    """Discretised Gaussians for bits-back pops, their bins coded in an order rotated to a pivot.

    A pop reads a quantile u off the stack, and right after a push u is tied to the quantile of
    the symbol just pushed: under a model that misses its target by d stds, that is about
    Phi(eps + d), not uniform, and the popped noise would carry the model's error into the next
    latent (measured at T = 20: +0.9 bits/dim over the ELBO, up to +1.5 with finer grids).
    Rotating the table so that it starts at a bin B drawn from q itself by shared randomness turns
    u into (u + C(B)) mod 1, C the CDF: about uniform and independent of u, so pops sample q
    whatever the stack holds (measured: within 0.03 bits/dim of the ELBO, as with random pops).
    """

    table: entropy.Categorical  # (n, 2R + 1) bin masses, row j starting at bin pivot[j]
    low: np.ndarray  # (n,) int64 grid index of each support's lowest bin
    pivot: np.ndarray  # (n,) int64 offset of the first coded bin from ``low``
    radius: int

    def size(self) -> int:
        return self.table.size()

    def to_coder(self, symbols: np.ndarray) -> np.ndarray:
        b = np.asarray(symbols, dtype=np.int64).reshape(-1) - self.low
        if b.size and (b.min() < 0 or b.max() > 2 * self.radius):
            raise entropy.EntropyCodingError(f"a latent lies outside its +-{self.radius} bin support")
        return self.table.to_coder((b - self.pivot) % (2 * self.radius + 1))

    def from_coder(self, coded: np.ndarray) -> np.ndarray:
        return self.low + (self.table.from_coder(coded) + self.pivot) % (2 * self.radius + 1)

    def model_and_params(self) -> tuple[object, tuple[np.ndarray, ...]]:
        return self.table.model_and_params()

    def cost_bits(self, symbols: np.ndarray) -> np.ndarray:
        return self.table.cost_bits(self.to_coder(symbols))


def dithered(means: np.ndarray, std: float, bin_width: float, radius: int, u: np.ndarray) -> Dithered:
    """N(mean, std^2) on the grid ``bin_width * k``, +-``radius`` bins around each mean (quantised as
    in ``entropy.gaussian``), each table rotated to the bin holding the quantile ``u`` (n,) in [0, 1)."""
    g = entropy.gaussian(means, np.full(np.size(means), std), bin_width, radius)
    edges = np.arange(-radius, radius + 2) - 0.5  # (2R + 2,) bin edges around the centre
    masses = np.diff(special.ndtr((edges - g.offset[:, None]) / g.std[:, None]), axis=1)
    masses /= masses.sum(axis=1, keepdims=True)
    pivot = np.minimum((np.cumsum(masses, axis=1) <= u[:, None]).sum(axis=1), 2 * radius)
    order = (pivot[:, None] + np.arange(2 * radius + 1)) % (2 * radius + 1)
    table = entropy.categorical(np.take_along_axis(masses, order, axis=1))
    return Dithered(table, g.centre - radius, pivot, radius)


def _dither(coding: Coding, patch: int, i: int, n: int) -> np.ndarray:
    """Shared uniforms in [0, 1) for the pop of latent i of a patch (JAX threefry, as in ``rcc``)."""
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(coding.seed), patch), i)
    return np.asarray(jax.random.uniform(key, (n,)), np.float64)


def _data_posterior(coding: Coding, patch: int, x: np.ndarray) -> Dithered:
    """q(z_0 | x) = N(alpha_0 x, sigma_0^2 I) (VDM eq. 1), x the (1, h, w, 3) float64 image."""
    chain = coding.chain
    return dithered(
        chain.alphas[0] * x.reshape(-1), chain.pop_stds[0], chain.widths[0], int(chain.pop_radii[0]),
        _dither(coding, patch, 0, x.size),
    )


def _forward(coding: Coding, patch: int, i: int, z_prev: np.ndarray) -> Dithered:
    """q(z_i | z_(i-1)) = N(alpha_(i|i-1) z_(i-1), sigma_i^2 c_i I) (VDM appendix A), i >= 1."""
    chain = coding.chain
    means = chain.alphas[i] / chain.alphas[i - 1] * (z_prev.reshape(-1) * chain.widths[i - 1])
    u = _dither(coding, patch, i, z_prev.size)
    return dithered(means, chain.pop_stds[i], chain.widths[i], int(chain.pop_radii[i]), u)


def _model(den: Denoiser, chain: Chain, i: int, z: np.ndarray) -> entropy.Gaussian:
    """p(z_(i-1) | z_i) = q(z_(i-1) | z_i, x = x_hat(z_i)) (VDM eq. 27): one network call on z_i
    (1, h, w, 3), its float32 outputs widened to float64."""
    z_t = jnp.asarray(z * chain.widths[i], jnp.float32)
    gamma_t, gamma_s = (jnp.asarray(chain.gammas[j], jnp.float32) for j in (i, i - 1))
    mean, std = den.prior_step(z_t, gamma_t, gamma_s)
    means = np.asarray(mean, np.float64)
    stds = np.broadcast_to(np.asarray(std, np.float64), means.shape)
    return entropy.gaussian(means, stds, chain.widths[i - 1], int(chain.push_radii[i - 1]))


def _prior(chain: Chain, n: int) -> entropy.Gaussian:
    """p(z_1) = N(0, I) (VDM eq. 11's prior term), on z_T's grid."""
    return entropy.gaussian(np.zeros(n), np.ones(n), chain.widths[-1], int(chain.push_radii[-1]))


def _likelihood(chain: Chain, z_0: np.ndarray, channels: int) -> entropy.Categorical:
    """p(x | z_0), the discretised decoder (VDM eq. 28-30), per subpixel. A grayscale value g is
    coded with p(g | z_0) proportional to the product of its three channels' p(x_c = g | z_0,c)."""
    z, gamma_0 = jnp.asarray(z_0 * chain.widths[0], jnp.float32), jnp.asarray(chain.gammas[0], jnp.float32)
    logits = np.asarray(pixel_logits(z, gamma_0), np.float64)  # (1, h, w, 3, 256)
    if channels == 1:
        logits = logits.sum(axis=-2)
    return entropy.categorical_from_logits(logits.reshape(-1, vdm.VOCAB))


# --- one patch, chained with bits-back -----------------------------------------------------------


def _model_input(pixels: np.ndarray) -> np.ndarray:
    """(h, w, C) uint8 to the (1, h, w, 3) float64 x the model codes (exact: x is k/128 + c)."""
    return np.asarray(pixels_to_model(pixels), np.float64)


def _push_chained(stack: entropy.Stack, pixels: np.ndarray, coding: Coding, patch: int) -> None:
    """Push the (h, w, C) patch number ``patch`` in Bit-Swap order (module docstring); raises
    ``EmptyStackError`` when the stack cannot serve a pop, leaving it unusable."""
    den, chain = coding.den, coding.chain
    x = _model_input(pixels)
    z = stack.pop(_data_posterior(coding, patch, x)).reshape(x.shape)
    stack.push(pixels, _likelihood(chain, z, pixels.shape[-1]))
    for i in range(1, chain.steps + 1):
        z_next = stack.pop(_forward(coding, patch, i, z)).reshape(x.shape)
        stack.push(z, _model(den, chain, i, z_next))
        z = z_next
    stack.push(z, _prior(chain, z.size))


def _pop_chained(stack: entropy.Stack, shape: tuple[int, int, int], coding: Coding, patch: int) -> np.ndarray:
    """Undo ``_push_chained``: the (h, w, C) patch, with the bits the encoder popped pushed back."""
    den, chain = coding.den, coding.chain
    z_shape = (1, shape[0], shape[1], 3)
    z = stack.pop(_prior(chain, math.prod(z_shape))).reshape(z_shape)
    for i in range(chain.steps, 0, -1):
        z_prev = stack.pop(_model(den, chain, i, z)).reshape(z_shape)
        stack.push(z, _forward(coding, patch, i, z_prev))
        z = z_prev
    pixels = stack.pop(_likelihood(chain, z, shape[2])).astype(np.uint8).reshape(shape)
    stack.push(z, _data_posterior(coding, patch, _model_input(pixels)))
    return pixels


# --- one patch, coded directly (the seed) --------------------------------------------------------


def _smooth_rows(rows: np.ndarray) -> np.ndarray:
    """Each (w, C) row smoothed by [1, 2, 1] / 4 along it, edges repeated: (r, w, C) -> float64."""
    a = np.pad(rows.astype(np.float64), ((0, 0), (1, 1), (0, 0)), mode="edge")
    return (a[:, :-2] + 2 * a[:, 1:-1] + a[:, 2:]) / 4


def _laplace(prediction: np.ndarray, scale: float) -> entropy.Categorical:
    """A discretised Laplace over the 256 values around each prediction (n,)."""
    return entropy.categorical_from_logits(-np.abs(np.arange(vdm.VOCAB) - prediction[:, None]) / scale)


def _direct_scale(pixels: np.ndarray) -> int:
    """Index of the Laplace scale nearest (in log) to the mean absolute prediction residual, the
    scale's maximum-likelihood estimate."""
    if pixels.shape[0] < 2:
        return 0
    residual = float(np.abs(pixels[1:] - _smooth_rows(pixels[:-1])).mean())
    return int(np.argmin(np.abs(np.log2(_LAPLACE_SCALES) - np.log2(max(residual, _LAPLACE_SCALES[0])))))


def _push_direct(stack: entropy.Stack, pixels: np.ndarray) -> None:
    """Push a (h, w, C) patch without the model: row 0 uniform, each later row with a Laplace
    around the smoothed row above, then the scale's index, so that the decoder pops the index, then
    the rows in order."""
    j = _direct_scale(pixels)
    predictions = _smooth_rows(pixels[:-1])
    for r in range(pixels.shape[0] - 1, 0, -1):
        stack.push(pixels[r], _laplace(predictions[r - 1].reshape(-1), _LAPLACE_SCALES[j]))
    stack.push(pixels[0], entropy.uniform(vdm.VOCAB, pixels[0].size))
    stack.push(np.array([j]), entropy.uniform(_LAPLACE_SCALES.size, 1))


def _pop_direct(stack: entropy.Stack, shape: tuple[int, int, int]) -> np.ndarray:
    """Undo ``_push_direct``."""
    h, w, channels = shape
    scale = _LAPLACE_SCALES[int(stack.pop(entropy.uniform(_LAPLACE_SCALES.size, 1))[0])]
    rows = [stack.pop(entropy.uniform(vdm.VOCAB, w * channels)).reshape(w, channels)]
    for _ in range(1, h):
        prediction = _smooth_rows(rows[-1][None])[0].reshape(-1)
        rows.append(stack.pop(_laplace(prediction, scale)).reshape(w, channels))
    return np.stack(rows).astype(np.uint8)


# --- images: patches on one stack ----------------------------------------------------------------


@dataclass(frozen=True)
class PatchCost:
    """A patch's ideal cost: information pushed minus popped, its flag included."""

    dims: int
    bits: float
    chained: bool


@dataclass(frozen=True)
class ImageStats:
    """The ideal costs of an image's patches, in coding order."""

    patches: tuple[PatchCost, ...]

    def _sum(self, chained: bool) -> tuple[int, float]:
        chosen = [p for p in self.patches if p.chained == chained]
        return sum(p.dims for p in chosen), sum(p.bits for p in chosen)

    @property
    def dims(self) -> int:
        return sum(p.dims for p in self.patches)

    @property
    def ideal_bits(self) -> float:
        return sum(p.bits for p in self.patches)

    @property
    def seed_patches(self) -> int:
        """Patches coded directly, because the stack could not yet serve their pops."""
        return sum(not p.chained for p in self.patches)

    @property
    def seed_dims(self) -> int:
        return self._sum(False)[0]

    @property
    def seed_bits(self) -> float:
        return self._sum(False)[1]

    @property
    def steady_bpd(self) -> float:
        """Bits per subpixel of the chained patches: the rate once the stack is seeded (NaN if none)."""
        dims, bits = self._sum(True)
        return bits / dims if dims else math.nan

    @property
    def seed_cost_bits(self) -> float:
        """What seeding cost: the direct patches' bits beyond the steady rate (NaN if none chained)."""
        return self.seed_bits - self.steady_bpd * self.seed_dims


def patch_grid(height: int, width: int, size: int) -> list[tuple[slice, slice]]:
    """The ``size`` x ``size`` patches (smaller at the bottom and right edges) in raster order."""
    return [
        (slice(r, min(r + size, height)), slice(c, min(c + size, width)))
        for r in range(0, height, size)
        for c in range(0, width, size)
    ]


def _copy(stack: entropy.Stack) -> entropy.Stack:
    twin = entropy.Stack(stack.to_words())
    twin.ideal_bits = stack.ideal_bits
    return twin


Progress = Callable[[int, int], None]
"""Called with (patches done, patches in all) after each patch."""


def push_image(
    stack: entropy.Stack, pixels: np.ndarray, coding: Coding, progress: Progress | None = None
) -> tuple[entropy.Stack, ImageStats]:
    """Push a (H, W, C) uint8 image patch by patch; returns the stack that holds it (``stack`` itself
    is spent) and the patches' costs. A patch is chained with bits-back when the stack can serve
    its pops (tried on a copy), else coded directly; a flag after it tells which."""
    costs = []
    grid = patch_grid(pixels.shape[0], pixels.shape[1], coding.patch_size)
    for index, (rows, cols) in enumerate(grid):
        patch = pixels[rows, cols]
        before = stack.ideal_bits
        trial = _copy(stack)
        try:
            _push_chained(trial, patch, coding, index)
            stack, chained = trial, True
        except entropy.EmptyStackError:
            _push_direct(stack, patch)
            chained = False
        stack.push(np.array([int(chained)]), _FLAG)
        costs.append(PatchCost(patch.size, stack.ideal_bits - before, chained))
        if progress:
            progress(index + 1, len(grid))
    return stack, ImageStats(tuple(costs))


def pop_image(
    stack: entropy.Stack, shape: tuple[int, int, int], coding: Coding, progress: Progress | None = None
) -> tuple[np.ndarray, int]:
    """Pop the (H, W, C) image that ``push_image`` pushed last; returns it and the number of its
    patches that were coded directly."""
    pixels = np.empty(shape, np.uint8)
    direct = 0
    grid = patch_grid(shape[0], shape[1], coding.patch_size)
    for index, (rows, cols) in reversed(list(enumerate(grid))):
        patch_shape = (rows.stop - rows.start, cols.stop - cols.start, shape[2])
        if stack.pop(_FLAG)[0]:
            pixels[rows, cols] = _pop_chained(stack, patch_shape, coding, index)
        else:
            pixels[rows, cols] = _pop_direct(stack, patch_shape)
            direct += 1
        if progress:
            progress(len(grid) - index, len(grid))
    return pixels, direct


# --- streams -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EncodeResult(StreamSize):
    """A lossless-vdm stream and what it cost."""

    data: bytes  # the complete container
    stats: ImageStats
    seconds: float

    @property
    def dims(self) -> int:
        return self.stats.dims


def encode(
    pixels: np.ndarray, den: Denoiser, *, steps: int = DEFAULT_STEPS, patch_size: int = DEFAULT_PATCH,
    seed: int = 0, progress: Progress | None = None,
) -> EncodeResult:
    """Code an (H, W), (H, W, 1) or (H, W, 3) uint8 image exactly with ``den`` and T = ``steps``;
    ``seed`` keys the shared randomness of the pops' dithers."""
    start = time.perf_counter()
    image = as_image(pixels)
    stack, stats = push_image(entropy.Stack(), image, Coding.of(den, steps, patch_size, seed), progress)
    params = {
        "steps": steps, "image_crc32": image_crc32(image), "patch_size": patch_size, "seed_patches": stats.seed_patches,
    }
    header = bitstreams.Header(Mode.LOSSLESS_VDM, *image.shape, seed, den.name, den.hash8, params)
    data = bitstreams.write(header, [stack.to_bytes()])
    return EncodeResult(data, stats, time.perf_counter() - start)


def _checked_params(header: bitstreams.Header) -> tuple[int, int, int, int]:
    """(steps, image_crc32, patch_size, seed_patches), each present and in range."""
    p = bitstreams.require_params(header)
    if not 1 <= p["steps"] <= MAX_STEPS:
        raise bitstreams.CorruptStreamError(f"steps {p['steps']} is outside [1, {MAX_STEPS}]")
    if p["patch_size"] < 1:
        raise bitstreams.CorruptStreamError("patch size 0 in the header")
    size = p["patch_size"]
    patches = -(-header.height // size) * -(-header.width // size)
    if not 1 <= p["seed_patches"] <= patches or p["image_crc32"] >= 1 << 32:
        raise bitstreams.CorruptStreamError(
            f"seed patches {p['seed_patches']} or image checksum {p['image_crc32']} out of range"
        )
    return p["steps"], p["image_crc32"], size, p["seed_patches"]


def decode(data: bytes, den: Denoiser, progress: Progress | None = None) -> np.ndarray:
    """The (H, W, C) uint8 image of a lossless-vdm stream; grayscale comes back as (H, W, 1)."""
    container = bitstreams.read(data)
    header = container.header
    bitstreams.require_source(header, Mode.LOSSLESS_VDM, den.name, den.hash8)
    steps, crc, patch_size, seed_patches = _checked_params(header)
    if len(container.chunks) != 1:
        raise bitstreams.CorruptStreamError(f"a lossless-vdm stream has 1 chunk, not {len(container.chunks)}")
    try:
        coding = Coding.of(den, steps, patch_size, header.seed)
    except ValueError as exc:
        raise bitstreams.CorruptStreamError(f"the stream's parameters do not fit this model: {exc}") from None
    shape = (header.height, header.width, header.channels)
    try:
        stack = entropy.Stack.from_bytes(container.chunks[0])
        pixels, direct = pop_image(stack, shape, coding, progress)
    except entropy.EntropyCodingError as exc:
        raise bitstreams.CorruptStreamError(f"the bits-back data is corrupt: {exc}") from None
    if not stack.exhausted():
        raise bitstreams.CorruptStreamError("the bits-back data has bits left over after the last patch")
    if direct != seed_patches:
        raise bitstreams.CorruptStreamError(
            f"{direct} patches were coded directly; the header says {seed_patches}"
        )
    check_crc32(pixels, crc)
    return pixels


def describe(result: EncodeResult) -> dict[str, Any]:
    """The ``--stats`` facts of an encode (None where no patch was chained)."""
    s = result.stats
    facts = {
        "bits": result.total_bits,
        "bpd": result.bpd,
        "ideal_bits": s.ideal_bits,
        "patches": len(s.patches),
        "seed_patches": s.seed_patches,
        "seed_bits": s.seed_bits,
        "seed_cost_bits": s.seed_cost_bits,
        "steady_bpd": s.steady_bpd,
        "seconds": result.seconds,
    }
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in facts.items()}
