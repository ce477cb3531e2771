"""Variational diffusion model maths (Kingma et al. 2021, "VDM"), as pure functions of arrays.

Conventions, used everywhere in diffc:

- pixels: an 8-bit value k maps to x = (k + 0.5) / 128 - 1 in [-1, 1] (``pixels_to_x``);
- z_t = alpha_t x + sigma_t eps with alpha_t^2 = sigmoid(-gamma_t), sigma_t^2 = sigmoid(gamma_t)
  (VDM eq. 3-4), so SNR(t) = exp(-gamma_t);
- the network predicts eps; x_hat(z_t) = (z_t - sigma_t eps_hat) / alpha_t (VDM eq. 7);
- all losses are in nats per image unless the name says bits/dim (``bpd``).

The coders call the step functions directly: ``posterior`` is q(z_s | z_t, x) (VDM eq. 32-33),
``model_step`` is p(z_s | z_t) = q(z_s | z_t, x = x_hat(z_t)) (eq. 27), ``kl_step`` their KL
(eq. 35-36), and ``decoder_logits`` the discretised decoder p(x | z_0) (eq. 28-30).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from diffc.models.configs import VDMConfig
from diffc.models.schedule import NoiseSchedule
from diffc.models.unet import UNet

VOCAB = 256
GammaFn = Callable[[jax.Array], jax.Array]  # t -> gamma_t
EpsFn = Callable[[jax.Array, jax.Array], jax.Array]  # (z_t, gamma_t) -> eps_hat


def pixels_to_x(k: jax.Array) -> jax.Array:
    """8-bit values k in {0..255} to x = (k + 0.5) / 128 - 1, the bin centres of [-1, 1]."""
    return (jnp.asarray(k, jnp.float32) + 0.5) / 128.0 - 1.0


def alpha_sigma(gamma: jax.Array) -> tuple[jax.Array, jax.Array]:
    """alpha_t = sqrt(sigmoid(-gamma_t)), sigma_t = sqrt(sigmoid(gamma_t)) (VDM eq. 4)."""
    return jnp.sqrt(jax.nn.sigmoid(-gamma)), jnp.sqrt(jax.nn.sigmoid(gamma))


def _bcast(g: jax.Array, like: jax.Array) -> jax.Array:
    """Per-example gamma (B,) or a scalar, broadcast against an image batch (B, ...)."""
    g = jnp.asarray(g, jnp.float32)
    return g.reshape(g.shape + (1,) * (like.ndim - g.ndim))


def diffuse(x: jax.Array, gamma: jax.Array, eps: jax.Array) -> jax.Array:
    """A sample of q(z_t | x) = N(alpha_t x, sigma_t^2 I) given the noise eps (VDM eq. 1)."""
    alpha, sigma = alpha_sigma(_bcast(gamma, x))
    return alpha * x + sigma * eps


def x_hat(z_t: jax.Array, gamma_t: jax.Array, eps_hat: jax.Array, *, clip: bool = True) -> jax.Array:
    """The denoised mean (z_t - sigma_t eps_hat) / alpha_t (VDM eq. 7), clipped to [-1, 1]."""
    alpha, sigma = alpha_sigma(_bcast(gamma_t, z_t))
    x = (z_t - sigma * eps_hat) / alpha
    return jnp.clip(x, -1.0, 1.0) if clip else x


def posterior(
    z_t: jax.Array, x: jax.Array, gamma_s: jax.Array, gamma_t: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of q(z_s | z_t, x) for s < t (VDM eq. 32-33).

    With c = 1 - SNR(t)/SNR(s) = -expm1(gamma_s - gamma_t):
    mean = (alpha_s / alpha_t)(1 - c) z_t + alpha_s c x,  variance = sigma_s^2 c.
    """
    g_s, g_t = _bcast(gamma_s, z_t), _bcast(gamma_t, z_t)
    c = -jnp.expm1(g_s - g_t)
    alpha_s, sigma_s = alpha_sigma(g_s)
    alpha_t, _ = alpha_sigma(g_t)
    mean = alpha_s / alpha_t * (1.0 - c) * z_t + alpha_s * c * x
    return mean, jnp.broadcast_to(sigma_s**2 * c, mean.shape[:1] + (1,) * (mean.ndim - 1))


