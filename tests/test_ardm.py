"""The ARDM prior (``models/ardm_network.py``), its step planner (``codec/ardm_plan.py``) and its
lossless coder (``codec/ardm.py``), with the tiny config on images of at most 6x7 pixels.

Exactness must hold whatever the network, so the coder is tested with an untrained one: fresh
parameters plus noise (fresh ones zero every residual branch, which leaves a nearly linear
network). A network whose parameters are all zero but the head's bias gives the same logits for
every subpixel, exactly on any machine: it pins the golden stream.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import ardm, ardm_plan
from diffc.models import ardm_network as model
from diffc.models import configs
from diffc.models.vdm import VOCAB
from helpers import compiled, smooth_image

TINY = configs.get_config("tiny", "ardm")
MODEL_NAME, MODEL_SHA256 = "ardm-test", "0123456789abcdef" + "0" * 48
HASH8 = bytes.fromhex(MODEL_SHA256[:16])
CURVE = np.array([8.5, 6.0, 4.5, 4.0])  # a made-up decreasing loss curve, bits per subpixel
# A straight line from 8 bits (nothing known) down to 0: its cost grows by the sum of the squared
# call lengths, so its optimal plan has calls of equal length.
LINEAR_CURVE = np.array([8.0, 0.0])


def prior_of(params: dict, curve: np.ndarray = CURVE, sha256: str = MODEL_SHA256) -> ardm.ARDMPrior:
    return ardm.ARDMPrior(TINY, params, curve, MODEL_NAME, sha256)


@pytest.fixture(scope="module")
def params() -> dict:
    """Fresh parameters plus noise, but for the peak's head: noise there makes peaks so sharp that
    most values fall on the coder's probability floor, which no trained model does."""
    rng = np.random.default_rng(0)
    fresh = model.init_params(TINY, 0)
    noisy = jax.tree.map(lambda p: p + 0.3 * rng.standard_normal(p.shape).astype(np.float32), fresh)
    return {**noisy, "peak": fresh["peak"]}


@pytest.fixture(scope="module")
def stream(params):
    image = smooth_image(6, 7, 3)
    return image, ardm.encode(image, prior_of(params), steps=5, seed=3)


# --- the network and its losses ------------------------------------------------------------------


def test_logits_never_read_unknown_values(params):
    """The decoder does not know them: changing them must leave every logit bit-identical."""
    rng = np.random.default_rng(1)
    known = rng.random((1, 6, 7, 3)) < 0.4
    a = rng.integers(0, 256, (1, 6, 7, 3), dtype=np.uint8)
    b = np.where(known, a, rng.integers(0, 256, a.shape)).astype(np.uint8)
    out_a = np.asarray(model.logits(params, TINY, a, known, jnp.array([50])))
    out_b = np.asarray(model.logits(params, TINY, b, known, jnp.array([50])))
    assert out_a.shape == (1, 6, 7, 3, VOCAB)
    np.testing.assert_array_equal(out_a, out_b)
    assert np.abs(out_a - np.asarray(model.logits(params, TINY, a, ~known, jnp.array([50])))).max() > 0.01


@pytest.mark.parametrize("patch_levels", [0, 1])
@pytest.mark.parametrize("channels", [3, 1])
def test_coded_logits_are_the_rows_of_the_whole_networks(patch_levels, channels):
    """The coder's call (heads on the coded cells only) gives the rows of ``logits`` for any
    index, repeats and odd sizes included, and never reads unknown values."""
    import dataclasses

    config = dataclasses.replace(TINY, patch_levels=patch_levels)
    noisy = jax.tree.map(lambda p: p + 0.3 * np.random.default_rng(2).standard_normal(p.shape).astype(np.float32),
                         model.init_params(config, 0))
    rng = np.random.default_rng(3)
    shape = (1, 7, 9, channels)
    known = rng.random(shape) < 0.5
    k = rng.integers(0, 256, shape, dtype=np.uint8)
    index = jnp.asarray(rng.integers(0, math.prod(shape), 40).astype(np.int32))
    whole = np.asarray(model.logits(noisy, config, k, known, jnp.array([20]))).reshape(-1, VOCAB)[np.asarray(index)]
    coded = np.asarray(model.coded_logits(noisy, config, k, known, jnp.array([20]), index))
    np.testing.assert_allclose(coded, whole, rtol=1e-5, atol=1e-4)
    other = np.where(known, k, 255 - k).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(model.coded_logits(noisy, config, other, known, jnp.array([20]), index)), coded)


