"""The format's shared randomness (``codec/randomness.py``, docs/bitstream.md "Shared randomness"):
Philox-4x32-10 against the Random123 known answers and an independent numpy implementation, the
counter layout, the integer normal transform against its table's formula and N(0, 1), the
permutation, the pinned values a decoder must reproduce, and the choice of generator by version."""

import hashlib

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from diffc import bitstreams
from diffc.codec import randomness

MASK = (1 << 32) - 1


# --- an independent Philox-4x32-10: numpy uint64 products, the key bumped before rounds 2 .. 10 --


def philox_numpy(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """(..., 4) uint32 counters and (..., 2) uint32 keys to (..., 4) uint32 outputs."""
    c = [counter[..., i].astype(np.uint64) for i in range(4)]
    k0, k1 = (key[..., i].astype(np.uint64) for i in range(2))
    m32 = np.uint64(MASK)
    for r in range(10):
        if r:
            k0, k1 = (k0 + np.uint64(0x9E3779B9)) & m32, (k1 + np.uint64(0xBB67AE85)) & m32
        p0, p1 = np.uint64(0xD2511F53) * c[0], np.uint64(0xCD9E8D57) * c[2]  # < 2^64: exact
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & m32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & m32]
    return np.stack(c, axis=-1).astype(np.uint32)


