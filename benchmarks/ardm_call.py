"""One ARDM network call the way the coder makes it (heads on the coded cells only) against the
whole network's logits followed by a row gather: seconds per call and the largest difference.

    python benchmarks/ardm_call.py ../shared/data/kodak/kodim23.png --coded 32768
    /usr/bin/time -f "%M KB" python benchmarks/ardm_call.py IMAGE --only coded   # peak memory

Half the subpixels known at random; ``--coded`` random subpixels asked for (32,768 is the size
class of a Kodak image's calls at the default 50-call budget). Each form is compiled first, then
timed over ``--repeat`` calls.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from diffc.codec import ardm as coder
from diffc.models import ardm_network
from diffc.models.vdm import VOCAB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("--coded", type=int, default=32768)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=("full", "coded"))
    parser.add_argument("--model", default="default")
    args = parser.parse_args()
    prior = coder.load(args.model)
    k = np.asarray(Image.open(args.image).convert("RGB"))
    rng = np.random.default_rng(0)
    known = rng.random(k.shape) < 0.5
    index = jnp.asarray(np.sort(rng.choice(k.size, args.coded, replace=False)).astype(np.int32))
    inputs = (prior.params, prior.config, jnp.asarray(k[None]), jnp.asarray(known[None]), jnp.array([k.size // 2]))
    rows = jax.jit(lambda out, i: jnp.take(out.reshape(-1, VOCAB), i, axis=0))
    forms: dict[str, Callable[[], np.ndarray]] = {
        "full": lambda: np.asarray(rows(ardm_network.logits(*inputs), index)),
        "coded": lambda: np.asarray(ardm_network.coded_logits(*inputs, index)),
    }
    results = {}
    for name, call in forms.items():
        if args.only not in (None, name):
            continue
        results[name] = call()
        start = time.perf_counter()
        for _ in range(args.repeat):
            call()
        print(f"{name}: {(time.perf_counter() - start) / args.repeat:.2f} s a call")
    if len(results) == 2:
        print(f"largest difference: {np.abs(results['full'] - results['coded']).max():.3g}")


if __name__ == "__main__":
    main()
