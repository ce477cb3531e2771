"""The codecs an evaluation sweeps: one small interface, the classical codecs, diffc's registry.

A codec encodes an 8-bit RGB image at a target and decodes the bytes back. What a target means is
the codec's own business: a quality setting for the classical lossy codecs (swept over a fixed
grid, and PSNR is read at the wanted rates by interpolation), a rate in bits per pixel for diffc,
nothing (None) for lossless codecs. Rates are always measured from the bytes returned, headers and
containers included.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image, features

from diffc.evaluation.errors import EvaluationError, require

Target = float | None
Options = tuple[tuple[str, Any], ...]


class Codec(Protocol):
    """What the runner needs of a codec; diffc's coders implement it once each."""

    name: str
    lossless: bool

    def targets(self, bpps: Sequence[float]) -> tuple[Target, ...]:
        """The targets to encode each image at so that every rate in ``bpps`` can be read off
        (for a coder that aims at rates directly, points on both sides of each wanted rate)."""
        ...

    def encode(self, image: np.ndarray, target: Target) -> bytes:
        """Encode an (H, W, 3) uint8 image into a complete file."""
        ...

    def decode(self, data: bytes) -> np.ndarray:
        """Decode the bytes of ``encode`` back into an (H, W, 3) uint8 image."""
        ...

    def settings(self) -> dict[str, Any]:
        """Everything besides the target that fixes the output (library, options): recorded in
        results.json and compared when a run resumes."""
        ...


class DiffcCoder(Codec, Protocol):
    """A diffc mode as a codec; it also names the model it codes with. A coder that hands back a
    stream it encoded before (the lossy coder, decoded several ways) sets ``encode_seconds`` to the
    time that encoding took, and the runner records it as the encode time; facts of the encoding
    it sets in ``encode_facts`` (the lossy coder: the sum of its steps' KL, ``kl_bits``, and the
    steps) join the point."""

    model_card_hash: str


DiffcFactory = Callable[[str, Sequence[str]], list[DiffcCoder]]
"""Builds a mode's diffc coders from ``--model`` and the ``--method`` list (how lossy decoding
reconstructs): the lossy mode one coder per method, the lossless modes one."""



def _adapter(name: str) -> DiffcFactory:
    """A factory for the adapter ``name`` of ``diffc_modes``, imported only when called (JAX)."""

    def build(model: str, methods: Sequence[str]) -> list[DiffcCoder]:
        from diffc.evaluation import diffc_modes

        return getattr(diffc_modes, name)(model, methods)

    return build


DIFFC_CODERS: dict[str, DiffcFactory] = {
    "lossy": _adapter("lossy_coders"),
    "lossless-vdm": _adapter("bits_back_coders"),
    "lossless-diffc": _adapter("lossless_diffc_coders"),
    "lossless-ardm": _adapter("ardm_coders"),
}
"""diffc's coders by container mode label ("lossy", "lossless-vdm", "lossless-ardm"). A coder joins
the evaluation with one line here, naming its adapter in ``diffc_modes``."""
ARDM_CODERS = frozenset({"lossless-ardm"})
"""The coders that take an ARDM model; the others take a VDM."""

MODES = ("lossy", "lossless")
METHODS = ("flow", "ancestral", "mean")


def diffc_coders(
    modes: Sequence[str], model: str, methods: Sequence[str], only: Sequence[str] | None = None
) -> list[DiffcCoder]:
    """The registered diffc coders of the chosen evaluation modes (and among ``only``, labels of
    ``DIFFC_CODERS``, if given), built for ``model``; the lossy coder once per reconstruction method
    in ``methods``, the lossless ones once. A checkpoint's family picks the coders that take it; ``default`` gives every
    coder its family's default model.

    A mode without a registered coder is an error, not a silent skip: a run that names a model
    promises to measure diffc.
    """
    unknown = sorted(set(only or ()) - set(DIFFC_CODERS))
    if unknown:
        raise EvaluationError(f"no diffc coder {', '.join(unknown)}; choose among {', '.join(DIFFC_CODERS)}")
    family = _model_family(model)
    coders = []
    for mode in modes:
        labels = [label for label in DIFFC_CODERS
                  if (label == "lossy") == (mode == "lossy") and (only is None or label in only)
                  and (family is None or (label in ARDM_CODERS) == (family == "ardm"))]
        if not labels:
            raise EvaluationError(
                f"no diffc coder of {mode} evaluation takes the model {model}"
                + ("" if family is None else f" (a {family.upper()} model)")
                + ("" if only is None else f" among --diffc {','.join(only)}")
            )
        coders += [coder for label in labels for coder in DIFFC_CODERS[label](model, methods)]
    return coders


@dataclass(frozen=True)
class Selection:
    """The codecs a run evaluates, as plain data, so that the worker processes of a parallel run
    rebuild the very same codecs from it."""

    families: tuple[str, ...]
    modes: tuple[str, ...]
    model: str | None = None  # diffc's coders too, with this model
    methods: tuple[str, ...] = METHODS[:1]
    only: tuple[str, ...] | None = None  # labels of DIFFC_CODERS

    def build(self) -> tuple[list[Codec], list[DiffcCoder], list[str]]:
        """(classical codecs, diffc coders, notes on classical codecs skipped)."""
        chosen, notes = classical(self.families, self.modes)
        diffc = [] if self.model is None else diffc_coders(self.modes, self.model, self.methods, self.only)
        return chosen, diffc, notes

    def codecs(self) -> list[Codec]:
        chosen, diffc, _ = self.build()
        return [*chosen, *diffc]


def _model_family(model: str) -> str | None:
    """The family (vdm, ardm) of the checkpoint ``model`` names; None for ``default`` or a name
    that resolves to none (the coders then report it)."""
    if model == "default":
        return None
    from diffc.models import checkpoint, families, registry

    try:
        family = families.by_format(registry.describe(model).get("format"))
    except checkpoint.ModelError:
        return None
    return family and family.name


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
    """The classical codecs of ``families`` for the evaluation ``modes``, in registry order, and a
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
