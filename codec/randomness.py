"""Shared randomness of lossy streams: a counter-based generator defined byte for byte.

Sender and receiver of a lossy stream draw the same numbers: the reverse-channel-coding candidates,
the dimension permutation of each step and the noise of ancestral reconstruction. A ``.dfc`` stream
must mean the same on every machine, backend and JAX release, so these numbers come from this
module's generator, which ``docs/bitstream.md`` ("Shared randomness") specifies completely, not
from a library's PRNG API (DESIGN section 7):

- Philox-4x32-10 (Salmon, Moraes, Dror, Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC'11;
  the Random123 constants), in uint32 operations only: the 32 x 32 -> 64-bit products of its rounds
  from 16-bit halves, exact by construction. Key (seed, 0); counter (word block, index, chunk,
  domain * 2^16 + step). Word ``d`` of a stream is lane ``d mod 4`` of block ``d div 4``.
- Normals by an inverse CDF in integer arithmetic: a committed table of fixed-point quantiles
  (``QUANTILES``, 2^-16 units), indexed by the word's tail probability on a log-spaced grid and
  interpolated linearly with integer multiply-and-shift; the int32 result converts exactly to
  float32. No float log or cos, which differ in the last bit between backends.
- A permutation of n dimensions: indices sorted by (word, index), an exact integer sort.

Streams of format version 3 and older drew from ``jax.random`` (threefry, ``fold_in``); that
derivation lives on in ``LegacyJaxRandom`` only, to decode those streams exactly as before.
``for_version`` picks the generator a stream's version calls for.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

# --- Philox-4x32-10 ------------------------------------------------------------------------------

PHILOX_M = (0xD2511F53, 0xCD9E8D57)  # round multipliers
PHILOX_W = (0x9E3779B9, 0xBB67AE85)  # Weyl key increments (golden ratio, sqrt(3) - 1)
PHILOX_ROUNDS = 10


def _mulhilo(m: int, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The high and low 32 bits of the 64-bit product m * x (uint32 x), from 16-bit halves: each
    partial product is below 2^32 and each sum below 2^32, so every operation is exact."""
    lo = x * jnp.uint32(m)
    m0, m1 = jnp.uint32(m & 0xFFFF), jnp.uint32(m >> 16)
    x0, x1 = x & jnp.uint32(0xFFFF), x >> 16
    p00, p01, p10, p11 = x0 * m0, x0 * m1, x1 * m0, x1 * m1
    mid = (p00 >> 16) + (p01 & jnp.uint32(0xFFFF)) + (p10 & jnp.uint32(0xFFFF))  # < 3 * 2^16
    hi = p11 + (p01 >> 16) + (p10 >> 16) + (mid >> 16)
    return hi, lo


