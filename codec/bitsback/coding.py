"""The parameters encoder and decoder share besides the stream: the model and its chain, the patch
size, the largest group, the context margin and the seed of the shared randomness, with their
defaults and the limits a decoder enforces."""

from __future__ import annotations

from dataclasses import dataclass

from diffc import bitstreams
from diffc.codec.bitsback.chain import Chain, plan_chain, time_grid
from diffc.codec.bitsback.dither import PopTable, pop_table
from diffc.codec.denoiser import Denoiser

DEFAULT_STEPS = 100
DEFAULT_PATCH = 32
# patches per group at most. 128 patches of 32 x 32 make a network call on 131,072 pixels (about a
# third of a Kodak image), so memory stays that of a small image.
DEFAULT_MAX_GROUP = 128
MAX_GROUP_LIMIT = 1 << 12  # a decoder refuses more
DEFAULT_CONTEXT = 16  # pixels of later-coded image the network sees below and right of a group
MAX_CONTEXT = 256  # a decoder refuses more


@dataclass(frozen=True)
class Coding:
    """What encoder and decoder share besides the stream: the model, its chain, the patch size, the
    largest group, the context margin and the seed of the shared randomness."""

    den: Denoiser
    chain: Chain
    patch_size: int
    max_group: int
    context: int
    seed: int
    version: int = bitstreams.VERSION  # the stream's format version: which integer pixel model

    @classmethod
    def of(
        cls, den: Denoiser, steps: int, patch_size: int, seed: int, max_group: int = DEFAULT_MAX_GROUP,
        context: int = DEFAULT_CONTEXT, exact: bool = False, version: int = bitstreams.VERSION,
    ) -> Coding:
        """``exact``: the integer path (issue 19): the integer network, decimal chain constants,
        integer tables; streams that decode bit for bit on any machine. ``version``: the format
        version of the stream decoded (``exact_coding.push_pixels``)."""
        if patch_size < 1:
            raise ValueError(f"patch size must be positive, not {patch_size}")
        if not 1 <= max_group <= MAX_GROUP_LIMIT:
            raise ValueError(f"the largest group must lie in [1, {MAX_GROUP_LIMIT}] patches, not {max_group}")
        if not 0 <= context <= MAX_CONTEXT:
            raise ValueError(f"the context margin must lie in [0, {MAX_CONTEXT}] pixels, not {context}")
        if not 0 <= seed < 1 << 32:
            raise ValueError(f"seed must be a 32-bit unsigned integer, not {seed}")
        if exact and den.integer is None:
            raise ValueError(f"model {den.name} has no integer network for exact coding")
        return cls(den, plan_chain(time_grid(den, steps, exact), exact), patch_size, max_group, context, seed,
                   version)

    def pop_table(self, i: int) -> PopTable:
        """The ``PopTable`` of latent i's pops, made when first needed (about 0.1 ms; a decoder
        builds none before the stream's data asks for them)."""
        chain = self.chain
        return pop_table(float(chain.pop_stds[i] / chain.widths[i]), int(chain.pop_radii[i]), chain.exact)
