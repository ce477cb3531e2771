"""Lossy DiffC with the tiny config (untrained weights: coding must be exact whatever the model);
golden streams of format versions 4 and 3 with a network-free model; a round trip between two
processes."""

import dataclasses
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffc import bitstreams
from diffc.codec import api, lossy, rcc
from diffc.codec.denoiser import Denoiser
from diffc.models import configs, vdm
from helpers import smooth_image

CONFIG = lossy.LossyConfig(steps=5, rcc=rcc.RccConfig(chunk_bits=6, margin=2), curve_points=6)


@pytest.fixture(scope="module")
def den() -> Denoiser:
    cfg = configs.get_config("tiny")
    return Denoiser(cfg, vdm.init_params(cfg, 0), "tiny-test", "ab" * 32)


@pytest.fixture(scope="module")
def stream(den):
    image = smooth_image(12, 20, 3)
    return image, lossy.encode(image, den, bpp=6.0, config=CONFIG, seed=3)


def test_decoder_rebuilds_the_senders_latent_bit_for_bit(den, stream):
    image, result = stream
    latent = lossy.decode_latent(result.data, den)
    assert latent.steps_decoded == len(result.steps) == latent.steps_total
    assert not latent.truncated
    np.testing.assert_array_equal(np.asarray(latent.z), result.latents[-1])


def test_rate_stays_within_the_budget(stream):
    image, result = stream
    assert 8 * len(result.data) <= 6.0 * image.shape[0] * image.shape[1]
    assert len(result.steps) >= 2


def test_every_prefix_decodes_and_later_ones_are_closer(den, stream):
    image, result = stream
    container = bitstreams.read(result.data)
    x = np.asarray(lossy.pixels_to_model(image))
    distances, previous_steps = [], 0
    for n in range(1, container.declared_chunks + 1):
        cut = container.header_bytes + sum(len(c) for c in container.chunks[:n])
        latent = lossy.decode_latent(result.data, den, max_bytes=cut)
        assert latent.steps_decoded > previous_steps
        assert latent.truncated == (n < container.declared_chunks)
        previous_steps = latent.steps_decoded
        np.testing.assert_array_equal(np.asarray(latent.z), result.latents[latent.steps_decoded - 1])
        alpha, _ = vdm.alpha_sigma(latent.gamma)
        distances.append(float(np.linalg.norm(np.asarray(latent.z) / float(alpha) - x)))
        pixels = lossy.reconstruct(latent, den, method="mean")
        assert pixels.shape == image.shape and pixels.dtype == np.uint8
    assert all(b < a for a, b in zip(distances, distances[1:]))


@pytest.mark.parametrize("shape", [(7, 9, 3), (5, 6, 1), (1, 1, 3)])
def test_bpp_max_ends_lossless(den, shape):
    image = smooth_image(*shape, seed=1)
    result = lossy.encode(image, den, bpp=None, config=CONFIG, seed=1)
    assert result.lossless
    latent = lossy.decode_latent(result.data, den)
    np.testing.assert_array_equal(lossy.reconstruct(latent, den), image)


@pytest.mark.parametrize("method", ["flow", "ancestral"])
def test_reconstruction_methods_give_images(den, stream, method):
    image, result = stream
    latent = lossy.decode_latent(result.data, den)
    pixels = lossy.reconstruct(latent, den, method=method, steps=3)
    assert pixels.shape == image.shape and pixels.dtype == np.uint8
    again = lossy.reconstruct(latent, den, method=method, steps=3)
    np.testing.assert_array_equal(pixels, again)  # seeded, so repeatable


def test_other_model_is_refused(den, stream):
    _, result = stream
    other = Denoiser(den.config, den.params, "tiny-test", "cd" * 32)
    with pytest.raises(bitstreams.StreamMismatchError, match="made with model tiny-test"):
        lossy.decode_latent(result.data, other)


def test_corrupt_chunk_is_refused(den, stream):
    _, result = stream
    data = bytearray(result.data)
    data[-1] ^= 0x40
    with pytest.raises(bitstreams.CorruptStreamError, match="checksum"):
        lossy.decode_latent(bytes(data), den)


