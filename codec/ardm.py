"""Lossless coding with an order-agnostic ARDM prior (Hoogeboom et al. 2022, "ARDM").

The D subpixels of an image (D = H W C; C = 1 for grayscale) are coded in an order sigma drawn from
the header's seed (``order``), in the network calls of a plan (``ardm_plan.plan``, at most
``steps`` calls): the call at step s sees the subpixels of rank < s - 1
(``models.ardm_network.coded_logits``, one call over the whole image, its heads run only where the
call codes) and codes those of rank s - 1 .. e - 2, e being the next call's step, each with its own
categorical over 256 values. The stream costs the model's -log2 p(x) under that order and plan
(``models.ardm_network.plan_nll``) plus the rANS overhead: no bits-back, each image is its own
stream.

Upscale ARDMs (``config.stages`` S > 1, ARDM section 4) code S stages of D steps: stage s has its
own order (the seed's words s D .. (s + 1) D - 1) and codes the next b = 8 / S bits of every
subpixel, each with a categorical over 2^b values: the network's mass over the values that agree
with the bits known so far (``entropy.categorical_from_logits`` on grouped logits). The plan
spans the S D global steps and never lets a call span two stages.

Stack order. The decoder pops the first call's subpixels first, so the encoder pushes the last
call's first; within a call, the subpixels go in order of rank. The encoder knows the whole image,
so it can run its calls in any order: a call's mask depends only on the order.

Determinism. Exact streams (header ``exact`` = 1, the default for a prior with an integer
network) take their categoricals from the integer network (``models.integer_ardm``): int32 masses
from integer arithmetic alone, summed over a stage's groups in int64 and normalised in integers
(``entropy.categorical_from_masses``), so they decode bit for bit on any machine
(docs/portability.md). Float streams (``exact`` = 0, and every stream before format version 6):
both sides call the same jitted ``ardm_network.coded_logits`` on a batch of one image of the same
shape, with the same levels, step and (padded) index (unknown values are never read), and
``entropy.categorical_from_logits`` quantises the logits before the float64 softmax, so encoder
and decoder build the same tables on the same kind of setup.

The stream is one container chunk: the rANS words. The header carries the model's name and weight
hash (for exact streams, the integer network's hash), ``steps`` (the call budget K),
``image_crc32``, ``order``: the scheme that turns the seed into sigma (``ORDER_PCG64``), and
``exact``. The loss curve that plans the calls is stored in the checkpoint's
payload (``models.families``), so the weight hash covers it: a decoder holding another curve is
refused as another model.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from diffc import bitstreams
from diffc.bitstreams import Mode
from diffc.codec import ardm_plan, entropy, fixed_point
from diffc.codec.images import as_image, check_crc32, float_numerics_error, image_crc32
from diffc.codec.result import StreamSize
from diffc.models import ardm_network, checkpoint, integer_ardm, registry
from diffc.models.configs import ARDMConfig
from diffc.models.integer_ardm import IntegerARDM

DEFAULT_STEPS = 50  # the knee on this CPU with ardm-small: docs/ardm.md
MAX_STEPS = 4096  # a decoder refuses more
# stage s's sigma = argsort of raw words s D .. (s + 1) D - 1 of numpy's PCG64 seeded with the header's seed
ORDER_PCG64 = 0

Progress = Callable[[int, int], None]
"""Called with (network calls done, calls in all) after each call."""


@dataclass(frozen=True, eq=False)
class ARDMPrior:
    """A trained ARDM with the loss curve its calls are planned with (``curve``, bits per coded
    symbol at evenly spaced known fractions of each stage, the stages end to end); ``name`` and
    ``weights_sha256`` identify both in streams."""

    config: ARDMConfig
    params: Any = field(repr=False)
    curve: np.ndarray = field(repr=False)
    name: str
    weights_sha256: str
    integer: IntegerARDM | None = field(default=None, repr=False)  # the exact network, where there is one
    integer_sha256: str = ""  # its file's sha256: how exact streams name it

    @property
    def hash8(self) -> bytes:
        return registry.stream_hash(self.weights_sha256)


def load(spec: str | Path) -> ARDMPrior:
    """The ARDM named ``spec`` (``default``: the shipped default ARDM) or stored at path ``spec``."""
    from diffc.runtime.compilation_cache import enable_compilation_cache

    enable_compilation_cache()
    path = registry.resolve(spec, "ardm")
    config, payload, card = checkpoint.load_model(path, "ardm")
    curve = np.asarray(payload["loss_curve"], np.float64)
    net, net_sha256 = checkpoint.load_integer(path, lambda blob: integer_ardm.from_bytes(config, blob))
    name = registry.display_name(path, card)
    return ARDMPrior(config, payload["params"], curve, name, card["sha256"], net, net_sha256)


def order(seed: int, dims: int, stages: int = 1) -> np.ndarray:
    """sigma (S D,): for each stage in turn, the flat subpixel indices in coding order, uniformly
    random permutations keyed by ``seed``. Built from PCG64's raw 64-bit words (fixed by the
    algorithm), not from ``Generator.permutation``, whose method numpy may change between versions;
    ties between words (probability about D^2 / 2^65) go to the lower index."""
    keys = np.random.PCG64(seed).random_raw(stages * dims).reshape(stages, dims)
    return np.argsort(keys, axis=1, kind="stable").reshape(-1)


def _ranks(sigma: np.ndarray, dims: int) -> np.ndarray:
    """The ranks (S, D) of the stages' orders in ``sigma`` (S D,)."""
    stages = sigma.reshape(-1, dims)
    ranks = np.empty_like(stages)
    np.put_along_axis(ranks, stages, np.arange(dims)[None], axis=1)
    return ranks


