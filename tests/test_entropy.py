"""The rANS entropy layer (``codec/entropy.py``): exact round trips, the coded size against the
ideal cost, bits-back, errors, and a golden stream.

Size bound (``num_bits() - ideal_bits``), reasoned and measured with constriction 0.5:
- ``num_bits`` counts whole 32-bit words, and the 64-bit rANS head holds up to ~40 bits that carry
  no information after the first push: at most 64 bits for the whole stack;
- per symbol, the 24-bit quantisation: the leaky Gaussian gives every one of its 2r+1 bins one unit
  of 2**-24, taking (2r+1)/2**24 of the mass from the others (0.011 bits a symbol at r = 2**16);
  categoricals are quantised like that (K units) plus rounding of p to 2**-24; uniforms of size s
  get floor(2**24 / s) units, costing log2(1 + s / 2**24) bits at most (0.0056 at s <= 2**16).
  We allow 1/32 bit a symbol; measured, the worst case over these draws is under 0.011.
- the other way, a rare symbol (p near 2**-20, the floor) may get a little more than p after
  rounding, so the stream can be shorter than ``ideal_bits``: up to ~0.09 bit each at the floor
  (measured); and the first symbols pushed on a fresh stack, while the state is below 2**24, cost
  less than -log2 p (about one symbol's worth, measured at most 31 bits here; see the xfail test
  for the unbounded case of a run of lowest symbols). We allow 48 bits plus 1/8 bit a symbol.
Measured over 120 streams of 20,000 symbols: at most 0.0092 bit a symbol above (the Gaussians'
leaky floor), at most 0.084 below (categorical floor symbols).
Uniforms of sizes just above a power of two near 2**24 cost up to one bit more per symbol (the
sizes must divide 2**24 to be exact); those are only round-tripped here, not size-checked.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from diffc.codec import entropy
from diffc.codec.entropy import EmptyStackError, EntropyCodingError, Stack

SETTINGS = settings(
    max_examples=60, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
HEAD_BITS = 64  # slack for the rANS head and rounding up to whole words
PER_SYMBOL_BITS = 1 / 32  # quantisation to 24 bits (see the module docstring)
RARE_SYMBOL_BITS = 0.125  # how much cheaper than -log2 p a floored symbol may code
BOTTOM_BITS = 48  # what the first pushes on a fresh stack may save (see the module docstring)


def rng_of(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def assert_size_near_ideal(stack: Stack, n: int) -> None:
    overhead = stack.num_bits() - stack.ideal_bits
    assert overhead <= HEAD_BITS + PER_SYMBOL_BITS * n, (overhead, n)
    assert overhead >= -BOTTOM_BITS - RARE_SYMBOL_BITS * n, (overhead, n)


def round_trip(symbols: np.ndarray, dist) -> Stack:
    """Push, serialise, parse, pop: the symbols come back and the stack ends empty."""
    stack = Stack()
    cost = stack.push(symbols, dist)
    assert cost == pytest.approx(stack.ideal_bits)
    assert cost == pytest.approx(float(dist.cost_bits(symbols).sum()))
    back = Stack.from_bytes(stack.to_bytes())
    popped = back.pop(dist)
    assert popped.dtype == np.int64
    np.testing.assert_array_equal(popped, np.asarray(symbols).reshape(-1))
    assert back.exhausted()
    assert back.ideal_bits == pytest.approx(-cost)
    return stack


# --- random distributions and symbols ------------------------------------------------------------


def random_gaussian(rng: np.random.Generator, n: int, max_radius: int):
    bin_width = float(np.exp(rng.uniform(-5, 5)))
    radius = int(rng.integers(1, max_radius + 1))
    means = rng.normal(size=n) * np.exp(rng.uniform(-2, 8)) * bin_width
    stds = np.exp(rng.uniform(-12, 10, size=n)) * bin_width
    dist = entropy.gaussian(means, stds, bin_width, radius=radius)
    # symbols near the mean, within the support: a draw from N(0, std) clipped to the radius
    spread = np.minimum(dist.std, radius)
    k = np.clip(np.round(rng.normal(size=n) * spread), -radius, radius).astype(np.int64)
    return dist.centre + k, dist


def random_categorical(rng: np.random.Generator, n: int, *, logits: bool, anywhere: bool):
    k = int(rng.integers(2, 300))
    if logits:
        dist = entropy.categorical_from_logits(rng.normal(size=(n, k)) * np.exp(rng.uniform(-3, 4)))
    else:
        dist = entropy.categorical(rng.dirichlet(np.full(k, np.exp(rng.uniform(-5, 2))), size=n))
    if anywhere:
        symbols = rng.integers(0, k, size=n)
    else:
        u = rng.uniform(size=(n, 1))
        symbols = np.minimum((np.cumsum(dist.probs, axis=1) < u).sum(axis=1), k - 1)
    return symbols, dist


def random_uniform(rng: np.random.Generator, n: int, max_size: int):
    sizes = rng.integers(2, max_size + 1, size=n)
    return rng.integers(0, sizes), entropy.uniform(sizes)


def random_push(rng: np.random.Generator, kind: str, n: int):
    if kind == "gaussian":
        return random_gaussian(rng, n, max_radius=1 << 16)
    if kind == "categorical":
        return random_categorical(rng, n, logits=False, anywhere=bool(rng.integers(2)))
    if kind == "logits":
        return random_categorical(rng, n, logits=True, anywhere=bool(rng.integers(2)))
    return random_uniform(rng, n, max_size=1 << 16)


SEEDS = st.integers(0, 2**32 - 1)
COUNTS = st.integers(1, 300)


@given(seed=SEEDS, n=COUNTS)
@SETTINGS
def test_gaussian_round_trip_and_size(seed: int, n: int) -> None:
    rng = rng_of(seed)
    symbols, dist = random_gaussian(rng, n, max_radius=1 << 16)
    stack = round_trip(symbols, dist)
    assert_size_near_ideal(stack, n)


@given(seed=SEEDS, n=st.integers(1, 20))
@SETTINGS
def test_gaussian_round_trip_up_to_the_largest_radius(seed: int, n: int) -> None:
    rng = rng_of(seed)
    radius = int(rng.choice([1, 2, (1 << 23) - 1, int(rng.integers(1, 1 << 23))]))
    means = rng.normal(size=n) * 1e4
    dist = entropy.gaussian(means, np.exp(rng.uniform(-3, 12, size=n)), 0.5, radius=radius)
    symbols = dist.centre + rng.integers(-radius, radius + 1, size=n)  # anywhere in the support
    round_trip(symbols, dist)


@given(seed=SEEDS, n=COUNTS, logits=st.booleans(), anywhere=st.booleans())
@SETTINGS
def test_categorical_round_trip_and_size(seed: int, n: int, logits: bool, anywhere: bool) -> None:
    symbols, dist = random_categorical(rng_of(seed), n, logits=logits, anywhere=anywhere)
    stack = round_trip(symbols, dist)
    assert_size_near_ideal(stack, n)


@given(seed=SEEDS, n=COUNTS)
@SETTINGS
def test_uniform_round_trip_and_size(seed: int, n: int) -> None:
    symbols, dist = random_uniform(rng_of(seed), n, max_size=1 << 16)
    stack = round_trip(symbols, dist)
    assert stack.ideal_bits == pytest.approx(float(np.log2(dist.sizes.astype(float)).sum()))
    assert_size_near_ideal(stack, n)


@given(seed=SEEDS, n=st.integers(1, 50))
@SETTINGS
def test_uniform_round_trip_of_any_size(seed: int, n: int) -> None:
    round_trip(*random_uniform(rng_of(seed), n, max_size=(1 << 24) - 1))


KINDS = st.sampled_from(["gaussian", "categorical", "logits", "uniform"])


@given(seed=SEEDS, plan=st.lists(st.tuples(KINDS, st.integers(0, 80)), min_size=1, max_size=8))
@SETTINGS
def test_mixed_pushes_pop_in_reverse(seed: int, plan: list[tuple[str, int]]) -> None:
    rng = rng_of(seed)
    pushed = [random_push(rng, kind, n) for kind, n in plan]
    stack = Stack()
    for symbols, dist in pushed:
        stack.push(symbols, dist)
    total = sum(n for _, n in plan)
    assert_size_near_ideal(stack, total)
    ideal = stack.ideal_bits
    for symbols, dist in reversed(pushed):
        np.testing.assert_array_equal(stack.pop(dist), symbols)
    assert stack.exhausted()
    assert abs(stack.ideal_bits) < 1e-6 * max(1.0, ideal)
    # the same from the serialised words
    stack = Stack()
    for symbols, dist in pushed:
        stack.push(symbols, dist)
    back = Stack.from_bytes(stack.to_bytes())
    for symbols, dist in reversed(pushed):
        np.testing.assert_array_equal(back.pop(dist), symbols)
    assert back.exhausted()
    assert back.ideal_bits == pytest.approx(-ideal)


# --- bits-back -----------------------------------------------------------------------------------


@given(seed=SEEDS, kind=KINDS, n=st.integers(1, 60), seal=st.booleans())
@SETTINGS
def test_bits_back_pop_then_push_restores_the_words(
    seed: int, kind: str, n: int, seal: bool
) -> None:
    rng = rng_of(seed)
    _, dist = random_push(rng, kind, n)
    # enough random words for any of these pops (at most 24 bits a symbol), last word nonzero
    words = rng.integers(0, 1 << 32, size=n + 4, dtype=np.uint64).astype(np.uint32)
    words[-1] |= 1
    if seal:
        words[-2:] = 0  # a sealed stack may end in zero words
    stack = Stack(words, seal=seal)
    before = stack.num_valid_bits()
    symbols = stack.pop(dist)
    assert symbols.shape == (n,)
    dist.to_coder(symbols)  # every popped symbol lies in the support
    popped_bits = before - stack.num_valid_bits()
    assert popped_bits == pytest.approx(-stack.ideal_bits, abs=HEAD_BITS + PER_SYMBOL_BITS * n)
    stack.push(symbols, dist)
    np.testing.assert_array_equal(stack.to_words(unseal=seal), words)
    assert abs(stack.ideal_bits) < 1e-6 * max(1.0, n)


def test_bits_back_samples_follow_the_distribution() -> None:
    """Popping from random words is sampling: a fair coin's pops are about half ones."""
    rng = rng_of(7)
    stack = Stack(rng.integers(1, 1 << 32, size=400, dtype=np.uint64).astype(np.uint32))
    bits = stack.pop(entropy.uniform(2, 10_000))
    assert 0.45 < bits.mean() < 0.55
    heavy = stack.pop(entropy.categorical(np.tile([0.9, 0.1], (2000, 1))))
    assert 0.07 < heavy.mean() < 0.13


