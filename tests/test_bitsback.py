"""Lossless bits-back coding with the VDM prior (``codec/bitsback/``), tiny config.

Exactness must hold whatever the model, so most tests use untrained weights. Models whose eps_hat
is a formula need no network: one that always denoises to white (the worst case for the supports'
bounds, and the golden stream), one with x_hat = z_t / alpha_t (for the rate against the ELBO).
"""

import dataclasses
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import bitsback, entropy
from diffc.codec.bitsback import dither, groups, windows
from diffc.codec.denoiser import Denoiser
from diffc.models import configs, vdm
from helpers import smooth_image

STEPS = 4


@pytest.fixture(scope="module")
def den() -> Denoiser:
    cfg = configs.get_config("tiny")
    return Denoiser(cfg, vdm.init_params(cfg, 0), "tiny-test", "ab" * 32)


@dataclass(frozen=True, eq=False)
class FormulaDenoiser(Denoiser):
    """A model whose eps_hat(z_t, gamma_t) is a formula, not the network: fast, and extreme on demand."""

    formula: Callable[[jax.Array, jax.Array], jax.Array] | None = None

    @property
    def prior_step(self):
        def step(z_t, gamma_t, gamma_s):
            eps_hat = self.formula(z_t, gamma_t)
            mean, var = vdm.model_step(z_t, eps_hat, gamma_s.reshape(1), gamma_t.reshape(1))
            return mean, jnp.sqrt(var)

        return step


def white_eps(z_t: jax.Array, gamma_t: jax.Array) -> jax.Array:
    """The eps_hat that makes x_hat = 1: the model always sees a white image."""
    alpha, sigma = vdm.alpha_sigma(gamma_t)
    return (z_t - alpha) / sigma


def naive_eps(z_t: jax.Array, gamma_t: jax.Array) -> jax.Array:
    """eps_hat = 0, so x_hat = z_t / alpha_t: step KLs of about a bit per dimension at T = 20, where
    an untrained network's misses hit the coder's probability floor and break the ELBO's account."""
    return jnp.zeros_like(z_t)


@pytest.fixture(scope="module")
def white(den) -> FormulaDenoiser:
    return FormulaDenoiser(den.config, den.params, "white", "cd" * 32, formula=white_eps)


@pytest.fixture(scope="module")
def stream(den):
    image = smooth_image(8, 8, 3)
    return image, bitsback.encode(image, den, steps=STEPS, patch_size=4, seed=5)


# --- exact round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, patch_size",
    [((8, 8, 3), 4), ((6, 6), 3), ((5, 7, 3), 4), ((1, 1, 3), 4), ((1, 1, 1), 1)],
    ids=["rgb", "gray-2d", "odd-5x7", "1x1-rgb", "1x1-gray"],
)
def test_round_trip_is_exact(den, shape, patch_size):
    image = smooth_image(*shape, 3)[..., : shape[2]] if len(shape) == 3 else smooth_image(*shape, 1)[..., 0]
    result = bitsback.encode(image, den, steps=STEPS, patch_size=patch_size)
    decoded = bitsback.decode(result.data, den)
    expected = image if image.ndim == 3 else image[..., None]  # grayscale comes back (H, W, 1)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, expected)
    header = bitstreams.read(result.data).header
    assert header.mode is Mode.LOSSLESS_VDM and (header.height, header.width, header.channels) == expected.shape
    assert header.params["steps"] == STEPS and header.params["patch_size"] == patch_size


def test_stream_header_names_the_model_and_the_image(den, stream):
    image, result = stream
    header = bitstreams.read(result.data).header
    assert header.model_id == den.name and header.model_hash == den.hash8
    assert header.seed == 5
    assert header.params["seed_patches"] == result.stats.seed_patches
    assert header.params["image_crc32"] == zlib.crc32(image.tobytes())


def test_any_model_codes_exactly_even_one_that_is_always_wrong(white):
    """x_hat = 1 while the image is mostly black: the model's means miss by about the most that the
    bounds allow."""
    image = np.zeros((6, 6, 3), np.uint8)
    image[::2, ::3] = 255
    result = bitsback.encode(image, white, steps=3, patch_size=3)
    assert result.stats.seed_patches < result.stats.patches  # some patches were chained
    np.testing.assert_array_equal(bitsback.decode(result.data, white), image)


