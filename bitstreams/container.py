"""The ``.dfc`` container: a small header, a chunk table and the chunks (format versions 3 and 4).

The byte layout is specified in ``docs/bitstream.md``; this module is its only implementation. It
knows nothing of models or coders: chunks are opaque bytes, coding parameters are named unsigned
integers from a fixed per-mode field list. Reading checks every count and size against the bytes
present and a pixel limit before allocating anything.

Versions 3 and 4 share the byte layout; they differ in how the lossy coder draws its shared
randomness (``codec/randomness.py``), so the header keeps the version for the decoder to choose by.
Writers emit ``VERSION``; the reader accepts ``OLDEST_VERSION`` .. ``VERSION``.
"""

from __future__ import annotations

import enum
import re
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from diffc.bitstreams import varint
from diffc.bitstreams.errors import (
    StreamMismatchError,
    BitstreamError,
    CorruptStreamError,
    LimitExceededError,
    NotAContainerError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

MAGIC = b"DFC"
VERSION = 7  # 7: exact streams code pixels with the VDM decoder's softmax (``exact_coding``), and
# lossy chunks hold their rANS words head first, so that any prefix of a chunk decodes;
# 6: lossy (its lossless tail) and lossless-ardm streams may be exact too;
# 5: lossless-vdm streams may be exact (integer network and tables: field "exact");
# 4: lossy streams draw from the format's Philox generator (3: from jax.random)
OLDEST_VERSION = 3  # the oldest version this reader decodes
MODEL_HASH_BYTES = 8
MAX_SEED = (1 << 32) - 1
DEFAULT_MAX_PIXELS = 89_478_485  # Pillow's decompression-bomb limit (Image.MAX_IMAGE_PIXELS)
_MODEL_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CHUNK_ENTRY_MIN_BYTES = 5  # a one-byte length and a 4-byte CRC


class Mode(enum.IntEnum):
    """What the chunks hold, and so which coder reads them."""

    LOSSY = 0
    LOSSLESS_VDM = 1
    LOSSLESS_ARDM = 2

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")

    @property
    def progressive(self) -> bool:
        """A truncated progressive stream still decodes from its complete chunks."""
        return self is Mode.LOSSY


# Coding parameters each mode may store, by field id (the index). Append only: a reader of this
# version rejects ids it does not know, so a new field that older readers must not ignore needs
# a new format version.
PARAM_FIELDS: Mapping[Mode, tuple[str, ...]] = {
    Mode.LOSSY: ("steps", "chunk_bits", "margin", "lossless_tail", "exact"),
    Mode.LOSSLESS_VDM: ("steps", "image_crc32", "patch_size", "seed_patches", "max_group", "context", "exact"),
    Mode.LOSSLESS_ARDM: ("steps", "image_crc32", "order", "exact"),
}

# The version from which a mode's field is required (older streams lack it and mean its default, 0).
PARAM_SINCE: Mapping[tuple[Mode, str], int] = {
    (Mode.LOSSLESS_VDM, "exact"): 5,
    (Mode.LOSSY, "exact"): 6,
    (Mode.LOSSLESS_ARDM, "exact"): 6,
}


@dataclass(frozen=True)
class Header:
    """Everything a decoder needs before the first chunk."""

    mode: Mode
    height: int
    width: int
    channels: int
    seed: int
    model_id: str
    model_hash: bytes
    params: Mapping[str, int] = field(default_factory=dict)
    version: int = VERSION  # the format version the stream declares; writers leave the default

    def __post_init__(self) -> None:
        if not OLDEST_VERSION <= self.version <= VERSION:
            raise BitstreamError(f"format version {self.version} is not one of {_readable_versions()}")
        if self.channels not in (1, 3):
            raise BitstreamError(f"channels must be 1 or 3, not {self.channels}")
        if self.height < 1 or self.width < 1:
            raise BitstreamError(f"image size must be positive, not {self.height}x{self.width}")
        if not 0 <= self.seed <= MAX_SEED:
            raise BitstreamError(f"seed must be a 32-bit unsigned integer, not {self.seed}")
        if not _MODEL_ID.fullmatch(self.model_id):
            raise BitstreamError(f"model id {self.model_id!r} must be 1-64 of [A-Za-z0-9._-]")
        if len(self.model_hash) != MODEL_HASH_BYTES:
            raise BitstreamError(f"model hash must be {MODEL_HASH_BYTES} bytes")
        known = PARAM_FIELDS[self.mode]
        for name, value in self.params.items():
            if name not in known:
                raise BitstreamError(f"{self.mode.label} streams have no parameter {name!r}")
            if not 0 <= value < 1 << 64:
                raise BitstreamError(f"parameter {name} must fit in 64 unsigned bits, not {value}")

    @property
    def pixels(self) -> int:
        return self.height * self.width


@dataclass(frozen=True)
class Container:
    """A parsed stream. ``chunks`` holds the complete, checked chunks present; a truncated
    progressive stream has fewer than ``declared_chunks``, and ``partial`` holds the bytes present
    of the first incomplete one (unchecked: its checksum covers the whole chunk)."""

    header: Header
    chunks: tuple[bytes, ...]
    declared_chunks: int
    header_bytes: int
    total_bytes: int
    partial: bytes = b""

    @property
    def complete(self) -> bool:
        return len(self.chunks) == self.declared_chunks


def write(header: Header, chunks: Sequence[bytes]) -> bytes:
    """Serialise ``header`` and ``chunks`` into one stream."""
    return _header_bytes(header, [(len(c), zlib.crc32(c)) for c in chunks]) + b"".join(chunks)


def header_size(header: Header, chunk_lengths: Sequence[int]) -> int:
    """Bytes taken by the header and chunk table for chunks of these lengths (for rate control)."""
    table = [(n, 0) for n in chunk_lengths]  # a CRC is 4 bytes whatever its value
    return len(_header_bytes(header, table))


def _header_bytes(header: Header, table: Sequence[tuple[int, int]]) -> bytes:
    """The header and chunk table, ``table`` holding each chunk's (length, crc32)."""
    model_id = header.model_id.encode("ascii")
    out = bytearray(MAGIC)
    out += bytes([header.version, header.mode, header.channels])
    out += varint.encode(header.height) + varint.encode(header.width) + varint.encode(header.seed)
    out += bytes([len(model_id)]) + model_id + header.model_hash
    known = PARAM_FIELDS[header.mode]
    out += varint.encode(len(header.params))
    for name in sorted(header.params, key=known.index):
        out += bytes([known.index(name)]) + varint.encode(header.params[name])
    out += varint.encode(len(table))
    for length, crc in table:
        out += varint.encode(length) + struct.pack("<I", crc)
    out += struct.pack("<I", zlib.crc32(out))
    return bytes(out)


def _readable_versions() -> str:
    """The versions this reader accepts, for messages: "3 or 4"."""
    versions = [str(v) for v in range(OLDEST_VERSION, VERSION + 1)]
    return " or ".join([", ".join(versions[:-1]), versions[-1]] if len(versions) > 1 else versions)


class _Reader:
    """A cursor over the header bytes that raises a named error instead of reading past the end."""

    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.pos = 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise TruncatedStreamError(f"truncated: the stream ends inside {what} at byte {self.pos} "
                                       f"(the header needs at least {self.pos + n} bytes, it has {len(self.data)})")
        chunk = bytes(self.data[self.pos : self.pos + n])
        self.pos += n
        return chunk

    def byte(self, what: str) -> int:
        return self.take(1, what)[0]

    def varint(self, what: str) -> int:
        value, self.pos = varint.decode(self.data, self.pos, what)
        return value

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def require_source(header: Header, mode: Mode, model_id: str, model_hash: bytes) -> None:
    """Refuse a stream of another mode, or made with other weights than ``model_id``'s."""
    if header.mode is not mode:
        raise StreamMismatchError(f"this is a {header.mode.label} stream, not a {mode.label} one")
    if header.model_hash != model_hash or header.model_id != model_id:
        raise StreamMismatchError(
            f"the stream was made with model {header.model_id} ({header.model_hash.hex()}), "
            f"not {model_id} ({model_hash.hex()}); pass --model {header.model_id}"
        )


def require_params(header: Header) -> dict[str, int]:
    """The header's coding parameters, refusing a header that lacks any of its mode's fields."""
    missing = [name for name in PARAM_FIELDS[header.mode]
               if name not in header.params and header.version >= PARAM_SINCE.get((header.mode, name), OLDEST_VERSION)]
    if missing:
        raise CorruptStreamError(f"the {header.mode.label} header lacks {', '.join(missing)}")
    return header.params


def exact_flag(header: Header) -> bool:
    """The header's ``exact`` field: whether the stream was made on the integer path. 0 where a
    stream older than the field has none; any value but 0 or 1, or 1 in a stream older than the
    field (whose coder would read it with that version's generators), is corrupt."""
    flag = header.params.get("exact", 0)
    if flag not in (0, 1):
        raise CorruptStreamError(f"the exact flag is {flag}, not 0 or 1")
    since = PARAM_SINCE[(header.mode, "exact")]
    if flag == 1 and header.version < since:
        raise CorruptStreamError(f"the exact flag is set in a version-{header.version} stream; "
                                 f"exact {header.mode.label} streams exist from version {since}")
    return flag == 1


def read_header(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[Header, int]:
    """The header of a stream and the bytes it takes (header, chunk table and checksum), checked
    as ``read`` checks them; the chunks are not read."""
    header, _, end = _read_header(data, max_pixels)
    return header, end


def _read_header(data: bytes, max_pixels: int) -> tuple[Header, list[tuple[int, int]], int]:
    """(header, chunk table of (length, crc), the offset of the first chunk)."""
    r = _Reader(data)
    if not data:
        raise TruncatedStreamError("the stream is empty (0 bytes)")
    if len(data) < len(MAGIC) and MAGIC.startswith(bytes(data)):
        raise TruncatedStreamError(f"truncated: the stream ends inside the magic at byte {len(data)} "
                                   f"(the header needs at least {len(MAGIC) + 1} bytes)")
    if len(data) < len(MAGIC) or data[: len(MAGIC)] != MAGIC:
        raise NotAContainerError("not a diffc stream (missing the 'DFC' magic)")
    r.pos = len(MAGIC)
    version = r.byte("the format version")
    if not OLDEST_VERSION <= version <= VERSION:
        raise UnsupportedVersionError(
            f"format version {version} is not supported (this diffc reads version {_readable_versions()})"
        )
    mode_value = r.byte("the mode")
    try:
        mode = Mode(mode_value)
    except ValueError:
        raise CorruptStreamError(f"unknown mode {mode_value} at byte {r.pos - 1}") from None
    channels = r.byte("the channel count")
    if channels not in (1, 3):
        raise CorruptStreamError(f"channel count {channels} at byte {r.pos - 1} is not 1 or 3")
    height = r.varint("the image height")
    width = r.varint("the image width")
    if height < 1 or width < 1:
        raise CorruptStreamError(f"image size {height}x{width} is empty")
    if height * width > max_pixels:
        raise LimitExceededError(
            f"image size {height}x{width} exceeds the limit of {max_pixels} pixels"
        )
    seed = r.varint("the seed")
    if seed > MAX_SEED:
        raise CorruptStreamError(f"seed {seed} does not fit in 32 bits")
    id_length = r.byte("the model id length")
    raw_id = r.take(id_length, "the model id")
    model_id = raw_id.decode("ascii", errors="replace")
    if not _MODEL_ID.fullmatch(model_id):
        raise CorruptStreamError(f"model id {raw_id!r} is not a valid model name")
    model_hash = r.take(MODEL_HASH_BYTES, "the model hash")
    known = PARAM_FIELDS[mode]
    n_params = r.varint("the parameter count")
    if n_params > len(known):
        raise CorruptStreamError(
            f"{n_params} coding parameters declared; {mode.label} streams have at most {len(known)}"
        )
    params: dict[str, int] = {}
    last_id = -1
    for _ in range(n_params):
        field_id = r.byte("a parameter id")
        if field_id >= len(known) or field_id <= last_id:
            raise CorruptStreamError(
                f"parameter id {field_id} at byte {r.pos - 1} is unknown or out of order"
            )
        last_id = field_id
        params[known[field_id]] = r.varint(f"parameter {known[field_id]}")
    n_chunks = r.varint("the chunk count")
    if n_chunks * _CHUNK_ENTRY_MIN_BYTES > r.remaining:
        raise TruncatedStreamError(
            f"truncated inside the header: its chunk table of {n_chunks} entries does not fit in the "
            f"{r.remaining} bytes left (the header needs at least {r.pos + n_chunks * _CHUNK_ENTRY_MIN_BYTES + 4} bytes)"
        )
    table = []
    for i in range(n_chunks):
        length = r.varint(f"the length of chunk {i}")
        (crc,) = struct.unpack("<I", r.take(4, f"the checksum of chunk {i}"))
        table.append((length, crc))
    header_end = r.pos
    (stored_crc,) = struct.unpack("<I", r.take(4, "the header checksum"))
    if zlib.crc32(r.data[:header_end]) != stored_crc:
        raise CorruptStreamError("header checksum mismatch: the header or chunk table is corrupt")
    header = Header(mode, height, width, channels, seed, model_id, model_hash, params, version)
    return header, table, r.pos



def read(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> Container:
    """Parse and check a stream.

    A progressive (lossy) stream cut short anywhere after its header yields the complete chunks
    present and the bytes of the one it cuts (``Container.partial``); any other mode raises
    ``TruncatedStreamError``, as does a cut inside the header, naming the bytes it needs.
    Corruption, unknown versions and sizes over ``max_pixels`` raise the matching
    ``BitstreamError``.
    """
    header, table, pos = _read_header(data, max_pixels)
    header_bytes, n_chunks = pos, len(table)
    chunks = []
    partial = b""
    for i, (length, crc) in enumerate(table):
        if pos + length > len(data):
            if not header.mode.progressive:
                raise TruncatedStreamError(
                    f"stream truncated: chunk {i} of {n_chunks} needs {pos + length - len(data)} "
                    f"more bytes; a {header.mode.label} stream must be complete"
                )
            partial = bytes(data[pos:])
            break
        chunk = bytes(data[pos : pos + length])
        if zlib.crc32(chunk) != crc:
            raise CorruptStreamError(f"checksum mismatch in chunk {i} (bytes {pos}-{pos + length})")
        chunks.append(chunk)
        pos += length
    else:
        if pos != len(data):
            raise CorruptStreamError(f"{len(data) - pos} unexpected bytes after the last chunk")
    return Container(header, tuple(chunks), n_chunks, header_bytes, len(data), partial)