# --- empty and overrun stacks --------------------------------------------------------------------


def test_pop_from_an_empty_stack_raises() -> None:
    with pytest.raises(EmptyStackError, match="cannot pop 3 symbols: the rANS stack is empty"):
        Stack.from_bytes(b"").pop(entropy.uniform(256, 3))
    # a fresh Stack() holds only its guard word: a costly pop runs dry at once
    with pytest.raises(EmptyStackError, match="popping 12 symbols needed about 96 bits but only 24"):
        Stack().pop(entropy.uniform(256, 12))
    stack = Stack()
    stack.push(np.array([1, 2]), entropy.uniform(10, 2))
    np.testing.assert_array_equal(stack.pop(entropy.uniform(10, 2)), [1, 2])
    assert stack.exhausted()
    with pytest.raises(EmptyStackError, match="the rANS stack ran out"):
        stack.pop(entropy.gaussian(np.zeros(3), np.full(3, 5.0), 1.0))


def test_exhausted_and_is_empty() -> None:
    stack = Stack()
    assert stack.exhausted() and not stack.is_empty()  # the guard word
    assert stack.to_words().size == 1 and stack.num_valid_bits() == 24
    stack.push(np.array([5]), entropy.uniform(7, 1))
    assert not stack.exhausted() and stack.num_valid_bits() > 0
    stack.pop(entropy.uniform(7, 1))
    assert stack.exhausted()
    assert Stack.from_bytes(b"").is_empty() and Stack.from_bytes(b"").exhausted()