def test_two_images_chained_on_one_stack(den):
    """The second image pushed on the first one's stack needs no seed: all its patches chain."""
    first, second = smooth_image(8, 8, 3, seed=1), smooth_image(4, 8, 3, seed=2)
    coding = bitsback.Coding.of(den, STEPS, 4, seed=0)
    stack, stats_first = bitsback.push_image(entropy.Stack(), first, coding)
    stack, stats_second = bitsback.push_image(stack, second, coding)
    assert stats_first.seed_patches >= 1 and stats_second.seed_patches == 0
    assert stack.ideal_bits == pytest.approx(stats_first.ideal_bits + stats_second.ideal_bits)

    stack = entropy.Stack.from_bytes(stack.to_bytes())
    popped_second, direct_second = bitsback.pop_image(stack, second.shape, coding)
    popped_first, direct_first = bitsback.pop_image(stack, first.shape, coding)
    np.testing.assert_array_equal(popped_second, second)
    np.testing.assert_array_equal(popped_first, first)
    assert (direct_first, direct_second) == (stats_first.seed_patches, 0)
    assert stack.exhausted()


def test_groups_grow_with_the_stack_as_rectangles(den):
    """The first patch coded directly, then groups of at most half as many patches as came before,
    capped by max_group: runs within a row of patches, or whole rows, so rectangles of pixels."""
    image = smooth_image(8, 32, 3, seed=3)  # 2 rows of 8 patches
    result = bitsback.encode(image, den, steps=STEPS, patch_size=4)
    assert [(g.patches, g.chained) for g in result.stats.groups] == [
        (1, False), (1, True), (1, True), (1, True), (2, True), (2, True), (4, True), (4, True)]
    capped = bitsback.encode(image, den, steps=STEPS, patch_size=4, max_group=2)
    assert [g.patches for g in capped.stats.groups] == [1, 1, 1, 1, 2, 2, 2, 2, 2, 2]
    assert bitstreams.read(capped.data).header.params["max_group"] == 2
    single = bitsback.encode(image, den, steps=STEPS, patch_size=4, max_group=1)
    assert [g.patches for g in single.stats.groups] == [1] * 16
    for data in (result.data, capped.data, single.data):
        np.testing.assert_array_equal(bitsback.decode(data, den), image)
    odd = smooth_image(7, 34, 3, seed=4)  # 2 rows of 9 patches, the last column 2 wide, the last row 3 high
    odd_result = bitsback.encode(odd, den, steps=STEPS, patch_size=4)
    assert [g.patches for g in odd_result.stats.groups] == [1, 1, 1, 1, 2, 3, 4, 5]  # runs to the row's end
    assert [g.dims for g in odd_result.stats.groups][-2:] == [3 * 16 * 3, 3 * 18 * 3]
    np.testing.assert_array_equal(bitsback.decode(odd_result.data, den), odd)
    tall = smooth_image(30, 8, 3, seed=5)  # 8 rows of 2 patches, the last row 2 high
    tall_result = bitsback.encode(tall, den, steps=STEPS, patch_size=4, context=3)
    assert [g.patches for g in tall_result.stats.groups] == [1, 1, 1, 1, 2, 2, 4, 4]  # then whole rows
    assert tall_result.stats.groups[-1].dims == 6 * 8 * 3
    np.testing.assert_array_equal(bitsback.decode(tall_result.data, den), tall)


@pytest.mark.parametrize("height, width, size", [(8, 32, 4), (7, 34, 4), (30, 8, 4), (13, 13, 3), (1, 5, 2)])
def test_groups_are_rectangles_whose_windows_hold_only_later_patches(height, width, size):
    """Every group the grid allows (whatever the stack made of the plan) is a rectangle of whole
    patches, and its window adds only pixels of patches coded after it: what the decoder has."""
    grid = bitsback.Grid(height, width, size)
    index = np.zeros((height, width), np.int64)
    for first in range(len(grid)):
        index[grid.rect(first, 1)] = first
    for first in range(len(grid)):
        for count in range(1, len(grid) - first + 1):
            if not grid.fits(first, count):
                continue
            rect = np.zeros((height, width), bool)
            rect[grid.rect(first, count)] = True
            assert sorted(np.unique(index[rect])) == list(range(first, first + count))
            window = np.zeros((height, width), bool)
            window[grid.window(first, count, 5)] = True
            assert grid.window(first, count, 0) == grid.rect(first, count) and np.all(window[rect])
            assert np.all(index[window & ~rect] >= first + count)
    assert grid.largest_group(0, 128) == 1 and not grid.fits(0, 0) and not grid.fits(len(grid) - 1, 2)


