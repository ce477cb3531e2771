"""The one rANS layer: every coder pushes and pops through here, and only here talks to constriction.

A ``Stack`` wraps ``constriction.stream.stack.AnsCoder`` (a stack: ``push`` then ``pop`` returns the
same symbols). Distributions are vectorised families built from quantised float64 parameters, so
that encoder and decoder hand constriction the very same numbers:

- ``gaussian``: values on a grid of width ``bin_width``, each distribution's support the
  ``2 * radius + 1`` bins centred on its (quantised) mean, as bits-back along a diffusion chain needs;
- ``categorical`` / ``categorical_from_logits``: probability tables with a floor;
- ``uniform``: integers in ``[0, size)``.

The stack keeps the ideal cost (-log2 p) of what was pushed and popped, so that coders can report
actual bits against their theoretical value. Popping from an empty stack raises instead of
silently returning the lowest symbol, as constriction would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import constriction
import numpy as np
from scipy import special

from diffc.errors import DiffcError

PARAM_QUANTUM = 2.0**-16  # grid of means and stds (in bins) and of logits fed to the coder
PROB_QUANTUM = 2.0**-40  # grid of probabilities fed to the coder
MIN_PROB = 2.0**-24  # constriction's smallest representable probability (24-bit precision)
DEFAULT_FLOOR = 2.0**-20  # probability floor of categoricals
MIN_STD = 2.0**-8  # smallest std, in bins, of a Gaussian
_OVERRUN_SLACK_BITS = 32.0
# constriction's 24-bit probabilities cost up to ~1 bit a symbol less than -log2 p for symbols
# near probability 2**-24 (measured); a pop is an overrun only beyond this drift
_OVERRUN_SLACK_BITS_PER_SYMBOL = 1.0
_WORD_BITS = 32  # a valid rANS state holds at least one word above its refill threshold
_PRECISION_BITS = 24  # below this many valid bits, constriction decodes the lowest symbol forever


class EntropyCodingError(DiffcError):
    """A symbol or parameter that cannot be coded, or a stack used wrongly."""


class EmptyStackError(EntropyCodingError):
    """A pop found no data on the stack: a truncated stream or too few initial bits."""


def _quantise(x: np.ndarray, quantum: float) -> np.ndarray:
    return np.round(np.asarray(x, dtype=np.float64) / quantum) * quantum


class Distribution(Protocol):
    """A batch of distributions, one per symbol, that the stack can code."""

    def size(self) -> int: ...

    def to_coder(self, symbols: np.ndarray) -> np.ndarray:
        """Map symbols to constriction's alphabet, raising if any lies outside the support."""

    def from_coder(self, coded: np.ndarray) -> np.ndarray:
        """Map constriction's symbols back."""

    def model_and_params(self) -> tuple[object, tuple[np.ndarray, ...]]:
        """The constriction model family and its per-symbol parameters."""

    def cost_bits(self, symbols: np.ndarray) -> np.ndarray:
        """Ideal information content -log2 p(symbol) of each symbol, in bits."""


@dataclass(frozen=True)
class Gaussian:
    """N(mean, std^2) discretised on the grid ``bin_width * k``; symbols are the grid indices k.

    Bins are centred on grid points; the support of each distribution is ``radius`` bins either
    side of the grid point nearest its mean. Means and stds are held in bins, quantised.
    """

    centre: np.ndarray  # (n,) int64 grid index nearest the mean
    offset: np.ndarray  # (n,) float64 mean - centre, in bins
    std: np.ndarray  # (n,) float64 std in bins
    radius: int

    def size(self) -> int:
        return self.centre.size

    def to_coder(self, symbols: np.ndarray) -> np.ndarray:
        k = np.asarray(symbols, dtype=np.int64).reshape(-1) - self.centre
        if k.size and np.abs(k).max() > self.radius:
            i = int(np.argmax(np.abs(k)))
            raise EntropyCodingError(
                f"symbol {int(k[i] + self.centre[i])} lies {int(k[i])} bins from its mean, outside "
                f"the coded support of +-{self.radius} bins"
            )
        return k.astype(np.int32)

    def from_coder(self, coded: np.ndarray) -> np.ndarray:
        return coded.astype(np.int64) + self.centre

    def model_and_params(self) -> tuple[object, tuple[np.ndarray, ...]]:
        model = constriction.stream.model.QuantizedGaussian(-self.radius, self.radius)
        return model, (self.offset, self.std)

    def cost_bits(self, symbols: np.ndarray) -> np.ndarray:
        k = np.asarray(symbols, dtype=np.int64).reshape(-1) - self.centre
        # constriction's leaky quantizer gives the tails beyond the support to the edge bins
        upper = np.where(k >= self.radius, np.inf, (k + 0.5 - self.offset) / self.std)
        lower = np.where(k <= -self.radius, -np.inf, (k - 0.5 - self.offset) / self.std)
        # integrate on the side of the mean where the tail is small, for precision
        above = lower > 0
        mass = np.where(
            above, special.ndtr(-lower) - special.ndtr(-upper), special.ndtr(upper) - special.ndtr(lower)
        )
        return -np.log2(np.maximum(mass, MIN_PROB))