def test_step_loss_averages_to_the_exact_nll_over_orders(params):
    """ARDM section 3: E_sigma E_t [D L_t] = E_sigma [-log2 p(x | sigma)], the one-call-per-step
    NLL; exact for a 1x1 RGB image (D = 3) when every order and step is enumerated."""
    k = jnp.asarray(smooth_image(1, 1, 3, seed=4)[None])
    d = 3
    by_steps, exact = [], []
    for sigma in itertools.permutations(range(d)):
        ranks = jnp.asarray(ardm._ranks(np.array(sigma), d))
        for t in range(1, d + 1):
            by_steps.append(float(model.step_loss(params, TINY, k, ranks, jnp.array([t]))[0]))
        exact.append(float(model.plan_nll(params, TINY, k, np.array(sigma), [1, 2, 3])[0]) / d)
    assert np.mean(by_steps) == pytest.approx(np.mean(exact), rel=1e-5)
    assert np.std(by_steps) > 0.01  # the steps' terms differ: the weighting D / (D - t + 1) matters


def test_loss_curve_starts_at_the_unconditional_nll(params, stream):
    """With nothing known (f = 0) every order gives the same L_1: the mean cost of all subpixels
    coded in one call."""
    image, _ = stream
    k = jnp.asarray(image[None])
    curve = model.loss_curve(params, TINY, k, jax.random.key(0), points=2)
    one_call = float(model.plan_nll(params, TINY, k, ardm.order(0, image.size), [1])[0]) / image.size
    assert curve.shape == (2,)
    assert curve[0] == pytest.approx(one_call, rel=1e-5)


def test_training_lowers_the_loss():
    """Adam on a batch of four 4x4 images: the loss at a fixed (t, sigma) draw falls by bits."""
    rng = np.random.default_rng(5)
    batch = jnp.asarray(np.stack([smooth_image(4, 4, 3, seed=s) for s in range(4)]))
    params = model.init_params(TINY, 0)
    opt = optax.adam(3e-3)

    def train_step(params, state, key):
        loss, grads = jax.value_and_grad(model.ardm_loss)(params, TINY, batch, key)
        updates, state = opt.update(grads, state)
        return optax.apply_updates(params, updates), state, loss

    state = opt.init(params)
    eval_key = jax.random.key(99)
    step = compiled(train_step, params, state, eval_key)
    before = float(step(params, state, eval_key)[2])  # the loss before the step's update
    for _ in range(25):
        params, state, loss = step(params, state, jax.random.key(int(rng.integers(1 << 30))))
        assert np.isfinite(float(loss))
    after = float(step(params, state, eval_key)[2])
    assert 7.0 < before < 10.0  # about log2(256) bits per subpixel untrained
    assert after < before - 0.5


def test_small_config_has_about_three_million_parameters():
    cfg = configs.get_config("small", "ardm")
    x = jnp.zeros((1, 8, 8, 3))
    shapes = jax.eval_shape(model.ARDMNet(cfg).init, jax.random.key(0), x, x, jnp.zeros((1,)))
    assert 2.8e6 < sum(math.prod(p.shape) for p in jax.tree.leaves(shapes)) < 3.4e6
    with pytest.raises(KeyError, match="tiny"):
        configs.get_config("huge", "ardm")


# --- the planner ---------------------------------------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(
    losses=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=1, max_size=10),
    budget=st.integers(1, 4),
)
def test_plan_is_the_brute_force_optimum(losses, budget):
    starts = ardm_plan.plan_steps(np.array(losses), budget)
    assert starts[0] == 1 and len(starts) <= budget and starts[-1] <= len(losses)
    assert (np.diff(starts) > 0).all()
    best = ardm_plan.brute_force_plan(np.array(losses), budget)
    assert ardm_plan.plan_cost(losses, starts) == pytest.approx(ardm_plan.plan_cost(losses, best), abs=1e-9)


