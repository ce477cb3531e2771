"""Model and training configurations: small frozen dataclasses with names, one code path for all.

Each model family (VDM, ARDM) has its configs; each config carries its network and the training
recipe (``Recipe``) that goes with it, so a model card's config says how the model was trained.
``tiny`` is what the tests train and code with (seconds on a CPU); ``small`` is sized to learn
something in about 100 minutes on 2 CPU cores and to run many times over a full image in the
coders; ``base`` is meant for a GPU.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self


@dataclass(frozen=True)
class Recipe:
    """A named config's training recipe: random crops, Adam(W) with warm-up and clipping, EMA."""

    name: str
    crop: int = 32
    batch: int = 32
    learning_rate: float = 1e-3
    warmup: int = 200
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    ema_decay: float = 0.999

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Self:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {sorted(unknown)}")
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**values)


@dataclass(frozen=True)
class VDMConfig(Recipe):
    """A VDM prior: noise schedule, U-Net denoiser and the training recipe that goes with it."""

    # Noise schedule gamma(t) (VDM section 3.4): "fixed" linear, "affine" (learned endpoints) or
    # "learned" (VDM's monotone network, appendix "noise schedule").
    schedule: str = "affine"
    gamma_min: float = -13.3
    gamma_max: float = 5.0
    # U-Net denoiser eps_hat(z_t; gamma_t).
    patch_levels: int = 0  # fold 2^n x 2^n pixel patches into channels before the U-Net
    channels: int = 32  # width at the first level
    channel_mults: tuple[int, ...] = (1, 2)  # one entry per resolution level
    blocks: int = 1  # residual blocks per level on the way down (one more on the way up)
    embedding: int = 64  # width of the gamma embedding
    fourier: tuple[int, ...] = (6, 7)  # exponents n of the Fourier features sin/cos(2^n 2 pi z)

    @property
    def multiple(self) -> int:
        """Image sides must be a multiple of this for the U-Net (inputs are padded to it)."""
        return 2 ** (self.patch_levels + len(self.channel_mults) - 1)


@dataclass(frozen=True)
class ARDMConfig(Recipe):
    """An order-agnostic ARDM: a U-Net from (known values, their levels, the step) to 256 logits per
    subpixel (``models/ardm_network.py``).

    ``stages`` S > 1 makes it an upscale ARDM (ARDM section 4): S passes over the image, each
    coding the next 8 / S bits of every subpixel, coarse bit planes first."""

    stages: int = 1  # 1, 2, 4 or 8
    patch_levels: int = 0  # fold 2^n x 2^n pixel patches into channels before the U-Net
    channels: int = 32  # width at the first level
    channel_mults: tuple[int, ...] = (1, 2)  # one entry per resolution level
    blocks: int = 1  # residual blocks per level on the way down (one more on the way up)
    embedding: int = 64  # width of the step embedding

    @property
    def multiple(self) -> int:
        """Image sides are padded to a multiple of this for the U-Net."""
        return 2 ** (self.patch_levels + len(self.channel_mults) - 1)

    def __post_init__(self) -> None:
        if type(self.stages) is not int or self.stages not in (1, 2, 4, 8):
            raise ValueError(f"stages must be 1, 2, 4 or 8 (bits per stage 8 / stages), not {self.stages}")

    @property
    def stage_bits(self) -> int:
        """Bits of every subpixel coded per stage."""
        return 8 // self.stages


CONFIGS: dict[str, VDMConfig] = {
    c.name: c
    for c in (
        VDMConfig(
            name="tiny", channels=8, channel_mults=(1, 2), blocks=1, embedding=16, crop=16,
            batch=8, warmup=10, ema_decay=0.9,
        ),
        VDMConfig(
            name="small", patch_levels=1, channels=64, channel_mults=(1, 2, 2), blocks=1,
            embedding=64, crop=32, batch=32, learning_rate=1e-3, warmup=200,
        ),
        VDMConfig(
            name="base", schedule="learned", channels=64, channel_mults=(1, 2, 2, 4), blocks=2,
            embedding=256, crop=64, batch=128, learning_rate=2e-4, warmup=1000,
            weight_decay=0.01, ema_decay=0.9999,
        ),
    )
}


ARDM_CONFIGS: dict[str, ARDMConfig] = {
    c.name: c
    for c in (
        ARDMConfig(
            name="tiny", channels=8, channel_mults=(1, 2), blocks=1, embedding=16, crop=16, batch=8,
            warmup=10, ema_decay=0.9,
        ),
        # 3.1M parameters, the VDM small recipe
        ARDMConfig(
            name="small", patch_levels=1, channels=56, channel_mults=(1, 2, 2), blocks=1, embedding=64,
            crop=32, batch=32, learning_rate=1e-3, warmup=200,
        ),
        # small as an upscale ARDM: four stages of 2 bits (ARDM's "Upscale 4")
        ARDMConfig(
            name="small-upscale", stages=4, patch_levels=1, channels=56, channel_mults=(1, 2, 2), blocks=1,
            embedding=64, crop=32, batch=32, learning_rate=1e-3, warmup=200,
        ),
    )
}

FAMILY_CONFIGS: dict[str, dict[str, Recipe]] = {"vdm": CONFIGS, "ardm": ARDM_CONFIGS}


def get_config(name: str, family: str = "vdm") -> Recipe:
    """The named config of a model family; raises ``KeyError`` naming the choices."""
    choices = FAMILY_CONFIGS[family]
    try:
        return choices[name]
    except KeyError:
        raise KeyError(f"no {family} config named {name!r}; choose one of {', '.join(choices)}") from None
