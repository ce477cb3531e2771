"""Chain planning: the latents z_0 .. z_T of a patch, their grids and the supports of their pops and pushes.

Discretisation. In Bit-Swap order (``bitswap``) a latent is popped before the latent that
conditions its push exists, so its bins cannot depend on its neighbours in the chain: z_i lives on
a fixed grid ``k * delta_i`` (stored as the integer k, so both sides rebuild it exactly),
``delta_i`` being the smaller of the stds of its pop and its push divided by ``2 ** GRID_BITS``;
every distribution's support is centred on its own mean. Pops span ``POP_TAIL`` stds; each push's
support is as wide as a worst-case bound on how far the latent can lie from the model's mean
(``plan_chain``), which holds whatever the network predicts, so any image codes with any weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpy as np

from diffc.codec.denoiser import Denoiser
from diffc.codec.fixed_point import GAMMA_CODES, exact_schedule_codes, gamma_code, gamma_value, schedule_constants
from diffc.models import vdm

MAX_STEPS = 4096  # a decoder refuses more
# bins per std of the narrower of a latent's two distributions: 2 ** GRID_BITS. Measured against
# the exact T-step ELBO (T = 500, network-free model): +0.035 bits/dim with 1 bin per std, +0.007
# with 2, +0.016 with 4; with 2 a chained patch also needs a bit per dimension fewer initial bits
# than with 4.
GRID_BITS = 1
POP_TAIL = 6  # pops span +-POP_TAIL stds
_RADIUS_SAFETY = 1.01  # relative slack of push radii over their bound (float32 network means)


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
    push_stds: np.ndarray  # (T+1,) std of p(z_i | z_(i+1)) (i < T) and of p(z_1) (i = T)
    c: np.ndarray  # (T,) c_i = 1 - SNR(t_i) / SNR(t_(i-1)), i = 1..T (stored at i - 1)
    exact: bool = False  # constants by decimal arithmetic (integer streams), not by scipy

    @property
    def steps(self) -> int:
        return self.gammas.size - 1


def time_grid(den: Denoiser, steps: int, exact: bool = False) -> np.ndarray:
    """gamma(i / T) for i = 0..T from the model's schedule, rounded to the 1/2048 grid of the lossy
    coder's gamma codes and made strictly increasing (every step must add noise). ``exact``: in
    rational arithmetic from the schedule's parameters (``exact_schedule_codes``), the same on
    every machine; otherwise by the float32 schedule (streams of float models)."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must lie in [1, {MAX_STEPS}], not {steps}")
    if exact:
        raw_codes = exact_schedule_codes(den, steps)
    else:
        gamma_fn, _ = vdm.bound_fns(den.config, den.params)
        raw = np.asarray(gamma_fn(jnp.arange(steps + 1, dtype=jnp.float32) / steps), np.float64)
        raw_codes = np.array([gamma_code(float(g)) for g in raw])
    rise = np.arange(steps + 1)
    codes = np.maximum.accumulate(raw_codes - rise) + rise
    if codes[-1] >= GAMMA_CODES:
        raise ValueError(f"{steps} steps do not fit the schedule's gamma range on a 1/2048 grid")
    return np.array([gamma_value(int(c)) for c in codes])


def plan_chain(gammas: np.ndarray, exact: bool = False) -> Chain:
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
    alphas, sigmas, c = schedule_constants(g, exact)  # c: (T,)
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
    return Chain(g, alphas, sigmas, widths, pop_stds, pop_radii, push_radii, push_stds, c, exact)