def test_stream_whose_first_push_is_all_lowest_symbols_decodes() -> None:
    dist = entropy.uniform(256, 10)
    stack = Stack()
    stack.push(np.zeros(10, dtype=np.int64), dist)
    assert stack.num_bits() >= 80 + 32  # the guard word and every symbol's information
    np.testing.assert_array_equal(Stack.from_bytes(stack.to_bytes()).pop(dist), np.zeros(10))


def test_popping_zero_symbols_from_an_empty_stack_is_fine() -> None:
    assert Stack().pop(entropy.uniform(np.zeros(0, dtype=np.int64))).shape == (0,)


@pytest.mark.parametrize(
    "dist",
    [
        entropy.uniform(256, 1000),
        entropy.gaussian(np.zeros(500), np.full(500, 3.0), 1.0),
        entropy.categorical(np.tile([0.25, 0.25, 0.5], (2000, 1))),
    ],
    ids=["uniform", "gaussian", "categorical"],
)
def test_pop_needing_far_more_bits_than_the_stack_holds_raises(dist) -> None:
    words = np.array([0x12345678, 0x9ABCDEF0], dtype=np.uint32)
    assert Stack(words).num_valid_bits() == 63
    with pytest.raises(EmptyStackError, match="the rANS stack ran out: .* only 63 were left"):
        Stack(words).pop(dist)
    # the escape hatch for callers that pad on purpose
    assert Stack(words).pop(dist, allow_empty=True).shape == (dist.size(),)