def _call(
    prior: ARDMPrior, image: np.ndarray, ranks: np.ndarray, start: int, coded: np.ndarray, exact: bool
) -> np.ndarray:
    """The network call at global rank ``start`` (0-based) on the (H, W, C) image whose stage
    orders have ``ranks`` (S, D), for the flat subpixels ``coded``: exact, the integer network's
    int32 masses (len(coded), 256) (``IntegerARDM.coded_masses``); else the float32 logits
    (``ardm_network.coded_logits``; callers widen them to float64, which is exact). Stage s =
    start // D is the call's; every subpixel knows the earlier stages' bits, and stage s's too if
    its rank in stage s's order is below start - s D. The levels travel as int8 (a quarter of the
    bytes of int32 per call); the index is padded to a power of two, so the call compiles once per
    size class instead of once per call (each call of a plan codes a different count)."""
    stage, within = divmod(start, image.size)
    levels = (stage + (ranks[stage] < within)).astype(np.int8).reshape(image.shape)
    index = np.zeros(1 << max(coded.size - 1, 0).bit_length(), np.int32)
    index[: coded.size] = coded
    k, levels, index = jnp.asarray(image[None]), jnp.asarray(levels[None]), jnp.asarray(index)
    if exact:
        out = prior.integer.coded_masses(k, levels, start + 1, index)
    else:
        out = ardm_network.coded_logits(prior.params, prior.config, k, levels, jnp.array([start + 1], jnp.int32), index)
    return np.asarray(out)[: coded.size]


def _stage_coding(
    table: np.ndarray, values: np.ndarray, stage: int, stage_bits: int, exact: bool
) -> tuple[np.ndarray, entropy.Categorical]:
    """The symbols (the next ``stage_bits`` bits of ``values``, the 8-bit values of the coded
    subpixels) and their categoricals from the call's table (n, 256), given their top
    stage * stage_bits bits: the categoricals read no other bits of ``values``. Exact: the table
    holds masses, and a symbol's mass is the int64 sum over the values that share its bits;
    else logits, summed in probability (``entropy.categorical_from_logits``)."""
    known_bits = stage * stage_bits
    prefix = np.right_shift(values.astype(np.int64), 8 - known_bits)
    group = table.reshape(table.shape[0], 1 << known_bits, -1)
    group = np.take_along_axis(group, prefix[:, None, None], axis=1)[:, 0]
    group = group.reshape(group.shape[0], 1 << stage_bits, -1)  # (n, symbols, values per symbol)
    symbols = np.right_shift(values.astype(np.int64), 8 - known_bits - stage_bits) & ((1 << stage_bits) - 1)
    if exact:
        return symbols, entropy.categorical_from_masses(group.astype(np.int64).sum(axis=2))
    return symbols, entropy.categorical_from_logits(group)


@dataclass(frozen=True)
class EncodeResult(StreamSize):
    """A lossless-ardm stream and what it cost."""

    data: bytes  # the complete container
    dims: int  # subpixels coded
    calls: int  # network calls of the plan
    ideal_bits: float  # -log2 of the quantised probabilities used
    payload_bits: int  # the rANS chunk
    seconds: float


def _plan_bounds(prior: ARDMPrior, dims: int, steps: int) -> np.ndarray:
    """The global rank boundaries of the plan's calls: call i codes ranks bounds[i] .. bounds[i+1] - 1
    of the stages' orders end to end."""
    stages = prior.config.stages
    return np.append(ardm_plan.plan(prior.curve, dims, steps, stages=stages) - 1, stages * dims)


