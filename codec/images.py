"""What the lossless coders share about the images they code: the accepted arrays and the checksum
their streams carry."""

from __future__ import annotations

import zlib

import numpy as np

from diffc import bitstreams


def as_image(pixels: np.ndarray) -> np.ndarray:
    """An (H, W), (H, W, 1) or (H, W, 3) uint8 array as a contiguous (H, W, C) one."""
    image = np.asarray(pixels)
    if image.ndim == 2:
        image = image[..., None]
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] not in (1, 3) or not image.size:
        raise ValueError(f"expected a non-empty (H, W, 1 or 3) uint8 image, got {image.dtype} {image.shape}")
    return np.ascontiguousarray(image)


def image_crc32(image: np.ndarray) -> int:
    """CRC-32 of the image's bytes in (H, W, C) order, as the lossless headers store it."""
    return zlib.crc32(np.ascontiguousarray(image).tobytes())


def float_numerics_error(what: str, model: str, detail: str) -> bitstreams.CorruptStreamError:
    """The error of a lossless stream, made with a float model, whose probabilities came out
    differently here: the stream may be sound, and decode on the kind of setup that made it
    (docs/portability.md), so the message says so instead of calling it corrupt."""
    return bitstreams.CorruptStreamError(
        f"the {what} does not decode here ({detail}): it was made with the float model {model}, whose "
        "probabilities are exact only where they were computed; decode it with the same diffc, JAX and "
        "device kind (if it fails there too, the stream is corrupt)"
    )


def check_crc32(image: np.ndarray, crc: int) -> None:
    """Raise ``CorruptStreamError`` unless a decoded image matches its stream's checksum."""
    if image_crc32(image) != crc:
        raise bitstreams.CorruptStreamError(
            "the decoded image does not match its checksum: the stream is corrupt, or the network "
            "computes differently here than where the stream was encoded (another device or JAX build)"
        )