def test_plan_on_the_grid_is_close_to_the_exact_plan():
    """D = 2000 subpixels planned over 100 candidate steps costs at most 0.5% more than planning
    over every step, for a realistic convex curve."""
    curve = 1.0 + 7.0 * np.exp(-4.0 * np.linspace(0, 1, 50))
    d, budget = 2000, 8
    losses = ardm_plan.step_losses(curve, d, np.arange(1, d + 1)) * ardm_plan.LOSS_QUANTUM
    exact = ardm_plan.plan_cost(losses, ardm_plan.plan_steps(losses, budget))
    gridded = ardm_plan.plan(curve, d, budget, grid=100)
    assert len(gridded) == budget and set(gridded) <= {1 + j * d // 100 for j in range(100)}
    assert exact <= ardm_plan.plan_cost(losses, gridded) <= 1.005 * exact
    assert ardm_plan.plan_cost(losses, gridded) < 0.9 * ardm_plan.plan_cost(losses, [1])


def test_default_curve_gives_calls_of_equal_length():
    np.testing.assert_array_equal(ardm_plan.plan(LINEAR_CURVE, 12, 4), [1, 4, 7, 10])
    np.testing.assert_array_equal(ardm_plan.plan(LINEAR_CURVE, 3, 10), [1, 2, 3])


def test_golden_plan():
    """The decoder recomputes the plan: any change to it breaks old streams (bump the version)."""
    starts = ardm_plan.plan(np.array([8.0, 3.0, 1.5, 1.0, 0.8]), 1_000_000, 6)
    np.testing.assert_array_equal(starts, GOLDEN_PLAN)


@pytest.mark.parametrize("curve", [[8.0], [8.0, -1.0], [8.0, np.nan], [[8.0, 1.0]]])
def test_bad_curves_are_refused(curve):
    with pytest.raises(ValueError, match="curve"):
        ardm_plan.plan(np.array(curve), 10, 3)


# --- the coder -----------------------------------------------------------------------------------


def test_order_is_a_pinned_permutation():
    sigma = ardm.order(7, 1000)
    np.testing.assert_array_equal(np.sort(sigma), np.arange(1000))
    np.testing.assert_array_equal(ardm.order(7, 10), GOLDEN_ORDER)


@pytest.mark.parametrize(
    "shape, steps, calls",
    [((1, 1, 3), 2, 2), ((1, 1), 1, 1), ((1, 1, 3), 10, 3), ((3, 5), 4, 4), ((6, 7, 3), 5, 5)],
    ids=["1x1-rgb", "1x1-gray-2d", "1x1-rgb-more-steps-than-dims", "3x5-gray-2d", "6x7-rgb"],
)
def test_round_trip_is_exact(params, shape, steps, calls):
    rgb_or_gray = smooth_image(*shape[:2], 3, seed=2)[..., : shape[2] if len(shape) == 3 else 1]
    image = rgb_or_gray if len(shape) == 3 else rgb_or_gray[..., 0]
    seen = []
    result = ardm.encode(image, prior_of(params), steps=steps, seed=11, progress=lambda *a: seen.append(a))
    decoded = ardm.decode(result.data, prior_of(params))
    expected = image if image.ndim == 3 else image[..., None]
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, expected)
    assert result.calls == calls and seen[-1] == (calls, calls) and len(seen) == calls
    header = bitstreams.read(result.data).header
    assert header.mode is Mode.LOSSLESS_ARDM
    assert (header.height, header.width, header.channels) == expected.shape
    assert header.params == {"steps": steps, "image_crc32": zlib.crc32(expected.tobytes()), "order": 0, "exact": 0}
    assert (header.seed, header.model_id, header.model_hash) == (11, MODEL_NAME, HASH8)


def test_coded_size_is_the_models_nll_within_a_small_margin(params, stream):
    """rANS bits within 64 bits + 1% of the ideal cost of the quantised tables, and that ideal cost
    within 0.001 bits per subpixel of the model's float32 NLL under the same order and plan."""
    image, result = stream
    assert result.ideal_bits <= result.payload_bits <= result.ideal_bits * 1.01 + 64
    starts = ardm_plan.plan(CURVE, image.size, 5)
    nll = float(model.plan_nll(params, TINY, jnp.asarray(image[None]), ardm.order(3, image.size), starts)[0])
    assert result.ideal_bits == pytest.approx(nll, abs=1e-3 * image.size)
    assert 6.0 < result.ideal_bits / image.size < 11.0  # an untrained model: near 8 bits per subpixel
    facts = ardm.describe(result)
    assert facts["calls"] == 5 and facts["bits"] == 8 * len(result.data) == result.total_bits
    assert facts["bpd"] == pytest.approx(result.total_bits / image.size)


