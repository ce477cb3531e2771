"""A lossy stream decoded at a series of prefix lengths: what a viewer sees as its bytes arrive.

Format version 7 decodes any prefix that holds the header (``lossy.decode_latent``), so a
progression is a list of byte counts from the header's end to the whole stream and the image each
decodes to. ``diffc decode --progression`` writes it as an animation; the progressive benchmark
(``benchmarks/progressive.py``) measures PSNR against bytes with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import api, denoiser


def prefix_lengths(data: bytes, count: int) -> list[int]:
    """``count`` byte counts evenly spaced from the end of the header to the whole stream (both
    included; fewer where the stream has fewer bytes). A ``TruncatedStreamError`` or
    ``CorruptStreamError`` if ``data`` has no complete header; a ValueError for a stream that is
    not lossy (only lossy streams are progressive)."""
    header, start = bitstreams.read_header(data)
    if header.mode is not Mode.LOSSY:
        raise ValueError(f"a {header.mode.label} stream is not progressive: it decodes whole")
    if count < 2:
        raise ValueError(f"a progression needs at least 2 prefix lengths, not {count}")
    return sorted({round(start + i * (len(data) - start) / (count - 1)) for i in range(count)})


def frames(
    data: bytes, lengths: list[int], *, model: str | denoiser.Denoiser | None = None, method: str = "flow",
    decode_steps: int = 16, progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[int, api.Decoded]]:
    """(length, decoded) for each prefix length, with the model loaded once."""
    header, _ = bitstreams.read_header(data)
    den = model if isinstance(model, denoiser.Denoiser) else denoiser.load(model or header.model_id)
    for i, n in enumerate(lengths):
        yield n, api.decode(data, model=den, method=method, decode_steps=decode_steps, max_bytes=n)
        if progress is not None:
            progress(i + 1, len(lengths))