def test_truncated_stream_pop_raises() -> None:
    rng = rng_of(11)
    dist = entropy.gaussian(rng.normal(size=4000) * 50, np.full(4000, 20.0), 1.0)
    symbols = np.round(rng.normal(size=4000) * 20).astype(np.int64) + dist.centre
    stack = Stack()
    stack.push(symbols, dist)
    data = stack.to_bytes()
    with pytest.raises(EmptyStackError, match="truncated stream or too few initial bits"):
        Stack.from_bytes(data[: len(data) // 2]).pop(dist)


def test_draining_pop_of_rare_symbols_is_not_an_overrun() -> None:
    """Symbols near probability 2**-23 code up to ~0.6 bit below -log2 p: a pop that empties the
    stack exactly must not mistake that for running dry."""
    n = 3000
    dist = entropy.gaussian(np.zeros(n), np.full(n, 3.0), 1.0)
    symbols = np.full(n, 16)  # 5.3 std out: p ~ 2**-23
    stack = Stack()
    stack.push(symbols, dist)
    assert stack.ideal_bits - stack.num_valid_bits() > 0.2 * n  # far more than 32 bits
    np.testing.assert_array_equal(Stack.from_bytes(stack.to_bytes()).pop(dist), symbols)


# --- errors --------------------------------------------------------------------------------------


def test_symbols_outside_the_support_are_refused() -> None:
    g = entropy.gaussian(np.array([10.2, -3.0]), np.array([1.0, 2.0]), 1.0, radius=5)
    np.testing.assert_array_equal(g.centre, [10, -3])
    Stack().push(np.array([15, -8]), g)  # both at the edge: fine
    with pytest.raises(EntropyCodingError, match=r"symbol 16 lies 6 bins from its mean.*\+-5 bins"):
        Stack().push(np.array([16, -3]), g)
    with pytest.raises(EntropyCodingError, match="symbol -9 lies -6 bins"):
        Stack().push(np.array([10, -9]), g)
    c = entropy.categorical(np.ones((2, 3)))
    for bad in ([0, 3], [-1, 0]):
        with pytest.raises(EntropyCodingError, match=r"categorical symbols must lie in \[0, 3\)"):
            Stack().push(np.array(bad), c)
    u = entropy.uniform(np.array([4, 7]))
    for bad in ([4, 0], [0, 7], [-1, 0]):
        with pytest.raises(EntropyCodingError, match=r"uniform symbols must lie in \[0, size\)"):
            Stack().push(np.array(bad), u)
    with pytest.raises(EntropyCodingError, match="3 symbols but 2 distributions"):
        Stack().push(np.zeros(3, dtype=np.int64), u)


def test_a_refused_push_leaves_the_stack_unchanged() -> None:
    stack = Stack()
    stack.push(np.array([3]), entropy.uniform(8, 1))
    words = stack.to_words().copy()
    with pytest.raises(EntropyCodingError):
        stack.push(np.array([1, 9]), entropy.uniform(8, 2))
    np.testing.assert_array_equal(stack.to_words(), words)
    assert stack.ideal_bits == pytest.approx(3.0)


def logits_quietly(logits: np.ndarray) -> entropy.Categorical:
    with np.errstate(all="raise"):  # refused before any inf - inf
        return entropy.categorical_from_logits(logits)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: entropy.gaussian(np.zeros(2), np.ones(2), 0.0), "bin width must be positive"),
        (lambda: entropy.gaussian(np.zeros(2), np.ones(2), float("inf")), "bin width"),
        (lambda: entropy.gaussian(np.zeros(2), np.ones(2), float("nan")), "bin width"),
        (lambda: entropy.gaussian(np.zeros(2), np.ones(2), 1.0, radius=0), r"radius must be in"),
        (lambda: entropy.gaussian(np.zeros(2), np.ones(2), 1.0, radius=1 << 23), "radius"),
        (lambda: entropy.gaussian(np.zeros(2), np.ones(3), 1.0), "2 means but 3 stds"),
        (lambda: entropy.gaussian(np.zeros(2), np.array([1.0, 0.0]), 1.0), "stds positive"),
        (lambda: entropy.gaussian(np.zeros(2), np.array([1.0, -1.0]), 1.0), "stds positive"),
        (lambda: entropy.gaussian(np.array([0, np.nan]), np.ones(2), 1.0), "means must be finite"),
        (lambda: entropy.gaussian(np.array([0, np.inf]), np.ones(2), 1.0), "means must be finite"),
        (lambda: entropy.categorical(np.ones(3)), r"shape \(n, K>=2\), not \(3,\)"),
        (lambda: entropy.categorical(np.ones((2, 1))), "K>=2"),
        (lambda: entropy.categorical(np.array([[1.0, -0.1]])), "nonnegative"),
        (lambda: entropy.categorical(np.array([[0.0, 0.0]])), "not all zero"),
        (lambda: entropy.categorical(np.array([[1.0, np.nan]])), "finite"),
        (lambda: entropy.categorical(np.ones((1, 4)), floor=0.25), "floor 0.25 is impossible"),
        (lambda: entropy.categorical(np.ones((1, 4)), floor=0.0), "floor 0.0 is impossible"),
        (lambda: entropy.categorical(np.ones((1, 4)), floor=1e-9), "at least 2\\*\\*-24"),
        (lambda: logits_quietly(np.array([[0.0, np.inf]])), "finite"),
        (lambda: entropy.uniform(1, 3), r"uniform sizes must lie in \[2, 2\*\*24\)"),
        (lambda: entropy.uniform(1 << 24, 3), "uniform sizes"),
    ],
)
def test_impossible_parameters_are_refused(call, message: str) -> None:
    with pytest.raises(EntropyCodingError, match=message):
        call()


