"""The ``.dfc`` container: header, chunk table and CRCs (``docs/bitstream.md``)."""

from diffc.bitstreams.container import (
    DEFAULT_MAX_PIXELS,
    OLDEST_VERSION,
    PARAM_FIELDS,
    VERSION,
    Container,
    Header,
    Mode,
    header_size,
    read,
    exact_flag,
    require_params,
    require_source,
    write,
)
from diffc.bitstreams.errors import (
    BitstreamError,
    CorruptStreamError,
    LimitExceededError,
    NotAContainerError,
    StreamMismatchError,
    TruncatedStreamError,
    UnsupportedVersionError,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "OLDEST_VERSION",
    "PARAM_FIELDS",
    "VERSION",
    "BitstreamError",
    "Container",
    "CorruptStreamError",
    "Header",
    "LimitExceededError",
    "Mode",
    "NotAContainerError",
    "StreamMismatchError",
    "TruncatedStreamError",
    "UnsupportedVersionError",
    "header_size",
    "read",
    "exact_flag",
    "require_params",
    "require_source",
    "write",
]