def test_context_is_what_the_decoder_has_diffused_with_pinned_noise(den):
    """A window's context is alpha_i x + sigma_i eps with eps the inverse normal CDF of pinned PCG64
    words, the group's corner its latents; streams with and without context both decode."""
    image = smooth_image(8, 12, 3, seed=6)
    coding = bitsback.Coding.of(den, STEPS, 4, seed=3, context=4)
    grid = bitsback.Grid(8, 12, 4)
    # patch 1: 4 more pixels right and below
    window = windows.window(coding.seed, image[grid.window(1, 1, coding.context)], 1)
    assert window.x.shape == (1, 8, 8, 3)
    words = np.random.PCG64([3, 1, bitsback.MAX_STEPS + 1]).random_raw(8 * 8 * 3)
    expected = np.sqrt(2) * special.erfinv(2 * ((words >> np.uint64(11)) + 0.5) * 2.0**-53 - 1)
    np.testing.assert_allclose(window.noise.reshape(-1), expected, rtol=1e-9, atol=1e-12)
    chain = coding.chain
    z = np.arange(4 * 4 * 3).reshape(1, 4, 4, 3)
    latents = np.asarray(window.latents(chain, 2, z))
    np.testing.assert_array_equal(latents[:, :4, :4], np.float32(z * chain.widths[2]))
    x = np.asarray(vdm.pixels_to_x(image[:8, 4:12]), np.float64)[None]
    np.testing.assert_allclose(latents[:, 4:], chain.alphas[2] * x[:, 4:] + chain.sigmas[2] * window.noise[:, 4:], rtol=1e-6)
    streams = [bitsback.encode(image, den, steps=STEPS, patch_size=4, context=c).data for c in (0, 4)]
    assert streams[0] != streams[1]
    for data, c in zip(streams, (0, 4)):
        assert bitstreams.read(data).header.params["context"] == c
        np.testing.assert_array_equal(bitsback.decode(data, den), image)


def test_a_group_the_stack_cannot_serve_is_halved(den, monkeypatch):
    """Asked to try the rest of the image from the start, the encoder halves each group until the
    stack can serve it; the decoder reads the sizes from the stream, not from the encoder's rule."""
    image = smooth_image(16, 16, 3, seed=3)  # 4 rows of 4 patches
    monkeypatch.setattr(
        bitsback.Grid, "largest_group",
        lambda self, first, max_group: self.cols - first % self.cols if first % self.cols else len(self) - first,
    )
    result = bitsback.encode(image, den, steps=STEPS, patch_size=4)
    sizes = [g.patches for g in result.stats.groups]
    assert sizes[0] == 1 and not result.stats.groups[0].chained
    assert sum(sizes) == 16 and any(1 < s < 12 for s in sizes)
    monkeypatch.undo()
    np.testing.assert_array_equal(bitsback.decode(result.data, den), image)


# --- bits accounting -----------------------------------------------------------------------------


def test_coded_size_is_the_ideal_cost_within_a_small_margin(stream):
    """The chunk holds the guard word plus pushed-minus-popped information, up to the rANS head
    and 24-bit quantisation of each coded symbol."""
    image, result = stream
    chunk_bits = 8 * len(bitstreams.read(result.data).chunks[0])
    overhead = chunk_bits - result.stats.ideal_bits
    assert -32 <= overhead <= 32 + 64 + 0.05 * image.size * (STEPS + 2), overhead


