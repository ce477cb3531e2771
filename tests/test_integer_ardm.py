"""The integer ARDM network (``models/integer_ardm.py``): its peak and softmax against numpy int64
references and its tables against their definitions; bit for bit the same eager, jitted, through
the float32 convolution path and reloaded; never reading bits the levels do not know; and close to
the float network it was quantised from."""

import dataclasses
import math
from fractions import Fraction

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffc.models import ardm_network as model
from diffc.models import configs, integer_ardm, integer_ops, integer_unet
from diffc.models.vdm import VOCAB
from helpers import smooth_image

TINY = configs.get_config("tiny", "ardm")
TWO_STAGES = dataclasses.replace(TINY, stages=2)


def noisy_params(config: configs.ARDMConfig) -> dict:
    """Fresh parameters plus noise, but for the peak's head (as tests/test_ardm.py: noise there
    makes peaks so sharp that most values fall on the coder's floor)."""
    rng = np.random.default_rng(0)
    fresh = model.init_params(config, 0)
    noisy = jax.tree.map(lambda p: p + 0.3 * rng.standard_normal(p.shape).astype(np.float32), fresh)
    return {**noisy, "peak": fresh["peak"]}


def crops(first_seed: int) -> np.ndarray:
    """Eight smooth 16x16 images: the calibration's shape, whose eager operations are compiled."""
    return np.stack([smooth_image(16, 16, 3, seed=s) for s in range(first_seed, first_seed + 8)])


@pytest.fixture(scope="module")
def quantised():
    params = noisy_params(TINY)
    return params, integer_ardm.quantise_on_images(TINY, params, crops(0), seed=0)


@pytest.fixture(scope="module")
def nets(quantised):
    """The integer network by its count of stages. Its layers do not depend on S, so the
    one-stage model's serve a two-stage config too; each instance keeps its compiled calls, and the
    tests below share them by coding 8x8 images whole."""
    layers = quantised[1].layers
    return {1: quantised[1], 2: integer_ardm.IntegerARDM(TWO_STAGES, layers)}


