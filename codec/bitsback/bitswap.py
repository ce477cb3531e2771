"""Group coding: a group of patches chained with bits-back along the diffusion chain, in Bit-Swap order.

A group's pixels x are coded with the VDM's latent chain z_0, z_1, ..., z_T on the time grid
t_i = i / T (Kingma et al. 2021, "VDM"), in the order of Bit-Swap (Kingma, Abbeel, Ho 2019):

    pop z_0 ~ q(z_0 | x), push x with p(x | z_0);
    for i = 1 .. T: pop z_i ~ q(z_i | z_(i-1)), push z_(i-1) with p(z_(i-1) | z_i);
    push z_T with p(z_1) = N(0, I).

Each pop takes back bits that an earlier push left on the stack, so the net cost of a group
(pushed minus popped information) is the T-step negative ELBO of the discretised chain, and the
stack only ever needs about one step's pops worth of bits beneath the group. The decoder runs the
same operations backwards, pushing what the encoder popped. Pops are dithered (``dither``) on the
latents' grids (``chain``); the network sees the group's ``windows.Window``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from diffc.codec import entropy, exact_coding
from diffc.codec.bitsback.chain import Chain
from diffc.codec.bitsback.coding import Coding
from diffc.codec.bitsback.dither import Dithered, dithered, uniforms
from diffc.codec.bitsback.numerics import model_input, pop_pixels, push_pixels
from diffc.codec.bitsback.windows import Window
from diffc.codec.denoiser import Denoiser
from diffc.codec.fixed_point import gamma_code, integer_eps
from diffc.models import integer_unet

# --- the chain's distributions, on the latents' grids (latents are int64 grid indices) ---------


def _data_posterior(coding: Coding, patch: int, x: np.ndarray) -> Dithered:
    """q(z_0 | x) = N(alpha_0 x, sigma_0^2 I) (VDM eq. 1), x a group's (1, h, w, 3) float64 pixels."""
    chain = coding.chain
    u = uniforms(coding.seed, patch, 0, x.size)
    return dithered(chain.alphas[0] * x.reshape(-1), chain.widths[0], coding.pop_table(0), u)


def _forward(coding: Coding, patch: int, i: int, z_prev: np.ndarray) -> Dithered:
    """q(z_i | z_(i-1)) = N(alpha_(i|i-1) z_(i-1), sigma_i^2 c_i I) (VDM appendix A), i >= 1."""
    chain = coding.chain
    means = chain.alphas[i] / chain.alphas[i - 1] * (z_prev.reshape(-1) * chain.widths[i - 1])
    u = uniforms(coding.seed, patch, i, z_prev.size)
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


def _exact_model(den: Denoiser, chain: Chain, i: int, z: np.ndarray, window: Window) -> tuple[np.ndarray, float, int]:
    """p(z_(i-1) | z_i) (VDM eq. 27) by the integer network: (means in z_(i-1)'s bins, std in
    bins, support radius). The network's input and output are integers; what follows is float64
    products, sums, a division and a clip, each correctly rounded: the same on every machine."""
    eps = integer_eps(den, window.latents_fixed(chain, i, z), gamma_code(float(chain.gammas[i])))
    h, w = z.shape[1:3]
    eps = eps[:, :h, :w].astype(np.float64) * 2.0**-integer_unet.EPS_FRAC
    z_t = z * chain.widths[i]
    x_hat = np.clip((z_t - chain.sigmas[i] * eps) / chain.alphas[i], -1.0, 1.0)
    a_s, c = chain.alphas[i - 1], chain.c[i - 1]
    mean = a_s / chain.alphas[i] * (1.0 - c) * z_t + a_s * c * x_hat
    return mean.reshape(-1) / chain.widths[i - 1], float(chain.push_stds[i - 1] / chain.widths[i - 1]), int(
        chain.push_radii[i - 1])


def _exact_prior(chain: Chain, n: int) -> tuple[np.ndarray, float, int]:
    return np.zeros(n), float(chain.push_stds[-1] / chain.widths[-1]), int(chain.push_radii[-1])


