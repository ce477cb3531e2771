"""Exact ARDM streams (issue 19): coded with the integer network's masses, they round-trip for one
and two stages, name the integer network, decode bit for bit in another process running older-CPU
code with the compilation cache off, and a committed stream decodes to its committed image.

The model is drawn from numpy's PCG64 (not jax.random, whose "rbg" bits XLA may change), so the
golden stream's model is the same on every machine; its integer network's hash is pinned too.
"""

import dataclasses
import hashlib
import os
import subprocess
import sys
import zlib

import jax
import numpy as np
import pytest

from diffc import bitstreams
from diffc.codec import ardm
from diffc.models import ardm_network as model
from diffc.models import configs, integer_ardm
from helpers import smooth_image

TINY = configs.get_config("tiny", "ardm")
TWO_STAGES = dataclasses.replace(TINY, stages=2)
MODEL_NAME, MODEL_SHA256 = "ardm-exact", "fedcba9876543210" + "0" * 48
CURVE = np.array([8.5, 6.0, 4.5, 4.0])
SIDE = 8  # every image is 8x8: the tests share the compiled calls


def numpy_params(config: configs.ARDMConfig, seed: int) -> dict:
    """Parameters of ``config``'s shapes, each 0.3 N(0, 1) from numpy's PCG64 (LayerNorm scales
    about 1, the peak's head a tenth as wide, so that peaks stay mild)."""
    rng = np.random.Generator(np.random.PCG64(seed))
    shapes = jax.eval_shape(lambda: model.init_params(config, 0))

    def draw(path: tuple, leaf: jax.ShapeDtypeStruct) -> np.ndarray:
        names = [getattr(p, "key", "") for p in path]
        value = 0.3 * rng.standard_normal(leaf.shape)
        if names[-1] == "scale":
            value += 1.0
        if names[0] == "peak":
            value *= 0.1
        return value.astype(np.float32)

    return jax.tree_util.tree_map_with_path(draw, shapes)


@pytest.fixture(scope="module")
def priors() -> dict:
    """The float-only prior and the exact ones of one and two stages (the integer layers do not
    depend on S), by name."""
    params = numpy_params(TINY, 0)
    calibration = np.stack([smooth_image(16, 16, 3, seed=s) for s in range(4)])
    net = integer_ardm.quantise_on_images(TINY, params, calibration, seed=1)
    sha = hashlib.sha256(integer_ardm.to_bytes(net)).hexdigest()
    two = integer_ardm.IntegerARDM(TWO_STAGES, net.layers)
    return {
        "float": ardm.ARDMPrior(TINY, params, CURVE, MODEL_NAME, MODEL_SHA256),
        1: ardm.ARDMPrior(TINY, params, CURVE, MODEL_NAME, MODEL_SHA256, net, sha),
        2: ardm.ARDMPrior(TWO_STAGES, params, np.tile(CURVE, 2) / 2, MODEL_NAME, MODEL_SHA256, two, sha),
    }


CASES = {"rgb": (1, 3, 5), "gray": (1, 1, 4), "2-stages": (2, 3, 6)}  # stages, channels, steps


@pytest.fixture(scope="module")
def streams(priors) -> dict:
    out = {}
    for name, (stages, channels, steps) in CASES.items():
        image = smooth_image(SIDE, SIDE, 3, seed=12)[..., :channels]
        out[name] = image, ardm.encode(image, priors[stages], steps=steps, seed=4)
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_exact_stream_round_trips_and_says_so(priors, streams, case):
    image, result = streams[case]
    prior = priors[CASES[case][0]]
    header = bitstreams.read(result.data).header
    assert header.params["exact"] == 1 and header.params["image_crc32"] == zlib.crc32(image.tobytes())
    assert header.model_hash == bytes.fromhex(prior.integer_sha256[:16])  # the integer network's hash
    np.testing.assert_array_equal(ardm.decode(result.data, prior), image)
    assert result.ideal_bits <= result.payload_bits <= result.ideal_bits * 1.01 + 64


def test_exact_stream_needs_the_integer_network(priors, streams):
    _, result = streams["rgb"]
    refusal = "the stream was made with the integer network of ardm-exact; model ardm-exact has none"
    with pytest.raises(bitstreams.StreamMismatchError, match=refusal):
        ardm.decode(result.data, priors["float"])
    with pytest.raises(ValueError, match="no integer network"):
        ardm.encode(np.zeros((2, 2, 3), np.uint8), priors["float"], exact=True)


def test_float_streams_of_an_exact_prior_decode_as_before(priors, streams):
    """exact=False makes the float stream (named by the weights' hash), within 2% of the exact
    stream's cost; so does a version 5 header, which has no exact field."""
    image, exact = streams["rgb"]
    result = ardm.encode(image, priors[1], steps=5, seed=4, exact=False)
    container = bitstreams.read(result.data)
    assert container.header.params["exact"] == 0 and container.header.model_hash == priors[1].hash8
    np.testing.assert_array_equal(ardm.decode(result.data, priors[1]), image)
    assert abs(exact.ideal_bits / result.ideal_bits - 1) < 0.02
    params = {k: v for k, v in container.header.params.items() if k != "exact"}
    old = dataclasses.replace(container.header, params=params, version=5)
    np.testing.assert_array_equal(ardm.decode(bitstreams.write(old, container.chunks), priors[1]), image)


