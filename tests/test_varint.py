"""Unsigned LEB128 varints (``bitstreams/varint.py``): exact bytes, one form per value, named
errors."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diffc.bitstreams import varint
from diffc.bitstreams.errors import BitstreamError, CorruptStreamError, TruncatedStreamError

U64 = st.integers(min_value=0, max_value=(1 << 64) - 1)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (16383, "ff7f"),
        (16384, "808001"),
        ((1 << 32) - 1, "ffffffff0f"),
        (1 << 63, "80808080808080808001"),
        ((1 << 64) - 1, "ffffffffffffffffff01"),
    ],
)
def test_known_encodings(value: int, encoded: str) -> None:
    assert varint.encode(value).hex() == encoded
    assert varint.decode(bytes.fromhex(encoded), 0, "x") == (value, len(encoded) // 2)


@pytest.mark.parametrize("value", [-1, 1 << 64, 1 << 70])
def test_encode_refuses_values_outside_u64(value: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        varint.encode(value)


@given(st.lists(U64, max_size=20), st.binary(max_size=4))
@settings(max_examples=100, derandomize=True)
def test_round_trip_of_concatenated_varints(values: list[int], prefix: bytes) -> None:
    data = prefix + b"".join(varint.encode(v) for v in values)
    pos = len(prefix)
    decoded = []
    for v in values:
        value, new_pos = varint.decode(data, pos, "v")
        assert new_pos - pos == len(varint.encode(v)) == max(1, -(-v.bit_length() // 7))
        decoded.append(value)
        pos = new_pos
    assert decoded == values
    assert pos == len(data)


def test_decode_reads_from_a_memoryview_at_an_offset() -> None:
    data = memoryview(b"\xff\xff" + varint.encode(1000) + b"\x05")
    assert varint.decode(data, 2, "x") == (1000, 4)
    assert varint.decode(data, 4, "x") == (5, 5)


@pytest.mark.parametrize("encoded", ["8000", "ff00", "808000", "ff8000", "80808080808080808000"])
def test_non_minimal_encodings_are_refused(encoded: str) -> None:
    with pytest.raises(CorruptStreamError, match="the width at byte 1 is not minimally encoded"):
        varint.decode(b"\x00" + bytes.fromhex(encoded), 1, "the width")


@pytest.mark.parametrize("encoded", ["", "80", "ffff", "ffffffffffffffffff"])
def test_truncated_varints_are_named(encoded: str) -> None:
    with pytest.raises(TruncatedStreamError, match="the stream ends inside the seed at byte 0"):
        varint.decode(bytes.fromhex(encoded), 0, "the seed")


@pytest.mark.parametrize(
    "encoded",
    [
        "ffffffffffffffffff02",  # 2**64: ten bytes, but over 64 bits
        "ffffffffffffffffff7f",
        "ffffffffffffffffff8001",  # an eleventh byte
        "80" * 10 + "01",
    ],
)
def test_varints_over_64_bits_are_refused(encoded: str) -> None:
    with pytest.raises(CorruptStreamError, match="the height at byte 0 is longer than a 64-bit"):
        varint.decode(bytes.fromhex(encoded), 0, "the height")


@given(st.binary(max_size=16), st.integers(min_value=0, max_value=16))
@settings(max_examples=300, derandomize=True)
def test_decode_of_any_bytes_is_a_value_or_a_bitstream_error(data: bytes, offset: int) -> None:
    try:
        value, end = varint.decode(data, offset, "x")
    except BitstreamError:
        return
    # whatever decodes is the one canonical encoding of its value
    assert data[offset:end] == varint.encode(value)