def gaussian(
    means: np.ndarray, stds: np.ndarray, bin_width: float, radius: int = 1 << 12
) -> Gaussian:
    """Gaussians with these means and stds (in value units) on the grid ``bin_width * k``."""
    if not (bin_width > 0 and math.isfinite(bin_width)):
        raise EntropyCodingError(f"bin width must be positive and finite, not {bin_width}")
    if not 1 <= radius < 1 << 23:  # constriction needs 2 * radius + 1 < 2**24 bins
        raise EntropyCodingError(f"radius must be in [1, 2**23), not {radius}")
    m = _quantise(np.asarray(means, dtype=np.float64).reshape(-1) / bin_width, PARAM_QUANTUM)
    raw_s = np.asarray(stds, dtype=np.float64).reshape(-1)
    s = _quantise(raw_s / bin_width, PARAM_QUANTUM)  # below MIN_STD it is floored, not refused
    if m.shape != s.shape:
        raise EntropyCodingError(f"{m.size} means but {s.size} stds")
    if not (np.isfinite(m).all() and np.isfinite(s).all()) or (raw_s <= 0).any():
        raise EntropyCodingError("Gaussian means must be finite and stds positive")
    centre = np.round(m).astype(np.int64)
    return Gaussian(centre, m - centre, np.maximum(s, MIN_STD), radius)


@dataclass(frozen=True)
class Categorical:
    """Categoricals over {0, ..., K-1}: one probability row per symbol, or one row shared by
    ``count`` i.i.d. symbols (coded with one concrete constriction model)."""

    probs: np.ndarray  # (n, K) or, shared, (1, K) float64, floored, normalised, quantised
    count: int

    @property
    def shared(self) -> bool:
        return self.probs.shape[0] == 1 and self.count != 1

    def size(self) -> int:
        return self.count

    def to_coder(self, symbols: np.ndarray) -> np.ndarray:
        s = np.asarray(symbols, dtype=np.int64).reshape(-1)
        k = self.probs.shape[1]
        if s.size and (s.min() < 0 or s.max() >= k):
            raise EntropyCodingError(f"categorical symbols must lie in [0, {k}), got {s.min()}..{s.max()}")
        return s.astype(np.int32)

    def from_coder(self, coded: np.ndarray) -> np.ndarray:
        return coded.astype(np.int64)

    def model_and_params(self) -> tuple[object, tuple[np.ndarray, ...]]:
        if self.shared:
            return constriction.stream.model.Categorical(self.probs[0], perfect=False), ()
        return constriction.stream.model.Categorical(perfect=False), (self.probs,)

    def cost_bits(self, symbols: np.ndarray) -> np.ndarray:
        s = np.asarray(symbols, dtype=np.int64).reshape(-1)
        rows = np.zeros_like(s) if self.shared else np.arange(s.size)
        return -np.log2(self.probs[rows, s])

    def row(self, i: int) -> Categorical:
        """Symbol i's distribution alone."""
        return Categorical(self.probs[:1] if self.shared else self.probs[i : i + 1], 1)