def test_tiny_positive_stds_are_floored_not_refused() -> None:
    g = entropy.gaussian(np.array([0.0, 2.0]), np.array([1e-9, 1e-300]), 1.0)
    np.testing.assert_array_equal(g.std, [entropy.MIN_STD, entropy.MIN_STD])
    stack = round_trip(np.array([0, 2]), g)
    assert stack.ideal_bits < 1e-6  # the mean's bin holds all the mass


# --- ideal cost ----------------------------------------------------------------------------------


def test_gaussian_cost_is_minus_log2_of_the_bin_mass() -> None:
    g = entropy.gaussian(np.array([0.75, 0.75, 0.75]), np.array([1.5, 1.5, 1.5]), 0.5, radius=100)
    # in bins: mean 1.5, std 3; the grid point nearest the mean is 2 (rounding half to even)
    assert g.centre.tolist() == [2, 2, 2] and g.offset.tolist() == [-0.5] * 3
    k = np.array([2, -3, 9])
    mass = stats.norm.cdf(k + 0.5, 1.5, 3.0) - stats.norm.cdf(k - 0.5, 1.5, 3.0)
    np.testing.assert_allclose(g.cost_bits(k), -np.log2(mass), rtol=1e-9)


def test_gaussian_edge_bins_hold_the_tails_as_in_the_coder() -> None:
    n = 4000
    g = entropy.gaussian(np.zeros(n), np.full(n, 10.0), 1.0, radius=1)  # most mass beyond +-1.5
    edge, centre = np.full(n, 1), np.zeros(n, dtype=np.int64)
    assert g.cost_bits(edge)[0] == pytest.approx(-np.log2(stats.norm.sf(0.5, 0, 10)), rel=1e-9)
    assert g.cost_bits(centre)[0] == pytest.approx(
        -np.log2(stats.norm.cdf(0.5, 0, 10) - stats.norm.cdf(-0.5, 0, 10)), rel=1e-9
    )
    for symbols in (edge, centre):
        stack = Stack()
        stack.push(symbols, g)
        assert stack.num_valid_bits() == pytest.approx(stack.ideal_bits, rel=0.01)


