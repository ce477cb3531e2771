"""The ``.dfc`` container (``bitstreams/container.py``, ``docs/bitstream.md``): exact bytes, round
trips, one named ``BitstreamError`` per failure, truncation rules, and a fuzz test."""

from __future__ import annotations

import re
import struct
import time
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffc import bitstreams
from diffc.bitstreams import (
    DEFAULT_MAX_PIXELS,
    PARAM_FIELDS,
    BitstreamError,
    Container,
    CorruptStreamError,
    Header,
    LimitExceededError,
    Mode,
    NotAContainerError,
    TruncatedStreamError,
    UnsupportedVersionError,
)
from diffc.bitstreams import varint

HASH = bytes(range(8))


def make_header(mode: Mode = Mode.LOSSY, **changes: object) -> Header:
    fields: dict[str, object] = dict(
        mode=mode, height=2, width=3, channels=3, seed=7, model_id="tiny", model_hash=HASH,
        params={},
    )
    fields.update(changes)
    return Header(**fields)  # type: ignore[arg-type]


def raw_header(
    *,
    magic: bytes = b"DFC",
    version: int = bitstreams.VERSION,
    mode: int = 0,
    channels: int = 3,
    size: bytes = b"\x02\x03",
    seed: bytes = b"\x07",
    model_id: bytes = b"tiny",
    params: bytes = b"\x00",
    table: bytes = b"\x00",
) -> bytes:
    """A header built by hand from the layout in docs/bitstream.md, with a correct header CRC."""
    body = (
        magic + bytes([version, mode, channels]) + size + seed + bytes([len(model_id)]) + model_id
        + HASH + params + table
    )
    return body + struct.pack("<I", zlib.crc32(body))


def table_of(*chunks: bytes) -> bytes:
    out = varint.encode(len(chunks))
    for c in chunks:
        out += varint.encode(len(c)) + struct.pack("<I", zlib.crc32(c))
    return out


# --- golden stream -------------------------------------------------------------------------------

GOLDEN_HEADER = make_header(params={"chunk_bits": 300, "steps": 10}, version=3)
GOLDEN_CHUNKS = (b"\x01\x02\x03", b"", b"abcd")
GOLDEN_HEX = (
    "4446430300030203070474696e79000102030405060702000a01ac0203031d80bc5500000000000411cd82ed"
    "7af60c4201020361626364"
)


def test_golden_stream_bytes_are_pinned() -> None:
    data = bitstreams.write(GOLDEN_HEADER, GOLDEN_CHUNKS)
    assert data.hex() == GOLDEN_HEX, "the v3 byte layout changed: bump VERSION and update docs/"


def test_golden_stream_layout_field_by_field() -> None:
    """The golden bytes read by hand against the table in docs/bitstream.md."""
    data = bytes.fromhex(GOLDEN_HEX)
    fields = [
        ("magic", b"DFC"),
        ("version", b"\x03"),
        ("mode lossy", b"\x00"),
        ("channels", b"\x03"),
        ("height 2", b"\x02"),
        ("width 3", b"\x03"),
        ("seed 7", b"\x07"),
        ("model id length", b"\x04"),
        ("model id", b"tiny"),
        ("model hash", HASH),
        ("parameter count", b"\x02"),
        ("steps (id 0) = 10", b"\x00\x0a"),
        ("chunk_bits (id 1) = 300", b"\x01\xac\x02"),  # ids strictly increasing, not dict order
        ("chunk count", b"\x03"),
        ("chunk 0: length 3, crc32", b"\x03" + bytes.fromhex("1d80bc55")),
        ("chunk 1: length 0, crc32 of nothing", b"\x00" + bytes(4)),
        ("chunk 2: length 4, crc32", b"\x04" + bytes.fromhex("11cd82ed")),
    ]
    pos = 0
    for name, expected in fields:
        assert data[pos : pos + len(expected)] == expected, name
        pos += len(expected)
    (header_crc,) = struct.unpack("<I", data[pos : pos + 4])
    assert header_crc == zlib.crc32(data[:pos]) == 0x420CF67A
    assert data[pos + 4 :] == b"".join(GOLDEN_CHUNKS)
    assert pos + 4 == 48 == bitstreams.header_size(GOLDEN_HEADER, [3, 0, 4])


