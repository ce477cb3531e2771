"""VDM maths, noise schedules, configs and the U-Net (``diffc.models.vdm``, ``schedule``,
``configs``, ``unet``), checked against closed forms and direct numpy computations, with the tiny
config on images of at most 16x16 pixels."""

from __future__ import annotations

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffc.models import configs, train, vdm
from diffc.models.schedule import NoiseSchedule
from helpers import compiled

TINY = configs.get_config("tiny")
GAMMA_MIN, GAMMA_MAX = -13.3, 5.0
# XLA's cheap settings: on a loaded 2-core CPU compiling, not running, is what these tests wait for
# (a train step compiles 2-3 times faster). The computation is the same.
def perturb(tree, seed: int, scale: float):
    """Every leaf plus N(0, scale^2) noise: a model whose zero-initialised layers are not zero."""
    leaves, treedef = jax.tree.flatten(tree)
    rng = np.random.default_rng(seed)
    noisy = [np.asarray(a) + scale * rng.standard_normal(np.shape(a)).astype(np.float32) for a in leaves]
    return jax.tree.unflatten(treedef, noisy)


@pytest.fixture(scope="module")
def init_params():
    return vdm.init_params(TINY, 0)


@pytest.fixture(scope="module")
def params(init_params):
    """Tiny-config parameters with every U-Net weight perturbed (the schedule left as initialised)."""
    return {**init_params, "unet": perturb(init_params["unet"], 1, 0.05)}


@functools.cache
def _eps_program(shape: tuple[int, ...]):
    param_shapes = jax.eval_shape(lambda: vdm.init_params(TINY, 0))

    def eps(p, z, gamma):
        return vdm.VDM(TINY).apply({"params": p}, z, gamma, method=vdm.VDM.eps)

    z = jax.ShapeDtypeStruct(shape, jnp.float32)
    return compiled(eps, param_shapes, z, jax.ShapeDtypeStruct(shape[:1], jnp.float32))


def eps_hat(p, z, gamma):
    """``VDM.eps`` (the U-Net on images of any size) with parameters ``p``, compiled once per shape."""
    z = jnp.asarray(z, jnp.float32)
    gamma = jnp.broadcast_to(jnp.asarray(gamma, jnp.float32), z.shape[:1])
    return _eps_program(z.shape)(p, z, gamma)


def smooth_images(n: int, side: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    walk = np.cumsum(rng.normal(size=(n, side, side, 3)) * 10, axis=2) + rng.uniform(60, 200, (n, 1, 1, 3))
    return np.clip(walk, 0, 255).astype(np.uint8)


# --- noise schedule -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "perturbed"),
    [("fixed", False), ("affine", False), ("affine", True), ("learned", False), ("learned", True)],
)
def test_schedule_is_monotone_increasing(kind: str, perturbed: bool) -> None:
    schedule = NoiseSchedule(kind, GAMMA_MIN, GAMMA_MAX)
    t = jnp.linspace(0.0, 1.0, 20_001)
    variables = schedule.init(jax.random.PRNGKey(3), t)
    if perturbed:
        # Kernels negated, plus noise: only the |W| of the monotone layers keeps gamma increasing.
        negated = jax.tree_util.tree_map_with_path(
            lambda path, a: -a if "kernel" in jax.tree_util.keystr(path) else a, variables["params"]
        )
        variables = {"params": perturb(negated, 4, 2.0)}
    gamma = np.asarray(schedule.apply(variables, t), np.float64)
    assert gamma.shape == t.shape and np.all(np.isfinite(gamma))
    steps = np.diff(gamma)
    if kind == "learned":
        # A sum of 1024 monotone sigmoids in float32: allow rounding, nothing more.
        assert steps.min() >= -1e-5 * np.abs(gamma).max(), steps.min()
        assert gamma[-1] - gamma[0] > 1.0
    else:
        assert np.all(steps > 0), steps.min()
    # Also on arbitrary shapes, in any order.
    t2 = jax.random.uniform(jax.random.PRNGKey(5), (3, 7))
    g2 = np.asarray(schedule.apply(variables, t2))
    assert g2.shape == (3, 7)
    order = np.argsort(np.asarray(t2).ravel())
    assert np.all(np.diff(g2.ravel()[order]) >= -1e-5)