def test_corrupt_exact_data_is_called_corrupt(priors, streams):
    """An exact stream's probabilities are the same everywhere: a failure is corruption, not
    float numerics (whose wording tests/test_ardm.py checks)."""
    _, result = streams["rgb"]
    container = bitstreams.read(result.data)
    words = np.frombuffer(container.chunks[0], dtype="<u4").copy()
    words[-1] ^= 0x00F0F000
    data = bitstreams.write(container.header, [words.astype("<u4").tobytes()])
    with pytest.raises(bitstreams.CorruptStreamError, match="corrupt") as info:
        ardm.decode(data, priors[1])
    assert "float model" not in str(info.value)
    flagged = dataclasses.replace(container.header, params={**container.header.params, "exact": 2})
    with pytest.raises(bitstreams.CorruptStreamError, match="exact flag is 2"):
        ardm.decode(bitstreams.write(flagged, container.chunks), priors[1])


_CHILD = """
import dataclasses, sys
import numpy as np
from diffc.codec import ardm
from diffc.models import configs, integer_ardm
net_file, sha, out, *streams = sys.argv[1:]
curve = np.array([8.5, 6.0, 4.5, 4.0])
decoded = []
for stages, path in zip((1, 2), streams):
    config = dataclasses.replace(configs.get_config("tiny", "ardm"), stages=stages)
    net = integer_ardm.from_bytes(config, open(net_file, "rb").read())
    prior = ardm.ARDMPrior(config, None, np.tile(curve, stages) / stages, "ardm-exact",
                           "fedcba9876543210" + "0" * 48, net, sha)
    decoded.append(ardm.decode(open(path, "rb").read(), prior))
np.savez(out, *decoded)
"""


def test_exact_streams_decode_in_another_process_on_sse42_code(priors, streams, tmp_path):
    """The decoder gets the integer network as its bytes (as a shipped model comes) and no float
    weights at all."""
    (tmp_path / "net").write_bytes(integer_ardm.to_bytes(priors[1].integer))
    for case in ("rgb", "2-stages"):
        (tmp_path / case).write_bytes(streams[case][1].data)
    env = {**os.environ, "XLA_FLAGS": "--xla_cpu_max_isa=SSE4_2", "JAX_ENABLE_COMPILATION_CACHE": "false",
           "DIFFC_CACHE_DIR": ""}
    args = [str(tmp_path / "net"), priors[1].integer_sha256, str(tmp_path / "out.npz"),
            str(tmp_path / "rgb"), str(tmp_path / "2-stages")]
    done = subprocess.run([sys.executable, "-c", _CHILD, *args], env=env, timeout=600, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    out = np.load(tmp_path / "out.npz")
    np.testing.assert_array_equal(out["arr_0"], streams["rgb"][0])
    np.testing.assert_array_equal(out["arr_1"], streams["2-stages"][0])


# --- golden stream -------------------------------------------------------------------------------


def test_golden_exact_stream(priors):
    """A committed exact stream decodes to its committed image, and the encoder writes it again
    byte for byte. It pins the integer network (its bytes' hash: the calibration and the layers),
    the tables, the integer softmax, the order, the plan and the framing: if this fails, old exact
    streams no longer decode (bump the format version, or find the change)."""
    prior = priors[1]
    assert prior.integer_sha256 == GOLDEN_INTEGER_SHA256
    for stream in (bytes.fromhex(GOLDEN_STREAM_V6), bytes.fromhex(GOLDEN_STREAM)):
        image = ardm.decode(stream, prior)
        assert hashlib.sha256(image.tobytes()).hexdigest() == GOLDEN_PIXELS_SHA256
    np.testing.assert_array_equal(image, smooth_image(SIDE, SIDE, 3, seed=21))
    assert ardm.encode(image, prior, steps=3, seed=1).data == stream


GOLDEN_INTEGER_SHA256 = "26882965b8ff347d4bffcea17d49fdf3f7fc8ea4c1dc6bf06e5e81cab1b9a0e8"
GOLDEN_PIXELS_SHA256 = "3b217632962dd97aa6556e4e0f84fe6528d08d95b22850594ad642a65c02ccc3"
GOLDEN_STREAM_V6 = (  # 244 bytes: 8x8 RGB, 3 calls, seed 1, format version 6
    "4446430602030808010a6172646d2d657861637426882965b8ff347d04000301f0e882ec070200030101c00178f6c616"
    "758e60ea8c4e8bb06d258ba42b5294a95002734d6b297aa3973f87c4c46c74fe7e017f40361a8c5a706676e3be4d9695"
    "b24a568d736a90e533446f3e63e7731d610b7b140b5888a19115897f6cd55c823720787f677d5f3c1bcf9403767a7f1b"
    "4d947e17af597696ba9c9d45e66aa57f4ab179b44f2880db3249a20745213f5c0abe6aaba0e8846658bc86a808878cbb"
    "966683f5e0397f109238a8c3a1de73890d847c1ddfbb7db3a52e9c0236ac75db9f8635fc0353a693f713848f4da46bf7"
    "545a0000"
)
GOLDEN_STREAM = (  # the same in format version 7 (which changed nothing in ARDM streams)
    "4446430702030808010a6172646d2d657861637426882965b8ff347d04000301f0e882ec070200030101c00178f6c616"
    "39a6f6498c4e8bb06d258ba42b5294a95002734d6b297aa3973f87c4c46c74fe7e017f40361a8c5a706676e3be4d9695"
    "b24a568d736a90e533446f3e63e7731d610b7b140b5888a19115897f6cd55c823720787f677d5f3c1bcf9403767a7f1b"
    "4d947e17af597696ba9c9d45e66aa57f4ab179b44f2880db3249a20745213f5c0abe6aaba0e8846658bc86a808878cbb"
    "966683f5e0397f109238a8c3a1de73890d847c1ddfbb7db3a52e9c0236ac75db9f8635fc0353a693f713848f4da46bf7"
    "545a0000"
)