def test_golden_stream_reads_back() -> None:
    c = bitstreams.read(bytes.fromhex(GOLDEN_HEX))
    assert c.header == GOLDEN_HEADER
    assert list(c.header.params.items()) == [("steps", 10), ("chunk_bits", 300)]
    assert c.chunks == GOLDEN_CHUNKS
    assert (c.declared_chunks, c.header_bytes, c.total_bytes, c.complete) == (3, 48, 55, True)


def test_minimal_header_is_29_bytes_plus_the_model_id() -> None:
    # docs/bitstream.md: one-byte varints, no parameters, one chunk -> 29 bytes + len(model id)
    for model_id in ("m", "tiny", "x" * 64):
        header = make_header(model_id=model_id)
        assert bitstreams.header_size(header, [10]) == 29 + len(model_id)
        assert bitstreams.header_size(header, [10, 10]) == 34 + len(model_id)
        assert bitstreams.header_size(header, [10, 200]) == 35 + len(model_id)


def test_param_fields_match_the_spec() -> None:
    """docs/bitstream.md's table of coding parameters and PARAM_FIELDS say the same."""
    from pathlib import Path

    spec = (Path(__file__).resolve().parents[1] / "docs" / "bitstream.md").read_text()
    for mode, fields in PARAM_FIELDS.items():
        row = next(line for line in spec.splitlines() if line.startswith(f"| {mode.label} |"))
        documented = re.findall(r"(\d+) `(\w+)`", row)
        assert documented == [(str(i), name) for i, name in enumerate(fields)], mode


def test_hand_built_header_matches_write() -> None:
    chunks = (b"xyz", b"")
    assert bitstreams.write(make_header(), chunks) == raw_header(table=table_of(*chunks)) + b"xyz"


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(Mode))
def test_round_trip_every_mode_with_all_params(mode: Mode) -> None:
    params = {name: (i * 1_000_003) ** 3 % (1 << 64) for i, name in enumerate(PARAM_FIELDS[mode])}
    params[PARAM_FIELDS[mode][-1]] = (1 << 64) - 1
    header = make_header(
        mode, height=4000, width=1, channels=1, seed=(1 << 32) - 1, model_id="vdm-5M_v1.2",
        model_hash=b"\xff" * 8, params=params,
    )
    chunks = [b"", bytes(range(256)) * 3, b"\x00"]
    data = bitstreams.write(header, chunks)
    c = bitstreams.read(data)
    assert c.header == header
    assert dict(c.header.params) == params
    assert c.header.mode is mode
    assert list(c.chunks) == chunks
    assert c.complete and c.declared_chunks == 3
    assert c.total_bytes == len(data)
    assert c.header_bytes == bitstreams.header_size(header, [len(x) for x in chunks])
    assert data[c.header_bytes :] == b"".join(chunks)


def test_param_order_does_not_depend_on_dict_order() -> None:
    a = make_header(params={"steps": 5, "margin": 2, "chunk_bits": 3})
    b = make_header(params={"margin": 2, "chunk_bits": 3, "steps": 5})
    assert bitstreams.write(a, [b"q"]) == bitstreams.write(b, [b"q"])


