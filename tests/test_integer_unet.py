"""The integer VDM denoiser (``models/integer_unet.py``): bit-exact across jit, the float32
convolution path, serialisation and a process running older-CPU code, and close to the float U-Net
it was quantised from."""

import hashlib
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from diffc.models import configs, integer_unet, vdm

TINY = configs.get_config("tiny")


def _params(seed: int = 0) -> dict:
    """The tiny VDM with every weight perturbed (the zero-initialised output conv included), so
    that each layer matters."""
    params = vdm.init_params(TINY, seed)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
    noisy = [a + 0.1 * jax.random.normal(k, a.shape) for a, k in zip(leaves, keys)]
    return jax.tree.unflatten(tree, noisy)


def _latents(n: int, seed: int, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """z_t of random 8-bit images at noise levels spread over the schedule."""
    rng = np.random.default_rng(seed)
    x = vdm.pixels_to_x(rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    gamma = np.linspace(TINY.gamma_min, TINY.gamma_max, n).astype(np.float32)
    z = vdm.diffuse(x, jnp.asarray(gamma), jax.random.normal(jax.random.PRNGKey(seed), x.shape))
    return np.asarray(z), gamma


@pytest.fixture(scope="module")
def model():
    params = _params()
    z, gamma = _latents(8, seed=1)
    return params, integer_unet.quantise(TINY, params, z, gamma)


@pytest.fixture(scope="module")
def inputs():
    z, gamma = _latents(4, seed=2)
    return z, gamma, integer_unet.to_fixed(z), integer_unet.gamma_codes(gamma)


def test_output_is_close_to_the_float_unet(model, inputs):
    """On latents the calibration did not see, eps_hat - z is within 5% (rms; 2.8% measured) of the
    float network's on these random weights (a broken layer gives ~100%)."""
    params, net = model
    z, gamma, zi, codes = inputs
    _, eps_fn = vdm.bound_fns(TINY, params)
    expected = np.asarray(eps_fn(jnp.asarray(z), jnp.asarray(gamma)), np.float64)
    got = np.asarray(net.eps(zi, codes), np.float64) * 2.0**-integer_unet.EPS_FRAC
    assert np.sqrt(np.mean((got - expected) ** 2)) < 0.05 * np.sqrt(np.mean((expected - z) ** 2))


def test_eager_jit_float_path_and_reloaded_agree_bit_for_bit(model, inputs):
    _, net = model
    *_, zi, codes = inputs
    eager = np.asarray(net.eps(zi, codes))
    assert eager.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(jax.jit(net.eps)(zi, codes)), eager)
    via_float = integer_unet.IntegerUNet(TINY, net.layers, float_path=True)
    np.testing.assert_array_equal(np.asarray(jax.jit(via_float.eps)(zi, codes)), eager)
    again = integer_unet.from_bytes(TINY, integer_unet.to_bytes(net))
    np.testing.assert_array_equal(np.asarray(jax.jit(again.eps)(zi, codes)), eager)


def test_from_bytes_refuses_other_data():
    with pytest.raises(ValueError, match="not an integer model"):
        integer_unet.from_bytes(TINY, b"\x93not msgpack at all")
    with pytest.raises(ValueError, match="not an integer model"):
        integer_unet.from_bytes(TINY, integer_unet.serialization.msgpack_serialize({"format": "other"}))


_CHILD = """
import hashlib, sys
import numpy as np
from diffc.models import configs, integer_unet
net = integer_unet.from_bytes(configs.get_config("tiny"), open(sys.argv[1], "rb").read())
data = np.load(sys.argv[2])
print(hashlib.sha256(np.asarray(net.eps(data["z"], data["codes"])).tobytes()).hexdigest())
"""


def test_another_process_on_sse42_code_computes_the_same_integers(model, inputs, tmp_path):
    """A second process, compilation cache off, with XLA told to emit code for an SSE4.2 CPU (no
    AVX), rebuilds the model from its bytes and gets eps_hat bit for bit."""
    _, net = model
    *_, zi, codes = inputs
    (tmp_path / "net.msgpack").write_bytes(integer_unet.to_bytes(net))
    np.savez(tmp_path / "in.npz", z=np.asarray(zi), codes=np.asarray(codes))
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2", "JAX_ENABLE_COMPILATION_CACHE": "false",
           "DIFFC_CACHE_DIR": ""}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(tmp_path / "net.msgpack"), str(tmp_path / "in.npz")],
                         env=env, capture_output=True, text=True, timeout=300, check=True)
    expected = hashlib.sha256(np.asarray(jax.jit(net.eps)(zi, codes)).tobytes()).hexdigest()
    assert out.stdout.strip() == expected


def test_skip_projections_read_24_bits_and_format_2_networks_compute_as_before(model, inputs):
    """The skip projections (each ResBlock's Conv_2) of a new network read 24-bit inputs, and bring
    eps_hat closer to the float network's; a network quantised as format 2 was (int16 inputs
    there), stored under that format, still loads and computes exactly what it computed."""
    params, net = model
    z, gamma, zi, codes = inputs
    projections = [k for k in net.layers if k.endswith("/Conv_2")]
    assert projections and all("top" in net.layers[k] for k in projections)
    old = integer_unet.quantise(TINY, params, *_latents(8, seed=1), wide_projections=False)
    assert all("top" not in old.layers[k] for k in projections)
    reloaded = integer_unet.from_bytes(TINY, integer_unet.layers_to_bytes("diffc-integer-unet/2", old.layers))
    np.testing.assert_array_equal(np.asarray(reloaded.eps(zi, codes)), np.asarray(old.eps(zi, codes)))
    _, eps_fn = vdm.bound_fns(TINY, params)
    expected = np.asarray(eps_fn(jnp.asarray(z), jnp.asarray(gamma)), np.float64)
    error = {name: np.mean((np.asarray(n.eps(zi, codes), np.float64) * 2.0**-integer_unet.EPS_FRAC - expected) ** 2)
             for name, n in (("wide", net), ("int16", old))}
    assert error["wide"] < error["int16"]