def test_seed_and_steady_state_are_accounted_separately(stream):
    image, result = stream
    stats = result.stats
    assert stats.patches == 4 and stats.dims == image.size
    assert not stats.groups[0].chained  # an empty stack cannot serve the first patch's pops
    direct = [g for g in stats.groups if not g.chained]
    chained = [g for g in stats.groups if g.chained]
    assert chained and stats.seed_patches == len(direct) == sum(g.patches for g in direct)
    assert stats.seed_bits == pytest.approx(sum(p.bits for p in direct))
    assert stats.seed_dims == sum(p.dims for p in direct)
    assert stats.steady_bpd == pytest.approx(sum(p.bits for p in chained) / sum(p.dims for p in chained))
    assert stats.ideal_bits == pytest.approx(stats.seed_bits + stats.steady_bpd * (stats.dims - stats.seed_dims))
    assert stats.seed_cost_bits == pytest.approx(stats.seed_bits - stats.steady_bpd * stats.seed_dims)
    facts = bitsback.describe(result)
    assert facts["bits"] == 8 * len(result.data) and facts["bpd"] == pytest.approx(facts["bits"] / image.size)


def test_steady_rate_is_the_t_step_elbo(den):
    """Chained patches cost the negative ELBO of the same T-step chain (VDM eq. 11 with the
    discrete-time diffusion loss), up to sampling noise and the discretisation of the latents."""
    steps, image = 20, smooth_image(8, 32, 3, seed=4)
    naive = FormulaDenoiser(den.config, den.params, "naive", "12" * 32, formula=naive_eps)
    words = np.random.default_rng(0).integers(1, 1 << 32, size=8000, dtype=np.uint64).astype(np.uint32)
    seeded = entropy.Stack(words, seal=True)  # initial bits, so that every patch chains
    initial_bits = seeded.num_bits()
    stack, stats = bitsback.push_image(seeded, image, bitsback.Coding.of(naive, steps, 4, 0))
    assert stats.seed_patches == 0 and [g.patches for g in stats.groups] == [1, 1, 1, 1, 2, 2, 4, 4]
    # the stack grew by what was pushed minus what was popped (the seed's bits that pops consumed)
    assert stack.num_bits() - initial_bits == pytest.approx(stats.ideal_bits, abs=64 + 0.01 * stats.ideal_bits)

    gamma_fn, _ = vdm.bound_fns(den.config, den.params)
    copies = 8  # each patch at the middle of every step, ``copies`` times: a stratified estimate
    grid = bitsback.Grid(8, 32, 4)
    patches = np.stack([image[grid.rect(first, 1)] for first in range(len(grid))])
    batch = jnp.asarray(np.repeat(patches, steps * copies, axis=0))
    times = jnp.tile(jnp.repeat((jnp.arange(steps) + 0.5) / steps, copies), len(patches))
    terms = vdm.elbo_terms(batch, jax.random.key(1), gamma_fn, naive_eps, steps=steps, clip=True, times=times)
    elbo = float(jnp.mean(terms["bpd"]))
    assert 5 < elbo < 50
    assert stats.steady_bpd == pytest.approx(elbo, rel=0.03)


# --- dithered pops -------------------------------------------------------------------------------


def test_dithered_pops_sample_q_right_after_a_mismatched_push():
    """Pushing N(0, 1) samples under a model 2 stds off leaves the stack's top bits tied to that
    model's error; a plain pop inherits it, a dithered pop samples q."""
    rng = np.random.default_rng(0)
    n, width = 4000, 0.25
    values = np.round(rng.normal(size=n) / width).astype(np.int64)
    zeros = np.zeros(n)
    samples = {}
    for kind in ("plain", "dithered"):
        stack = entropy.Stack(rng.integers(1, 1 << 32, size=64, dtype=np.uint64).astype(np.uint32), seal=True)
        stack.push(values, entropy.gaussian(zeros + 2.0, np.ones(n), width, 64))
        if kind == "plain":
            q = entropy.gaussian(zeros, np.ones(n), width, 32)
        else:
            q = bitsback.dithered(zeros, width, bitsback.pop_table(1.0 / width, 32), rng.uniform(size=n))
        samples[kind] = stack.pop(q) * width
    assert samples["plain"].mean() < -0.15  # popped noise eps - 2 for the symbols most coupled
    assert abs(samples["dithered"].mean()) < 0.06 and samples["dithered"].std() == pytest.approx(1.0, abs=0.05)


