"""Exact lossy streams (issue 19): with an integer network the DiffC chain runs in fixed point, so
encoder and decoder hold the same integer z after every step on any machine, and ``--bpp max``
(the lossless tail) decodes bit for bit in another process running older-CPU code."""

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cached_property

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import serialization

from diffc import bitstreams
from diffc.codec import entropy, fixed_point, lossy, rcc
from diffc.codec.denoiser import Denoiser
from diffc.models import configs, integer_unet, vdm
from helpers import smooth_image, tiny_exact_denoiser

TINY = configs.get_config("tiny")
# chunks of few bits, so that a 12 x 16 stream has several chunks of steps before its tail
CONFIG = lossy.LossyConfig(steps=4, rcc=rcc.RccConfig(chunk_bits=5, margin=1), curve_points=4, chunk_share=0.01)


@pytest.fixture(scope="module")
def den() -> Denoiser:
    return tiny_exact_denoiser()


@pytest.fixture(scope="module")
def stream(den):
    image = smooth_image(12, 16, 3, seed=4)
    return image, lossy.encode(image, den, bpp=None, config=CONFIG, seed=7)


def sha256(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def test_bpp_max_round_trips_exactly_and_says_so(den, stream):
    image, result = stream
    header = bitstreams.read(result.data).header
    assert header.version == 7 and header.params["exact"] == 1 and header.params["lossless_tail"] == 1
    assert header.model_hash == bytes.fromhex("ab" * 8)  # the integer network's hash
    latent = lossy.decode_latent(result.data, den)
    assert result.lossless and not latent.truncated
    np.testing.assert_array_equal(latent.pixels, image)
    np.testing.assert_array_equal(lossy.reconstruct(latent, den), image)


def test_every_prefix_holds_the_senders_integer_latent(den, stream):
    """Cut after each chunk of steps, the decoder's fixed-point z is the sender's after that step."""
    _, result = stream
    container = bitstreams.read(result.data)
    assert len(container.chunks) >= 3  # two chunks of steps at least, then the tail
    end = len(result.data) - sum(len(c) for c in container.chunks)
    for chunk in container.chunks[:-1]:
        end += len(chunk)
        latent = lossy.decode_latent(result.data, den, max_bytes=end)
        assert latent.fixed.dtype == np.int64 and latent.fixed.shape == (1, 12, 16, 3)
        np.testing.assert_array_equal(latent.fixed, result.latents[latent.steps_decoded - 1])
        np.testing.assert_allclose(np.asarray(latent.z), latent.fixed * 2.0**-integer_unet.Z_FRAC, rtol=2**-24)
    assert latent.steps_decoded == latent.steps_total and latent.pixels is None


def test_an_exact_stream_needs_the_integer_network(den, stream):
    _, result = stream
    with pytest.raises(bitstreams.StreamMismatchError,
                       match="made with the integer network of tiny-exact; model tiny-exact has none"):
        lossy.decode_latent(result.data, tiny_exact_denoiser(with_integer=False))
    with pytest.raises(ValueError, match="no integer network"):
        lossy.encode(smooth_image(4, 4, 3), tiny_exact_denoiser(with_integer=False), bpp=None, config=CONFIG, exact=True)


def test_exact_tail_costs_about_what_the_float_tail_costs(den, stream):
    """On the same z_0 and level, the integer bin masses (``exact_coding``) cost within 2% of the
    float discretised decoder's softmax (0.9% measured)."""
    image, result = stream
    latent = lossy.decode_latent(result.data, den)
    code = fixed_point.gamma_code(latent.gamma)
    exact, float_ = entropy.Stack(), entropy.Stack()
    lossy.ExactPath(den).push_tail(exact, image, latent.fixed, code)
    lossy.FloatPath(den).push_tail(float_, image, latent.z, jnp.asarray(latent.gamma, jnp.float32))
    assert exact.ideal_bits == pytest.approx(float_.ideal_bits, rel=0.02)


def test_exact_and_float_streams_of_one_model(den):
    """``exact=False`` keeps the float path (field 0, the float weights' hash) for a model that has
    an integer network; a grayscale exact tail codes one value per pixel. (The stream's size, so
    that the integer network compiled for it serves here too.)"""
    image = smooth_image(12, 16, 1, seed=2)
    float_stream = lossy.encode(image, den, bpp=None, config=CONFIG, seed=1, exact=False).data
    header = bitstreams.read(float_stream).header
    assert header.params["exact"] == 0 and header.model_hash == bytes.fromhex("cd" * 8)
    exact_stream = lossy.encode(image, den, bpp=None, config=CONFIG, seed=1).data
    for data in (float_stream, exact_stream):
        np.testing.assert_array_equal(lossy.decode_latent(data, den).pixels, image)
    assert len(exact_stream) < len(float_stream)


_CHILD = """
import sys
import numpy as np
from flax import serialization
from diffc.codec import lossy
from diffc.codec.denoiser import Denoiser
from diffc.models import configs, integer_unet
stream, params, net, out = sys.argv[1:5]
tiny = configs.get_config("tiny")
den = Denoiser(tiny, serialization.msgpack_restore(open(params, "rb").read()), "tiny-exact", "cd" * 32,
               integer_unet.from_bytes(tiny, open(net, "rb").read()), "ab" * 32)
latent = lossy.decode_latent(open(stream, "rb").read(), den)
np.savez(out, pixels=latent.pixels, z=latent.fixed)
"""


def test_bpp_max_decodes_in_another_process_on_sse42_code(den, stream, tmp_path):
    """The decoder gets the model as files (the float weights and the integer network's bytes),
    runs with the compilation cache off and XLA limited to SSE4.2 code."""
    image, result = stream
    (tmp_path / "s.dfc").write_bytes(result.data)
    (tmp_path / "params").write_bytes(serialization.msgpack_serialize(jax.tree.map(np.asarray, den.params)))
    (tmp_path / "net").write_bytes(integer_unet.to_bytes(den.integer))
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2", "JAX_ENABLE_COMPILATION_CACHE": "false",
           "DIFFC_CACHE_DIR": ""}
    files = [str(tmp_path / name) for name in ("s.dfc", "params", "net", "out.npz")]
    done = subprocess.run([sys.executable, "-c", _CHILD, *files], env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["pixels"], image)
    np.testing.assert_array_equal(out["z"], result.latents[-1])