@given(
    mode=st.sampled_from(list(Mode)),
    height=st.integers(1, 9000),
    width=st.integers(1, 9000),
    channels=st.sampled_from([1, 3]),
    seed=st.integers(0, (1 << 32) - 1),
    model_id=st.text("abcXYZ019._-", min_size=1, max_size=64),
    model_hash=st.binary(min_size=8, max_size=8),
    data=st.data(),
    chunks=st.lists(st.binary(max_size=300), max_size=6),
)
@settings(max_examples=100, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_random_headers(
    mode, height, width, channels, seed, model_id, model_hash, data, chunks
) -> None:
    names = data.draw(st.lists(st.sampled_from(PARAM_FIELDS[mode]), unique=True))
    params = {n: data.draw(st.integers(0, (1 << 64) - 1)) for n in names}
    header = Header(mode, height, width, channels, seed, model_id, model_hash, params)
    stream = bitstreams.write(header, chunks)
    c = bitstreams.read(stream)
    assert (c.header, list(c.chunks), c.complete) == (header, chunks, True)
    assert c.header_bytes == bitstreams.header_size(header, [len(x) for x in chunks])
    assert c.header_bytes + sum(map(len, chunks)) == len(stream)


# --- header validation when writing --------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"channels": 2}, "channels must be 1 or 3, not 2"),
        ({"height": 0}, "image size must be positive, not 0x3"),
        ({"width": -1}, "image size must be positive"),
        ({"seed": 1 << 32}, "seed must be a 32-bit unsigned integer"),
        ({"model_id": ""}, "model id '' must be"),
        ({"model_id": "a b"}, "model id 'a b'"),
        ({"model_id": "x" * 65}, "1-64"),
        ({"model_hash": b"1234567"}, "model hash must be 8 bytes"),
        ({"params": {"image_crc32": 1}}, "lossy streams have no parameter 'image_crc32'"),
        ({"params": {"steps": 1 << 64}}, "parameter steps must fit in 64 unsigned bits"),
        ({"params": {"steps": -1}}, "parameter steps must fit"),
    ],
)
def test_invalid_headers_are_refused(changes: dict, message: str) -> None:
    with pytest.raises(BitstreamError, match=message.replace("(", r"\(")):
        make_header(**changes)


# --- reading: every failure is a named BitstreamError -------------------------------------------


def read_error(data: bytes, **kw: object) -> BitstreamError:
    with pytest.raises(BitstreamError) as info:
        bitstreams.read(data, **kw)  # type: ignore[arg-type]
    return info.value


def test_valid_hand_built_header_reads() -> None:
    c = bitstreams.read(raw_header(table=table_of(b"ab")) + b"ab")
    assert (c.header.height, c.header.width, c.header.seed, c.chunks) == (2, 3, 7, (b"ab",))


Corrupt, Unsupported, NotDFC = CorruptStreamError, UnsupportedVersionError, NotAContainerError


