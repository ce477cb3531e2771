"""Reverse channel coding (RCC) of Gaussian samples with shared randomness (DESIGN section 4).

In a DiffC step the sender holds q = N(mu_q, s^2 I) and the receiver p = N(mu_p, s^2 I). With
u = (mu_q - mu_p) / s, the sender communicates eps such that z = mu_p + s * eps is (nearly) a sample
of q, at a cost of about KL(q || p) = |u|^2 / (2 ln 2) bits plus a small overhead per chunk.

- The step's dimensions are split into chunks of about ``chunk_bits`` bits of KL each. The plan is
  decodable: the sender picks an entry of a fixed ladder of chunk sizes (dimensions per chunk) from
  the step's KL and sends that entry; dimensions go to chunks by a permutation of the shared seed,
  all chunks of equal size (up to one), none empty.
- Each chunk has ``N = 2 ** (chunk_bits + margin)`` candidates eps_i ~ N(0, I) from the format's
  counter-based generator (``randomness``: Philox-4x32-10, normals by an integer inverse CDF) at
  counter (seed, step, chunk, candidate), so the receiver regenerates only the chosen one. Streams
  of format version 3 and older drew them from ``jax.random``; the decoder passes the generator
  of the stream's version (``randomness.for_version``). The sender picks by the Poisson
  functional representation (Li and El Gamal 2018): with arrival times T_i (cumulative sums of
  Exp(1), the sender's private randomness),
  n = argmin_i log T_i - log q(z_i)/p(z_i) = argmin_i log T_i - <eps_i, u> (up to a constant).
- The index n is coded with a truncated Zipf model whose exponent depends on the nominal chunk
  size only (the receiver cannot know a chunk's realised KL); cost about KL + log2(KL + 1) + O(1).

All chunks of a step are scored in blocks of one jitted JAX computation (GPU when present).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from diffc.codec import entropy, randomness

# Ladder of dimensions per chunk: round(2 ** (i / 4)), deduplicated; entry i is what is sent.
LADDER: tuple[int, ...] = tuple(sorted({round(2 ** (i / 4)) for i in range(0, 4 * 26)}))
_BLOCK_FLOATS = 1 << 23  # most candidate normals scored per jitted call (32 MiB of float32)
_DECODE_BLOCK = 1024  # most chunks regenerated per jitted call on the receiver
_SCORE_WORDS = 1 << 16  # candidate words scored per iteration of the sender's loop over chunks


@dataclass(frozen=True)
class RccConfig:
    """Chunk size (nominal KL in bits) and candidate margin: 2 ** (chunk_bits + margin) candidates."""

    chunk_bits: int = 6  # measured on CPU (docs/lossy.md): 2^7 candidates code within 2% of 2^12
    margin: int = 1

    def __post_init__(self) -> None:
        if not 1 <= self.chunk_bits <= 20 or not 0 <= self.margin <= 8:
            raise ValueError(f"chunk_bits must be in [1, 20] and margin in [0, 8], got {self}")
        if self.chunk_bits + self.margin > 22:
            raise ValueError("chunk_bits + margin must be at most 22 (4M candidates per chunk)")

    @property
    def num_candidates(self) -> int:
        return 1 << (self.chunk_bits + self.margin)


@dataclass(frozen=True)
class StepCode:
    """What one step sends: the ladder entry of its chunk plan and one index per chunk."""

    ladder_index: int
    indices: np.ndarray  # (n_chunks,) int64


def kl_bits(u: np.ndarray) -> float:
    """KL(q || p) in bits for standardised mean difference ``u``: |u|^2 / (2 ln 2)."""
    u = np.asarray(u, dtype=np.float64)
    return float(np.dot(u.ravel(), u.ravel()) / (2 * math.log(2)))


def choose_ladder_index(kl: float, dims: int, chunk_bits: int) -> int:
    """The ladder entry whose chunks hold closest to ``chunk_bits`` bits of KL (log scale)."""
    target = dims * chunk_bits / kl if kl > 0 else float(dims)
    target = min(max(target, 1.0), float(dims))
    sizes = np.array([m for m in LADDER if m <= dims] or [1], dtype=np.float64)
    return int(np.argmin(np.abs(np.log(sizes) - math.log(target))))


def chunk_layout(ladder_index: int, dims: int) -> tuple[int, int]:
    """``(n_chunks, width)``: enough chunks of at most ``width = LADDER[ladder_index]`` dimensions
    (or ``dims`` if fewer) to hold ``dims``, their sizes equalised to differ by at most one.
    Candidates are drawn ``width`` wide whatever a chunk's size, so that the jitted functions see
    one shape per ladder entry."""
    width = min(LADDER[ladder_index], dims)
    return math.ceil(dims / width), width


def chunk_dims(
    seed: int, step: int, dims: int, n_chunks: int, width: int, rng: randomness.Generator = randomness.PHILOX
) -> np.ndarray:
    """(n_chunks, width) dimension indices of each chunk, -1 in the unused places.

    Dimensions are assigned by a permutation from the shared seed, so no chunk holds a spatially
    coherent region and each chunk's KL is close to the step's average: the first ``size``
    entries of the permutation fill chunk 0, and so on, the last ``short`` chunks one smaller.
    """
    perm = rng.permutation(seed, step, dims)
    size = math.ceil(dims / n_chunks)  # the larger chunk size; the last ``short`` chunks are one less
    short = n_chunks * size - dims
    table = np.full((n_chunks, width), -1, dtype=np.int64)
    full = n_chunks - short
    table[:full, :size] = perm[: full * size].reshape(full, size)
    if short:
        table[full:, : size - 1] = perm[full * size :].reshape(short, size - 1)
    return table


@partial(jax.jit, static_argnames=("num_candidates",))
def _select_block(
    seed: jax.Array,
    step: jax.Array,
    chunks: jax.Array,  # (B,) chunk ids
    u4: jax.Array,  # (B, blocks, 4) standardised mean differences, word 4 k + l at [k, l], 0 past a chunk
    num_candidates: int,
) -> jax.Array:
    """Poisson functional representation over each chunk's candidates; (B,) chosen indices.

    The candidates' Philox words are computed first, for the whole block, and scored in a loop
    over groups of chunks: XLA on CPU vectorises Philox alone, but not a loop that also looks up
    the normal table, so the loop keeps the two apart (and the whole is one program, large enough
    for the persistent compilation cache)."""
    batch, blocks = u4.shape[0], u4.shape[1]
    indices = jnp.arange(num_candidates, dtype=jnp.uint32)
    lanes = randomness.lanes(seed, randomness.Domain.CANDIDATES, step, chunks[:, None], indices[None, :], blocks)

    def score(args: tuple) -> jax.Array:
        chunk_lanes, u_chunk, chunk = args  # 4 x (N, blocks), (blocks, 4), ()
        dot = sum(randomness.normals_from_words(w) * u_chunk[None, :, l] for l, w in enumerate(chunk_lanes))
        dot = jnp.sum(dot, axis=-1)  # (N,): <eps_i, u>
        # the sender's private arrival times T_i, cumulative sums of Exp(1) (not part of the format)
        uniform = randomness.uniforms(seed, randomness.Domain.ARRIVALS, step, chunk, 0, num_candidates)
        return jnp.argmin(jnp.log(jnp.cumsum(-jnp.log(uniform))) - dot)

    group = max(1, min(batch, _SCORE_WORDS // (num_candidates * 4 * blocks)))
    return jax.lax.map(score, (lanes, u4, chunks), batch_size=group)


def regenerate(
    seed: int, step: int, dims: int, code: StepCode, rng: randomness.Generator = randomness.PHILOX
) -> np.ndarray:
    """The (dims,) float32 noise eps that ``code`` selects; identical for sender and receiver.
    ``rng`` is the generator of the stream's format version (``randomness.for_version``). A code
    cut short (``pop_available``: indices for the first chunks only) leaves the other chunks'
    dimensions at 0, the prior's mean."""
    n_chunks, width = chunk_layout(code.ladder_index, dims)
    if code.indices.ndim != 1 or code.indices.size > n_chunks:
        raise entropy.EntropyCodingError(f"{code.indices.size} indices for {n_chunks} chunks")
    n_coded = code.indices.size
    randomness.check_limits(step=step, chunks=n_chunks, words=width)
    table = chunk_dims(seed, step, dims, n_chunks, width, rng)
    rows = [np.zeros((0, width), np.float32)]
    block = min(_DECODE_BLOCK, 1 << (n_chunks - 1).bit_length())
    for start in range(0, n_coded, block):
        chunks = np.arange(start, start + block) % n_chunks  # pad with valid ids
        idx = np.zeros(block, dtype=np.uint32)
        stop = min(n_coded, start + block)
        idx[: stop - start] = code.indices[start:stop]
        rows.append(rng.candidates(seed, step, chunks, idx, width)[: stop - start])
    values = np.concatenate(rows)  # (n_coded, width)
    eps = np.zeros(dims, dtype=np.float32)
    valid = table[:n_coded] >= 0
    eps[table[:n_coded][valid]] = values[valid]
    return eps