def test_dither_values_are_pinned(den):
    """The shared uniforms are part of the format: raw PCG64 words of (seed, patch, i), top 53 bits."""
    coding = bitsback.Coding.of(den, STEPS, 4, seed=7)
    u = dither.uniforms(coding.seed, 3, 2, 4)
    words = np.random.PCG64([7, 3, 2]).random_raw(4)
    np.testing.assert_array_equal(u, (words >> np.uint64(11)) / 2.0**53)
    assert np.all((0 <= u) & (u < 1))


def test_means_on_half_bins_use_the_end_rows_of_the_table():
    """Offsets of exactly -1/2 and +1/2 bin round to the table's first and last rows; both decode."""
    table = bitsback.pop_table(2.0, 12)
    means = np.array([0.5, -0.5, 1.5, 2.0]) * 0.1  # in values, bins of 0.1
    dist = bitsback.dithered(means, 0.1, table, np.array([0.1, 0.5, 0.9, 0.3]))
    stack = entropy.Stack()
    symbols = np.array([0, -1, 3, 2])
    stack.push(symbols, dist)
    np.testing.assert_array_equal(entropy.Stack.from_bytes(stack.to_bytes()).pop(dist), symbols)
    assert table.masses.shape == (bitsback.OFFSET_STEPS + 1, 25)


def test_a_group_that_does_not_fit_is_refused(den):
    """A chained group's size comes from the stream: one that reaches before the first patch, or
    that is no rectangle, is an error, not a wrong image."""
    coding = bitsback.Coding.of(den, STEPS, 4, 0, max_group=8)
    for shape, size in [((8, 8, 3), 8), ((8, 12, 3), 4)]:  # 4 patches < 8; patches 2-5 span two rows
        stack = entropy.Stack()
        groups.push_group_size(stack, coding, size)
        stack.push(np.array([1]), groups.FLAG)
        with pytest.raises(entropy.EntropyCodingError, match="does not fit"):
            bitsback.pop_image(stack, shape, coding)


def test_dithered_round_trip_and_support():
    rng = np.random.default_rng(1)
    means = rng.normal(size=50) * 3
    dist = bitsback.dithered(means, 0.2, bitsback.pop_table(0.7 / 0.2, 20), rng.uniform(size=50))
    stack = entropy.Stack()
    symbols = np.round(means / 0.2).astype(np.int64) + rng.integers(-20, 21, size=50)
    stack.push(symbols, dist)
    np.testing.assert_array_equal(entropy.Stack.from_bytes(stack.to_bytes()).pop(dist), symbols)
    with pytest.raises(entropy.EntropyCodingError, match="outside"):
        stack.push(symbols + 100, dist)


# --- errors --------------------------------------------------------------------------------------


def test_truncated_stream_is_a_clear_error(den, stream):
    _, result = stream
    with pytest.raises(bitstreams.TruncatedStreamError):
        bitsback.decode(result.data[:-5], den)


def test_flipped_byte_fails_the_chunk_checksum(den, stream):
    _, result = stream
    data = bytearray(result.data)
    data[-3] ^= 0x10
    with pytest.raises(bitstreams.CorruptStreamError, match="checksum"):
        bitsback.decode(bytes(data), den)


@pytest.mark.parametrize("word", [0, -1])
def test_corrupt_rans_data_under_valid_checksums_is_a_clear_error(den, stream, word):
    """A chunk altered and re-framed (fresh CRCs) must not decode to a wrong image silently; the
    error names the other possible cause, a float model's probabilities computed on another
    kind of setup (docs/portability.md)."""
    _, result = stream
    container = bitstreams.read(result.data)
    words = np.frombuffer(container.chunks[0], dtype="<u4").copy()
    words[word] ^= 0x00F0F000
    data = bitstreams.write(container.header, [words.astype("<u4").tobytes()])
    with pytest.raises(bitstreams.CorruptStreamError, match="device"):
        bitsback.decode(data, den)


