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
randomness from the header's seed, which makes its samples follow q whatever the stack holds. A
pop's mean is rounded to 1/256 of a bin, so that its table is a row of one precomputed per latent
(``PopTable``); encoder and decoder round alike, and the rounding moves q by 1/512 of a bin at
most (a bin is at most half a std).

Seeding and groups. A single image pays its own initial bits: it is cut into ``patch_size``
squares coded in raster order on one stack. Consecutive patches are chained together as a group,
and a group needs about one step's pops for all its patches beneath it; so groups grow as the
stack does, each at most half as many patches as were coded before it and at most ``max_group``.
A group is a rectangle of pixels: a run of patches within one row of patches, or whole rows
(``Grid``). A group the stack cannot serve (its pops run dry) is halved; a single patch it cannot
serve is coded directly: row by row, each pixel with a Laplace around the smoothed pixels above
it, its scale fitted per patch. After each group a flag says which coder it used and, for a
chained group, its size. The first patch is always direct; the rest chain with bits-back once the
stack is deep enough.

Context. The network runs once per step on a group's whole rectangle, plus a margin of
``context`` pixels below it and to its right: pixels coded after the group, which the decoder
(popping the last group first) already has. Those are diffused to the step's noise level with
shared noise, alpha_i x + sigma_i eps, so the window holds a sample of q(z_i | x) as the network
saw in training, and a group is coded almost as well as by the whole image's ELBO (measured on a
kodim01 crop, T = 100: 32 x 32 patches alone cost +0.075 bits/dim of diffusion loss over the whole
image, rectangles +0.024, rectangles with 16 pixels of context +0.012, with 32 or 64 no less).

The stream is one container chunk: the rANS words of the whole stack. Its header carries the
model's name and weight hash, T, the patch size, the largest group, the context margin, the count
of direct patches and a CRC-32 of the image, all checked by the decoder.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
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
from diffc.codec.lossy import GAMMA_CODES, gamma_code, gamma_value, pixels_to_model, pop_pixels, push_pixels
from diffc.models import vdm

DEFAULT_STEPS = 100
DEFAULT_PATCH = 32
# patches per group at most. 128 patches of 32 x 32 make a network call on 131,072 pixels (about a
# third of a Kodak image), so memory stays that of a small image.
DEFAULT_MAX_GROUP = 128
MAX_GROUP_LIMIT = 1 << 12  # a decoder refuses more
DEFAULT_CONTEXT = 16  # pixels of later-coded image the network sees below and right of a group
MAX_CONTEXT = 256  # a decoder refuses more
MAX_STEPS = 4096  # a decoder refuses more
_CONTEXT_KEY = MAX_STEPS + 1  # the PCG64 key (seed, group, _CONTEXT_KEY) of a window's noise
# bins per std of the narrower of a latent's two distributions: 2 ** GRID_BITS. Measured against
# the exact T-step ELBO (T = 500, network-free model): +0.035 bits/dim with 1 bin per std, +0.007
# with 2, +0.016 with 4; with 2 a chained patch also needs a bit per dimension fewer initial bits
# than with 4.
GRID_BITS = 1
POP_TAIL = 6  # pops span +-POP_TAIL stds
_RADIUS_SAFETY = 1.01  # relative slack of push radii over their bound (float32 network means)
_LAPLACE_SCALES = 2.0 ** ((np.arange(20) - 4) / 2)  # of the direct coder, 1/4 to 181 pixel values
_FLAG = entropy.uniform(2, 1)  # per group: 0 a patch coded directly, 1 patches chained with bits-back


@dataclass(frozen=True)
class Chain:
    """The latent chain z_0 .. z_T on the grid t_i = i / T: per latent, its noise level, bin width
    and the support radii (in bins) of its pop and its push."""

    gammas: np.ndarray  # (T+1,) gamma(t_i), increasing
    alphas: np.ndarray  # (T+1,) alpha_i
    sigmas: np.ndarray  # (T+1,) sigma_i
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
    return Chain(g, alphas, sigmas, widths, pop_stds, pop_radii, push_radii)