def test_categorical_probabilities_are_floored_and_normalised() -> None:
    c = entropy.categorical(np.array([[1.0, 0.0, 0.0], [2.0, 6.0, 0.0]]))
    np.testing.assert_allclose(c.probs.sum(axis=1), 1.0, rtol=0, atol=1e-15)
    assert c.probs.min() >= entropy.DEFAULT_FLOOR * (1 - 1e-5)  # floored, then renormalised
    assert c.probs[1, 1] == pytest.approx(0.75, abs=1e-5)
    np.testing.assert_allclose(c.cost_bits(np.array([0, 1])), [0.0, -np.log2(0.75)], atol=1e-5)
    z = entropy.categorical_from_logits(np.array([[0.0, np.log(3.0)], [1000.0, 1000.0]]))
    np.testing.assert_allclose(z.probs, [[0.25, 0.75], [0.5, 0.5]], atol=1e-5)
    never = entropy.categorical_from_logits(np.array([[0.0, -np.inf]]))  # impossible, floored
    assert never.probs[0, 1] == pytest.approx(entropy.DEFAULT_FLOOR, rel=1e-5)


def test_float32_and_float64_parameters_give_the_same_stream() -> None:
    rng = rng_of(5)
    means = rng.normal(size=50).astype(np.float32) * 10
    stds = np.exp(rng.normal(size=50)).astype(np.float32)
    symbols = np.round(means).astype(np.int64)
    streams = []
    for dtype in (np.float32, np.float64):
        stack = Stack()
        stack.push(symbols, entropy.gaussian(means.astype(dtype), stds.astype(dtype), 1.0))
        streams.append(stack.to_bytes())
    assert streams[0] == streams[1]


# --- bytes and words -----------------------------------------------------------------------------


