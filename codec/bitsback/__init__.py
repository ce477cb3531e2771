"""Lossless coding with the VDM prior: bits-back along the diffusion chain, in Bit-Swap order.

An image is cut into square patches coded in raster order on one rANS stack. A group of patches
is coded with the VDM's latent chain in Bit-Swap order (Kingma, Abbeel, Ho 2019), so that its net
cost is the T-step negative ELBO and the stack needs only about one step's pops beneath it; the
first patch, which an empty stack cannot serve, is coded directly, and groups grow as the stack
does. One module per part, in the order a patch meets them:

- ``coding``: what encoder and decoder share (model, chain, patch size, largest group, context
  margin, seed), with the defaults and the limits a decoder enforces;
- ``chain``: chain planning: the time grid, each latent's grid and the supports of its pops and pushes;
- ``dither``: dithered pop tables, which make pops sample q whatever the stack holds;
- ``windows``: the context the network sees around a group;
- ``bitswap``: group coding: the chain's distributions and a group's push and pop;
- ``direct``: the seed coder, a patch coded without the model;
- ``groups``: scheduling: the grid of patches, the groups they form and their order on the stack;
- ``stream``: framing: the container, its header's parameters and their checks;
- ``numerics``: what the package borrows from the lossy coder, the one module that imports it.
"""

from diffc.codec.bitsback.chain import MAX_STEPS, Chain, plan_chain, time_grid
from diffc.codec.bitsback.coding import (
    DEFAULT_CONTEXT,
    DEFAULT_MAX_GROUP,
    DEFAULT_PATCH,
    DEFAULT_STEPS,
    MAX_CONTEXT,
    MAX_GROUP_LIMIT,
    Coding,
)
from diffc.codec.bitsback.dither import OFFSET_STEPS, Dithered, PopTable, dithered, pop_table
from diffc.codec.bitsback.groups import GroupCost, Grid, ImageStats, Progress, pop_image, push_image
from diffc.codec.bitsback.stream import EncodeResult, decode, describe, encode

__all__ = [
    "DEFAULT_CONTEXT",
    "DEFAULT_MAX_GROUP",
    "DEFAULT_PATCH",
    "DEFAULT_STEPS",
    "MAX_CONTEXT",
    "MAX_GROUP_LIMIT",
    "MAX_STEPS",
    "OFFSET_STEPS",
    "Chain",
    "Coding",
    "Dithered",
    "EncodeResult",
    "Grid",
    "GroupCost",
    "ImageStats",
    "PopTable",
    "Progress",
    "decode",
    "describe",
    "dithered",
    "encode",
    "plan_chain",
    "pop_image",
    "pop_table",
    "push_image",
    "time_grid",
]
