"""Exact bits-back streams (issue 19): made with the integer network and integer tables, they
decode bit for bit in another process running older-CPU code with the compilation cache off."""

import os
import subprocess
import sys

import jax
import numpy as np
import pytest
from flax import serialization

from diffc import bitstreams
from diffc.codec import bitsback
from diffc.models import integer_unet
from helpers import smooth_image, tiny_exact_denoiser

STEPS, PATCH = 3, 8


@pytest.fixture(scope="module")
def den():
    return tiny_exact_denoiser()


@pytest.fixture(scope="module")
def stream(den):
    image = smooth_image(16, 12, 3, seed=5)
    return image, bitsback.encode(image, den, steps=STEPS, patch_size=PATCH, seed=3)


def test_exact_stream_round_trips_and_says_so(den, stream):
    image, result = stream
    header = bitstreams.read(result.data).header
    assert header.version == bitstreams.VERSION == 7 and header.params["exact"] == 1
    assert header.model_hash == bytes.fromhex("ab" * 8)  # the integer network's hash
    np.testing.assert_array_equal(bitsback.decode(result.data, den), image)


def test_exact_stream_needs_the_integer_network(stream):
    _, result = stream
    with pytest.raises(bitstreams.StreamMismatchError, match="integer network"):
        bitsback.decode(result.data, tiny_exact_denoiser(with_integer=False))


def test_exact_windows_of_any_size(den):
    """Patches and windows that are not multiples of the U-Net's 2x2 folding (3x3 patches of a 9x7
    image) run through the integer network reflect-padded, as the float network pads."""
    image = smooth_image(9, 7, 3, seed=2)
    result = bitsback.encode(image, den, steps=STEPS, patch_size=3, context=2, seed=4)
    assert bitstreams.read(result.data).header.params["exact"] == 1
    np.testing.assert_array_equal(bitsback.decode(result.data, den), image)


_CHILD = """
import sys
import numpy as np
from flax import serialization
from diffc.codec import bitsback
from diffc.codec.denoiser import Denoiser
from diffc.models import configs, integer_unet
stream, params, net, out = sys.argv[1:5]
tiny = configs.get_config("tiny")
den = Denoiser(tiny, serialization.msgpack_restore(open(params, "rb").read()), "tiny-exact", "cd" * 32,
               integer_unet.from_bytes(tiny, open(net, "rb").read()), "ab" * 32)
np.save(out, bitsback.decode(open(stream, "rb").read(), den))
"""


def test_exact_stream_decodes_in_another_process_on_sse42_code(den, stream, tmp_path):
    """The decoder gets the model as files (the float weights and the integer network's bytes, as
    a shipped model comes), not by recomputing it."""
    image, result = stream
    (tmp_path / "s.dfc").write_bytes(result.data)
    (tmp_path / "params").write_bytes(serialization.msgpack_serialize(jax.tree.map(np.asarray, den.params)))
    (tmp_path / "net").write_bytes(integer_unet.to_bytes(den.integer))
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    files = [str(tmp_path / name) for name in ("s.dfc", "params", "net", "out.npy")]
    done = subprocess.run([sys.executable, "-c", _CHILD, *files], env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), image)