@pytest.mark.parametrize(
    ("data", "kind", "message"),
    [
        (b"", TruncatedStreamError, "the stream is empty"),
        (b"PK\x03\x04rest", NotDFC, "missing the 'DFC' magic"),
        (b"dfc\x01", NotDFC, "magic"),
        (raw_header(magic=b"DFX"), NotDFC, "magic"),
        (raw_header(version=2), Unsupported, "format version 2 is not supported .*version 3"),
        (raw_header(version=8), Unsupported, "format version 8 is not supported .*version 3, 4, 5, 6 or 7"),
        (raw_header(version=0), Unsupported, "format version 0"),
        (raw_header(mode=3), Corrupt, "unknown mode 3 at byte 4"),
        (raw_header(channels=2), Corrupt, "channel count 2 at byte 5 is not 1 or 3"),
        (raw_header(channels=0), Corrupt, "channel count 0"),
        (raw_header(size=b"\x00\x03"), Corrupt, "image size 0x3 is empty"),
        (raw_header(size=b"\x03\x00"), Corrupt, "image size 3x0 is empty"),
        (raw_header(seed=varint.encode(1 << 32)), Corrupt, "seed 4294967296 does not fit"),
        (raw_header(model_id=b""), Corrupt, "model id b'' is not a valid model name"),
        (raw_header(model_id=b"a/b"), Corrupt, "model id b'a/b'"),
        (raw_header(model_id=b"\xff\xfe"), Corrupt, "not a valid model name"),
        (raw_header(params=b"\x07" + bytes(14)), Corrupt, "7 coding parameters declared; lossy"),
        (raw_header(params=b"\x01\x07\x05"), Corrupt, "parameter id 7 at byte 23 is unknown"),
        (raw_header(mode=2, params=b"\x01\x04\x05"), Corrupt, "parameter id 4 .*unknown"),
        (raw_header(params=b"\x02\x02\x05\x01\x05"), Corrupt, "id 1 at byte 25 .*out of order"),
        (raw_header(params=b"\x02\x02\x05\x02\x05"), Corrupt, "id 2 at byte 25 .*out of order"),
        (raw_header(size=b"\x82\x00\x03"), Corrupt, "image height at byte 6 is not minimally"),
        (raw_header(size=b"\x02\x83\x00"), Corrupt, "image width at byte 7 is not minimally"),
        (raw_header(seed=b"\x87\x00"), Corrupt, "seed at byte 8 is not minimally"),
        (raw_header(params=b"\x81\x00"), Corrupt, "parameter count at byte 22 is not minimal"),
        (raw_header(params=b"\x01\x00\x85\x00"), Corrupt, "parameter steps at byte 24 is not"),
        (raw_header(table=b"\x80\x00"), Corrupt, "chunk count at byte 23 is not minimally"),
        (
            raw_header(table=b"\x01\x81\x00" + bytes(4)) + b"\x01",
            Corrupt,
            "length of chunk 0 at byte 24 is not minimally",
        ),
    ],
)
def test_read_errors_name_what_and_where(data: bytes, kind: type, message: str) -> None:
    err = read_error(data)
    assert type(err) is kind
    assert re.search(message, str(err)), str(err)


def test_header_crc_mismatch() -> None:
    good = bitstreams.write(make_header(), [b"abc"])
    # the seed, a letter of the model id (case flip), the model hash, a chunk's CRC, the header CRC
    for pos in (8, 12, 15, len(good) - 8, len(good) - 7, len(good) - 4):
        bad = bytearray(good)
        bad[pos] ^= 0x20
        err = read_error(bytes(bad))
        assert type(err) is CorruptStreamError, pos
        assert "header checksum mismatch" in str(err)


def test_chunk_crc_mismatch_names_the_chunk() -> None:
    header = make_header(Mode.LOSSLESS_VDM)
    data = bytearray(bitstreams.write(header, [b"first", b"second", b"third"]))
    start = bitstreams.header_size(header, [5, 6, 5])
    data[start + 5 + 2] ^= 0x01  # inside "second"
    err = read_error(bytes(data))
    assert type(err) is CorruptStreamError
    assert f"checksum mismatch in chunk 1 (bytes {start + 5}-{start + 11})" in str(err)


def test_chunk_crc_mismatch_in_a_lossy_stream_is_an_error_not_a_truncation() -> None:
    data = bytearray(bitstreams.write(make_header(), [b"aaaa", b"bbbb"]))
    data[-1] ^= 0x80
    err = read_error(bytes(data))
    assert type(err) is CorruptStreamError and "chunk 1" in str(err)


@pytest.mark.parametrize("mode", list(Mode))
@pytest.mark.parametrize("extra", [b"\x00", b"junk!"])
def test_trailing_bytes_are_refused(mode: Mode, extra: bytes) -> None:
    data = bitstreams.write(make_header(mode), [b"abc", b"de"]) + extra
    err = read_error(data)
    assert type(err) is CorruptStreamError
    assert f"{len(extra)} unexpected bytes after the last chunk" in str(err)