@pytest.mark.parametrize("kind", ["fixed", "affine"])
def test_schedule_endpoints_at_init(kind: str) -> None:
    schedule = NoiseSchedule(kind, GAMMA_MIN, GAMMA_MAX)
    t = jnp.array([0.0, 0.5, 1.0])
    variables = schedule.init(jax.random.PRNGKey(0), t)
    gamma = np.asarray(schedule.apply(variables, t))
    want = [GAMMA_MIN, (GAMMA_MIN + GAMMA_MAX) / 2, GAMMA_MAX]
    np.testing.assert_allclose(gamma, want, rtol=1e-6, atol=1e-5)


def test_unknown_schedule_is_refused() -> None:
    with pytest.raises(ValueError, match="fixed"):
        NoiseSchedule("cosine", GAMMA_MIN, GAMMA_MAX).init(jax.random.PRNGKey(0), jnp.zeros(2))


# --- training decreases the ELBO ------------------------------------------------------------------


def test_elbo_is_finite_and_training_decreases_it() -> None:
    state = train.create_state(TINY, 0)
    state = state.replace(step=jnp.asarray(state.step, jnp.int32))  # as every later step returns it
    k = jnp.asarray(smooth_images(4, 8))
    keys = jax.random.split(jax.random.PRNGKey(42), 2)
    step = compiled(functools.partial(train.train_step, config=TINY), state, k)
    evaluate = compiled(functools.partial(train.eval_step, config=TINY), state.params, k, keys[0])

    def mean_bpd(p) -> float:
        terms = [evaluate(p, k, key) for key in keys]
        for t in terms:
            for name, v in t.items():
                assert np.isfinite(float(v)), (name, v)
            total = float(t["prior"]) + float(t["recon"]) + float(t["diffusion"])
            assert float(t["bpd"]) == pytest.approx(total, rel=1e-5)
        return float(np.mean([float(t["bpd"]) for t in terms]))

    before = mean_bpd(state.params)
    assert 0.0 < before < 50.0
    for _ in range(30):
        state, metrics = step(state, k)
        assert np.isfinite(float(metrics["bpd"])) and np.isfinite(float(metrics["grad_norm"]))
    assert int(state.step) == 30
    after = mean_bpd(state.params)
    print(f"bpd before {before:.4f} after 30 steps {after:.4f} (EMA {mean_bpd(state.ema_params):.4f})")
    assert after < before - 0.05, (before, after)
    # The EMA parameters moved too, towards the trained ones.
    assert mean_bpd(state.ema_params) < before


# --- the T-step ELBO tends to the continuous one ----------------------------------------------------


def test_discrete_elbo_converges_to_continuous(params) -> None:
    gamma_fn, _ = vdm.bound_fns(TINY, params)
    eps_fn = functools.partial(eps_hat, params)  # one compiled U-Net for every T; the rest is eager
    n = 128
    k = jnp.asarray(np.repeat(smooth_images(1, 4, seed=7), n, axis=0))
    key = jax.random.PRNGKey(11)
    times = vdm.low_discrepancy_times(jax.random.PRNGKey(12), n)

    def diffusion(steps: int) -> float:
        terms = vdm.elbo_terms(k, key, gamma_fn, eps_fn, steps=steps, times=times)
        assert all(np.all(np.isfinite(np.asarray(v))) for v in terms.values())
        return float(jnp.mean(terms["bpd"]))

    continuous = diffusion(0)
    discrete = {T: diffusion(T) for T in (2, 10, 1000)}
    gaps = {T: d - continuous for T, d in discrete.items()}
    print(f"continuous {continuous:.5f}, T-step minus continuous {gaps}")
    # Fewer steps cost more (VDM eq. 15-17), and the cost vanishes as T grows: T (SNR(s) - SNR(t))
    # exceeds -dSNR/dt by a factor (e^d - 1)/d with d = (gamma_max - gamma_min)/T, about 1% at
    # T = 1000, which is the order of the last gap.
    assert gaps[2] > gaps[10] > gaps[1000] > 0, gaps
    assert gaps[1000] < 1e-4 * gaps[2], gaps
    assert gaps[1000] < 0.02 * gaps[10], gaps