@dataclass(frozen=True)
class Coding:
    """What encoder and decoder share besides the stream: the model, its chain, the patch size, the
    largest group, the context margin and the seed of the shared randomness."""

    den: Denoiser
    chain: Chain
    patch_size: int
    max_group: int
    context: int
    seed: int

    @classmethod
    def of(
        cls, den: Denoiser, steps: int, patch_size: int, seed: int, max_group: int = DEFAULT_MAX_GROUP,
        context: int = DEFAULT_CONTEXT,
    ) -> Coding:
        if patch_size < 1:
            raise ValueError(f"patch size must be positive, not {patch_size}")
        if not 1 <= max_group <= MAX_GROUP_LIMIT:
            raise ValueError(f"the largest group must lie in [1, {MAX_GROUP_LIMIT}] patches, not {max_group}")
        if not 0 <= context <= MAX_CONTEXT:
            raise ValueError(f"the context margin must lie in [0, {MAX_CONTEXT}] pixels, not {context}")
        if not 0 <= seed < 1 << 32:
            raise ValueError(f"seed must be a 32-bit unsigned integer, not {seed}")
        return cls(den, plan_chain(time_grid(den, steps)), patch_size, max_group, context, seed)

    def pop_table(self, i: int) -> PopTable:
        """The ``PopTable`` of latent i's pops, made when first needed (about 0.1 ms; a decoder
        builds none before the stream's data asks for them)."""
        chain = self.chain
        return pop_table(float(chain.pop_stds[i] / chain.widths[i]), int(chain.pop_radii[i]))

    def push_group_size(self, stack: entropy.Stack, count: int) -> None:
        """Push a chained group's size in patches, uniform over 1 .. max_group (nothing when
        max_group is 1)."""
        if self.max_group > 1:
            stack.push(np.array([count - 1]), self._sizes())

    def pop_group_size(self, stack: entropy.Stack) -> int:
        """Undo ``push_group_size``: the size in patches."""
        return 1 if self.max_group == 1 else 1 + int(stack.pop(self._sizes())[0])

    def _sizes(self) -> entropy.Uniform:
        return entropy.uniform(self.max_group, 1)


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


OFFSET_STEPS = 256  # a pop's mean is rounded to 1/OFFSET_STEPS of a bin (an error of 1/512 bin at most)


@dataclass(frozen=True)
class PopTable:
    """The masses of a discretised N(offset, std^2) (in bins) over the ``2 * radius + 1`` bins
    around 0, for every offset on the grid -1/2 .. 1/2 in steps of 1/OFFSET_STEPS: floored,
    normalised and quantised as ``entropy.categorical`` does, once per latent rather than once
    per dimension and pop, with their running sums to find pivots."""

    masses: np.ndarray  # (OFFSET_STEPS + 1, 2R + 1)
    cumulative: np.ndarray  # (OFFSET_STEPS + 1, 2R + 1)
    radius: int


@functools.lru_cache(maxsize=256)
def pop_table(std_bins: float, radius: int) -> PopTable:
    """The ``PopTable`` of a pop of std ``std_bins`` bins spanning +-``radius`` bins."""
    offsets = np.arange(OFFSET_STEPS + 1) / OFFSET_STEPS - 0.5
    edges = np.arange(-radius, radius + 2) - 0.5  # (2R + 2,) bin edges around the centre
    masses = entropy.categorical(np.diff(special.ndtr((edges - offsets[:, None]) / std_bins), axis=1)).probs
    return PopTable(masses, np.cumsum(masses, axis=1), radius)


def dithered(means: np.ndarray, bin_width: float, table: PopTable, u: np.ndarray) -> Dithered:
    """The pops of ``table``'s Gaussian around ``means`` (n,) on the grid ``bin_width * k``, each
    mean rounded to 1/OFFSET_STEPS bin, each table rotated to the bin holding the quantile ``u``
    (n,) in [0, 1)."""
    m = np.asarray(means, np.float64).reshape(-1) / bin_width
    if not np.isfinite(m).all():
        raise entropy.EntropyCodingError("pop means must be finite")
    centre = np.round(m).astype(np.int64)
    row = np.round((m - centre + 0.5) * OFFSET_STEPS).astype(np.int64)
    bins = 2 * table.radius + 1
    pivot = np.minimum((table.cumulative[row] <= u[:, None]).sum(axis=1), bins - 1)
    order = (pivot[:, None] + np.arange(bins)) % bins
    rotated = table.masses[row[:, None], order]  # a permutation of each normalised row
    return Dithered(entropy.Categorical(rotated, row.size), centre - table.radius, pivot, table.radius)


