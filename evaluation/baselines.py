"""The classical codecs diffc is measured against: JPEG, WebP, AVIF and PNG through Pillow, JPEG-XL
and JPEG-LS through imagecodecs, each with the quality grid it is swept over.

Each implements ``contenders.Codec``; its target is a quality setting (None for a lossless codec).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, features

from diffc.evaluation.errors import require

if TYPE_CHECKING:  # contenders builds its Selection from these codecs
    from diffc.evaluation.contenders import Target

Options = tuple[tuple[str, Any], ...]


def _pillow_decode(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


@dataclass(frozen=True)
class PillowCodec:
    """A codec Pillow writes: ``Image.save(format=..., quality=target, **options)``."""

    name: str
    format: str
    feature: str  # PIL.features name of the library behind the format
    grid: tuple[int, ...] | None  # quality settings swept, from low to high rate; None: lossless
    options: Options = ()

    @property
    def lossless(self) -> bool:
        return self.grid is None

    def targets(self, bpps: Sequence[float]) -> tuple[Target, ...]:
        return (None,) if self.grid is None else self.grid

    def encode(self, image: np.ndarray, target: Target) -> bytes:
        quality = {} if target is None else {"quality": int(target)}
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format=self.format, **quality, **dict(self.options))
        return buffer.getvalue()

    def decode(self, data: bytes) -> np.ndarray:
        return _pillow_decode(data)

    def settings(self) -> dict[str, Any]:
        swept = None if self.grid is None else {"quality": list(self.grid)}
        return {"library": f"Pillow {self.format}", "options": dict(self.options), "swept": swept}

    def unavailable(self) -> str | None:
        """Why this Pillow build cannot run the codec, or None."""
        return None if features.check(self.feature) else f"Pillow was built without {self.feature}"


@dataclass(frozen=True)
class ImagecodecsCodec:
    """A codec of imagecodecs: ``{codec}_encode(image, **{sweep: target}, **options)``."""

    name: str
    codec: str  # imagecodecs' name: jpegxl, jpegls
    sweep: str | None = None  # the keyword the grid sets; None: lossless
    grid: tuple[float, ...] = ()  # from low to high rate
    options: Options = ()

    @property
    def lossless(self) -> bool:
        return self.sweep is None

    def targets(self, bpps: Sequence[float]) -> tuple[Target, ...]:
        return (None,) if self.sweep is None else self.grid

    def encode(self, image: np.ndarray, target: Target) -> bytes:
        swept = {} if self.sweep is None else {self.sweep: target}
        return bytes(getattr(require("imagecodecs"), f"{self.codec}_encode")(image, **swept, **dict(self.options)))

    def decode(self, data: bytes) -> np.ndarray:
        return np.asarray(getattr(require("imagecodecs"), f"{self.codec}_decode")(data))

    def settings(self) -> dict[str, Any]:
        swept = None if self.sweep is None else {self.sweep: list(self.grid)}
        return {"library": f"imagecodecs {self.codec}", "options": dict(self.options), "swept": swept}

    def unavailable(self) -> str | None:
        """Why this imagecodecs build cannot run the codec, or None."""
        if getattr(require("imagecodecs"), self.codec.upper()).available:
            return None
        return f"imagecodecs was built without {self.codec}"


# Quality grids measured on 256x256 Kodak crops to bracket 0.125 to 2 bpp (as far as each codec
# reaches) at rate steps of about 1.2 to 1.5x, with bpp and PSNR rising strictly along every grid:
# JPEG qualities 1 and 2 give identical files, and JPEG-XL distances above 15 cost more bits than
# 15 on some images (and take 4x longer). JPEG-XL lossless runs at effort 9 (about 12 s per
# megapixel on one core here, 1% smaller than effort 7 at a quarter of the time); WebP lossless
# at method 4 (method 6 is 6x slower for 0.5% less).
CLASSICAL: dict[str, PillowCodec | ImagecodecsCodec] = {
    codec.name: codec
    for codec in (
        PillowCodec("jpeg", "JPEG", "jpg", (1, 3, 5, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95),
                    (("optimize", True),)),
        PillowCodec("webp", "WEBP", "webp", (0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95, 100),
                    (("method", 6),)),
        PillowCodec("avif", "AVIF", "avif", (0, 10, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95),
                    (("speed", 6), ("subsampling", "4:2:0"))),
        ImagecodecsCodec("jpegxl", "jpegxl", "distance",
                         (15, 12, 10, 8, 6, 5, 4, 3, 2.5, 2, 1.5, 1.25, 1, 0.75, 0.5, 0.3), (("effort", 7),)),
        PillowCodec("png", "PNG", "zlib", None, (("compress_level", 6),)),
        PillowCodec("webp-lossless", "WEBP", "webp", None, (("lossless", True), ("quality", 100), ("method", 4))),
        ImagecodecsCodec("jpegxl-lossless", "jpegxl", options=(("lossless", True), ("effort", 9))),
        ImagecodecsCodec("jpegls", "jpegls"),
    )
}

FAMILIES = tuple(dict.fromkeys(name.removesuffix("-lossless") for name in CLASSICAL))
"""Names for --codecs: a family picks its lossy and lossless codecs (jpegxl: both JPEG-XLs)."""


def classical(families: Sequence[str], modes: Sequence[str]) -> tuple[list[PillowCodec | ImagecodecsCodec], list[str]]:
    """The classical codecs of ``families`` for the evaluation ``modes``, in ``CLASSICAL``'s order, and a
    note for each one the installed libraries cannot run (skipped, not fatal)."""
    chosen, notes = [], []
    for codec in CLASSICAL.values():
        if codec.name.removesuffix("-lossless") not in families:
            continue
        if ("lossless" if codec.lossless else "lossy") not in modes:
            continue
        reason = codec.unavailable()
        if reason is None:
            chosen.append(codec)
        else:
            notes.append(f"{codec.name} skipped: {reason}")
    return chosen, notes


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries behind the classical codecs, for results.json."""
    import PIL

    imagecodecs = require("imagecodecs").version(dict)
    return {
        "pillow": PIL.__version__,
        "libjpeg-turbo": features.version("libjpeg_turbo"),
        "libwebp": features.version("webp"),
        "libavif": features.version("avif"),
        "zlib": features.version("zlib"),
        "imagecodecs": imagecodecs["imagecodecs"],
        "libjxl": imagecodecs.get("libjxl"),
        "charls": imagecodecs.get("charls"),
    }
