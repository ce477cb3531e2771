"""Reverse channel coding on synthetic Gaussians: exact decoding, the coded distribution, the rate."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffc.codec import entropy, rcc


def roundtrip(seed: int, step: int, u: np.ndarray, config: rcc.RccConfig):
    code = rcc.select(seed, step, u, config)
    stack = entropy.Stack()
    rcc.push(stack, code, config)
    bits = stack.num_bits()
    received = rcc.pop(entropy.Stack.from_bytes(stack.to_bytes()), config, u.size)
    return code, received, bits


def test_receiver_regenerates_the_senders_sample_exactly():
    config = rcc.RccConfig(chunk_bits=4, margin=2)
    u = np.random.default_rng(1).normal(size=301) * 0.4
    code, received, _ = roundtrip(11, 5, u, config)
    assert received.ladder_index == code.ladder_index
    np.testing.assert_array_equal(received.indices, code.indices)
    sent = rcc.regenerate(11, 5, u.size, code)
    np.testing.assert_array_equal(rcc.regenerate(11, 5, u.size, received), sent)
    assert sent.shape == (301,) and np.isfinite(sent).all()


@settings(max_examples=60, deadline=None, derandomize=True)
@given(dims=st.integers(1, 5000), ladder_index=st.integers(0, len(rcc.LADDER) - 1))
def test_chunks_cover_every_dimension_once_and_none_is_empty(dims, ladder_index):
    n_chunks, width = rcc.chunk_layout(ladder_index, dims)
    table = rcc.chunk_dims(3, 7, dims, n_chunks, width)
    sizes = (table >= 0).sum(axis=1)
    assert sizes.min() >= 1 and sizes.max() - sizes.min() <= 1
    assert sizes.max() <= min(rcc.LADDER[ladder_index], dims)
    np.testing.assert_array_equal(np.sort(table[table >= 0]), np.arange(dims))


def test_ladder_choice_aims_at_the_nominal_chunk_size():
    dims, chunk_bits = 10_000, 8
    for kl in (100.0, 1000.0, 20_000.0):
        n_chunks, _ = rcc.chunk_layout(rcc.choose_ladder_index(kl, dims, chunk_bits), dims)
        assert kl / n_chunks == pytest.approx(chunk_bits, rel=0.2)
    assert rcc.chunk_layout(rcc.choose_ladder_index(0.0, dims, chunk_bits), dims)[0] <= 2


def test_coded_samples_follow_q_and_cost_about_their_kl():
    """With small chunks and a wide margin, truncated PFR is close to exact: the coded noise has
    mean u (bias below 0.1 sd along u, as a 4-bit chunk with 64x the candidates gives) and unit
    variance across it, and the rate stays within the Li-El Gamal overhead of the KL."""
    config = rcc.RccConfig(chunk_bits=4, margin=6)
    rng = np.random.default_rng(0)
    dims, trials = 48, 120
    u = rng.normal(size=dims) * 0.35
    direction = u / np.linalg.norm(u)
    along, across, bits, chunks = [], [], 0, 0
    for step in range(trials):
        code, received, nbits = roundtrip(5, step, u, config)
        eps = rcc.regenerate(5, step, dims, received)
        along.append(eps @ direction)
        across.append(eps - (eps @ direction) * direction)
        bits += nbits
        chunks += code.indices.size
    along = np.array(along)
    kl = rcc.kl_bits(u)
    # along u: mean |u| (q's mean), sd 1; the standard error over 120 trials is 0.09
    assert abs(along.mean() - np.linalg.norm(u)) < 0.1 + 3 / math.sqrt(trials)
    assert 0.7 < along.std() < 1.3
    # across u: N(0, I) in the other 47 dimensions
    assert np.var(np.array(across)) * dims / (dims - 1) == pytest.approx(1.0, abs=0.1)
    # rate: per chunk KL + log2(KL + 1) + 2 bits, plus per trial the ladder entry, the stack's
    # 25-bit guard and up to a word of rounding
    per_chunk_kl = kl * trials / chunks
    bound = chunks * (per_chunk_kl + math.log2(per_chunk_kl + 1) + 2) + trials * (7 + 25 + 32)
    assert kl * trials * 0.9 < bits < bound


def test_the_senders_choice_is_the_pfr_argmin_over_the_candidates_the_receiver_regenerates():
    """The encoder scores candidates from Philox lanes in its own layout; the chosen index must
    minimise log T_i - <eps_i, u> over exactly the candidates ``regenerate`` rebuilds."""
    from diffc.codec import randomness

    config = rcc.RccConfig(chunk_bits=3, margin=2)
    u = np.random.default_rng(4).normal(size=61) * 0.5
    seed, step = 21, 6
    code = rcc.select(seed, step, u, config)
    n_chunks, width = rcc.chunk_layout(code.ladder_index, u.size)
    assert n_chunks > 1
    table = rcc.chunk_dims(seed, step, u.size, n_chunks, width)
    n = config.num_candidates
    for c in range(n_chunks):
        eps = randomness.PHILOX.candidates(seed, step, np.full(n, c), np.arange(n), width)  # (N, width)
        u_chunk = np.where(table[c] >= 0, u[np.maximum(table[c], 0)], 0.0)
        uniform = np.asarray(randomness.uniforms(seed, randomness.Domain.ARRIVALS, step, c, 0, n), np.float64)
        score = np.log(np.cumsum(-np.log(uniform))) - eps.astype(np.float64) @ u_chunk
        assert score[code.indices[c]] <= score.min() + 1e-4