def _push_model(stack: entropy.Stack, z: np.ndarray, coding: Coding, i: int, z_next: np.ndarray, window: Window) -> None:
    """Push z_(i-1) = ``z`` with p(z_(i-1) | z_i = ``z_next``)."""
    if coding.chain.exact:
        exact_coding.push_gaussian(stack, z.reshape(-1), *_exact_model(coding.den, coding.chain, i, z_next, window))
    else:
        stack.push(z, _model(coding.den, coding.chain, i, z_next, window))


def _pop_model(stack: entropy.Stack, coding: Coding, i: int, z: np.ndarray, window: Window) -> np.ndarray:
    if coding.chain.exact:
        return exact_coding.pop_gaussian(stack, *_exact_model(coding.den, coding.chain, i, z, window)).reshape(z.shape)
    return stack.pop(_model(coding.den, coding.chain, i, z, window)).reshape(z.shape)


def _push_prior(stack: entropy.Stack, z: np.ndarray, chain: Chain) -> None:
    if chain.exact:
        exact_coding.push_gaussian(stack, z.reshape(-1), *_exact_prior(chain, z.size))
    else:
        stack.push(z, _prior(chain, z.size))


def _pop_prior(stack: entropy.Stack, chain: Chain, shape: tuple[int, ...]) -> np.ndarray:
    n = math.prod(shape)
    if chain.exact:
        return exact_coding.pop_gaussian(stack, *_exact_prior(chain, n)).reshape(shape)
    return stack.pop(_prior(chain, n)).reshape(shape)


def _push_pixels(stack: entropy.Stack, values: np.ndarray, coding: Coding, z_0: np.ndarray) -> None:
    """Push the pixels with the discretised decoder p(x | z_0) (VDM eq. 28-30)."""
    chain = coding.chain
    if chain.exact:
        exact_coding.push_pixels(stack, values, z_0 * chain.widths[0], chain.alphas[0], chain.sigmas[0], coding.version)
    else:
        push_pixels(stack, values, *_decoder_input(chain, z_0))


def _pop_pixels(stack: entropy.Stack, coding: Coding, z_0: np.ndarray, channels: int) -> np.ndarray:
    chain = coding.chain
    if chain.exact:
        return exact_coding.pop_pixels(stack, z_0 * chain.widths[0], chain.alphas[0], chain.sigmas[0], channels,
                                       coding.version)[0]
    return pop_pixels(stack, *_decoder_input(chain, z_0), channels)[0]


# --- a group's push and pop ----------------------------------------------------------------------


def push_group(stack: entropy.Stack, values: np.ndarray, window: Window, first: int, coding: Coding) -> None:
    """Push a group's (h, w, C) pixels ``values``, the group from patch ``first``, in Bit-Swap order
    (module docstring); raises ``EmptyStackError`` when the stack cannot serve a pop, leaving it
    unusable."""
    chain = coding.chain
    x = model_input(values)
    z = stack.pop(_data_posterior(coding, first, x)).reshape(x.shape)
    _push_pixels(stack, values, coding, z)
    for i in range(1, chain.steps + 1):
        z_next = stack.pop(_forward(coding, first, i, z)).reshape(x.shape)
        _push_model(stack, z, coding, i, z_next, window)
        z = z_next
    _push_prior(stack, z, chain)


def pop_group(
    stack: entropy.Stack, shape: tuple[int, int, int], window: Window, first: int, coding: Coding
) -> np.ndarray:
    """Undo ``push_group``: the group's (h, w, C) pixels, with the bits the encoder popped pushed
    back; ``window`` holds the decoded pixels after the group."""
    chain = coding.chain
    z_shape = (1, *shape[:2], 3)
    z = _pop_prior(stack, chain, z_shape)
    for i in range(chain.steps, 0, -1):
        z_prev = _pop_model(stack, coding, i, z, window)
        stack.push(z, _forward(coding, first, i, z_prev))
        z = z_prev
    values = _pop_pixels(stack, coding, z, shape[2])
    stack.push(z, _data_posterior(coding, first, model_input(values)))
    return values