def test_truncated_stream_is_a_clear_error(params, stream):
    _, result = stream
    with pytest.raises(bitstreams.TruncatedStreamError):
        ardm.decode(result.data[:-5], prior_of(params))


def test_flipped_byte_fails_the_chunk_checksum(params, stream):
    _, result = stream
    data = bytearray(result.data)
    data[-3] ^= 0x10
    with pytest.raises(bitstreams.CorruptStreamError, match="checksum"):
        ardm.decode(bytes(data), prior_of(params))


@pytest.mark.parametrize("change", ["first-word", "last-word", "drop-a-word"])
def test_corrupt_rans_data_under_valid_checksums_is_a_clear_error(params, stream, change):
    """A chunk altered and re-framed (fresh CRCs) must not decode to a wrong image silently; the
    error names the other possible cause, a float model's probabilities computed on another
    kind of setup (docs/portability.md)."""
    _, result = stream
    container = bitstreams.read(result.data)
    words = np.frombuffer(container.chunks[0], dtype="<u4").copy()
    if change == "drop-a-word":
        words = words[1:]
    else:
        words[0 if change == "first-word" else -1] ^= 0x00F0F000
    data = bitstreams.write(container.header, [words.astype("<u4").tobytes()])
    with pytest.raises(bitstreams.CorruptStreamError, match="device"):
        ardm.decode(data, prior_of(params))


def test_another_model_is_refused(params, stream):
    _, result = stream
    with pytest.raises(bitstreams.StreamMismatchError, match="made with model ardm-test \\(0123456789abcdef\\)"):
        ardm.decode(result.data, prior_of(params, sha256="00" * 32))


def test_another_mode_is_refused(params):
    header = bitstreams.Header(Mode.LOSSLESS_VDM, 2, 2, 3, 0, MODEL_NAME, HASH8, {})
    with pytest.raises(bitstreams.StreamMismatchError, match="lossless-vdm"):
        ardm.decode(bitstreams.write(header, [b"\0" * 8]), prior_of(params))


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"steps": 5, "image_crc32": 0}, "lacks order"),
        ({"steps": 5, "image_crc32": 0, "order": 0}, "lacks exact"),
        ({"steps": 0, "image_crc32": 0, "order": 0, "exact": 0}, "steps"),
        ({"steps": 5, "image_crc32": 0, "order": 1, "exact": 0}, "order scheme 1"),
        ({"steps": 5, "image_crc32": 1 << 32, "order": 0, "exact": 0}, "checksum"),
    ],
)
def test_bad_coding_parameters_are_refused(params, stream, fields, message):
    _, result = stream
    container = bitstreams.read(result.data)
    name, hash8 = MODEL_NAME, HASH8
    header = bitstreams.Header(Mode.LOSSLESS_ARDM, 6, 7, 3, 3, MODEL_NAME, HASH8, fields)
    with pytest.raises(bitstreams.CorruptStreamError, match=message):
        ardm.decode(bitstreams.write(header, container.chunks), prior_of(params))


def test_a_wrong_image_checksum_is_reported(params, stream):
    _, result = stream
    container = bitstreams.read(result.data)
    fields = dict(container.header.params, image_crc32=container.header.params["image_crc32"] ^ 1)
    header = bitstreams.Header(**{**container.header.__dict__, "params": fields})
    with pytest.raises(bitstreams.CorruptStreamError, match="checksum"):
        ardm.decode(bitstreams.write(header, container.chunks), prior_of(params))


