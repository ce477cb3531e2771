"""The codecs an evaluation compares: the one small interface they share, diffc's coders by mode,
and the ``Selection`` a run builds its codecs from (the classical codecs are in ``baselines``).

A codec encodes an 8-bit RGB image at a target and decodes the bytes back. What a target means is
the codec's own business: a quality setting for the classical lossy codecs (swept over a fixed
grid, and PSNR is read at the wanted rates by interpolation), a rate in bits per pixel for diffc,
nothing (None) for lossless codecs. Rates are always measured from the bytes returned, headers and
containers included.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from diffc.evaluation.baselines import classical
from diffc.evaluation.errors import EvaluationError

Target = float | None
"""What a codec encodes at: a quality setting, a rate in bits per pixel, or None (lossless)."""


class Codec(Protocol):
    """What the runner needs of a codec: the classical codecs (``baselines``) implement it, and so does
    each of diffc's coders (one adapter each in ``diffc_modes``)."""

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