def select(seed: int, step: int, u: np.ndarray, config: RccConfig) -> StepCode:
    """The sender's choice for one step: a chunk plan from the KL of ``u`` and one index per chunk."""
    u = np.asarray(u, dtype=np.float32).reshape(-1)
    dims = u.size
    ladder_index = choose_ladder_index(kl_bits(u), dims, config.chunk_bits)
    n_chunks, width = chunk_layout(ladder_index, dims)
    n = config.num_candidates
    randomness.check_limits(step=step, chunks=n_chunks, candidates=n, words=width)
    table = chunk_dims(seed, step, dims, n_chunks, width)
    blocks = -(-width // 4)  # Philox blocks per candidate
    u_chunks = np.zeros((n_chunks, 4 * blocks), np.float32)
    u_chunks[:, :width] = np.where(table >= 0, u[np.maximum(table, 0)], 0.0)
    u4 = u_chunks.reshape(n_chunks, blocks, 4)
    block = min(max(1, _BLOCK_FLOATS // (n * 4 * blocks)), 1 << (n_chunks - 1).bit_length())
    seed32, step32 = np.uint32(seed), np.uint32(step)
    chosen = np.empty(n_chunks, dtype=np.int64)
    for start in range(0, n_chunks, block):
        stop = min(n_chunks, start + block)
        chunks = np.arange(start, start + block) % n_chunks  # pad with valid ids
        idx = _select_block(seed32, step32, jnp.asarray(chunks, jnp.uint32), jnp.asarray(u4[chunks]), n)
        chosen[start:stop] = np.asarray(idx)[: stop - start]
    return StepCode(ladder_index, chosen)


def index_probabilities(config: RccConfig) -> np.ndarray:
    """Truncated Zipf model of the chosen index: P(n) proportional to (n + 1) ** -(1 + 1 / (k + 1))
    with k the nominal chunk KL in bits (Li and El Gamal 2018, Theorem 1)."""
    n = np.arange(1, config.num_candidates + 1, dtype=np.float64)
    p = n ** -(1.0 + 1.0 / (config.chunk_bits + 1.0))
    return p / p.sum()


def push(stack: entropy.Stack, code: StepCode, config: RccConfig) -> float:
    """Push a step's code (indices, then the ladder entry, so that ``pop`` reads the plan first);
    returns the ideal cost in bits."""
    cost = stack.push(code.indices, entropy.categorical_iid(index_probabilities(config), code.indices.size))
    return cost + stack.push(np.array([code.ladder_index]), entropy.uniform(len(LADDER), 1))


def pop(stack: entropy.Stack, config: RccConfig, dims: int) -> StepCode:
    """Pop a step's code pushed by ``push``."""
    ladder_index = int(stack.pop(entropy.uniform(len(LADDER), 1))[0])
    n_chunks, _ = chunk_layout(ladder_index, dims)
    indices = stack.pop(entropy.categorical_iid(index_probabilities(config), n_chunks))
    return StepCode(ladder_index, indices)


def pop_available(stack: entropy.Stack, config: RccConfig, dims: int) -> StepCode | None:
    """``pop`` from a stack cut short (``entropy.Stack.pop_available``): the plan and the indices
    of the chunks that arrived, in chunk order; None where not even the plan did."""
    plan = stack.pop_available(entropy.uniform(len(LADDER), 1))
    if not plan.size:
        return None
    n_chunks, _ = chunk_layout(int(plan[0]), dims)
    return StepCode(int(plan[0]), stack.pop_available(entropy.categorical_iid(index_probabilities(config), n_chunks)))