@pytest.mark.parametrize("image", [np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.float32)])
def test_invalid_images_steps_and_seeds_are_refused(params, image):
    with pytest.raises(ValueError, match="uint8"):
        ardm.encode(image, prior_of(params))
    with pytest.raises(ValueError, match="steps"):
        ardm.encode(np.zeros((2, 2, 3), np.uint8), prior_of(params), steps=0)
    with pytest.raises(ValueError, match="seed"):
        ardm.encode(np.zeros((2, 2, 3), np.uint8), prior_of(params), seed=-1)


# --- golden stream -------------------------------------------------------------------------------


def test_golden_stream(params):
    """All parameters zero but the head's bias: every subpixel of channel c gets logits
    bias_c - x_v^2 (the peak's mean 0 and log a 0), exactly, on any machine. Pins the network's
    output form, the order, the plan, the push order and the framing (bump the version if one of
    the last four changes); the ideal cost is then a closed form."""
    bias = np.random.default_rng(6).normal(size=3 * VOCAB).astype(np.float32)
    const = jax.tree.map(np.zeros_like, params)
    const["head"]["bias"] = jnp.asarray(bias)
    image = smooth_image(6, 7, 3, seed=9)
    result = ardm.encode(image, prior_of(const, LINEAR_CURVE), steps=3, seed=1)
    values = (np.arange(VOCAB) + 0.5) / 128 - 1
    logp = special.log_softmax(bias.astype(np.float64).reshape(3, VOCAB) - values**2, axis=-1)
    own = np.take_along_axis(logp, image.reshape(-1, 3).T.astype(np.int64), axis=1)  # (3, 42)
    ideal = -own.sum() / np.log(2)
    assert result.ideal_bits == pytest.approx(ideal, rel=1e-5)
    v6 = as_version_6(result.data)
    assert hashlib.sha256(v6).hexdigest() == GOLDEN_SHA256
    for data in (result.data, v6):
        np.testing.assert_array_equal(ardm.decode(data, prior_of(const, LINEAR_CURVE)), image)


def as_version_6(data: bytes) -> bytes:
    """A version-7 float ARDM stream under a version-6 header: version 7 changed exact streams
    only, so the goldens pinned in version 6 pin these bytes too, and both decode."""
    container = bitstreams.read(data)
    assert container.header.version == bitstreams.VERSION == 7
    return bitstreams.write(dataclasses.replace(container.header, version=6), container.chunks)


GOLDEN_PLAN = [1, 83008, 166016, 250001, 500001, 750001]
GOLDEN_ORDER = [6, 3, 4, 9, 0, 2, 8, 7, 5, 1]
GOLDEN_SHA256 = "9c737ab4d9eb95b8c153ab34f85791fa2ac2fbf3e4ef7afe5af73f4a88991eb5"  # as format version 6


# --- upscale ARDMs -------------------------------------------------------------------------------

UPSCALE = {s: dataclasses.replace(TINY, stages=s) for s in (2, 4, 8)}


def test_stages_must_divide_the_eight_bits():
    for stages in (0, 3, 16):
        with pytest.raises(ValueError, match="stages must be 1, 2, 4 or 8"):
            dataclasses.replace(TINY, stages=stages)
    assert configs.get_config("small-upscale", "ardm").stage_bits == 2


@pytest.mark.parametrize("stage_bits", [1, 2, 4, 8])
def test_stage_costs_are_normalised_and_add_up_to_the_value_cost(stage_bits):
    """Each stage's probabilities over its 2^b next bits sum to 1, and the costs of the stages
    under one set of logits add up to -log2 softmax(logits)[k]."""
    rng = np.random.default_rng(stage_bits)
    logits = jnp.asarray(rng.normal(size=(50, VOCAB)) * 3, jnp.float32)
    k = rng.integers(0, VOCAB, 50)
    stages = 8 // stage_bits
    total = sum(model.stage_nll(logits, k, np.full(50, level), stage_bits) for level in range(stages))
    expected = -special.log_softmax(np.asarray(logits, np.float64), axis=-1)[np.arange(50), k] / np.log(2)
    np.testing.assert_allclose(total, expected, atol=1e-4)
    level = stages // 2
    shift = 8 - (level + 1) * stage_bits
    mass = sum(
        2.0 ** -np.asarray(model.stage_nll(logits, (k & ~(((1 << stage_bits) - 1) << shift)) | (v << shift),
                                           np.full(50, level), stage_bits))
        for v in range(1 << stage_bits)
    )
    np.testing.assert_allclose(mass, 1.0, atol=1e-5)
    np.testing.assert_array_equal(model.stage_nll(logits, k, np.full(50, stages), stage_bits), 0.0)


