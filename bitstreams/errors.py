"""Errors raised while reading a ``.dfc`` container; each message says what is wrong and where."""

from diffc.errors import DiffcError


class BitstreamError(DiffcError):
    """Base class of every failure to read or write a container."""


class NotAContainerError(BitstreamError):
    """The bytes do not start with the diffc magic."""


class UnsupportedVersionError(BitstreamError):
    """The container's format version is not one this reader knows."""


class CorruptStreamError(BitstreamError):
    """A checksum does not match or a field holds an impossible value."""


class TruncatedStreamError(BitstreamError):
    """The stream ends before the bytes its header declares."""


class LimitExceededError(BitstreamError):
    """A declared size exceeds a limit (pixels, counts) set to avoid huge allocations."""


class StreamMismatchError(BitstreamError):
    """A valid stream that this decoder cannot use: another mode, or another model's weights."""