def model_step(
    z_t: jax.Array, eps_hat: jax.Array, gamma_s: jax.Array, gamma_t: jax.Array, *, clip: bool = True
) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of p(z_s | z_t) = q(z_s | z_t, x = x_hat(z_t)) (VDM eq. 27)."""
    return posterior(z_t, x_hat(z_t, gamma_t, eps_hat, clip=clip), gamma_s, gamma_t)


def kl_step(mean_q: jax.Array, mean_p: jax.Array, var: jax.Array) -> jax.Array:
    """KL(N(mean_q, var) || N(mean_p, var)) per dimension, in nats: (mean_q - mean_p)^2 / (2 var).

    For q = posterior and p = model_step this equals 0.5 (SNR(s) - SNR(t)) (x - x_hat)^2 (eq. 36).
    """
    return jnp.square(mean_q - mean_p) / (2.0 * var)


def decoder_logits(z_0: jax.Array, gamma_0: jax.Array) -> jax.Array:
    """Logits of the discretised decoder p(x | z_0) over the 256 values of each subpixel.

    p(x_i = k | z_0) is proportional to N(z_0,i / alpha_0; x(k), sigma_0^2 / alpha_0^2)
    (VDM eq. 28-30, appendix C); returns (..., 256).
    """
    g_0 = _bcast(gamma_0, z_0)
    alpha_0, _ = alpha_sigma(g_0)
    x_vals = pixels_to_x(jnp.arange(VOCAB))  # (256,)
    inv_std = jnp.exp(-0.5 * g_0)[..., None]  # alpha_0 / sigma_0
    return -0.5 * jnp.square(((z_0 / alpha_0)[..., None] - x_vals) * inv_std)


def reconstruction_loss(k: jax.Array, z_0: jax.Array, gamma_0: jax.Array) -> jax.Array:
    """-log p(k | z_0) in nats per image, summed over subpixels: (B, H, W, C) -> (B,)."""
    logits = decoder_logits(z_0, gamma_0)
    logp = jnp.take_along_axis(logits, jnp.asarray(k, jnp.int32)[..., None], axis=-1)[..., 0]
    nll = jax.nn.logsumexp(logits, axis=-1) - logp
    return nll.reshape(nll.shape[0], -1).sum(-1)


def prior_loss(x: jax.Array, gamma_1: jax.Array) -> jax.Array:
    """KL(q(z_1 | x) || N(0, I)) in nats per image (VDM eq. 11, first term): (B, ...) -> (B,)."""
    var_1 = jax.nn.sigmoid(_bcast(gamma_1, x))
    mean_sq = (1.0 - var_1) * jnp.square(x)
    kl = 0.5 * (mean_sq + var_1 - jnp.log(var_1) - 1.0)
    return kl.reshape(kl.shape[0], -1).sum(-1)


def low_discrepancy_times(key: jax.Array, n: int) -> jax.Array:
    """n times t_i = (u + i/n) mod 1 with one uniform u (VDM appendix I.1)."""
    u = jax.random.uniform(key, ())
    return jnp.mod(u + jnp.arange(n) / n, 1.0)


def diffusion_loss(
    x: jax.Array, t: jax.Array, eps: jax.Array, gamma_fn: GammaFn, eps_fn: EpsFn, *, steps: int = 0,
    clip: bool = False,
) -> jax.Array:
    """One-sample estimate of the diffusion loss in nats per image: (B, ...) and (B,) -> (B,).

    Continuous time (``steps=0``, VDM eq. 17): 0.5 gamma'(t) ||eps - eps_hat||^2. With T = ``steps``
    (eq. 14-15) t is rounded up to the grid i/T, s = t - 1/T, and the estimate is T times the KL of
    step t -> s, written 0.5 (SNR(s) - SNR(t)) ||x - x_hat||^2, which with ``clip`` uses the
    clipped x_hat, as the coders do. ``clip`` applies only to the discrete form.
    """
    if steps:
        t = jnp.maximum(jnp.ceil(t * steps), 1.0) / steps
        gamma_t, gamma_s = gamma_fn(t), gamma_fn(t - 1.0 / steps)
        z_t = diffuse(x, gamma_t, eps)
        x_err = x - x_hat(z_t, gamma_t, eps_fn(z_t, gamma_t), clip=clip)
        snr_gap = -jnp.exp(-gamma_s) * jnp.expm1(gamma_s - gamma_t)  # SNR(s) - SNR(t) >= 0
        per_image = jnp.square(x_err).reshape(x.shape[0], -1).sum(-1)
        return steps * 0.5 * snr_gap * per_image
    gamma_t, dgamma_dt = jax.jvp(gamma_fn, (t,), (jnp.ones_like(t),))
    z_t = diffuse(x, gamma_t, eps)
    mse = jnp.square(eps - eps_fn(z_t, gamma_t)).reshape(x.shape[0], -1).sum(-1)
    return 0.5 * dgamma_dt * mse


def elbo_terms(
    k: jax.Array, key: jax.Array, gamma_fn: GammaFn, eps_fn: EpsFn, *, steps: int = 0,
    clip: bool = False, times: jax.Array | None = None,
) -> dict[str, jax.Array]:
    """Negative ELBO of 8-bit images k (B, H, W, C) in bits/dim per image (VDM eq. 11):
    prior + reconstruction + diffusion, with low-discrepancy t across the batch unless ``times``
    (B,) are given. Returns a dict of (B,) arrays: ``bpd``, ``prior``, ``recon``, ``diffusion``."""
    x = pixels_to_x(k)
    key_t, key_0, key_eps = jax.random.split(key, 3)
    batch = x.shape[0]
    gamma_0, gamma_1 = gamma_fn(jnp.zeros(())), gamma_fn(jnp.ones(()))
    z_0 = diffuse(x, gamma_0, jax.random.normal(key_0, x.shape))
    t = low_discrepancy_times(key_t, batch) if times is None else times
    eps = jax.random.normal(key_eps, x.shape)
    to_bpd = 1.0 / (math.prod(x.shape[1:]) * math.log(2.0))
    terms = {
        "prior": prior_loss(x, gamma_1) * to_bpd,
        "recon": reconstruction_loss(k, z_0, gamma_0) * to_bpd,
        "diffusion": diffusion_loss(x, t, eps, gamma_fn, eps_fn, steps=steps, clip=clip) * to_bpd,
    }
    terms["bpd"] = terms["prior"] + terms["recon"] + terms["diffusion"]
    return terms


def pad_to_multiple(z: jax.Array, multiple: int) -> tuple[jax.Array, tuple[int, int]]:
    """Reflect-pad (B, H, W, C) at the bottom and right to sides divisible by ``multiple``."""
    h, w = z.shape[1:3]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        z = jnp.pad(z, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="reflect")
    return z, (h, w)


class VDM(nn.Module):
    """The learned parts of a VDM: the noise schedule gamma(t) and the denoiser eps_hat(z_t, gamma_t).

    ``gamma`` and ``eps`` are the two methods the maths above needs; ``eps`` takes images of any
    size (reflect-padded to the U-Net's multiple and cropped back).
    """

    config: VDMConfig

    def setup(self) -> None:
        cfg = self.config
        self.schedule = NoiseSchedule(cfg.schedule, cfg.gamma_min, cfg.gamma_max)
        self.unet = UNet(cfg)

    def gamma(self, t: jax.Array) -> jax.Array:
        return self.schedule(t)

    def eps(self, z_t: jax.Array, gamma_t: jax.Array) -> jax.Array:
        padded, (h, w) = pad_to_multiple(z_t, self.config.multiple)
        return self.unet(padded, gamma_t)[:, :h, :w, :]

    def __call__(self, k: jax.Array, key: jax.Array, steps: int = 0) -> dict[str, jax.Array]:
        return elbo_terms(k, key, self.gamma, self.eps, steps=steps)


def init_params(config: VDMConfig, seed: int) -> dict:
    """Fresh parameters for ``config`` from ``seed`` (initialised on a small dummy batch).

    Initialisation draws from an "rbg" key: XLA compiles it several times faster on CPU than
    threefry's many unrolled hashes.
    """
    side = 2 * config.multiple
    k = jnp.zeros((1, side, side, 3), jnp.uint8)
    key = jax.random.key(seed, impl="rbg")
    return jax.jit(VDM(config).init)(key, k, key)["params"]


def bound_fns(config: VDMConfig, params: dict) -> tuple[GammaFn, EpsFn]:
    """gamma(t) and eps_hat(z_t, gamma_t) with ``params`` bound, for the functions above."""
    model = VDM(config)
    variables = {"params": params}

    def gamma_fn(t: jax.Array) -> jax.Array:
        return model.apply(variables, t, method=VDM.gamma)

    def eps_fn(z_t: jax.Array, gamma_t: jax.Array) -> jax.Array:
        return model.apply(variables, z_t, gamma_t, method=VDM.eps)

    return gamma_fn, eps_fn