def test_logits_never_read_the_bits_a_level_does_not_know(params):
    cfg = UPSCALE[4]
    rng = np.random.default_rng(3)
    a = smooth_image(6, 7, 3, seed=5)[None]
    levels = rng.integers(0, 5, a.shape)
    unknown = (1 << (8 - 2 * levels)) - 1
    b = (a ^ (rng.integers(0, 256, a.shape) & unknown)).astype(np.uint8)
    assert (a != b).any()
    t = jnp.array([60])
    out_a = np.asarray(model.logits(params, cfg, a, levels, t))
    np.testing.assert_array_equal(out_a, np.asarray(model.logits(params, cfg, b, levels, t)))
    assert np.abs(out_a - np.asarray(model.logits(params, cfg, a, 4 - levels, t))).max() > 0.01


def test_upscale_step_loss_averages_to_the_exact_nll_over_orders(params):
    """log p(x) >= S E_t [D L_t] over the S D global steps: exact for a 1x1 RGB image (D = 3)
    when both stages' orders and every step are enumerated."""
    cfg, d = UPSCALE[2], 3
    k = jnp.asarray(smooth_image(1, 1, 3, seed=4)[None])
    perms = [np.array(p) for p in itertools.permutations(range(d))]
    by_steps = [
        float(model.step_loss(params, cfg, k, jnp.asarray(ardm._ranks(sigma, d)), jnp.array([t]))[0])
        for sigma in perms for t in range(1, 2 * d + 1)
    ]
    exact = [
        float(model.plan_nll(params, cfg, k, np.concatenate([s0, s1]), list(range(1, 2 * d + 1)))[0]) / d
        for s0 in perms for s1 in perms
    ]
    assert 2 * np.mean(by_steps) == pytest.approx(np.mean(exact), rel=1e-5)
    with pytest.raises(ValueError, match="spans stages 0 and 1"):
        model.plan_nll(params, cfg, k, np.arange(2 * d) % d, [1, 2])
    curve = model.loss_curve(params, cfg, k, jax.random.key(0), points=3)
    assert curve.shape == (6,)


@settings(max_examples=60, deadline=None)
@given(
    curve=st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=4, max_size=4),
    dims=st.integers(1, 4),
    budget=st.integers(2, 5),
)
def test_plan_over_two_stages_is_the_brute_force_optimum(curve, dims, budget):
    """Two stages of ``dims`` steps, each with a 2-point curve: the planner's cost equals the
    cheapest plan among all that start a call at both stages' first steps."""
    curve = np.array(curve)
    starts = ardm_plan.plan(curve, dims, budget, stages=2)
    assert starts[0] == 1 and dims + 1 in starts and len(starts) <= budget
    steps = np.arange(1, dims + 1)
    losses = np.concatenate([ardm_plan.step_losses(c, dims, steps) for c in np.split(curve, 2)]).astype(float)
    plans = (
        np.array(sorted({1, dims + 1, *rest}))
        for n in range(budget - 1)
        for rest in itertools.combinations(range(2, 2 * dims + 1), n)
    )
    best = min((p for p in plans if len(p) <= budget), key=lambda p: ardm_plan.plan_cost(losses, p))
    assert ardm_plan.plan_cost(losses, starts) == ardm_plan.plan_cost(losses, best)
    with pytest.raises(ValueError, match="at least the stages"):
        ardm_plan.plan(curve, dims, 1, stages=2)