def _dither(coding: Coding, patch: int, i: int, n: int) -> np.ndarray:
    """Shared uniforms in [0, 1) for the pop of latent i of the group from patch number ``patch``:
    the top 53 bits of raw words of numpy's PCG64 seeded with (seed, patch, i) through its
    SeedSequence, both fixed by their algorithms (``Generator`` methods are not)."""
    words = np.random.PCG64([coding.seed, patch, i]).random_raw(n)
    return (words >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _data_posterior(coding: Coding, patch: int, x: np.ndarray) -> Dithered:
    """q(z_0 | x) = N(alpha_0 x, sigma_0^2 I) (VDM eq. 1), x a group's (1, h, w, 3) float64 pixels."""
    chain = coding.chain
    u = _dither(coding, patch, 0, x.size)
    return dithered(chain.alphas[0] * x.reshape(-1), chain.widths[0], coding.pop_table(0), u)


def _forward(coding: Coding, patch: int, i: int, z_prev: np.ndarray) -> Dithered:
    """q(z_i | z_(i-1)) = N(alpha_(i|i-1) z_(i-1), sigma_i^2 c_i I) (VDM appendix A), i >= 1."""
    chain = coding.chain
    means = chain.alphas[i] / chain.alphas[i - 1] * (z_prev.reshape(-1) * chain.widths[i - 1])
    u = _dither(coding, patch, i, z_prev.size)
    return dithered(means, chain.widths[i], coding.pop_table(i), u)


def _model(den: Denoiser, chain: Chain, i: int, z: np.ndarray, window: Window) -> entropy.Gaussian:
    """p(z_(i-1) | z_i) = q(z_(i-1) | z_i, x = x_hat(z_i)) (VDM eq. 27) for a group's latents z_i
    (1, h, w, 3): one network call on its ``window``, its float32 outputs widened to float64."""
    gamma_t, gamma_s = (jnp.asarray(chain.gammas[j], jnp.float32) for j in (i, i - 1))
    mean, std = den.prior_step(window.latents(chain, i, z), gamma_t, gamma_s)
    h, w = z.shape[1:3]
    means = np.asarray(mean[:, :h, :w], np.float64)
    stds = np.broadcast_to(np.asarray(std, np.float64), means.shape)
    return entropy.gaussian(means, stds, chain.widths[i - 1], int(chain.push_radii[i - 1]))


def _prior(chain: Chain, n: int) -> entropy.Gaussian:
    """p(z_1) = N(0, I) (VDM eq. 11's prior term), on z_T's grid."""
    return entropy.gaussian(np.zeros(n), np.ones(n), chain.widths[-1], int(chain.push_radii[-1]))


def _decoder_input(chain: Chain, z_0: np.ndarray) -> tuple[jax.Array, jax.Array]:
    """z_0 (grid indices) and gamma(0) as the discretised decoder p(x | z_0) takes them
    (``lossy.push_pixels``, VDM eq. 28-30)."""
    return jnp.asarray(z_0 * chain.widths[0], jnp.float32), jnp.asarray(chain.gammas[0], jnp.float32)


# --- a group of patches, chained with bits-back ------------------------------------------------


def _model_input(pixels: np.ndarray) -> np.ndarray:
    """(h, w, C) uint8 to the (1, h, w, 3) float64 x the model codes (exact: x is k/128 + c)."""
    return np.asarray(pixels_to_model(pixels), np.float64)


@dataclass(frozen=True)
class Window:
    """What the network sees around a group (module docstring, "Context"): the group's latents in
    the top-left corner, and the pixels below and to the right, coded after the group, diffused
    to the same noise level with shared noise."""

    x: np.ndarray  # (1, H', W', 3) float64 model input; the group's own corner is never read
    noise: np.ndarray  # (1, H', W', 3) float64 standard normals, the same at every step

    def latents(self, chain: Chain, i: int, z: np.ndarray) -> jax.Array:
        """The window at step i: alpha_i x + sigma_i noise around the group's z_i (grid indices)."""
        h, w = z.shape[1:3]
        window = chain.alphas[i] * self.x + chain.sigmas[i] * self.noise
        window[:, :h, :w] = z * chain.widths[i]
        return jnp.asarray(window, jnp.float32)


def _window(coding: Coding, pixels: np.ndarray, grid: Grid, first: int, count: int) -> Window:
    """The ``Window`` of the group of ``count`` patches from patch ``first``, its context read from
    ``pixels`` (H, W, C), whose part after the group must be known; the noise is the inverse normal
    CDF of ((w >> 11) + 1/2) 2^-53, w the raw words of numpy's PCG64 keyed (seed, first, _CONTEXT_KEY)."""
    rows, cols = grid.window(first, count, coding.context)
    x = _model_input(pixels[rows, cols])
    words = np.random.PCG64([coding.seed, first, _CONTEXT_KEY]).random_raw(x.size)
    noise = special.ndtri(((words >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53)
    return Window(x, noise.reshape(x.shape))


def _push_chained(stack: entropy.Stack, pixels: np.ndarray, grid: Grid, first: int, count: int, coding: Coding) -> None:
    """Push the group of ``count`` patches from patch ``first`` of the (H, W, C) image in Bit-Swap
    order (module docstring); raises ``EmptyStackError`` when the stack cannot serve a pop, leaving
    it unusable."""
    den, chain = coding.den, coding.chain
    values = pixels[grid.rect(first, count)]
    window = _window(coding, pixels, grid, first, count)
    x = _model_input(values)
    z = stack.pop(_data_posterior(coding, first, x)).reshape(x.shape)
    push_pixels(stack, values, *_decoder_input(chain, z))
    for i in range(1, chain.steps + 1):
        z_next = stack.pop(_forward(coding, first, i, z)).reshape(x.shape)
        stack.push(z, _model(den, chain, i, z_next, window))
        z = z_next
    stack.push(z, _prior(chain, z.size))


def _pop_chained(stack: entropy.Stack, pixels: np.ndarray, grid: Grid, first: int, count: int, coding: Coding) -> None:
    """Undo ``_push_chained``: write the group's pixels into ``pixels`` (H, W, C), whose part after
    the group is already decoded, with the bits the encoder popped pushed back."""
    den, chain = coding.den, coding.chain
    rect = grid.rect(first, count)
    window = _window(coding, pixels, grid, first, count)
    z_shape = (1, *_extent(rect), 3)
    z = stack.pop(_prior(chain, math.prod(z_shape))).reshape(z_shape)
    for i in range(chain.steps, 0, -1):
        z_prev = stack.pop(_model(den, chain, i, z, window)).reshape(z_shape)
        stack.push(z, _forward(coding, first, i, z_prev))
        z = z_prev
    values = pop_pixels(stack, *_decoder_input(chain, z), pixels.shape[2])[0]
    stack.push(z, _data_posterior(coding, first, _model_input(values)))
    pixels[rect] = values


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


# --- images: groups of patches on one stack -----------------------------------------------------


@dataclass(frozen=True)
class GroupCost:
    """A group's ideal cost: information pushed minus popped, its flag and size included."""

    patches: int
    dims: int
    bits: float
    chained: bool


@dataclass(frozen=True)
class ImageStats:
    """The ideal costs of an image's groups, in coding order."""

    groups: tuple[GroupCost, ...]

    def _sum(self, chained: bool) -> tuple[int, float]:
        chosen = [g for g in self.groups if g.chained == chained]
        return sum(g.dims for g in chosen), sum(g.bits for g in chosen)

    @property
    def dims(self) -> int:
        return sum(g.dims for g in self.groups)

    @property
    def patches(self) -> int:
        return sum(g.patches for g in self.groups)

    @property
    def ideal_bits(self) -> float:
        return sum(g.bits for g in self.groups)

    @property
    def seed_patches(self) -> int:
        """Patches coded directly, because the stack could not yet serve their pops."""
        return sum(g.patches for g in self.groups if not g.chained)

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


Rect = tuple[slice, slice]


def _extent(rect: Rect) -> tuple[int, int]:
    """(height, width) of a rectangle of pixels."""
    return rect[0].stop - rect[0].start, rect[1].stop - rect[1].start


@dataclass(frozen=True)
class Grid:
    """An image's ``size`` x ``size`` patches in raster order (smaller at the bottom and right
    edges), and the groups they form: a run of patches within one row of patches, or whole rows,
    so that every group is a rectangle of pixels."""

    height: int
    width: int
    size: int

    @property
    def rows(self) -> int:
        return -(-self.height // self.size)

    @property
    def cols(self) -> int:
        return -(-self.width // self.size)

    def __len__(self) -> int:
        return self.rows * self.cols

    def fits(self, first: int, count: int) -> bool:
        """Whether ``count`` patches from patch ``first`` form a group."""
        if first < 0 or count < 1 or first + count > len(self):
            return False
        column = first % self.cols
        return count <= self.cols - column or (column == 0 and count % self.cols == 0)

    def rect(self, first: int, count: int) -> Rect:
        """The pixels of the group of ``count`` patches from patch ``first``."""
        row, column = divmod(first, self.cols)
        if count <= self.cols - column:
            bottom, left, right = row + 1, column, column + count
        else:
            bottom, left, right = row + count // self.cols, 0, self.cols
        s = self.size
        return slice(row * s, min(bottom * s, self.height)), slice(left * s, min(right * s, self.width))

    def window(self, first: int, count: int, context: int) -> Rect:
        """The group's rectangle with ``context`` more pixels below and to the right: only pixels
        of patches after the group."""
        rows, cols = self.rect(first, count)
        bottom, right = min(rows.stop + context, self.height), min(cols.stop + context, self.width)
        return slice(rows.start, bottom), slice(cols.start, right)

    def largest_group(self, first: int, max_group: int) -> int:
        """The most patches a chained group from patch ``first`` may try: at most ``max_group`` and
        at most half the ``first`` patches coded before it (the stack grows with them); the rest
        of the row, or whole rows when it starts one and that many fit."""
        limit = min(max_group, max(first // 2, 1))
        row, column = divmod(first, self.cols)
        if column or limit < self.cols:
            return min(limit, self.cols - column)
        return min(limit // self.cols, self.rows - row) * self.cols

    def smaller_group(self, count: int) -> int:
        """The group to try when ``count`` patches are too many: half the rows, or half the run
        (0: code a patch directly)."""
        if count > self.cols:
            return count // self.cols // 2 * self.cols
        return count // 2


def _copy(stack: entropy.Stack) -> entropy.Stack:
    twin = entropy.Stack(stack.to_words())
    twin.ideal_bits = stack.ideal_bits
    return twin


Progress = Callable[[int, int], None]
"""Called with (patches done, patches in all) after each group."""


def _push_group(
    stack: entropy.Stack, pixels: np.ndarray, grid: Grid, first: int, coding: Coding
) -> tuple[entropy.Stack, int, bool]:
    """Push the group from patch ``first`` with its flag: chained at its largest size if the stack
    can serve its pops (tried on a copy), smaller while it cannot, a single patch coded directly
    when even that fails. Returns the stack that holds it (``stack`` itself may be spent), its
    size in patches and whether it is chained."""
    count = grid.largest_group(first, coding.max_group)
    while count:
        trial = _copy(stack)
        try:
            _push_chained(trial, pixels, grid, first, count, coding)
        except entropy.EmptyStackError:
            count = grid.smaller_group(count)
        else:
            coding.push_group_size(trial, count)
            trial.push(np.array([1]), _FLAG)
            return trial, count, True
    _push_direct(stack, pixels[grid.rect(first, 1)])
    stack.push(np.array([0]), _FLAG)
    return stack, 1, False


def push_image(
    stack: entropy.Stack, pixels: np.ndarray, coding: Coding, progress: Progress | None = None
) -> tuple[entropy.Stack, ImageStats]:
    """Push a (H, W, C) uint8 image group by group (``_push_group``); returns the stack that holds
    it (``stack`` itself is spent) and the groups' costs."""
    costs = []
    grid = Grid(pixels.shape[0], pixels.shape[1], coding.patch_size)
    first = 0
    while first < len(grid):
        before = stack.ideal_bits
        stack, count, chained = _push_group(stack, pixels, grid, first, coding)
        dims = math.prod(_extent(grid.rect(first, count))) * pixels.shape[2]
        costs.append(GroupCost(count, dims, stack.ideal_bits - before, chained))
        first += count
        if progress:
            progress(first, len(grid))
    return stack, ImageStats(tuple(costs))


def pop_image(
    stack: entropy.Stack, shape: tuple[int, int, int], coding: Coding, progress: Progress | None = None
) -> tuple[np.ndarray, int]:
    """Pop the (H, W, C) image that ``push_image`` pushed last; returns it and the number of its
    patches that were coded directly."""
    pixels = np.zeros(shape, np.uint8)
    direct = 0
    grid = Grid(shape[0], shape[1], coding.patch_size)
    end = len(grid)
    while end:
        if stack.pop(_FLAG)[0]:
            count = coding.pop_group_size(stack)
            first = end - count
            if not grid.fits(first, count):
                raise entropy.EntropyCodingError(f"a group of {count} patches does not fit before patch {end}")
            _pop_chained(stack, pixels, grid, first, count, coding)
        else:
            first = end - 1
            rect = grid.rect(first, 1)
            pixels[rect] = _pop_direct(stack, (*_extent(rect), shape[2]))
            direct += 1
        end = first
        if progress:
            progress(len(grid) - end, len(grid))
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
    max_group: int = DEFAULT_MAX_GROUP, context: int = DEFAULT_CONTEXT, seed: int = 0,
    progress: Progress | None = None,
) -> EncodeResult:
    """Code an (H, W), (H, W, 1) or (H, W, 3) uint8 image exactly with ``den`` and T = ``steps``,
    in groups of at most ``max_group`` patches, the network seeing ``context`` pixels beyond each;
    ``seed`` keys the shared randomness of the pops' dithers and the windows' noise."""
    start = time.perf_counter()
    image = as_image(pixels)
    coding = Coding.of(den, steps, patch_size, seed, max_group, context)
    stack, stats = push_image(entropy.Stack(), image, coding, progress)
    params = {
        "steps": steps, "image_crc32": image_crc32(image), "patch_size": patch_size, "seed_patches": stats.seed_patches,
        "max_group": max_group, "context": context,
    }
    header = bitstreams.Header(Mode.LOSSLESS_VDM, *image.shape, seed, den.name, den.hash8, params)
    data = bitstreams.write(header, [stack.to_bytes()])
    return EncodeResult(data, stats, time.perf_counter() - start)


def _checked_params(header: bitstreams.Header) -> Mapping[str, int]:
    """The header's coding parameters, each present and in range (the largest group and the
    context margin are checked by ``Coding.of``)."""
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
    return p


def decode(data: bytes, den: Denoiser, progress: Progress | None = None) -> np.ndarray:
    """The (H, W, C) uint8 image of a lossless-vdm stream; grayscale comes back as (H, W, 1)."""
    container = bitstreams.read(data)
    header = container.header
    bitstreams.require_source(header, Mode.LOSSLESS_VDM, den.name, den.hash8)
    p = _checked_params(header)
    if len(container.chunks) != 1:
        raise bitstreams.CorruptStreamError(f"a lossless-vdm stream has 1 chunk, not {len(container.chunks)}")
    try:
        coding = Coding.of(den, p["steps"], p["patch_size"], header.seed, p["max_group"], p["context"])
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
    if direct != p["seed_patches"]:
        raise bitstreams.CorruptStreamError(
            f"{direct} patches were coded directly; the header says {p['seed_patches']}"
        )
    check_crc32(pixels, p["image_crc32"])
    return pixels


def describe(result: EncodeResult) -> dict[str, Any]:
    """The ``--stats`` facts of an encode (None where no patch was chained)."""
    s = result.stats
    facts = {
        "bits": result.total_bits,
        "bpd": result.bpd,
        "ideal_bits": s.ideal_bits,
        "patches": s.patches,
        "groups": len(s.groups),
        "seed_patches": s.seed_patches,
        "seed_bits": s.seed_bits,
        "seed_cost_bits": s.seed_cost_bits,
        "steady_bpd": s.steady_bpd,
        "seconds": result.seconds,
    }
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in facts.items()}