def words_numpy(seed: int, domain: int, step: int, chunk: int, index: int, count: int) -> np.ndarray:
    """The layout of docs/bitstream.md: word d is lane d mod 4 of block d div 4, counter
    (d div 4, index, chunk, domain * 2^16 + step), key (seed, 0)."""
    blocks = -(-count // 4)
    counter = np.zeros((blocks, 4), np.uint64)
    counter[:, 0] = np.arange(blocks)
    counter[:, 1], counter[:, 2], counter[:, 3] = index, chunk, (domain << 16) | step
    key = np.broadcast_to(np.array([seed, 0], np.uint64), (blocks, 2))
    return philox_numpy(counter, key).reshape(-1)[:count]


def normal_numpy(w: np.ndarray) -> np.ndarray:
    """The normal transform of docs/bitstream.md in int64, from the bit length by Python's rule."""
    w = w.astype(np.int64)
    sign, v = w >> 31, w & 0x7FFFFFFF
    bits = np.array([int(x).bit_length() for x in v])
    s = np.maximum(bits - 6, 0)
    j = 32 * s + (v >> s)
    f = v - ((v >> s) << s)
    t = np.maximum(s - 16, 0)
    q = randomness.QUANTILES.astype(np.int64)
    magnitude = q[j] - (((q[j] - q[j + 1]) * (f >> t)) >> (s - t))
    return np.where(sign == 1, -magnitude, magnitude)


KNOWN_ANSWERS = [  # Random123 kat_vectors, "philox4x32 10": counter, key, output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((MASK,) * 4, (MASK,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("counter, key, expected", KNOWN_ANSWERS)
def test_philox_gives_the_random123_known_answers(counter, key, expected):
    out = randomness.philox4x32(tuple(jnp.uint32(c) for c in counter), tuple(jnp.uint32(k) for k in key))
    assert tuple(int(x) for x in out) == expected
    reference = philox_numpy(np.array(counter, np.uint64), np.array(key, np.uint64))
    assert tuple(int(x) for x in reference) == expected


def test_philox_agrees_with_numpy_on_random_counters_and_keys():
    rng = np.random.default_rng(0)
    counter = rng.integers(0, 1 << 32, size=(5000, 4), dtype=np.uint64)
    key = rng.integers(0, 1 << 32, size=(5000, 2), dtype=np.uint64)
    out = randomness.philox4x32(tuple(jnp.asarray(counter[:, i].astype(np.uint32)) for i in range(4)),
                                (jnp.asarray(key[:, 0].astype(np.uint32)), jnp.asarray(key[:, 1].astype(np.uint32))))
    np.testing.assert_array_equal(np.stack([np.asarray(o) for o in out], -1), philox_numpy(counter, key))


@pytest.mark.parametrize(
    "seed, domain, step, chunk, index, count",
    [(0, 0, 0, 0, 0, 1), (7, 0, 3, 11, 1000, 9), (MASK, 1, 65535, MASK, MASK, 6), (123, 2, 40, 0, 0, 4099)],
)
def test_words_follow_the_counter_layout(seed, domain, step, chunk, index, count):
    got = np.asarray(randomness.words(np.uint32(seed), domain, np.uint32(step), chunk, index, count))
    np.testing.assert_array_equal(got, words_numpy(seed, domain, step, chunk, index, count))


def test_a_block_of_candidates_is_the_candidates_one_by_one():
    """The encoder's (chunks, candidates, width) block and the decoder's single candidate agree."""
    seed, step, width = 9, 4, 13
    chunks, indices = np.array([0, 5, 2]), np.arange(6)
    block = np.asarray(randomness.words(seed, 0, step, chunks[:, None], indices[None, :], width))  # (3, 6, 13)
    for a, c in enumerate(chunks):
        for i in indices:
            np.testing.assert_array_equal(block[a, i], words_numpy(seed, 0, step, int(c), int(i), width))
    lanes = randomness.lanes(seed, 0, step, chunks[:, None], indices[None, :], 4)
    np.testing.assert_array_equal(np.stack([np.asarray(x) for x in lanes], -1).reshape(3, 6, 16)[..., :width], block)


# --- the normal transform ------------------------------------------------------------------------


def test_the_quantile_table_is_its_formula():
    """QUANTILES[j] = round(2^16 Phi^-1(1 - (x_j + 1/2) / 2^32)); docs/bitstream.md pins the hash."""
    x = randomness.knots()
    assert len(x) == 865 and x[0] == 0 and x[-1] == 1 << 31 and np.all(np.diff(x) > 0)
    assert list(x[62:67]) == [62, 63, 64, 66, 68] and x[-2] == (63 << 25)
    exact = -special.ndtri((x + 0.5) / 2.0**32) * 2**16
    assert np.abs(exact - np.floor(exact) - 0.5).min() > 1e-3  # no value near a rounding tie
    np.testing.assert_array_equal(randomness.QUANTILES, np.round(exact).astype(np.int32))
    digest = hashlib.sha256(randomness.QUANTILES.astype("<i4").tobytes()).hexdigest()
    assert digest == "7e5aa3fc45837c6de904482399041fdaad408df6ecb4b989a2c2ee86c7552b95"


def test_normal_transform_is_the_specified_integer_arithmetic():
    rng = np.random.default_rng(1)
    edges = [0, 1, 63, 64, 65, 127, 128, (1 << 22) + 5, (1 << 30) - 1, 1 << 30, 0x7FFFFFFF]
    w = np.concatenate([np.array(edges + [e | 1 << 31 for e in edges], np.uint64),
                        rng.integers(0, 1 << 32, 200_000, dtype=np.uint64)]).astype(np.uint32)
    got = np.asarray(randomness.normal_fixed(jnp.asarray(w)))
    np.testing.assert_array_equal(got, normal_numpy(w))
    floats = np.asarray(randomness.normals_from_words(jnp.asarray(w)))
    np.testing.assert_array_equal(floats, got.astype(np.float64) / 2**16)  # the conversion is exact
    assert got[0] == 415364 and got[len(edges)] == -415364  # the largest |z|: 6.338
    assert got[len(edges) - 1] == 1  # tail probability 1/2 - 2^-33: 0, floored up to 2^-16


def test_normal_transform_follows_the_quantile_function_closely():
    """On a stratified grid of words the transform stays within 6.5e-5 of Phi^-1."""
    v = np.arange(1 << 20, dtype=np.uint64) * 2048 + 1023
    z = np.asarray(randomness.normals_from_words(jnp.asarray(v.astype(np.uint32))), np.float64)
    exact = -special.ndtri((v + 0.5) / 2.0**32)
    assert np.abs(z - exact).max() < 6.5e-5


def test_a_million_normals_look_standard():
    z = np.asarray(randomness.normals(3, randomness.Domain.CANDIDATES, 1, 0, 0, 1_000_000), np.float64)
    assert abs(z.mean()) < 5e-3  # 5 standard errors
    assert abs(z.var() - 1) < 7e-3
    assert stats.kstest(z, "norm").statistic < 2e-3  # p about 1e-3 under N(0, 1)
    assert np.all(np.abs(z) <= 6.34)


def test_uniforms_are_the_cell_midpoints():
    w = jnp.asarray(np.array([0, 511, 512, MASK], np.uint32))
    u = np.asarray(randomness.uniforms_from_words(w), np.float64)
    np.testing.assert_array_equal(u, [2.0**-24, 2.0**-24, 3 * 2.0**-24, 1 - 2.0**-24])


# --- pinned values: what a decoder of format version 4 must reproduce ---------------------------


def test_candidate_values_are_pinned():
    """Candidate 1000 of chunk 3 of step 2, seed 5, 6 wide: words and normals (2^-16 units)."""
    w = np.asarray(randomness.words(5, randomness.Domain.CANDIDATES, 2, 3, 1000, 6))
    assert [f"{x:08x}" for x in w] == PINNED_WORDS
    eps = randomness.PHILOX.candidates(5, 2, np.array([3]), np.array([1000]), 6)[0]
    assert [int(x) for x in eps * 2**16] == PINNED_NORMALS


PINNED_WORDS = ["7a087083", "3b21bbf0", "fd1e542b", "e5224b44", "dd75c0c1", "91f56090"]
PINNED_NORMALS = [3831, 48210, -1849, -17445, -22606, -96645]


def test_permutation_is_the_stable_sort_of_its_words():
    n = 10_001
    perm = randomness.permutation(12, 3, n)
    keys = words_numpy(12, randomness.Domain.PERMUTATION, 3, 0, 0, n)
    np.testing.assert_array_equal(perm, np.lexsort((np.arange(n), keys)))
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))
    assert list(randomness.permutation(3, 1, 10)) == [4, 2, 3, 6, 8, 9, 1, 5, 0, 7]