def test_plan_over_stages_on_the_grid_starts_every_stage():
    """Three stages of D = 10 steps over a grid of 12 candidates (4 a stage): every stage starts
    with a call, calls start only on the candidates, and the spare calls go to the steep stage."""
    flat, steep = [1.0, 1.0], [8.0, 0.0]
    starts = ardm_plan.plan(np.array(flat + steep + flat), 10, 6, grid=12, stages=3)
    candidates = {s * 10 + 1 + j * 10 // 4 for s in range(3) for j in range(4)}
    assert {1, 11, 21} <= set(starts) <= candidates
    np.testing.assert_array_equal(starts, [1, 11, 13, 16, 18, 21])


@pytest.mark.parametrize(
    "stages, shape, steps",
    [(2, (6, 7, 3), 6), (4, (3, 5), 9), (4, (1, 1, 3), 4), (2, (1, 1), 2), (8, (2, 3, 3), 12)],
    ids=["2-stages-6x7-rgb", "4-stages-3x5-gray", "4-stages-1x1-rgb", "2-stages-1x1-gray", "8-stages-2x3-rgb"],
)
def test_upscale_round_trip_is_exact_and_costs_the_models_nll(params, stages, shape, steps):
    cfg = UPSCALE[stages]
    rgb_or_gray = smooth_image(*shape[:2], 3, seed=8)[..., : shape[2] if len(shape) == 3 else 1]
    image = rgb_or_gray if len(shape) == 3 else rgb_or_gray[..., 0]
    curve = np.tile(CURVE, stages) / stages
    prior = ardm.ARDMPrior(cfg, params, curve, MODEL_NAME, MODEL_SHA256)
    result = ardm.encode(image, prior, steps=steps, seed=5)
    expected = image if image.ndim == 3 else image[..., None]
    np.testing.assert_array_equal(ardm.decode(result.data, prior), expected)
    starts = ardm_plan.plan(curve, expected.size, steps, stages=stages)
    assert result.calls == len(starts) >= stages
    nll = float(model.plan_nll(params, cfg, jnp.asarray(expected[None]), ardm.order(5, expected.size, stages),
                               starts)[0])
    assert result.ideal_bits == pytest.approx(nll, abs=1e-3 * expected.size)
    assert result.ideal_bits <= result.payload_bits <= result.ideal_bits * 1.01 + 64
    with pytest.raises(ValueError, match=f"steps must lie in \\[{stages}, "):
        ardm.encode(image, prior, steps=stages - 1)
    container = bitstreams.read(result.data)
    header = dataclasses.replace(container.header, params={**container.header.params, "steps": stages - 1})
    with pytest.raises(bitstreams.CorruptStreamError, match=f"outside \\[{stages}, "):
        ardm.decode(bitstreams.write(header, container.chunks), prior)


def test_upscale_orders_extend_the_single_stage_order():
    sigma = ardm.order(7, 10, stages=3)
    np.testing.assert_array_equal(sigma[:10], GOLDEN_ORDER)
    for s in range(3):
        np.testing.assert_array_equal(np.sort(sigma[10 * s : 10 * (s + 1)]), np.arange(10))
    assert (sigma[10:20] != sigma[:10]).any()


def test_upscale_golden_stream(params):
    """Pins the stages' orders, the grouping of the logits into each stage's categoricals and the
    plan over stages, with the constant network of ``test_golden_stream``: the ideal cost is then
    the values' cost under the one softmax, whatever the stages (their costs telescope)."""
    bias = np.random.default_rng(6).normal(size=3 * VOCAB).astype(np.float32)
    const = jax.tree.map(np.zeros_like, params)
    const["head"]["bias"] = jnp.asarray(bias)
    prior = ardm.ARDMPrior(UPSCALE[4], const, np.tile(LINEAR_CURVE, 4), MODEL_NAME, MODEL_SHA256)
    image = smooth_image(6, 7, 3, seed=9)
    result = ardm.encode(image, prior, steps=6, seed=1)
    values = (np.arange(VOCAB) + 0.5) / 128 - 1
    logp = special.log_softmax(bias.astype(np.float64).reshape(3, VOCAB) - values**2, axis=-1)
    own = np.take_along_axis(logp, image.reshape(-1, 3).T.astype(np.int64), axis=1)
    assert result.ideal_bits == pytest.approx(-own.sum() / np.log(2), rel=1e-5)
    v6 = as_version_6(result.data)
    assert hashlib.sha256(v6).hexdigest() == UPSCALE_GOLDEN_SHA256
    for data in (result.data, v6):
        np.testing.assert_array_equal(ardm.decode(data, prior), image)


UPSCALE_GOLDEN_SHA256 = "2b3a0bd69ae707cb1efc5afd4d7410d0992b52a6d2c2170c964ba8c1601c30f6"