def test_pixel_limit() -> None:
    header = make_header(height=100, width=50)
    data = bitstreams.write(header, [b"x"])
    assert bitstreams.read(data, max_pixels=5000).header.pixels == 5000
    err = read_error(data, max_pixels=4999)
    assert type(err) is LimitExceededError
    assert "image size 100x50 exceeds the limit of 4999 pixels" in str(err)
    # the default limit is Pillow's: 9459 x 9459 = 89,472,681 passes, 9460 x 9460 does not
    assert DEFAULT_MAX_PIXELS == 89_478_485
    assert bitstreams.read(bitstreams.write(make_header(height=9459, width=9459), [])).complete
    assert type(read_error(bitstreams.write(make_header(height=9460, width=9460), []))) is (
        LimitExceededError
    )


def test_pixel_limit_is_checked_before_the_rest_of_the_header() -> None:
    # a huge size in a stream cut right after it: the limit, not truncation, is reported
    data = b"DFC" + bytes([bitstreams.VERSION]) + b"\x00\x03" + varint.encode(1 << 40) + varint.encode(1 << 40)
    err = read_error(data)
    assert type(err) is LimitExceededError


# --- truncation ----------------------------------------------------------------------------------

CHUNKS = (b"0123456789", b"", b"abcdef", b"Z" * 130, b"!")


@pytest.mark.parametrize("mode", list(Mode))
def test_cut_inside_the_header_is_truncation(mode: Mode) -> None:
    header = make_header(mode, params={PARAM_FIELDS[mode][0]: 1000, PARAM_FIELDS[mode][2]: 3})
    data = bitstreams.write(header, CHUNKS)
    header_bytes = bitstreams.header_size(header, [len(c) for c in CHUNKS])
    for cut in range(1, header_bytes):
        with pytest.raises(TruncatedStreamError) as info:
            bitstreams.read(data[:cut])
        msg = str(info.value)
        assert "stream ends inside" in msg or "does not fit" in msg, (cut, msg)


def test_cut_inside_a_field_names_the_field() -> None:
    data = bitstreams.write(make_header(), [b"abc"])
    cases = {
        4: "the mode at byte 4",
        9: "the model id length at byte 9",
        12: "the model id at byte 10",
        15: "the model hash at byte 14",
        len(data) - 5: "the header checksum at byte",
    }
    for cut, where in cases.items():
        with pytest.raises(TruncatedStreamError, match=where):
            bitstreams.read(data[:cut])


def test_lossy_cut_anywhere_after_the_header_keeps_the_complete_chunks() -> None:
    header = make_header(Mode.LOSSY, params={"steps": 20, "chunk_bits": 4096})
    data = bitstreams.write(header, CHUNKS)
    start = bitstreams.header_size(header, [len(c) for c in CHUNKS])
    ends = [start + 10, start + 10, start + 16, start + 146, start + 147]  # where each chunk ends
    for cut in range(start, len(data) + 1):
        c = bitstreams.read(data[:cut])
        expected = sum(1 for end in ends if end <= cut)
        assert c.chunks == CHUNKS[:expected], cut
        assert c.declared_chunks == 5
        assert c.complete is (expected == 5)
        assert c.total_bytes == cut
        assert c.header_bytes == start
        assert c.header == header
    # between chunks exactly: the empty chunk 1 is complete as soon as chunk 0 is
    assert bitstreams.read(data[: start + 10]).chunks == (b"0123456789", b"")
    assert bitstreams.read(data[: start + 9]).chunks == ()


@pytest.mark.parametrize("mode", [Mode.LOSSLESS_VDM, Mode.LOSSLESS_ARDM])
def test_lossless_cut_anywhere_is_truncation(mode: Mode) -> None:
    header = make_header(mode, params={"steps": 1000, "image_crc32": 0xDEADBEEF})
    data = bitstreams.write(header, CHUNKS)
    start = bitstreams.header_size(header, [len(c) for c in CHUNKS])
    for cut in range(1, len(data)):
        with pytest.raises(TruncatedStreamError) as info:
            bitstreams.read(data[:cut])
        if cut >= start:
            assert "must be complete" in str(info.value), cut
    assert bitstreams.read(data).complete