def philox4x32(counter: tuple[jax.Array, ...], key: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, ...]:
    """Philox-4x32-10 of four uint32 counter words and two key words (arrays that broadcast):
    ten rounds of (c0, c1, c2, c3) <- (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2), hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)),
    the key increased by (W0, W1) mod 2^32 before every round but the first."""
    shape = jnp.broadcast_shapes(*(jnp.shape(c) for c in counter))
    c0, c1, c2, c3 = (jnp.broadcast_to(jnp.asarray(c, jnp.uint32), shape) for c in counter)
    k0, k1 = (jnp.asarray(k, jnp.uint32) for k in key)
    for r in range(PHILOX_ROUNDS):
        if r:
            k0, k1 = k0 + jnp.uint32(PHILOX_W[0]), k1 + jnp.uint32(PHILOX_W[1])
        hi0, lo0 = _mulhilo(PHILOX_M[0], c0)
        hi1, lo1 = _mulhilo(PHILOX_M[1], c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


# --- streams of words ----------------------------------------------------------------------------


class Domain(enum.IntEnum):
    """What a stream of words is for: the counter's top 16 bits. The decoder reproduces the first
    three; the last two are the sender's private choices (specified for reproducibility only)."""

    CANDIDATES = 0  # RCC candidate normals: (step, chunk, candidate index), ``width`` words each
    PERMUTATION = 1  # sort keys of a step's dimensions: (step, 0, 0), one word per dimension
    ANCESTRAL = 2  # noise of ancestral reconstruction: (reconstruction step, 0, 0), one per value
    RATE_CURVE = 3  # sender: the noise of the rate curve's point i: (i, 0, 0)
    ARRIVALS = 4  # sender: PFR arrival times of a chunk: (step, chunk, 0), one per candidate


MAX_STEP = (1 << 16) - 1  # counter word 3 holds domain * 2^16 + step
MAX_INDEX = (1 << 32) - 1  # chunks and candidate indices: one counter word each
MAX_WORDS = 1 << 34  # words per (domain, step, chunk, index): 2^32 blocks of 4


def check_limits(*, step: int = 0, chunks: int = 1, candidates: int = 1, words: int = 0) -> None:
    """Refuse counters that would overflow their field (and so repeat another draw's words)."""
    if not 0 <= step <= MAX_STEP:
        raise ValueError(f"step {step} is outside the generator's [0, {MAX_STEP}]")
    if not 0 <= chunks - 1 <= MAX_INDEX or not 0 <= candidates - 1 <= MAX_INDEX:
        raise ValueError(f"{chunks} chunks of {candidates} candidates exceed the generator's 2^32 of each")
    if not 0 <= words <= MAX_WORDS:
        raise ValueError(f"{words} words per draw exceed the generator's 2^34")


def lanes(seed, domain: int, step, chunk, index, blocks: int) -> tuple[jax.Array, ...]:
    """Philox blocks 0 .. ``blocks`` - 1 of the stream (seed, domain, step, chunk, index), as its
    four lanes: lane l (..., blocks) holds words 4 k + l. ``...`` is the broadcast shape of
    ``chunk`` and ``index``; ``seed`` and ``step`` may be traced scalars, ``domain`` and ``blocks``
    are static. The counter of block k is (k, index, chunk, domain * 2^16 + step), the key (seed, 0).

    XLA on CPU computes each lane in a loop of its own (four times the rounds: it does not fuse one
    loop with several outputs), but vectorised; a table lookup (gather) in the same loop stops the
    vectorisation and costs more, so the encoder's hot loop (``rcc._select_block``) materialises
    the lanes before it transforms them."""
    if not 0 <= domain <= 0xFFFF or not 0 <= blocks <= MAX_WORDS // 4:
        raise ValueError(f"domain {domain} or block count {blocks} is out of range")
    chunk = jnp.asarray(chunk, jnp.uint32)[..., None]
    index = jnp.asarray(index, jnp.uint32)[..., None]
    c3 = (jnp.uint32(domain) << 16) | jnp.asarray(step, jnp.uint32)
    return philox4x32((jnp.arange(blocks, dtype=jnp.uint32), index, chunk, c3),
                      (jnp.asarray(seed, jnp.uint32), jnp.uint32(0)))


def words(seed, domain: int, step, chunk, index, count: int) -> jax.Array:
    """Words 0 .. ``count`` - 1 of the stream (seed, domain, step, chunk, index): (..., count)
    uint32, word d being lane d mod 4 of block d div 4 (see ``lanes``)."""
    if not 0 <= count <= MAX_WORDS:
        raise ValueError(f"count {count} is out of range")
    blocks = -(-count // 4)
    out = lanes(seed, domain, step, chunk, index, blocks)
    batch = out[0].shape[:-1]
    return jnp.stack(out, axis=-1).reshape(*batch, 4 * blocks)[..., :count]  # (..., count)


# --- transforms ----------------------------------------------------------------------------------

QUANTILE_BITS = 16  # normals are multiples of 2^-16
_SUBDIVISIONS = 5  # 2^5 table intervals per octave of the tail probability
_FRACTION_BITS = 16  # the interpolation weight keeps at most 16 bits

# QUANTILES[j] = round(2^16 * Phi^-1(1 - (x_j + 1/2) / 2^32)) at the knots x_j of ``knots()``:
# 865 int32 values, computed once with scipy.special.ndtri (float64, no value within 0.001 of a
# rounding tie) and committed here; docs/bitstream.md gives their SHA-256 and tests recompute them.
QUANTILES = np.array([
    415364, 404123, 398793, 395245, 392576, 390431, 388638, 387095, 385741, 384533, 383444, 382451,
    381539, 380696, 379911, 379177, 378487, 377838, 377223, 376640, 376085, 375556, 375050, 374566,
    374101, 373655, 373225, 372811, 372411, 372024, 371650, 371288, 370936, 370595, 370264, 369942,
    369629, 369323, 369026, 368736, 368453, 368177, 367907, 367644, 367386, 367134, 366887, 366645,
    366408, 366175, 365948, 365724, 365505, 365290, 365078, 364871, 364667, 364466, 364269, 364075,
    363884, 363696, 363511, 363329, 363150, 362800, 362459, 362128, 361806, 361493, 361187, 360890,
    360599, 360315, 360039, 359768, 359503, 359244, 358991, 358742, 358499, 358261, 358027, 357798,
    357573, 357352, 357136, 356923, 356713, 356508, 356305, 356106, 355911, 355718, 355529, 355342,
    355158, 354799, 354450, 354111, 353781, 353459, 353147, 352841, 352544, 352253, 351969, 351692,
    351421, 351155, 350896, 350642, 350392, 350148, 349909, 349674, 349444, 349217, 348995, 348777,
    348563, 348352, 348145, 347941, 347741, 347544, 347350, 347159, 346970, 346602, 346245, 345897,
    345560, 345231, 344910, 344598, 344293, 343995, 343704, 343420, 343143, 342871, 342605, 342345,
    342090, 341840, 341594, 341354, 341118, 340886, 340659, 340435, 340216, 340000, 339788, 339579,
    339374, 339172, 338973, 338778, 338585, 338208, 337842, 337486, 337140, 336803, 336475, 336154,
    335842, 335537, 335240, 334949, 334664, 334386, 334113, 333847, 333585, 333329, 333078, 332832,
    332590, 332353, 332119, 331891, 331666, 331445, 331227, 331013, 330803, 330596, 330392, 330192,
    329994, 329608, 329233, 328868, 328513, 328168, 327831, 327503, 327183, 326871, 326565, 326267,
    325975, 325690, 325411, 325137, 324869, 324607, 324349, 324096, 323849, 323605, 323366, 323131,
    322901, 322674, 322451, 322232, 322016, 321804, 321595, 321389, 321186, 320790, 320405, 320031,
    319667, 319313, 318967, 318631, 318302, 317982, 317669, 317362, 317063, 316770, 316483, 316203,
    315928, 315658, 315394, 315134, 314880, 314630, 314385, 314144, 313907, 313674, 313445, 313220,
    312998, 312780, 312566, 312355, 312146, 311739, 311344, 310960, 310586, 310222, 309867, 309521,
    309184, 308854, 308533, 308218, 307910, 307609, 307315, 307026, 306744, 306467, 306195, 305928,
    305667, 305410, 305158, 304910, 304666, 304427, 304192, 303960, 303732, 303508, 303287, 303070,
    302856, 302438, 302031, 301636, 301251, 300877, 300512, 300156, 299809, 299470, 299139, 298815,
    298498, 298189, 297885, 297588, 297297, 297012, 296733, 296458, 296189, 295924, 295665, 295410,
    295159, 294912, 294670, 294432, 294197, 293966, 293739, 293515, 293295, 292864, 292445, 292038,
    291641, 291255, 290879, 290513, 290155, 289806, 289464, 289131, 288804, 288485, 288172, 287866,
    287566, 287272, 286984, 286701, 286423, 286150, 285883, 285619, 285361, 285107, 284857, 284611,
    284369, 284130, 283896, 283665, 283438, 282993, 282561, 282140, 281731, 281333, 280945, 280566,
    280197, 279836, 279484, 279139, 278802, 278473, 278150, 277833, 277524, 277220, 276922, 276629,
    276342, 276061, 275784, 275512, 275245, 274982, 274724, 274469, 274219, 273973, 273731, 273492,
    273257, 272797, 272350, 271915, 271492, 271080, 270679, 270287, 269905, 269532, 269167, 268811,
    268462, 268121, 267786, 267459, 267138, 266824, 266515, 266212, 265915, 265623, 265337, 265055,
    264778, 264506, 264239, 263975, 263716, 263461, 263210, 262963, 262719, 262242, 261779, 261328,
    260890, 260463, 260047, 259641, 259244, 258857, 258479, 258109, 257747, 257393, 257046, 256707,
    256374, 256047, 255727, 255413, 255104, 254801, 254504, 254211, 253924, 253641, 253363, 253090,
    252821, 252556, 252295, 252038, 251785, 251289, 250808, 250340, 249884, 249440, 249007, 248585,
    248173, 247770, 247377, 246992, 246616, 246247, 245887, 245533, 245187, 244847, 244514, 244187,
    243865, 243550, 243240, 242936, 242636, 242342, 242052, 241767, 241487, 241211, 240939, 240671,
    240408, 239891, 239390, 238902, 238426, 237963, 237512, 237072, 236642, 236222, 235811, 235410,
    235017, 234632, 234256, 233887, 233525, 233170, 232822, 232480, 232145, 231815, 231492, 231174,
    230861, 230553, 230250, 229953, 229660, 229371, 229087, 228807, 228531, 227991, 227466, 226955,
    226458, 225974, 225501, 225040, 224590, 224150, 223720, 223300, 222888, 222485, 222091, 221704,
    221325, 220953, 220588, 220229, 219878, 219532, 219193, 218859, 218531, 218208, 217890, 217578,
    217270, 216967, 216669, 216375, 216085, 215518, 214967, 214430, 213907, 213398, 212901, 212417,
    211943, 211481, 211028, 210586, 210153, 209729, 209313, 208906, 208507, 208115, 207731, 207353,
    206982, 206618, 206260, 205909, 205563, 205222, 204887, 204558, 204233, 203913, 203599, 203288,
    202983, 202384, 201802, 201235, 200683, 200145, 199620, 199108, 198608, 198118, 197640, 197172,
    196714, 196265, 195825, 195394, 194971, 194556, 194149, 193749, 193356, 192970, 192591, 192218,
    191851, 191490, 191135, 190785, 190440, 190101, 189767, 189438, 189113, 188477, 187859, 187257,
    186670, 186098, 185540, 184995, 184462, 183941, 183432, 182933, 182445, 181967, 181498, 181039,
    180588, 180145, 179711, 179284, 178865, 178453, 178048, 177649, 177257, 176872, 176492, 176118,
    175750, 175387, 175030, 174678, 174330, 173650, 172988, 172343, 171714, 171101, 170502, 169918,
    169346, 168787, 168241, 167705, 167181, 166667, 166163, 165669, 165184, 164708, 164240, 163781,
    163329, 162885, 162449, 162019, 161597, 161181, 160771, 160368, 159970, 159579, 159193, 158812,
    158437, 157702, 156986, 156288, 155608, 154944, 154295, 153662, 153042, 152436, 151842, 151261,
    150691, 150133, 149585, 149047, 148519, 148001, 147492, 146992, 146500, 146016, 145540, 145071,
    144610, 144156, 143709, 143268, 142834, 142406, 141983, 141567, 141156, 140351, 139567, 138802,
    138055, 137326, 136614, 135917, 135235, 134568, 133914, 133274, 132646, 132030, 131425, 130831,
    130248, 129675, 129112, 128558, 128013, 127477, 126949, 126429, 125918, 125413, 124916, 124427,
    123944, 123467, 122997, 122534, 122076, 121178, 120303, 119448, 118613, 117797, 116999, 116218,
    115453, 114703, 113968, 113248, 112540, 111846, 111164, 110493, 109834, 109186, 108549, 107921,
    107304, 106695, 106096, 105506, 104924, 104350, 103784, 103225, 102675, 102131, 101594, 101064,
    100540, 99512, 98507, 97526, 96565, 95625, 94704, 93802, 92917, 92048, 91196, 90358,
    89536, 88727, 87931, 87148, 86377, 85618, 84871, 84134, 83408, 82691, 81985, 81288,
    80600, 79921, 79250, 78588, 77933, 77286, 76647, 76015, 75389, 74159, 72954, 71774,
    70616, 69480, 68364, 67268, 66191, 65131, 64087, 63060, 62048, 61051, 60067, 59097,
    58140, 57195, 56262, 55340, 54428, 53528, 52637, 51756, 50884, 50021, 49166, 48320,
    47482, 46651, 45828, 45012, 44203, 42605, 41032, 39482, 37954, 36446, 34958, 33487,
    32032, 30594, 29170, 27759, 26362, 24976, 23601, 22237, 20882, 19536, 18199, 16869,
    15545, 14228, 12917, 11611, 10310, 9012, 7718, 6427, 5139, 3852, 2567, 1283,
    0,
], dtype=np.int32)
_GAPS = QUANTILES[:-1] - QUANTILES[1:]  # (864,) >= 0, at most 11241: products stay below 2^30


def knots() -> np.ndarray:
    """(865,) int64 positions x_j of the table's knots in [0, 2^31]: every integer below 2^6, then
    in each octave [2^e, 2^(e+1)), e = 6 .. 30, 2^5 knots 2^(e-5) apart, and 2^31 last: knot
    j >= 2^6 sits at (j - 32 s) * 2^s with s = j div 32 - 1."""
    j = np.arange(len(QUANTILES), dtype=np.int64)
    s = np.maximum(j // (1 << _SUBDIVISIONS) - 1, 0)
    return np.where(j < 1 << (_SUBDIVISIONS + 1), j, (j - (s << _SUBDIVISIONS)) << s)


def normal_fixed(w: jax.Array) -> jax.Array:
    """Standard normals in units of 2^-16 (int32) from uint32 words, by integer arithmetic only.

    The top bit is the sign; v = the low 31 bits puts |z| at the upper quantile of tail probability
    (v + 1/2) / 2^32. With b = bit length of v and s = max(b - 6, 0), the knot below v is
    j = 32 s + (v >> s) and v lies f = v mod 2^s past it; keeping the top 16 bits of f
    (t = max(s - 16, 0), g = s - t): |z| = Q[j] - (((Q[j] - Q[j+1]) * (f >> t)) >> g)."""
    sign = w >> 31
    v = w & jnp.uint32(0x7FFFFFFF)
    bits = jnp.uint32(32) - jax.lax.clz(v)
    low = _SUBDIVISIONS + 1
    s = jnp.where(bits > low, bits - low, jnp.uint32(0))
    j = (s << _SUBDIVISIONS) + (v >> s)
    f = v & ((jnp.uint32(1) << s) - 1)
    t = jnp.where(s > _FRACTION_BITS, s - _FRACTION_BITS, jnp.uint32(0))
    q = jnp.asarray(QUANTILES.astype(np.uint32)).at[j].get(mode="promise_in_bounds")
    gap = jnp.asarray(_GAPS.astype(np.uint32)).at[j].get(mode="promise_in_bounds")
    magnitude = (q - ((gap * (f >> t)) >> (s - t))).astype(jnp.int32)  # < 2^19
    return jnp.where(sign == 1, -magnitude, magnitude)


def normals_from_words(w: jax.Array) -> jax.Array:
    """float32 standard normals: ``normal_fixed`` times 2^-16, exact (|value| < 2^24)."""
    return normal_fixed(w).astype(jnp.float32) * jnp.float32(2.0**-QUANTILE_BITS)


def uniforms_from_words(w: jax.Array) -> jax.Array:
    """float32 uniforms in (0, 1): (2 (w >> 9) + 1) 2^-24, the midpoints of 2^23 equal cells, exact."""
    return ((w >> 9) * 2 + 1).astype(jnp.float32) * jnp.float32(2.0**-24)


def normals(seed, domain: int, step, chunk, index, count: int) -> jax.Array:
    """(..., count) float32 standard normals of the stream (seed, domain, step, chunk, index)."""
    return normals_from_words(words(seed, domain, step, chunk, index, count))


def uniforms(seed, domain: int, step, chunk, index, count: int) -> jax.Array:
    """(..., count) float32 uniforms in (0, 1) of the stream (seed, domain, step, chunk, index)."""
    return uniforms_from_words(words(seed, domain, step, chunk, index, count))


@partial(jax.jit, static_argnames=("domain", "count"))
def _normals_jit(seed, domain: int, step, chunk, index, count: int) -> jax.Array:
    return normals(seed, domain, step, chunk, index, count)


@partial(jax.jit, static_argnames=("count",))
def _permutation_keys(seed, step, count: int) -> jax.Array:
    return words(seed, Domain.PERMUTATION, step, 0, 0, count)


def noise(seed: int, domain: int, step: int, shape: tuple[int, ...]) -> jax.Array:
    """float32 standard normals of ``shape``, raster order: words of (seed, domain, step, 0, 0)."""
    count = math.prod(shape)
    check_limits(step=step, words=count)
    return _normals_jit(np.uint32(seed), domain, np.uint32(step), 0, 0, count).reshape(shape)


def permutation(seed: int, step: int, n: int) -> np.ndarray:
    """(n,) int64: 0 .. n - 1 sorted by (word d of (seed, PERMUTATION, step, 0, 0), d), an exact
    integer sort (equal words keep index order)."""
    check_limits(step=step, words=n)
    keys = np.asarray(_permutation_keys(np.uint32(seed), np.uint32(step), n))
    return np.argsort(keys, kind="stable").astype(np.int64)


# --- generators by format version ----------------------------------------------------------------

PHILOX_SINCE = 4  # the first format version whose lossy streams draw from Philox


@dataclass(frozen=True)
class PhiloxRandom:
    """The shared randomness of format version 4 on: this module's Philox streams."""

    def permutation(self, seed: int, step: int, n: int) -> np.ndarray:
        return permutation(seed, step, n)

    def candidates(self, seed: int, step: int, chunks: np.ndarray, indices: np.ndarray, width: int) -> np.ndarray:
        """(B, width) float32: candidate ``indices[b]`` of chunk ``chunks[b]`` of ``step``."""
        check_limits(step=step, words=width)
        out = _normals_jit(np.uint32(seed), Domain.CANDIDATES, np.uint32(step),
                           jnp.asarray(chunks, jnp.uint32), jnp.asarray(indices, jnp.uint32), width)
        return np.asarray(out)

    def ancestral_noise(self, seed: int, shape: tuple[int, ...]) -> Iterator[jax.Array]:
        """The noise of ancestral reconstruction steps 0, 1, ... (an endless iterator)."""
        step = 0
        while True:
            yield noise(seed, Domain.ANCESTRAL, step, shape)
            step += 1


def _legacy_step_key(seed: int, step: int, domain: int) -> jax.Array:
    key = jax.random.fold_in(jax.random.key(seed), domain)
    return jax.random.fold_in(key, step)


@partial(jax.jit, static_argnames=("width",))
def _legacy_candidates(step_key: jax.Array, chunks: jax.Array, indices: jax.Array, width: int) -> jax.Array:
    def one(chunk: jax.Array, index: jax.Array) -> jax.Array:
        key = jax.random.fold_in(jax.random.fold_in(step_key, chunk), index)
        return jax.random.normal(key, (width,), dtype=jnp.float32)

    return jax.vmap(one)(chunks, indices)


@dataclass(frozen=True)
class LegacyJaxRandom:
    """The shared randomness of format version 3 and older, kept to decode those streams exactly as
    before: JAX's threefry keys, key(seed) folded with (0, step) for candidates, then the chunk and
    the candidate index, ``jax.random.normal`` of each; ``jax.random.permutation`` of
    key(seed) folded with (1, step); ancestral noise from successive ``split``s of key(seed).
    Its numbers are whatever JAX's key derivation gives (as of JAX 0.10), which is why newer
    streams do not use it."""

    def permutation(self, seed: int, step: int, n: int) -> np.ndarray:
        return np.asarray(jax.random.permutation(_legacy_step_key(seed, step, 1), n))

    def candidates(self, seed: int, step: int, chunks: np.ndarray, indices: np.ndarray, width: int) -> np.ndarray:
        out = _legacy_candidates(_legacy_step_key(seed, step, 0), jnp.asarray(chunks, jnp.uint32),
                                 jnp.asarray(indices, jnp.uint32), width)
        return np.asarray(out)

    def ancestral_noise(self, seed: int, shape: tuple[int, ...]) -> Iterator[jax.Array]:
        key = jax.random.key(seed)
        while True:
            key, sub = jax.random.split(key)
            yield jax.random.normal(sub, shape)


Generator = PhiloxRandom | LegacyJaxRandom
PHILOX, LEGACY = PhiloxRandom(), LegacyJaxRandom()


def for_version(version: int) -> Generator:
    """The generator that streams of format ``version`` draw from."""
    return PHILOX if version >= PHILOX_SINCE else LEGACY