def test_a_budget_for_the_first_step_only_still_decodes(den):
    image = smooth_image(12, 20, 3)
    result = lossy.encode(image, den, bpp=0.01, config=CONFIG, seed=2)
    assert len(result.steps) == 1
    assert bitstreams.read(result.data).header.params["steps"] == 0
    latent = lossy.decode_latent(result.data, den)
    assert latent.steps_decoded == latent.steps_total == 1
    np.testing.assert_array_equal(np.asarray(latent.z), result.latents[0])


def test_a_header_with_too_many_steps_is_refused_before_allocating(den, stream):
    _, result = stream
    header = bitstreams.read(result.data).header
    forged = bitstreams.Header(header.mode, header.height, header.width, header.channels, header.seed,
                               header.model_id, header.model_hash, {**header.params, "steps": 1 << 40})
    data = bitstreams.write(forged, bitstreams.read(result.data).chunks)
    with pytest.raises(bitstreams.CorruptStreamError, match="steps 1099511627776 is outside"):
        lossy.decode_latent(data, den)


def test_tail_cost_is_the_entropy_of_the_discretised_decoder():
    import math

    assert lossy.tail_bits_per_dim(-20.0) < 1e-6  # std far below a bin: the value is certain
    gamma = 0.0  # std 127.5 bins: the differential entropy of the Gaussian, in bins
    assert lossy.tail_bits_per_dim(gamma) == pytest.approx(math.log2(127.5 * math.sqrt(2 * math.pi * math.e)), abs=1e-3)


# --- golden streams ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NaiveDenoiser(Denoiser):
    """eps_hat = 0, so x_hat = z_t / alpha_t (clipped): no network, so a golden stream depends on the
    coder's arithmetic and its shared randomness only."""

    @cached_property
    def eps(self):
        return jax.jit(lambda z_t, gamma_t: jnp.zeros_like(z_t))

    @cached_property
    def prior_step(self):
        def step(z_t, gamma_t, gamma_s):
            mean, var = vdm.model_step(z_t, jnp.zeros_like(z_t), gamma_s.reshape(1), gamma_t.reshape(1))
            return mean, jnp.sqrt(var)

        return jax.jit(step)


GOLDEN_CONFIG = lossy.LossyConfig(steps=3, rcc=rcc.RccConfig(chunk_bits=4, margin=2), curve_points=4)


@pytest.fixture(scope="module")
def naive(den) -> NaiveDenoiser:
    return NaiveDenoiser(den.config, den.params, "naive", "ef" * 32)