def test_lossless_truncation_message_names_the_chunk() -> None:
    header = make_header(Mode.LOSSLESS_ARDM)
    data = bitstreams.write(header, [b"abcd", b"efgh"])
    with pytest.raises(TruncatedStreamError) as info:
        bitstreams.read(data[:-3])
    assert "chunk 1 of 2 needs 3 more bytes; a lossless-ardm stream must be complete" in str(
        info.value
    )


def test_magic_prefix_is_truncation_and_other_short_data_is_not_a_container() -> None:
    for cut in (1, 2):
        with pytest.raises(TruncatedStreamError, match="inside the magic"):
            bitstreams.read(b"DFC"[:cut])
    for data in (b"X", b"DX", b"D\x00"):
        with pytest.raises(NotAContainerError):
            bitstreams.read(data)


# --- no large allocation from declared sizes -----------------------------------------------------


def peak_allocation(data: bytes) -> tuple[int, BaseException | Container]:
    tracemalloc.start()
    try:
        try:
            result: BaseException | Container = bitstreams.read(data)
        except BitstreamError as exc:
            result = exc
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, result


LIMIT = 1 << 20  # 1 MiB


def test_huge_declared_chunk_count_allocates_nothing() -> None:
    for count in ((1 << 64) - 1, 1 << 40, 10_000_000):
        data = raw_header(table=varint.encode(count)) + bytes(100)
        peak, result = peak_allocation(data)
        assert isinstance(result, TruncatedStreamError), result
        assert f"chunk table of {count} entries does not fit" in str(result)
        assert peak < LIMIT, peak


def test_huge_declared_image_allocates_nothing() -> None:
    size = varint.encode((1 << 64) - 1) + varint.encode((1 << 64) - 1)
    peak, result = peak_allocation(raw_header(size=size))
    assert isinstance(result, LimitExceededError)
    assert peak < LIMIT


def test_huge_declared_chunk_length_allocates_nothing() -> None:
    table = varint.encode(2) + varint.encode(1 << 62) + bytes(4) + varint.encode((1 << 64) - 1)
    table += bytes(4)
    for mode, expected in ((0, Container), (1, TruncatedStreamError)):
        peak, result = peak_allocation(raw_header(mode=mode, table=table) + bytes(1000))
        assert isinstance(result, expected), result
        assert peak < LIMIT
        if isinstance(result, Container):
            assert (result.chunks, result.declared_chunks, result.complete) == ((), 2, False)


def test_large_valid_stream_reads_without_copies_of_the_whole() -> None:
    chunk = bytes(4 << 20)
    data = bitstreams.write(make_header(Mode.LOSSLESS_VDM), [chunk])
    peak, result = peak_allocation(data)
    assert isinstance(result, Container) and result.chunks == (chunk,)
    assert peak < 2 * len(chunk) + LIMIT  # the chunk itself, once (plus slack)


# --- fuzz ----------------------------------------------------------------------------------------

FUZZ_BASES = (
    bitstreams.write(make_header(Mode.LOSSY, params={"steps": 50, "chunk_bits": 2048}), CHUNKS),
    bitstreams.write(
        make_header(Mode.LOSSLESS_VDM, height=640, width=480, seed=123456,
                    params={"steps": 1000, "image_crc32": 0x89ABCDEF, "seed_patches": 4}),
        [bytes(range(40)), b"\xff" * 9],
    ),
    bitstreams.write(make_header(Mode.LOSSLESS_ARDM, channels=1, model_id="ardm.v2"), [b"zz"]),
    bitstreams.write(make_header(Mode.LOSSY), []),
    bytes.fromhex(GOLDEN_HEX),
)

