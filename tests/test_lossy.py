"""Lossy DiffC with the tiny config (untrained weights: coding must be exact whatever the model)."""

import numpy as np
import pytest

from diffc import bitstreams
from diffc.codec import lossy, rcc
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