def states(config: configs.ARDMConfig, images: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    return integer_ardm.calibration_states(config, images.shape, seed)


# --- tables and primitives ------------------------------------------------------------------------


def test_tables_match_their_definitions():
    table = integer_ops.exp_table().astype(np.float64)
    i = np.arange(table.size)
    np.testing.assert_allclose(table, 2.0**30 * np.exp(-i / 256.0), rtol=0, atol=0.5 + 1e-6)
    assert table[0] == 2**30 and table[-1] == 0
    roots, shifts = integer_ardm.root_table()
    assert roots.min() >= 1 << 14 and roots.max() < 1 << 15 and shifts.min() == 0 and shifts.max() == 15
    log_a = np.arange(-2560, 2561) / 256.0
    r = roots * 2.0 ** -(14.0 + shifts)
    np.testing.assert_allclose(r, np.exp(log_a / 2) / 128, rtol=2.0**-15)


def test_peak_term_matches_its_reference_and_the_float_peak():
    rng = np.random.default_rng(1)
    mean = rng.integers(-(12 << 16), 12 << 16, 400).astype(np.int32)  # beyond the clip at 8 too
    log_a = rng.integers(-(12 << 16), 12 << 16, 400).astype(np.int32)
    got = np.asarray(jax.jit(integer_ardm.peak_term)(mean, log_a))
    assert got.dtype == np.int32 and got.shape == (400, VOCAB)
    np.testing.assert_array_equal(got, integer_ardm.peak_term_ref(mean, log_a))
    m, la = np.clip(mean / 2.0**16, -8, 8), np.clip(log_a / 2.0**16, -10, 10)
    x = (np.arange(VOCAB) + 0.5) / 128 - 1
    exact = np.exp(la)[:, None] * (x - m[:, None]) ** 2
    inside = exact < 200  # beyond 256 nats the term is clipped
    rel = np.abs(got / 2.0**16 - exact)[inside] / np.maximum(exact[inside], 1.0)
    assert rel.max() < 4e-3  # log a on a 2^-8 grid: 0.2% in a, plus 2^-11 in the root


def test_softmax_masses_match_their_reference_and_exp():
    rng = np.random.default_rng(2)
    logits = (rng.normal(size=(300, VOCAB)) * rng.choice([1.0, 8.0, 300.0], (300, 1)) * 2**16).astype(np.int32)
    allowed = integer_ardm.allowed_values(rng.integers(0, VOCAB, 300), rng.integers(0, 8, 300))
    allowed = np.asarray(allowed)
    got = np.asarray(jax.jit(integer_ardm.softmax_masses)(logits, allowed))
    np.testing.assert_array_equal(got, integer_ardm.softmax_masses_ref(logits, allowed))
    assert (got[~allowed] == 0).all() and (got.max(axis=1) == 2**30).all()
    top = np.where(allowed, logits, np.iinfo(np.int32).min).max(axis=1, keepdims=True)
    expected = 2.0**30 * np.exp(-np.where(allowed, top - logits.astype(np.float64), np.inf) / 2**16)
    big = allowed & (expected > 2**20)
    np.testing.assert_allclose(got[big], expected[big], rtol=2.0**-9 + 2.0**-20)


def test_allowed_values_share_the_known_bits():
    allowed = np.asarray(integer_ardm.allowed_values(np.array([0b10110101, 7, 255]), np.array([3, 0, 8])))
    np.testing.assert_array_equal(np.flatnonzero(allowed[0]), np.arange(0b10100000, 0b11000000))
    assert allowed[1].all()
    np.testing.assert_array_equal(np.flatnonzero(allowed[2]), [255])


# --- the network ----------------------------------------------------------------------------------


def coded_bits(net: integer_ardm.IntegerARDM, images: np.ndarray, levels: np.ndarray, t: np.ndarray) -> float:
    """The integer model's cost in bits of the next stage bits of every subpixel that its state
    (levels, step t) has yet to code, summed over the images: -log2 of their masses' share."""
    total = 0.0
    stage_bits = net.config.stage_bits
    for k, lv, step in zip(images, levels, t):
        stage = (int(step) - 1) // k.size
        coded = lv.reshape(-1) == stage
        masses = np.asarray(net.coded_masses(k[None], lv[None], int(step), jnp.arange(k.size, dtype=jnp.int32)))
        masses, values = masses[coded].astype(np.int64), k.reshape(-1)[coded].astype(np.int64)
        shift = 8 - (stage + 1) * stage_bits
        same = (np.arange(VOCAB)[None] >> shift) == (values[:, None] >> shift)
        total -= np.log2((masses * same).sum(1) / masses.sum(1)).sum()
    return total


def float_bits(config: configs.ARDMConfig, params: dict, images: np.ndarray, levels: np.ndarray,
               t: np.ndarray) -> float:
    """The float network's cost of the same symbols (``ardm_network.stage_nll``)."""
    stage = ((t - 1) // images[0].size)[:, None, None, None]
    nll = np.asarray(model.subpixel_nll(params, config, images, levels, jnp.asarray(t, jnp.int32)))
    return float(np.where(levels == stage, nll, 0.0).sum())


@pytest.mark.parametrize("config", [TINY, TWO_STAGES], ids=["1-stage", "2-stages"])
def test_integer_bits_are_within_a_few_percent_of_the_float_networks(quantised, nets, config):
    """On smooth images and coding states the calibration did not see (measured: +0.04% for one
    stage, -0.05% for two)."""
    params, net = quantised[0], nets[config.stages]
    images = np.stack([smooth_image(8, 8, 3, seed=100 + s) for s in range(4)])
    levels, t = states(config, images, 5)
    ours, theirs = coded_bits(net, images, levels, t), float_bits(config, params, images, levels, t)
    assert abs(ours / theirs - 1) < 0.02


def test_eager_jit_float_path_and_reloaded_agree_bit_for_bit(quantised):
    """The model reloaded from its bytes runs eagerly (on the calibration's shape, whose
    operations are compiled already); the float32 convolution path under jit."""
    _, net = quantised
    images = crops(20)
    levels, t = states(TINY, images, 6)
    phases = net.phases(t, images[0].size)
    eager = np.asarray(net.features(images, levels, phases))
    assert eager.dtype == np.int16 and eager.shape == (8, 16, 16, TINY.channels)
    reloaded = integer_ardm.from_bytes(TINY, integer_ardm.to_bytes(net))
    via_float = integer_ardm.IntegerARDM(TINY, net.layers, float_path=True)
    for h in (jax.jit(net.features)(images, levels, phases), reloaded.features(images, levels, phases),
              jax.jit(via_float.features)(images, levels, phases)):
        np.testing.assert_array_equal(np.asarray(h), eager)
    index = jnp.arange(0, images[0].size, 5, dtype=jnp.int32)
    one = (eager[:1], images[:1], levels[:1], index)
    masses = np.asarray(net.masses(*one))
    for other in (net, via_float):
        np.testing.assert_array_equal(np.asarray(jax.jit(other.masses)(*one)), masses)


@pytest.mark.parametrize("config, channels", [(TINY, 3), (TINY, 1), (TWO_STAGES, 3)],
                         ids=["rgb", "gray", "2-stages"])
def test_masses_never_read_bits_the_levels_do_not_know(nets, config, channels):
    """The decoder does not know them: changing them leaves every mass the same."""
    net = nets[config.stages]
    rng = np.random.default_rng(7)
    a = smooth_image(8, 8, 3, seed=8)[None, ..., :channels]
    levels = rng.integers(0, config.stages + 1, a.shape).astype(np.int8)
    unknown = (1 << (8 - config.stage_bits * levels.astype(np.int64))) - 1
    b = (a ^ (rng.integers(0, 256, a.shape) & unknown)).astype(np.uint8)
    assert (a != b).any()
    index = jnp.arange(a.size, dtype=jnp.int32)
    total = config.stages * a.size
    out = np.asarray(net.coded_masses(a, levels, total // 3, index))
    np.testing.assert_array_equal(np.asarray(net.coded_masses(b, levels, total // 3, index)), out)
    assert out.shape == (a.size, VOCAB) and (out.max(axis=1) == 2**30).all()
    assert (np.asarray(net.coded_masses(a, levels, total // 3 + 1, index)) != out).any()  # the step counts


def test_step_phases_are_exact_for_huge_images():
    """t P_i exceeds 64 bits on large images: the phases, round(2^12 t P_i / (2^32 S D)) mod 2^12,
    are exact (here against fractions)."""
    cycles = np.array([0, 1 << 39, 683565275577], np.int64)
    total = 3 * 8 * 10**7
    t = np.array([1, total // 3, total - 1])
    got = integer_ardm.step_phases({"embedding": {"cycles": cycles}}, t, total)
    expected = [[math.floor(Fraction(int(step) * int(c), total << 20) + Fraction(1, 2)) % 4096 for c in cycles]
                for step in t]
    np.testing.assert_array_equal(got, expected)


def test_from_bytes_refuses_other_data(quantised):
    with pytest.raises(ValueError, match="not an integer model"):
        integer_ardm.from_bytes(TINY, b"\x93not msgpack at all")
    vdm_like = integer_unet.layers_to_bytes(integer_unet.FORMAT, quantised[1].layers)
    with pytest.raises(ValueError, match="diffc-integer-ardm/1"):
        integer_ardm.from_bytes(TINY, vdm_like)