# --- single steps against closed forms and numpy ---------------------------------------------------


def np_alpha_sigma(gamma):
    gamma = np.asarray(gamma, np.float64)
    return np.sqrt(1.0 / (1.0 + np.exp(gamma))), np.sqrt(1.0 / (1.0 + np.exp(-gamma)))


def np_posterior(z_t, x, gamma_s, gamma_t):
    """q(z_s | z_t, x) from the joint Gaussian of z_s = a_s x + s_s e1, z_t = a_ts z_s + s_ts e2."""
    a_s, s_s = np_alpha_sigma(gamma_s)
    a_t, s_t = np_alpha_sigma(gamma_t)
    a_ts = a_t / a_s
    var_ts = s_t**2 - a_ts**2 * s_s**2  # sigma_{t|s}^2
    assert np.all(var_ts > 0)
    cov = a_ts * s_s**2  # Cov(z_s, z_t)
    var_zt = a_ts**2 * s_s**2 + var_ts
    np.testing.assert_allclose(var_zt, s_t**2, rtol=1e-12)
    mean = a_s * x + cov / var_zt * (z_t - a_t * x)
    var = s_s**2 - cov**2 / var_zt
    return mean, var


def gauss_kl(m1, v1, m2, v2):
    return 0.5 * (np.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


# (gamma_s, gamma_t) pairs per example: from nearly clean to nearly pure noise, far and close apart.
GAMMA_PAIRS = np.array(
    [[-13.3, -12.0], [-8.0, -7.99], [-5.0, -1.0], [-1.0, 0.0], [0.0, 3.0], [2.0, 5.0], [-13.3, 5.0],
     [4.9, 5.0]],
    np.float32,
)


def step_inputs(seed: int = 0):
    rng = np.random.default_rng(seed)
    b = len(GAMMA_PAIRS)
    gamma_s, gamma_t = GAMMA_PAIRS[:, 0], GAMMA_PAIRS[:, 1]
    x = np.asarray(vdm.pixels_to_x(rng.integers(0, 256, (b, 3, 2, 3))))
    a_t, s_t = np_alpha_sigma(gamma_t)
    per_example = (slice(None), None, None, None)
    z_t = (a_t[per_example] * x + s_t[per_example] * rng.standard_normal(x.shape)).astype(np.float32)
    eps_hat = rng.standard_normal(x.shape).astype(np.float32)
    return x, z_t, eps_hat, gamma_s, gamma_t


def test_posterior_matches_the_joint_gaussian() -> None:
    x, z_t, _, gamma_s, gamma_t = step_inputs()
    mean, var = vdm.posterior(jnp.asarray(z_t), jnp.asarray(x), jnp.asarray(gamma_s), jnp.asarray(gamma_t))
    b = (slice(None), None, None, None)
    want_mean, want_var = np_posterior(z_t.astype(np.float64), x.astype(np.float64), gamma_s[b], gamma_t[b])
    assert mean.shape == x.shape and var.shape == (len(x), 1, 1, 1)
    np.testing.assert_allclose(np.asarray(mean), want_mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(var), want_var, rtol=1e-4, atol=0)
    # Scalar gammas broadcast over the batch.
    m1, v1 = vdm.posterior(jnp.asarray(z_t), jnp.asarray(x), -2.0, 1.0)
    want_m1, want_v1 = np_posterior(z_t.astype(np.float64), x.astype(np.float64), -2.0, 1.0)
    np.testing.assert_allclose(np.asarray(m1), want_m1, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(v1), np.full((len(x), 1, 1, 1), want_v1), rtol=1e-5)


@pytest.mark.parametrize("clip", [True, False])
def test_kl_step_matches_closed_form_and_brute_force(clip: bool) -> None:
    x, z_t, eps_hat, gamma_s, gamma_t = step_inputs(1)
    args = (jnp.asarray(gamma_s), jnp.asarray(gamma_t))
    mean_q, var_q = vdm.posterior(jnp.asarray(z_t), jnp.asarray(x), *args)
    mean_p, var_p = vdm.model_step(jnp.asarray(z_t), jnp.asarray(eps_hat), *args, clip=clip)
    np.testing.assert_array_equal(np.asarray(var_q), np.asarray(var_p))
    kl = np.asarray(vdm.kl_step(mean_q, mean_p, var_q), np.float64)
    assert kl.shape == x.shape and np.all(kl >= 0)

    b = (slice(None), None, None, None)
    a_t, s_t = np_alpha_sigma(gamma_t[b])
    x_hat = (z_t - s_t * eps_hat) / a_t
    if clip:
        x_hat = np.clip(x_hat, -1.0, 1.0)
        assert np.any(np.abs((z_t - s_t * eps_hat) / a_t) > 1), "clipping should matter here"
    snr_s, snr_t = np.exp(-gamma_s[b].astype(np.float64)), np.exp(-gamma_t[b].astype(np.float64))
    closed = 0.5 * (snr_s - snr_t) * (x - x_hat) ** 2  # VDM eq. 36
    np.testing.assert_allclose(kl, closed, rtol=2e-3, atol=1e-6)

    mq, vq = np_posterior(z_t.astype(np.float64), x.astype(np.float64), gamma_s[b], gamma_t[b])
    mp, vp = np_posterior(z_t.astype(np.float64), x_hat, gamma_s[b], gamma_t[b])
    np.testing.assert_allclose(vq, vp)
    np.testing.assert_allclose(kl, gauss_kl(mq, vq, mp, vp), rtol=2e-3, atol=1e-6)


def test_x_hat_inverts_diffusion_given_the_true_noise() -> None:
    x, _, eps, gamma_s, _ = step_inputs(2)
    z = vdm.diffuse(jnp.asarray(x), jnp.asarray(gamma_s), jnp.asarray(eps))
    back = vdm.x_hat(z, jnp.asarray(gamma_s), jnp.asarray(eps), clip=False)
    np.testing.assert_allclose(np.asarray(back), x, atol=2e-3)


# --- the discretised decoder ------------------------------------------------------------------------


def test_decoder_logits_peak_at_the_right_pixel_value() -> None:
    k = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    gamma_0 = jnp.float32(GAMMA_MIN)
    alpha_0, _ = vdm.alpha_sigma(gamma_0)
    z_0 = alpha_0 * vdm.pixels_to_x(k)
    logits = vdm.decoder_logits(z_0, gamma_0)
    assert logits.shape == (1, 16, 16, 1, 256)
    probs = np.asarray(jax.nn.softmax(logits, axis=-1), np.float64)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(probs.argmax(-1), k)
    # sigma_0 / alpha_0 = exp(-6.65) is a sixth of a bin: almost all mass on the right value.
    assert probs.max(-1).min() > 0.999
    nll = vdm.reconstruction_loss(k, z_0, gamma_0)
    assert nll.shape == (1,) and 0 <= float(nll[0]) < 256 * 1e-3

    # Noisier: still peaked at the right value, neighbours in Gaussian proportion.
    gamma_0 = jnp.float32(-7.0)
    alpha_0, sigma_0 = vdm.alpha_sigma(gamma_0)
    logits = np.asarray(vdm.decoder_logits(alpha_0 * vdm.pixels_to_x(k), gamma_0), np.float64)
    np.testing.assert_array_equal(logits.argmax(-1), k)
    std = float(sigma_0 / alpha_0)
    bin_width = 2.0 / 256
    i = 100
    np.testing.assert_allclose(
        logits[0, 6, 4, 0, i] - logits[0, 6, 4, 0, i + 1], 0.5 * (bin_width / std) ** 2, rtol=1e-3
    )
    # Far outside [-1, 1] the edge values win.
    logits = vdm.decoder_logits(alpha_0 * jnp.array([[[[-3.0, 3.0]]]]), gamma_0)
    assert np.asarray(logits.argmax(-1)).ravel().tolist() == [0, 255]


# --- the U-Net and VDM module -------------------------------------------------------------------------


def test_pad_to_multiple_handles_one_pixel_sides() -> None:
    z = jnp.arange(1 * 1 * 3 * 2, dtype=jnp.float32).reshape(1, 1, 3, 2)
    for multiple in (2, 4, 8):
        padded, (h, w) = vdm.pad_to_multiple(z, multiple)
        assert (h, w) == (1, 3)
        assert padded.shape == (1, multiple, -(-3 // multiple) * multiple, 2)
        np.testing.assert_array_equal(np.asarray(padded[:, :1, :3]), np.asarray(z))
        assert np.all(np.isfinite(np.asarray(padded)))
    same, size = vdm.pad_to_multiple(jnp.zeros((2, 4, 8, 3)), 4)
    assert same.shape == (2, 4, 8, 3) and size == (4, 8)


@pytest.mark.parametrize("shape", [(2, 5, 7, 3), (1, 1, 1, 3)])
def test_eps_runs_on_odd_sizes(init_params, params, shape) -> None:
    z = jax.random.normal(jax.random.PRNGKey(0), shape)
    gamma = jnp.linspace(-5.0, 2.0, shape[0])
    out = np.asarray(eps_hat(params, z, gamma))
    assert out.shape == shape
    assert np.all(np.isfinite(out))
    # The perturbed network is not the identity; at initialisation (last convolution zero) it is.
    assert not np.allclose(out, np.asarray(z), atol=1e-3)
    np.testing.assert_array_equal(np.asarray(eps_hat(init_params, z, gamma)), np.asarray(z))


def test_unet_denoises_each_image_of_a_batch_on_its_own(params) -> None:
    """Swapping the images (and their gammas) of a batch swaps the outputs: no mixing across images."""
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(2), (2, 5, 7, 3)))
    gamma = np.array([-3.0, 1.0], np.float32)
    both = np.asarray(eps_hat(params, z, gamma))
    swapped = np.asarray(eps_hat(params, z[::-1].copy(), gamma[::-1].copy()))
    np.testing.assert_allclose(swapped, both[::-1], rtol=1e-5, atol=1e-5)


# --- configs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(configs.CONFIGS))
def test_config_round_trip(name: str) -> None:
    cfg = configs.get_config(name)
    assert cfg.name == name
    assert configs.VDMConfig.from_dict(cfg.to_dict()) == cfg
    # Through JSON, where tuples become lists.
    assert configs.VDMConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    assert cfg.multiple == 2 ** (cfg.patch_levels + len(cfg.channel_mults) - 1)
    assert cfg.schedule in ("fixed", "affine", "learned")


def test_config_from_dict_refuses_unknown_fields() -> None:
    d = {**TINY.to_dict(), "dropout": 0.1}
    with pytest.raises(ValueError, match="dropout"):
        configs.VDMConfig.from_dict(d)


def test_config_replace_changes_the_dict() -> None:
    cfg = dataclasses.replace(TINY, batch=3, crop=8)
    d = cfg.to_dict()
    assert (d["batch"], d["crop"]) == (3, 8)
    assert configs.VDMConfig.from_dict(d) == cfg != TINY


def test_get_config_unknown_name_names_the_choices() -> None:
    with pytest.raises(KeyError) as info:
        configs.get_config("huge")
    message = str(info.value.args[0])
    assert "huge" in message
    for name in ("tiny", "small", "base"):
        assert name in message