def test_another_model_is_refused(den, stream):
    _, result = stream
    other = Denoiser(den.config, den.params, "tiny-test", "ef" * 32)
    with pytest.raises(bitstreams.StreamMismatchError, match="tiny-test"):
        bitsback.decode(result.data, other)


def test_a_lossy_stream_is_refused(den):
    header = bitstreams.Header(Mode.LOSSY, 2, 2, 3, 0, den.name, den.hash8, {"steps": 1})
    with pytest.raises(bitstreams.StreamMismatchError, match="lossy"):
        bitsback.decode(bitstreams.write(header, [b"\0" * 8]), den)


GOOD = {"steps": 4, "image_crc32": 0, "patch_size": 4, "seed_patches": 1, "max_group": 2, "context": 4, "exact": 0}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"seed_patches": None}, "lacks seed_patches"),
        ({"max_group": None}, "lacks max_group"),
        ({"context": None}, "lacks context"),
        ({"exact": None}, "lacks exact"),
        ({"steps": 0}, "steps"),
        ({"patch_size": 0}, "patch size"),
        ({"seed_patches": 5}, "seed patches"),
        ({"max_group": 0}, "largest group"),
        ({"max_group": 4097}, "largest group"),
        ({"context": 257}, "context margin"),
    ],
)
def test_bad_coding_parameters_are_refused(den, stream, changes, message):
    _, result = stream
    params = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    container = bitstreams.read(result.data)
    header = bitstreams.Header(Mode.LOSSLESS_VDM, 8, 8, 3, 5, den.name, den.hash8, params)
    with pytest.raises(bitstreams.CorruptStreamError, match=message):
        bitsback.decode(bitstreams.write(header, container.chunks), den)


def test_a_wrong_image_checksum_is_reported(den, stream):
    _, result = stream
    container = bitstreams.read(result.data)
    params = dict(container.header.params, image_crc32=container.header.params["image_crc32"] ^ 1)
    header = bitstreams.Header(**{**container.header.__dict__, "params": params})
    with pytest.raises(bitstreams.CorruptStreamError, match="checksum"):
        bitsback.decode(bitstreams.write(header, container.chunks), den)


@pytest.mark.parametrize("image", [np.zeros((2, 2, 2), np.uint8), np.zeros((2, 2, 3), np.float32)])
def test_invalid_images_are_refused(den, image):
    with pytest.raises(ValueError, match="uint8"):
        bitsback.encode(image, den, steps=STEPS)


# --- golden stream -------------------------------------------------------------------------------


def test_golden_stream(white):
    """The stream of a fixed image under the network-free white model, pinned: any change to the
    chain, its grids, the dithers, the seed coder, the groups or the framing shows here (bump the
    version). Versions 5 to 7 changed the header only (field exact = 0, the version byte): the
    chunk is version 4's, and the version-6 stream is pinned byte for byte. The window's noise is pinned by ``test_context_is_what_the_decoder_has...``."""
    image = smooth_image(9, 6, 3, seed=9)
    result = bitsback.encode(image, white, steps=3, patch_size=3, context=2, seed=1)
    data = result.data
    # both coders, runs within a row and a whole row are pinned
    assert [(g.patches, g.chained) for g in result.stats.groups] == [(1, False), (1, True), (1, True), (1, True), (2, True)]
    container = bitstreams.read(data)
    assert container.header.version == bitstreams.VERSION == 7  # 7 changed exact streams only
    v6 = bitstreams.write(dataclasses.replace(container.header, version=6), container.chunks)
    assert hashlib.sha256(v6).hexdigest() == GOLDEN_SHA256  # the version-6 stream, byte for byte
    np.testing.assert_array_equal(bitsback.decode(data, white), image)
    np.testing.assert_array_equal(bitsback.decode(v6, white), image)
    # the same chunk under a version-4 header (no "exact" field: a float stream) decodes alike
    params = {k: v for k, v in container.header.params.items() if k != "exact"}
    old = bitstreams.write(dataclasses.replace(container.header, version=4, params=params), container.chunks)
    np.testing.assert_array_equal(bitsback.decode(old, white), image)


GOLDEN_SHA256 = "7332d147d13f2432b8aab6dce0ee6aaa1f83375756b80aa67d5dabff6ae4b4fe"