def test_noise_is_the_words_in_raster_order():
    noise = np.asarray(randomness.noise(8, randomness.Domain.ANCESTRAL, 2, (1, 2, 3, 3)))
    expected = normal_numpy(words_numpy(8, randomness.Domain.ANCESTRAL, 2, 0, 0, 18)) / 2**16
    np.testing.assert_array_equal(noise.reshape(-1), expected)


def test_counters_that_would_overflow_are_refused():
    with pytest.raises(ValueError, match="step 65536"):
        randomness.check_limits(step=1 << 16)
    with pytest.raises(ValueError, match="2\\^32"):
        randomness.check_limits(chunks=(1 << 32) + 1)
    with pytest.raises(ValueError, match="2\\^34"):
        randomness.check_limits(words=(1 << 34) + 1)
    randomness.check_limits(step=(1 << 16) - 1, chunks=1 << 32, candidates=1 << 32, words=1 << 34)


# --- the generator by format version -------------------------------------------------------------


def test_the_generator_follows_the_format_version():
    assert randomness.for_version(bitstreams.VERSION) is randomness.PHILOX
    assert randomness.for_version(5) is randomness.PHILOX
    assert randomness.for_version(3) is randomness.LEGACY
    assert randomness.for_version(4) is randomness.PHILOX
    assert bitstreams.OLDEST_VERSION == 3 and randomness.PHILOX_SINCE == 4 and bitstreams.VERSION == 7


def test_the_legacy_generator_is_jax_random_as_version_3_used_it():
    import jax

    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(5), 0), 2)
    one = jax.random.normal(jax.random.fold_in(jax.random.fold_in(key, 3), 7), (4,))
    got = randomness.LEGACY.candidates(5, 2, np.array([3]), np.array([7]), 4)
    np.testing.assert_array_equal(got[0], np.asarray(one))
    perm = jax.random.permutation(jax.random.fold_in(jax.random.fold_in(jax.random.key(5), 1), 2), 9)
    np.testing.assert_array_equal(randomness.LEGACY.permutation(5, 2, 9), np.asarray(perm))


def test_a_lossless_stream_decodes_the_same_in_either_version():
    """Bits-back draws none of these numbers (its dithers come from numpy's PCG64), so a stream
    relabelled as version 3 decodes to the same image (ARDM's order is PCG64's too)."""
    import dataclasses

    from diffc.codec import bitsback
    from diffc.codec.denoiser import Denoiser
    from diffc.models import configs, vdm
    from helpers import smooth_image

    cfg = configs.get_config("tiny")
    den = Denoiser(cfg, vdm.init_params(cfg, 0), "tiny-test", "ab" * 32)
    image = smooth_image(4, 4, 3, seed=2)
    data = bitsback.encode(image, den, steps=2, patch_size=4, seed=1).data
    container = bitstreams.read(data)
    assert container.header.version == bitstreams.VERSION
    old = bitstreams.write(dataclasses.replace(container.header, version=3), container.chunks)
    np.testing.assert_array_equal(bitsback.decode(old, den), image)
    np.testing.assert_array_equal(bitsback.decode(data, den), image)
