"""Reverse channel coding (RCC) of Gaussian samples with shared randomness (DESIGN section 4).

In a DiffC step the sender holds q = N(mu_q, s^2 I) and the receiver p = N(mu_p, s^2 I). With
u = (mu_q - mu_p) / s, the sender communicates eps such that z = mu_p + s * eps is (nearly) a sample
of q, at a cost of about KL(q || p) = |u|^2 / (2 ln 2) bits plus a small overhead per chunk.

- The step's dimensions are split into chunks of about ``chunk_bits`` bits of KL each. The plan is
  decodable: the sender picks an entry of a fixed ladder of chunk sizes (dimensions per chunk) from
  the step's KL and sends that entry; dimensions go to chunks by a permutation of the shared seed,
  all chunks of equal size (up to one), none empty.
- Each chunk has ``N = 2 ** (chunk_bits + margin)`` candidates eps_i ~ N(0, I) from a counter-based
  PRNG (JAX threefry) keyed by (seed, step, chunk, candidate), so the receiver regenerates only the
  chosen one. The sender picks by the Poisson functional representation (Li and El Gamal 2018):
  with arrival times T_i (cumulative sums of Exp(1), the sender's private randomness),
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

from diffc.codec import entropy

# Ladder of dimensions per chunk: round(2 ** (i / 4)), deduplicated; entry i is what is sent.
LADDER: tuple[int, ...] = tuple(sorted({round(2 ** (i / 4)) for i in range(0, 4 * 26)}))
_PRIVATE_DOMAIN = 0x5EED5EED  # separates the sender's private randomness from the shared one
_BLOCK_FLOATS = 1 << 23  # most candidate normals scored per jitted call (32 MiB of float32)
_DECODE_BLOCK = 1024  # most chunks regenerated per jitted call on the receiver


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


def chunk_dims(seed: int, step: int, dims: int, n_chunks: int, width: int) -> np.ndarray:
    """(n_chunks, width) dimension indices of each chunk, -1 in the unused places.

    Dimensions are assigned by a permutation from the shared seed, so no chunk holds a spatially
    coherent region and each chunk's KL is close to the step's average.
    """
    perm = np.asarray(jax.random.permutation(_step_key(seed, step, 1), dims))
    size = math.ceil(dims / n_chunks)  # the larger chunk size; the last ``short`` chunks are one less
    short = n_chunks * size - dims
    table = np.full((n_chunks, width), -1, dtype=np.int64)
    full = n_chunks - short
    table[:full, :size] = perm[: full * size].reshape(full, size)
    if short:
        table[full:, : size - 1] = perm[full * size :].reshape(short, size - 1)
    return table


def _step_key(seed: int, step: int, domain: int) -> jax.Array:
    key = jax.random.fold_in(jax.random.key(seed), domain)
    return jax.random.fold_in(key, step)


def _candidate(step_key: jax.Array, chunk: jax.Array, index: jax.Array, width: int) -> jax.Array:
    """Candidate ``index`` of ``chunk``: (width,) standard normals keyed by (seed, step, chunk, index)."""
    key = jax.random.fold_in(jax.random.fold_in(step_key, chunk), index)
    return jax.random.normal(key, (width,), dtype=jnp.float32)


@partial(jax.jit, static_argnames=("num_candidates", "width"))
def _select_block(
    step_key: jax.Array,
    private_key: jax.Array,
    chunks: jax.Array,  # (B,) chunk ids
    u: jax.Array,  # (B, width) standardised mean differences, 0 where a chunk is short
    num_candidates: int,
    width: int,
) -> jax.Array:
    """Poisson functional representation over each chunk's candidates; (B,) chosen indices."""
    indices = jnp.arange(num_candidates, dtype=jnp.uint32)

    def one_chunk(chunk: jax.Array, u_chunk: jax.Array) -> jax.Array:
        eps = jax.vmap(lambda i: _candidate(step_key, chunk, i, width))(indices)  # (N, width)
        arrivals = jax.random.exponential(jax.random.fold_in(private_key, chunk), (num_candidates,))
        score = jnp.log(jnp.cumsum(arrivals)) - eps @ u_chunk  # (N,)
        return jnp.argmin(score)

    return jax.vmap(one_chunk)(chunks, u)


@partial(jax.jit, static_argnames=("width",))
def _regenerate_block(step_key: jax.Array, chunks: jax.Array, indices: jax.Array, width: int) -> jax.Array:
    """(B, width) chosen candidates, as the receiver computes them."""
    return jax.vmap(lambda c, i: _candidate(step_key, c, i, width))(chunks, indices)


def regenerate(
    seed: int, step: int, dims: int, code: StepCode
) -> np.ndarray:
    """The (dims,) float32 noise eps that ``code`` selects; identical for sender and receiver."""
    n_chunks, width = chunk_layout(code.ladder_index, dims)
    if code.indices.shape != (n_chunks,):
        raise entropy.EntropyCodingError(f"{code.indices.size} indices for {n_chunks} chunks")
    table = chunk_dims(seed, step, dims, n_chunks, width)
    step_key = _step_key(seed, step, 0)
    rows = []
    block = min(_DECODE_BLOCK, 1 << (n_chunks - 1).bit_length())
    for start in range(0, n_chunks, block):
        chunks = np.arange(start, start + block) % n_chunks  # pad with valid ids
        idx = np.zeros(block, dtype=np.uint32)
        stop = min(n_chunks, start + block)
        idx[: stop - start] = code.indices[start:stop]
        chosen = _regenerate_block(step_key, jnp.asarray(chunks, jnp.uint32), jnp.asarray(idx), width)
        rows.append(np.asarray(chosen)[: stop - start])
    values = np.concatenate(rows)  # (n_chunks, width)
    eps = np.empty(dims, dtype=np.float32)
    valid = table >= 0
    eps[table[valid]] = values[valid]
    return eps


def select(seed: int, step: int, u: np.ndarray, config: RccConfig) -> StepCode:
    """The sender's choice for one step: a chunk plan from the KL of ``u`` and one index per chunk."""
    u = np.asarray(u, dtype=np.float32).reshape(-1)
    dims = u.size
    ladder_index = choose_ladder_index(kl_bits(u), dims, config.chunk_bits)
    n_chunks, width = chunk_layout(ladder_index, dims)
    table = chunk_dims(seed, step, dims, n_chunks, width)
    u_chunks = np.where(table >= 0, u[np.maximum(table, 0)], 0.0).astype(np.float32)
    n = config.num_candidates
    block = min(max(1, _BLOCK_FLOATS // (n * width)), 1 << (n_chunks - 1).bit_length())
    step_key = _step_key(seed, step, 0)
    private_key = _step_key(seed, step, _PRIVATE_DOMAIN)
    chosen = np.empty(n_chunks, dtype=np.int64)
    for start in range(0, n_chunks, block):
        stop = min(n_chunks, start + block)
        chunks = np.arange(start, start + block) % n_chunks
        u_block = u_chunks[chunks]
        idx = _select_block(
            step_key, private_key, jnp.asarray(chunks, jnp.uint32), jnp.asarray(u_block), n, width
        )
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
