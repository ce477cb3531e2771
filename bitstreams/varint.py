"""Unsigned LEB128 integers: 7 bits a byte, low bits first, high bit set on all but the last byte.

Only the shortest encoding of each value is accepted, so that every stream has one byte form.
"""

from __future__ import annotations

from diffc.bitstreams.errors import CorruptStreamError, TruncatedStreamError

MAX_BYTES = 10  # enough for any value below 2**64


def encode(value: int) -> bytes:
    """The LEB128 bytes of ``0 <= value < 2**64``."""
    if not 0 <= value < 1 << 64:
        raise ValueError(f"varint out of range: {value}")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def decode(data: bytes | memoryview, offset: int, what: str) -> tuple[int, int]:
    """Read one varint at ``offset``; return ``(value, offset after it)``. ``what`` names the field."""
    value = 0
    for i in range(MAX_BYTES):
        if offset + i >= len(data):
            raise TruncatedStreamError(f"truncated: the stream ends inside {what} at byte {offset} "
                                       f"(it needs at least {offset + i + 1} bytes, it has {len(data)})")
        byte = data[offset + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise CorruptStreamError(f"{what} at byte {offset} is not minimally encoded")
            if value >= 1 << 64:
                break
            return value, offset + i + 1
    raise CorruptStreamError(f"{what} at byte {offset} is longer than a 64-bit integer")