# --- golden stream -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class NaiveDenoiser(Denoiser):
    """eps_hat = 0 on both paths (x_hat = z_t / alpha_t, clipped): no network, so the golden
    stream depends on the coder's fixed-point arithmetic, its constants and the generator only."""

    @cached_property
    def eps(self):
        return jax.jit(lambda z_t, gamma_t: jnp.zeros_like(z_t))

    @cached_property
    def integer_eps(self):
        return jax.jit(lambda z, code: jnp.zeros_like(z))


GOLDEN_CONFIG = lossy.LossyConfig(steps=3, rcc=rcc.RccConfig(chunk_bits=4, margin=2), curve_points=4)


@pytest.fixture(scope="module")
def naive(den) -> NaiveDenoiser:
    return NaiveDenoiser(TINY, vdm.init_params(TINY, 0), "naive", "ef" * 32, den.integer, "12" * 32)


@pytest.mark.parametrize("version", [6, 7])
def test_golden_exact_stream_decodes_as_it_did(naive, version):
    """Committed exact ``--bpp max`` streams: their pixels and fixed-point z_0, pinned. A change in
    the fixed-point chain, its decimal constants, the generator or the integer tail shows here. The
    version 6 stream's tail was coded with bin masses, the version 7 one's with the decoder's
    softmax (``exact_coding``), and its chunks hold their words head first; both decode, to the
    same z_0."""
    latent = lossy.decode_latent(bytes.fromhex(GOLDEN if version == 7 else GOLDEN_V6), naive)
    assert bitstreams.read(bytes.fromhex(GOLDEN if version == 7 else GOLDEN_V6)).header.version == version
    np.testing.assert_array_equal(latent.pixels, smooth_image(8, 10, 3, seed=4))
    assert sha256(latent.fixed) == GOLDEN_Z


def test_golden_exact_stream_is_what_the_encoder_writes(naive):
    result = lossy.encode(smooth_image(8, 10, 3, seed=4), naive, bpp=None, config=GOLDEN_CONFIG, seed=7)
    assert result.data.hex() == GOLDEN


GOLDEN_V6 = (  # 366 bytes
    "444643060003080a07056e6169766512121212121212120500030104020203010401023cd2f3cab98002bd3ff5c2"
    "29cd7d33e04177839bf4f41979949926a946386175c1edca408938a79bebfee7b186d2d5033829c8c9fccb6bdabe"
    "d68de562d70d0f5bbc33b715c6c855060000a3672d7852f5077306dd9a8c405efd79ed260d121a7f47d3d363633c"
    "3345f5b939150c24834e9f2c98158b17cb50b7fe6546b1043fa9bd2979b72c2ede02080d49ad6412957b22cec2c7"
    "9e691f23e0fc95fd9e90ff9b2542409b3ea303d11902fd661328cf8bbfa5dbb6f6542f9ea7b34c14ea63f5001799"
    "6339d64552b795009e4c30eec90191e05ac7baea1be6d0d03f1033ef9d44e206ad39ff7feff2ddc8bbef826e907d"
    "ed6537b10f37930a19a74e42f0bdff3e02fe564bc4592795513672eeac6630a571c3374c271522972207d3ceb63c"
    "ebabfca74f974d7115b81ff6afa258f5bff1331545cb6650ef21a1628edf81ec9e15a19bd48d104e664dae00"
)
GOLDEN = (  # 350 bytes: the same codes, a shorter tail, every chunk's words head first
    "444643070003080a07056e6169766512121212121212120500030104020203010401023c6dd25da0f001653a239b"
    "36b6662555060000b715c6c80f5bbc33e562d70ddabed68dc9fccb6b033829c8b186d2d59bebfee7408938a775c1"
    "edcaa9463861799499269bf4f419e041778313e32c04cf6a1a04c378b9b1e97ec374a6ece67bd3476150bf78c560"
    "26cc95356832667f9fa3b40f667591691f5758b79715fd454271e1df0f8a4d980ffd6e39e36dbd4cc5b00b6191e7"
    "42f86e2a3a66f5e1889a3a7c58f8f8b9a27c553f0920868ffa3b7d99a94870a4c8f00fdbb48fb3089b4a7f7541e4"
    "87028b697eddc9051d3823665da1e27af91f890aaf74ca8c5f09c11a6ee16093dcac093ea48f41f76f6e4d3891ec"
    "74b601f15542e19039f6698672db1dbd0a3e7209b2c02c68bba91adf68fe4dd8dcdb0776c3835e91d0b6393a6b0b"
    "c570dfea4eabf9acd952444ef7b5e1e15da45768b73cdd7551fb13f3"
)
GOLDEN_Z = "7130ed9b9102e7901dcfc68851bae6e3c3b0e11f7c82964b4c14306a8ee4f58f"