def sha256(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def decoded_hashes(data: bytes, den: Denoiser) -> tuple[str, str, str]:
    """The decoded z (float32) and the mean and ancestral (3 steps) reconstructions."""
    latent = lossy.decode_latent(data, den)
    assert latent.steps_decoded == latent.steps_total == 3 and not latent.truncated
    mean = lossy.reconstruct(latent, den, method="mean")
    ancestral = lossy.reconstruct(latent, den, method="ancestral", steps=3, seed=latent.header.seed)
    return sha256(np.asarray(latent.z, np.float32)), sha256(mean), sha256(ancestral)


def test_golden_stream(naive):
    """Format version 7 (float lossy streams as in 4, with field exact = 0: the version byte, that
    field and the header CRC differ):
    the stream of a fixed image, pinned byte for byte, and what it decodes to.
    A change in the grid planner, the RCC, the generator (docs/bitstream.md, "Shared randomness")
    or the framing shows here: bump the version, and keep this stream as a golden of the old one."""
    image = smooth_image(8, 10, 3, seed=4)
    result = lossy.encode(image, naive, bpp=10.0, config=GOLDEN_CONFIG, seed=7)
    assert result.data.hex() == GOLDEN_V7
    assert bitstreams.read(result.data).header.version == bitstreams.VERSION == 7
    np.testing.assert_array_equal(np.asarray(lossy.decode_latent(result.data, naive).z), result.latents[-1])
    assert decoded_hashes(result.data, naive) == GOLDEN_V4_DECODED


@pytest.mark.parametrize("version", [4, 5, 6])
def test_golden_streams_of_versions_4_to_6_still_decode_as_they_did(naive, version):
    """Versions 5 to 7 changed nothing a float lossy stream decodes to: version-4 and version-5
    lossy streams (no field exact: 0) and version-6 ones decode as before."""
    data = bytes.fromhex({4: GOLDEN_V4, 5: GOLDEN_V5, 6: GOLDEN_V6}[version])
    assert bitstreams.read(data).header.version == version
    assert decoded_hashes(data, naive) == GOLDEN_V4_DECODED


def test_golden_stream_of_version_3_still_decodes_as_it_did(naive):
    """A version-3 stream (made by diffc before the Philox generator: shared randomness from
    jax.random) decodes with the legacy generator to the latent and pixels it gave then."""
    data = bytes.fromhex(GOLDEN_V3)
    assert bitstreams.read(data).header.version == 3
    assert decoded_hashes(data, naive) == GOLDEN_V3_DECODED


GOLDEN_V7 = (  # version 6's chunks with their words head first
    "444643070003080a07056e61697665efefefefefefefef05000201040202030004000130ccc902bdfedb2a560b00"
    "0000c379c55585a7bba34345403efd57d1be2e9c550af887dc81d795baaa40cd29a9ec2bd57de030d0ab45a39019"
)
GOLDEN_V6 = (
    "444643060003080a07056e61697665efefefefefefefef0500020104020203000400013011be24315f9f8a7445a3"
    "9019e030d0abec2bd57d40cd29a9d795baaaf887dc812e9c550afd57d1be4345403e85a7bba3c379c5550b000000"
)
GOLDEN_V5 = (
    "444643050003080a07056e61697665efefefefefefefef040002010402020300013011be2431bde946e145a39019"
    "e030d0abec2bd57d40cd29a9d795baaaf887dc812e9c550afd57d1be4345403e85a7bba3c379c5550b000000"
)
GOLDEN_V4 = (
    "444643040003080a07056e61697665efefefefefefefef040002010402020300013011be243175fed82e45a39019"
    "e030d0abec2bd57d40cd29a9d795baaaf887dc812e9c550afd57d1be4345403e85a7bba3c379c5550b000000"
)
GOLDEN_V4_DECODED = (
    "3c94e727348b880069451760a0d2e215650942a932114b3f2d76708030916cc5",
    "282518c75aae957ba5c66c6b2ee3b1a7807f834bcd04b9eb097fb23ebd6c490e",
    "52bf16db025a67d63cf0f2795c6bf82adae392bb0007a9d2d7aae20d2649fbe0",
)
GOLDEN_V3 = (
    "444643030003080a07056e61697665efefefefefefefef0400020104020203000130168ac44648f13b03fd3fcabb"
    "dbcab74e420c4910e5bf96bde71de111e5a4f063a130471e872ae9f5eea4584c3e4fc369d362c5bfba4a0200"
)
GOLDEN_V3_DECODED = (
    "1840a0f3eb3b80963398a3140324828c4e060c18ee0052de2337fd092ffc62f8",
    "fad176e15a6e4fdc69d82009a04a4a1ce6ef54e9484cc3ef85ee2f9f2c7e40cb",
    "a95e44b13ccdf067dfbf7a45055c9edb99bb2607c39631d12e2dabbf867709ac",
)


# --- two processes -------------------------------------------------------------------------------

_PROCESS = """
import sys
import numpy as np
sys.path.insert(0, {tests!r})
from diffc import bitstreams
from diffc.codec import lossy, rcc
from diffc.codec.denoiser import Denoiser
from diffc.models import configs, vdm
from helpers import smooth_image

cfg = configs.get_config("tiny")
den = Denoiser(cfg, vdm.init_params(cfg, 0), "tiny-test", "ab" * 32)
stream, out = sys.argv[2], sys.argv[3]
if sys.argv[1] == "encode":
    config = lossy.LossyConfig(steps=4, rcc=rcc.RccConfig(chunk_bits=6, margin=1), curve_points=4)
    result = lossy.encode(smooth_image(9, 13, 3, seed=5), den, bpp=4.0, config=config, seed=123)
    open(stream, "wb").write(result.data)
    n = len(result.steps)  # the sender's own latent, never decoded from the stream
    latent = lossy.Latent(result.latents[-1], result.steps[-1].gamma, bitstreams.read(result.data).header,
                          n, n, None, False)
else:
    latent = lossy.decode_latent(open(stream, "rb").read(), den)
pixels = lossy.reconstruct(latent, den, method="ancestral", steps=2, seed=latent.header.seed)
np.savez(out, z=np.asarray(latent.z), pixels=pixels)
"""


def test_a_stream_decodes_in_another_process_to_the_senders_latent(tmp_path: Path):
    """Encoder and decoder in two fresh processes with the compilation cache off: the decoder's z
    equals the sender's bit for bit, and so do the pixels of ancestral reconstruction (network
    calls and the shared ancestral noise) from it."""
    script = _PROCESS.format(tests=str(Path(__file__).parent))
    env = {**os.environ, "DIFFC_CACHE_DIR": ""}
    stream = tmp_path / "x.dfc"
    for role in ("encode", "decode"):
        subprocess.run([sys.executable, "-c", script, role, str(stream), str(tmp_path / f"{role}.npz")],
                       env=env, check=True, capture_output=True, timeout=600)
    sent, received = np.load(tmp_path / "encode.npz"), np.load(tmp_path / "decode.npz")
    assert sent["z"].shape == (1, 9, 13, 3) and sent["pixels"].shape == (9, 13, 3)
    np.testing.assert_array_equal(received["z"], sent["z"])
    np.testing.assert_array_equal(received["pixels"], sent["pixels"])


# --- prefixes at byte granularity (format version 7) ---------------------------------------------


PROGRESSIVE_IMAGE = smooth_image(24, 24, 3, seed=8)
_X = np.asarray(vdm.pixels_to_x(PROGRESSIVE_IMAGE), np.float64)


@dataclass(frozen=True, eq=False)
class GaussianDenoiser(Denoiser):
    """The linear least-squares denoiser of data with the mean M and variance V of
    ``PROGRESSIVE_IMAGE``: x_hat = M + alpha V (z - alpha M) / (alpha^2 V + sigma^2). A projection
    onto what z tells, so the prior mean that a cut step leaves in the missing dimensions
    reconstructs as the step before did (the tower property), and each coded chunk adds
    information: quality rises with the prefix."""

    @cached_property
    def eps(self):
        m, v = float(_X.mean()), float(_X.var())

        def eps(z_t, gamma_t):
            alpha, sigma = vdm.alpha_sigma(gamma_t.reshape(-1, 1, 1, 1))
            x_hat = m + alpha * v * (z_t - alpha * m) / (alpha**2 * v + sigma**2)
            return (z_t - alpha * x_hat) / sigma

        return jax.jit(eps)


@pytest.fixture(scope="module")
def gaussian(den) -> GaussianDenoiser:
    return GaussianDenoiser(den.config, den.params, "gaussian", "ce" * 32)


@pytest.fixture(scope="module")
def coded_stream(gaussian):
    """A 24x24 photo-like crop coded to 3 bpp with the Gaussian denoiser."""
    image = PROGRESSIVE_IMAGE
    config = lossy.LossyConfig(steps=6, rcc=rcc.RccConfig(chunk_bits=4, margin=2), curve_points=6)
    return image, lossy.encode(image, gaussian, bpp=3.0, config=config, seed=5)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_every_cut_after_the_header_decodes_and_progress_only_grows(gaussian, coded_stream):
    """Cut at every whole word after the header and at bytes inside words: every prefix decodes;
    steps_decoded + fraction never falls; a cut inside the first chunk already holds part of step
    0; the whole stream is complete; and the quality of the mean reconstruction rises with the
    prefix (within 0.1 dB between neighbouring cuts, the Gaussian denoiser's expectation being
    monotone) to well above the header's."""
    image, result = coded_stream
    data = result.data
    header_bytes = bitstreams.read(data).header_bytes
    progress, quality = [], []
    for n in [*range(header_bytes, len(data), 4), header_bytes + 9, header_bytes + 10, len(data)]:
        latent = lossy.decode_latent(data, gaussian, max_bytes=n)
        progress.append((n, latent.steps_decoded + latent.fraction))
        quality.append((n, _psnr(lossy.reconstruct(latent, gaussian, method="mean"), image)))
        assert latent.truncated == (n < len(data))
    progress.sort()
    quality.sort()
    assert all(b[1] >= a[1] for a, b in zip(progress, progress[1:]))
    assert all(b[1] >= a[1] - 0.1 for a, b in zip(quality, quality[1:])), [(n, round(q, 2)) for n, q in quality]
    assert quality[-1][1] > quality[0][1] + 1
    first_chunk_end = header_bytes + len(bitstreams.read(data).chunks[0])
    assert next(n for n, p in progress if p > 0) < first_chunk_end
    latent = lossy.decode_latent(data, gaussian)
    np.testing.assert_array_equal(np.asarray(latent.z), result.latents[-1])


def test_a_cut_inside_a_step_takes_the_prior_mean_where_chunks_are_missing(gaussian, coded_stream):
    """A prefix ending inside a step: the dimensions of its RCC chunks that arrived hold the
    sender's values, and the other dimensions the prior's mean (rcc.regenerate leaves them 0)."""
    image, result = coded_stream
    data = result.data
    cuts = [(n, lossy.decode_latent(data, gaussian, max_bytes=n)) for n in range(bitstreams.read(data).header_bytes, len(data), 4)]
    n, partial = next((n, lat) for n, lat in cuts if lat.steps_decoded >= 2 and 0 < lat.fraction < 1)
    z, sent = np.asarray(partial.z).reshape(-1), result.latents[partial.steps_decoded].reshape(-1)
    share = np.mean(z == sent)
    assert abs(share - partial.fraction) < 0.15, (share, partial.fraction)


def test_a_cut_inside_the_header_says_where_the_header_ends(coded_stream):
    _, result = coded_stream
    header_bytes = bitstreams.read(result.data).header_bytes
    for n in (1, 10, header_bytes - 1):
        with pytest.raises(bitstreams.TruncatedStreamError, match=f"decodes from {header_bytes} bytes on"):
            api.header_of(result.data, max_bytes=n)
        with pytest.raises(bitstreams.TruncatedStreamError, match="at least"):
            bitstreams.read(result.data[:n])


def test_a_cut_inside_the_lossless_tail_decodes_the_steps_before_it(naive):
    image = smooth_image(10, 12, 3, seed=2)
    result = lossy.encode(image, naive, bpp=None, config=GOLDEN_CONFIG, seed=7)
    container = bitstreams.read(result.data)
    tail = len(container.chunks[-1])
    whole = lossy.decode_latent(result.data, naive)
    assert whole.pixels is not None and np.array_equal(whole.pixels, image)
    for n in (len(result.data) - tail + 4, len(result.data) - tail // 2, len(result.data) - 1):
        latent = lossy.decode_latent(result.data, naive, max_bytes=n)
        assert latent.pixels is None and latent.truncated
        assert latent.steps_decoded == latent.steps_total
        np.testing.assert_array_equal(np.asarray(latent.z), np.asarray(whole.z))


def test_the_head_first_layout_costs_no_byte(gaussian, coded_stream):
    """Version 7 only reverses each chunk's rANS words: the same chunks in the old word order under
    a version-6 header are a valid old stream of the same length that decodes to the same z."""
    _, result = coded_stream
    container = bitstreams.read(result.data)
    old_chunks = [np.frombuffer(c, "<u4")[::-1].astype("<u4").tobytes() for c in container.chunks]
    old = bitstreams.write(dataclasses.replace(container.header, version=6), old_chunks)
    assert len(old) == len(result.data)
    np.testing.assert_array_equal(np.asarray(lossy.decode_latent(old, gaussian).z), result.latents[-1])