# (operation, position, argument): position wraps modulo the length; the argument is a bit index,
# a byte value, bytes to insert or a count to delete
OPS = ("flip", "set", "insert", "delete", "cut")
mutation = st.tuples(
    st.sampled_from(OPS),
    st.integers(0, 1 << 16),
    st.integers(0, 255),
    st.binary(min_size=1, max_size=8),
)


def mutate(data: bytes, ops: list[tuple]) -> bytes:
    out = bytearray(data)
    for op, pos, arg, blob in ops:
        pos %= len(out) + 1
        if op == "insert":
            out[pos:pos] = blob
        elif op == "cut":
            del out[pos:]
        elif pos == len(out):
            continue
        elif op == "flip":
            out[pos] ^= 1 << (arg % 8)
        elif op == "set":
            out[pos] = arg
        elif op == "delete":
            del out[pos : pos + 1 + arg % 8]
    return bytes(out)


@given(base=st.sampled_from(FUZZ_BASES), ops=st.lists(mutation, min_size=1, max_size=4))
@settings(max_examples=1000, derandomize=True, deadline=None, database=None)
def test_fuzz_mutations_raise_only_bitstream_errors(base: bytes, ops: list[tuple]) -> None:
    data = mutate(base, ops)
    start = time.perf_counter()
    try:
        c = bitstreams.read(data)
    except BitstreamError as exc:
        assert str(exc), "every error has a message"
        return
    finally:
        assert time.perf_counter() - start < 5.0  # no hang (a read takes about a millisecond; a loaded CI box pauses)
    # what reads is the untouched stream, or its header and complete chunks in a lossy prefix
    assert c.total_bytes == len(data)
    if c.complete:
        assert bitstreams.write(c.header, c.chunks) == data
    else:
        assert c.header.mode is Mode.LOSSY
        used = c.header_bytes + sum(map(len, c.chunks))
        assert data[:used] == base[:used]


def test_fuzz_with_plain_random_data_is_fast() -> None:
    import random

    rng = random.Random(1234)
    seen: dict[type, int] = {}
    start = time.perf_counter()
    for i in range(3000):
        base = FUZZ_BASES[i % len(FUZZ_BASES)]
        if i % 3 == 0:
            data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 80)))
            if i % 2:
                data = b"DFC\x01" + data
        else:
            data = bytearray(base)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.getrandbits(8)
            data = bytes(data[: rng.randrange(len(data) + 1)])
        try:
            bitstreams.read(data)
        except BitstreamError as exc:
            seen[type(exc)] = seen.get(type(exc), 0) + 1
    elapsed = time.perf_counter() - start
    assert elapsed < 5.0
    # the random inputs reach every kind of error, not just the magic check
    kinds = {NotAContainerError, UnsupportedVersionError, CorruptStreamError, TruncatedStreamError}
    assert kinds <= set(seen), seen
    assert seen[CorruptStreamError] > 100 and seen[TruncatedStreamError] > 100


@pytest.mark.parametrize(
    "mode, version, params, expected",
    [
        (Mode.LOSSY, 6, {"exact": 1}, True),
        (Mode.LOSSY, 6, {"exact": 0}, False),
        (Mode.LOSSY, 5, {}, False),
        (Mode.LOSSLESS_VDM, 5, {"exact": 1}, True),
        (Mode.LOSSY, 6, {"exact": 2}, "the exact flag is 2, not 0 or 1"),
        (Mode.LOSSY, 4, {"exact": 1}, "version-4 stream; exact lossy streams exist from version 6"),
        (Mode.LOSSLESS_ARDM, 5, {"exact": 1}, "exact lossless-ardm streams exist from version 6"),
    ],
)
def test_exact_flag(mode, version, params, expected):
    header = bitstreams.Header(mode, 2, 2, 3, 0, "m", b"\0" * 8, params, version=version)
    if isinstance(expected, bool):
        assert bitstreams.exact_flag(header) is expected
    else:
        with pytest.raises(bitstreams.CorruptStreamError, match=expected):
            bitstreams.exact_flag(header)