def encode(
    pixels: np.ndarray, prior: ARDMPrior, *, steps: int = DEFAULT_STEPS, seed: int = 0,
    progress: Progress | None = None, exact: bool | None = None,
) -> EncodeResult:
    """Code an (H, W), (H, W, 1) or (H, W, 3) uint8 image exactly with ``prior`` in at most ``steps``
    network calls, planned with the prior's loss curve; ``seed`` keys the order. ``exact``
    (default: whenever the prior has an integer network): the integer path, a stream that decodes
    on any machine (docs/portability.md), named by the integer network's hash."""
    start = time.perf_counter()
    image = as_image(pixels)
    exact = prior.integer is not None if exact is None else exact
    if exact and prior.integer is None:
        raise ValueError(f"model {prior.name} has no integer network: it cannot make exact streams")
    stages = prior.config.stages
    if not stages <= steps <= MAX_STEPS:
        raise ValueError(f"steps must lie in [{stages}, {MAX_STEPS}] for a model of {stages} stages, not {steps}")
    if not 0 <= seed < 1 << 32:
        raise ValueError(f"seed must be a 32-bit unsigned integer, not {seed}")
    dims = image.size
    sigma = order(seed, dims, stages)
    ranks = _ranks(sigma, dims)
    bounds = _plan_bounds(prior, dims, steps)
    calls = bounds.size - 1
    flat = image.reshape(-1)
    stack = entropy.Stack()
    for i in reversed(range(calls)):
        a, b = int(bounds[i]), int(bounds[i + 1])
        coded = sigma[a:b]
        table = _call(prior, image, ranks, a, coded, exact)
        stack.push(*_stage_coding(table, flat[coded], a // dims, prior.config.stage_bits, exact))
        if progress:
            progress(calls - i, calls)
    fields = {"steps": steps, "image_crc32": image_crc32(image), "order": ORDER_PCG64, "exact": int(exact)}
    model_hash = fixed_point.stream_hash(prior, exact)
    header = bitstreams.Header(Mode.LOSSLESS_ARDM, *image.shape, seed, prior.name, model_hash, fields)
    payload = stack.to_bytes()
    data = bitstreams.write(header, [payload])
    return EncodeResult(data, dims, calls, stack.ideal_bits, 8 * len(payload), time.perf_counter() - start)


def _checked_params(header: bitstreams.Header, stages: int) -> tuple[int, int]:
    """(steps, image_crc32), each present and in range for a model of ``stages`` stages, and the
    order scheme known."""
    p = bitstreams.require_params(header)
    if not stages <= p["steps"] <= MAX_STEPS:
        raise bitstreams.CorruptStreamError(f"steps {p['steps']} is outside [{stages}, {MAX_STEPS}]")
    if p["image_crc32"] >= 1 << 32:
        raise bitstreams.CorruptStreamError(f"image checksum {p['image_crc32']} does not fit in 32 bits")
    if p["order"] != ORDER_PCG64:
        raise bitstreams.CorruptStreamError(
            f"order scheme {p['order']} is unknown (this diffc knows {ORDER_PCG64}, PCG64 by seed)"
        )
    return p["steps"], p["image_crc32"]


def decode(data: bytes, prior: ARDMPrior, progress: Progress | None = None) -> np.ndarray:
    """The (H, W, C) uint8 image of a lossless-ardm stream (grayscale as (H, W, 1)), decoded with
    ``prior``, which must be the model the stream names."""
    container = bitstreams.read(data)
    header = container.header
    exact = fixed_point.require_decoder(header, Mode.LOSSLESS_ARDM, prior)
    stages = prior.config.stages
    steps, crc = _checked_params(header, stages)
    if len(container.chunks) != 1:
        raise bitstreams.CorruptStreamError(
            f"a lossless-ardm stream has 1 chunk, not {len(container.chunks)}"
        )
    shape = (header.height, header.width, header.channels)
    dims = math.prod(shape)
    sigma = order(header.seed, dims, stages)
    ranks = _ranks(sigma, dims)
    bounds = _plan_bounds(prior, dims, steps)
    calls = bounds.size - 1
    bits = prior.config.stage_bits
    image = np.zeros(shape, np.uint8)
    flat = image.reshape(-1)  # a view: decoded bits land in ``image``
    try:
        stack = entropy.Stack.from_bytes(container.chunks[0])
        for i in range(calls):
            a, b = int(bounds[i]), int(bounds[i + 1])
            coded = sigma[a:b]
            table = _call(prior, image, ranks, a, coded, exact)
            stage = a // dims
            _, dist = _stage_coding(table, flat[coded], stage, bits, exact)
            flat[coded] |= (stack.pop(dist) << (8 - (stage + 1) * bits)).astype(np.uint8)
            if progress:
                progress(i + 1, calls)
    except entropy.EntropyCodingError as exc:
        raise _undecodable(exact, prior.name, str(exc)) from None
    if not stack.exhausted():
        raise _undecodable(exact, prior.name, "bits left over after the last call")
    check_crc32(image, crc)
    return image


def _undecodable(exact: bool, model: str, detail: str) -> bitstreams.CorruptStreamError:
    """The error of ARDM data that does not decode: corrupt for an exact stream, whose
    probabilities are the same everywhere; for a float stream, possibly float numerics."""
    if exact:
        return bitstreams.CorruptStreamError(f"the ARDM data is corrupt ({detail})")
    return float_numerics_error("ARDM data", model, detail)


def describe(result: EncodeResult) -> dict[str, Any]:
    """The ``--stats`` facts of an encode."""
    return {
        "bits": result.total_bits,
        "bpd": result.bpd,
        "ideal_bits": result.ideal_bits,
        "payload_bits": result.payload_bits,
        "calls": result.calls,
        "seconds": result.seconds,
    }