def _normalise(probs: np.ndarray, floor: float) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise EntropyCodingError(f"categorical probabilities must have shape (n, K>=2), not {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or (p.sum(axis=1) <= 0).any():
        raise EntropyCodingError("categorical probabilities must be finite, nonnegative, not all zero")
    if not (MIN_PROB <= floor and floor * p.shape[1] < 1):
        raise EntropyCodingError(
            f"floor {floor} is impossible for {p.shape[1]} symbols (it must be at least 2**-24, the "
            "coder's precision, and below 1/K)"
        )
    p = p / p.sum(axis=1, keepdims=True)
    p = np.maximum(p, floor)
    p = _quantise(p / p.sum(axis=1, keepdims=True), PROB_QUANTUM)
    return p / p.sum(axis=1, keepdims=True)


def categorical(probs: np.ndarray, floor: float = DEFAULT_FLOOR) -> Categorical:
    """Categoricals from a (n, K) table of nonnegative weights, floored at ``floor`` after
    normalisation so that every symbol stays codable."""
    p = _normalise(probs, floor)
    return Categorical(p, p.shape[0])


def categorical_iid(probs: np.ndarray, count: int, floor: float = DEFAULT_FLOOR) -> Categorical:
    """``count`` i.i.d. symbols from one (K,) table of weights, floored like ``categorical``."""
    if count < 0:
        raise EntropyCodingError(f"symbol count must be nonnegative, not {count}")
    return Categorical(_normalise(np.asarray(probs)[None, :], floor), count)


def integer_probabilities(masses: np.ndarray, floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """(n, K) int64 masses (each < 2^48, K <= 2^14) to int64 probabilities in units of
    PROB_QUANTUM, normalised and floored in integer arithmetic: the integer path of issue 19, whose
    results no machine computes differently. Each row is shifted right until its sum fits 22 bits
    (masses below 2^-22 of the row fall under the floor anyway), then p = floor(m 2^40 / sum) with
    the shifted masses' sum (< 2^63), then max(p, floor / PROB_QUANTUM). Rows sum to 2^40 less at
    most K, plus at most K floors."""
    m = np.asarray(masses)
    if m.ndim != 2 or m.shape[1] < 2 or m.dtype != np.int64:
        raise EntropyCodingError(f"masses must be an (n, K>=2) int64 array, not {m.dtype}{m.shape}")
    if (m < 0).any() or (m >= 1 << 48).any() or m.shape[1] > 1 << 14:
        raise EntropyCodingError("masses must lie in [0, 2^48) with at most 2^14 symbols")
    if not (MIN_PROB <= floor and floor * m.shape[1] < 1):
        raise EntropyCodingError(f"floor {floor} is impossible for {m.shape[1]} symbols")
    total = m.sum(axis=1, keepdims=True)
    if (total <= 0).any():
        raise EntropyCodingError("categorical masses must not be all zero")
    bits = np.frexp(total.astype(np.float64))[1]  # the bit length, or one more where rounding up
    shift = np.maximum(bits - 22, 0)
    m = m >> shift
    total = m.sum(axis=1, keepdims=True)  # < 2^22 + K: the shifted masses' own sum
    quantum_bits = round(-math.log2(PROB_QUANTUM))
    return np.maximum((m << quantum_bits) // total, round(floor / PROB_QUANTUM))


def categorical_from_masses(masses: np.ndarray, floor: float = DEFAULT_FLOOR) -> Categorical:
    """Categoricals from (n, K) int64 masses through ``integer_probabilities``: constriction reads
    exact dyadic float64 rows (integers times 2^-40) and rescales them with IEEE arithmetic in a
    fixed order, so the coder's model is the same on every machine."""
    p = integer_probabilities(masses, floor)
    return Categorical(p * PROB_QUANTUM, p.shape[0])


def categorical_from_logits(logits: np.ndarray, floor: float = DEFAULT_FLOOR) -> Categorical:
    """Categoricals from (n, K) logits, quantised before the softmax (float64). From (n, K, m)
    logits, symbol j weighs the summed softmax of its m values: the distribution of a value's next
    bits when its top bits are known (the upscale ARDM's stages)."""
    z = _quantise(logits, PARAM_QUANTUM)
    if np.isnan(z).any() or np.isposinf(z).any():
        raise EntropyCodingError("categorical logits must be finite (or -inf for impossible symbols)")
    if z.ndim == 2:
        z = z[..., None]
    z = z - z.max(axis=(1, 2), keepdims=True)
    return categorical(np.exp(z).sum(axis=2), floor)


@dataclass(frozen=True)
class Uniform:
    """Uniform integers in [0, size), one size per symbol."""

    sizes: np.ndarray  # (n,) int32

    def size(self) -> int:
        return self.sizes.size

    def to_coder(self, symbols: np.ndarray) -> np.ndarray:
        s = np.asarray(symbols, dtype=np.int64).reshape(-1)
        if s.size and ((s < 0).any() or (s >= self.sizes).any()):
            raise EntropyCodingError("uniform symbols must lie in [0, size)")
        return s.astype(np.int32)

    def from_coder(self, coded: np.ndarray) -> np.ndarray:
        return coded.astype(np.int64)

    def model_and_params(self) -> tuple[object, tuple[np.ndarray, ...]]:
        return constriction.stream.model.Uniform(), (self.sizes,)

    def cost_bits(self, symbols: np.ndarray) -> np.ndarray:
        return np.log2(self.sizes.astype(np.float64))

    def row(self, i: int) -> Uniform:
        """Symbol i's distribution alone."""
        return Uniform(self.sizes[i : i + 1])


def uniform(sizes: np.ndarray | int, n: int | None = None) -> Uniform:
    """Uniform integers below ``sizes`` (an array, or one size repeated ``n`` times)."""
    s = np.asarray(sizes, dtype=np.int64).reshape(-1)
    if n is not None:
        s = np.broadcast_to(s, (n,))
    if s.size and (s.min() < 2 or s.max() >= 1 << 24):
        raise EntropyCodingError("uniform sizes must lie in [2, 2**24)")
    return Uniform(s.astype(np.int32))


def _guard_words() -> np.ndarray:
    """The words of a sealed stack after pushing one symbol of probability 2**-24."""
    coder = constriction.stream.stack.AnsCoder(np.zeros(0, dtype=np.uint32), seal=True)
    coder.encode_reverse(np.array([0xC0FFEE], dtype=np.int32), constriction.stream.model.Uniform(1 << 24))
    return coder.get_compressed()


_GUARD_WORDS = _guard_words()


class Stack:
    """An rANS stack with bit accounting. Push arrays of symbols; pop returns them in the same order.

    ``Stack()`` starts on a guard word: one 24-bit symbol pushed on constriction's sealed state.
    On the bare sealed state (1) the lowest symbol of any distribution costs nothing, so a run of
    them would vanish; above 2**24 every symbol costs its information. A pop past the guard is
    detected as running dry, and ``exhausted()`` tells a decoder that it consumed exactly what was
    pushed. ``Stack.from_bytes`` reads such a stream back; ``Stack(words, seal=True)`` seeds a
    bits-back stack with initial words.

    ``ideal_bits`` is the information pushed minus the information popped, so after a sequence of
    pushes ``num_bits() - ideal_bits`` is the coder's overhead.
    """

    def __init__(self, words: np.ndarray | None = None, *, seal: bool = False) -> None:
        if words is None:
            words, seal = _GUARD_WORDS, False
        w = np.ascontiguousarray(words, dtype=np.uint32)
        try:
            self._coder = constriction.stream.stack.AnsCoder(w, seal=seal)
        except ValueError as exc:  # an unsealed stream that ends in a zero word
            raise EntropyCodingError(f"invalid rANS data: {exc}") from None
        self.ideal_bits = 0.0

    @classmethod
    def from_bytes(cls, data: bytes, *, seal: bool = False, head_first: bool = False) -> Stack:
        """The stack of ``to_bytes``' output; ``head_first``: of ``to_bytes(head_first=True)``'s."""
        if len(data) % 4:
            raise EntropyCodingError(f"rANS data must be whole 32-bit words, got {len(data)} bytes")
        words = np.frombuffer(data, dtype="<u4")
        return cls(words[::-1] if head_first else words, seal=seal)

    @classmethod
    def from_prefix(cls, data: bytes) -> Stack | None:
        """The stack of the whole words of a prefix of ``to_bytes(head_first=True)``'s output, for
        ``pop_available``; None where the prefix holds less than the 64-bit head."""
        words = np.frombuffer(data[: len(data) // 4 * 4], dtype="<u4")
        if words.size < 2 or words[0] == 0:
            return None
        return cls(words[::-1])

    def to_words(self, *, unseal: bool = False) -> np.ndarray:
        try:
            return self._coder.get_compressed(unseal=unseal)
        except BaseException as exc:  # constriction raises its own types
            raise EntropyCodingError(f"cannot unseal the stack: {exc}") from None

    def to_bytes(self, *, unseal: bool = False, head_first: bool = False) -> bytes:
        """The stack's words; ``head_first``: in the order a decoder reads them (the 64-bit head,
        then the words pushed last), so that any prefix of whole words decodes the first
        symbols popped (``from_prefix``, ``pop_available``)."""
        words = self.to_words(unseal=unseal)
        return (words[::-1] if head_first else words).astype("<u4").tobytes()

    def num_bits(self) -> int:
        """Bits the stack occupies, rounded up to whole 32-bit words."""
        return int(self._coder.num_bits())

    def num_valid_bits(self) -> int:
        return int(self._coder.num_valid_bits())

    def is_empty(self) -> bool:
        """True when the stack holds no words at all; ``Stack()`` is never empty."""
        return bool(self._coder.is_empty())

    def exhausted(self) -> bool:
        """True when nothing but the guard word of ``Stack()`` (or nothing at all) remains: a
        decoder that popped everything that was pushed ends here."""
        if self._coder.is_empty():
            return True
        return np.array_equal(self._coder.get_compressed(), _GUARD_WORDS)

    def push(self, symbols: np.ndarray, dist: Distribution) -> float:
        """Push ``symbols`` (any shape, flattened) with one distribution each; return their ideal
        cost in bits."""
        symbols = np.asarray(symbols).reshape(-1)
        if symbols.size != dist.size():
            raise EntropyCodingError(f"{symbols.size} symbols but {dist.size()} distributions")
        if not symbols.size:
            return 0.0
        coded = dist.to_coder(symbols)
        model, params = dist.model_and_params()
        self._coder.encode_reverse(coded, model, *params)
        cost = float(dist.cost_bits(symbols).sum())
        self.ideal_bits += cost
        return cost

    def pop_available(self, dist: Distribution) -> np.ndarray:
        """Pop, one at a time, the symbols that the words present determine, on a stack read from a
        prefix of its words (``from_prefix``): up to ``dist.size()`` symbols, fewer where the
        prefix ends. rANS keeps its state in [2^32, 2^64) and refills a word when a pop leaves it
        below 2^32; with the next word cut off the refill cannot happen, so a symbol is known
        exactly while the state holds 32 valid bits and unknown after."""
        symbols: list[int] = []
        for i in range(dist.size()):
            if self.num_valid_bits() < _WORD_BITS:
                break
            symbols.append(int(self.pop(dist.row(i), allow_empty=True)[0]))
        return np.asarray(symbols, dtype=np.int64)

    def pop(self, dist: Distribution, *, allow_empty: bool = False) -> np.ndarray:
        """Pop one symbol per distribution. Raises ``EmptyStackError`` if the stack is empty, or runs
        dry during the pop, unless ``allow_empty``."""
        n = dist.size()
        if not n:
            return np.zeros(0, dtype=np.int64)
        available = self.num_valid_bits()
        if not allow_empty and self.is_empty():
            raise EmptyStackError(f"cannot pop {n} symbols: the rANS stack is empty")
        model, params = dist.model_and_params()
        decoded = self._coder.decode(model, *params) if params else self._coder.decode(model, n)
        symbols = dist.from_coder(np.asarray(decoded))
        cost = float(dist.cost_bits(symbols).sum())
        # constriction never empties a stack that runs dry: its state gets stuck below the
        # precision, decoding the lowest symbol for free. A pop that crosses below 24 valid bits
        # ate into the guard of ``Stack()``; from below it, only the cost tells.
        slack = _OVERRUN_SLACK_BITS + _OVERRUN_SLACK_BITS_PER_SYMBOL * n
        dry = self.num_valid_bits() < _PRECISION_BITS
        crossed = available >= _PRECISION_BITS
        if not allow_empty and dry and (crossed or cost > available + slack):
            raise EmptyStackError(
                f"the rANS stack ran out: popping {n} symbols needed about {cost:.0f} bits but "
                f"only {available} were left (truncated stream or too few initial bits)"
            )
        self.ideal_bits -= cost
        return symbols