def test_bytes_round_trip_and_byte_order() -> None:
    stack = Stack()
    stack.push(np.arange(20) % 7, entropy.uniform(7, 20))
    data = stack.to_bytes()
    assert len(data) % 4 == 0 and len(data) * 8 == stack.num_bits()
    words = stack.to_words()
    assert data == b"".join(int(w).to_bytes(4, "little") for w in words)
    again = Stack.from_bytes(data)
    assert again.to_bytes() == data
    np.testing.assert_array_equal(again.to_words(), words)
    assert Stack.from_bytes(b"\x01\x00\x00\x00").to_words().tolist() == [1]
    assert Stack.from_bytes(b"").is_empty()


@pytest.mark.parametrize("length", [1, 2, 3, 5, 7, 10])
def test_odd_byte_lengths_are_refused(length: int) -> None:
    with pytest.raises(EntropyCodingError, match=f"whole 32-bit words, got {length} bytes"):
        Stack.from_bytes(b"\x01" * length)


def test_unsealed_data_ending_in_a_zero_word_is_an_entropy_error() -> None:
    for data in (bytes(4), b"\x05\x00\x00\x00" + bytes(4)):
        with pytest.raises(EntropyCodingError, match="invalid rANS data"):
            Stack.from_bytes(data)


def test_seal_keeps_trailing_zero_words() -> None:
    words = np.array([5, 0, 0], dtype=np.uint32)
    stack = Stack(words, seal=True)
    assert stack.to_words().tolist() == [5, 0, 0, 1]  # the seal word
    assert stack.to_words(unseal=True).tolist() == [5, 0, 0]
    assert Stack.from_bytes(words.astype("<u4").tobytes(), seal=True).to_bytes(unseal=True) == (
        words.astype("<u4").tobytes()
    )


# --- golden stream -------------------------------------------------------------------------------


def test_golden_rans_stream() -> None:
    """A fixed push sequence, byte for byte: any change in quantisation or coding shows here."""
    gauss = entropy.gaussian(np.array([0.3, -1.7, 2.2]), np.array([1.0, 0.5, 3.0]), 1.0, radius=16)
    cat = entropy.categorical(np.array([[0.1, 0.2, 0.7], [0.5, 0.25, 0.25]]))
    uni = entropy.uniform(10, 3)
    stack = Stack()
    stack.push(np.array([0, -2, 4]), gauss)
    stack.push(np.array([2, 0]), cat)
    stack.push(np.array([3, 7, 9]), uni)
    assert stack.to_bytes().hex() == "b324554d1b030000"
    assert stack.num_bits() == 64
    back = Stack.from_bytes(bytes.fromhex("b324554d1b030000"))
    assert back.pop(uni).tolist() == [3, 7, 9]
    assert back.pop(cat).tolist() == [2, 0]
    assert back.pop(gauss).tolist() == [0, -2, 4]
    assert back.exhausted()


def test_a_prefix_of_head_first_words_pops_the_first_symbols_exactly():
    """``to_bytes(head_first=True)``: every prefix of whole words pops a prefix of the symbols
    (``pop_available``), never a wrong one, growing with the prefix to all of them; less than the
    64-bit head pops nothing."""
    rng = np.random.default_rng(3)
    weights = np.arange(1, 129, dtype=np.float64) ** -1.2
    symbols = rng.choice(128, 3000, p=weights / weights.sum())
    stack = entropy.Stack()
    stack.push(symbols, entropy.categorical_iid(weights, symbols.size))
    data = stack.to_bytes(head_first=True)
    assert entropy.Stack.from_bytes(data, head_first=True).pop(entropy.categorical_iid(weights, symbols.size)).tolist() == symbols.tolist()
    assert entropy.Stack.from_prefix(data[:7]) is None
    counts = []
    for n in range(8, len(data) + 1, 36):
        got = entropy.Stack.from_prefix(data[:n]).pop_available(entropy.categorical_iid(weights, symbols.size))
        np.testing.assert_array_equal(got, symbols[: got.size])
        counts.append(got.size)
    assert counts == sorted(counts) and counts[0] < 20 and counts[-1] > 2900
