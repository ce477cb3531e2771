"""What the integer denoiser costs: the T-step negative ELBO (bits/dim) of validation crops with the
float U-Net and with its integer version (``models/integer_unet.py``), same crops, times and noise.
The integer network is the model's own (``diffc models MODEL --quantise DIR``), or, for a model
without one, quantised here on ``--calibrate``'s images.

    python benchmarks/integer_accuracy.py --model default --val ../shared/data/cid22/val \
        --crops 128 --crop 32 --json docs/results/integer-accuracy.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from diffc.models import checkpoint, data, integer_export, integer_unet, registry, vdm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--val", type=Path, required=True, help="validation image folder")
    ap.add_argument("--calibrate", type=Path, help="image folder for the activation scales of a model "
                    "without an integer network")
    ap.add_argument("--crops", type=int, default=128)
    ap.add_argument("--crop", type=int, default=32)
    ap.add_argument("--calibration-crops", type=int, default=32)
    ap.add_argument("--steps", type=int, default=100, help="T of the discrete ELBO (0: continuous)")
    ap.add_argument("--repeats", type=int, default=4, help="noise draws per crop")
    ap.add_argument("--timing-size", type=int, default=256, help="side of the one-image timing call")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    path = registry.resolve(args.model)
    config, params, card = checkpoint.load_model(path, "vdm")
    gamma_fn, eps_fn = vdm.bound_fns(config, params)
    start = time.monotonic()
    stored = checkpoint.read_integer(path)
    if stored is not None:
        net, calibration = integer_unet.from_bytes(config, stored[0]), stored[1]
    elif args.calibrate is None:
        ap.error(f"{args.model} has no integer network: pass --calibrate DIR")
    else:
        blob, calibration = integer_export.quantise(path, [args.calibrate], crops=args.calibration_crops,
                                                    crop=args.crop)
        net = integer_unet.from_bytes(config, blob)
    quantise_s = time.monotonic() - start

    int_eps = jax.jit(net.eps)

    def integer_eps_fn(z_t: jax.Array, gamma_t: jax.Array) -> jax.Array:
        g = jnp.broadcast_to(jnp.asarray(gamma_t, jnp.float32).reshape(-1), z_t.shape[:1])
        out = int_eps(integer_unet.to_fixed(z_t), integer_unet.gamma_codes(g))
        return out.astype(jnp.float32) * 2.0**-integer_unet.EPS_FRAC

    val = data.fixed_crops([data.load_image(p) for p in data.list_images([args.val])], args.crop, args.crops)
    totals = {"float": [], "integer": []}
    for r in range(args.repeats):
        for i in range(0, len(val), 32):
            k = jnp.asarray(val[i : i + 32])
            sub = jax.random.fold_in(jax.random.PRNGKey(1234), r * 1000 + i)
            for name, fn in (("float", eps_fn), ("integer", integer_eps_fn)):
                terms = vdm.elbo_terms(k, sub, gamma_fn, fn, steps=args.steps, clip=args.steps > 0)
                totals[name].append(np.asarray(terms["bpd"]))
    result = {name: float(np.concatenate(v).mean()) for name, v in totals.items()}
    result["seconds_per_call"] = _timings(eps_fn, integer_eps_fn, val[:32], args.timing_size)
    result.update(
        ratio=result["integer"] / result["float"], model=card.get("name"), sha256=card["sha256"],
        crops=args.crops, crop=args.crop, steps=args.steps, repeats=args.repeats, quantise_s=round(quantise_s, 1),
        integer_sha256=calibration.get("sha256"), calibration=calibration.get("calibration"),
    )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def _timings(float_fn, integer_fn, crops: np.ndarray, size: int) -> dict[str, dict[str, float]]:
    """Seconds per warm network call, float and integer, on the crops as one batch and on one
    size x size image (median of 3 after a compiling call)."""
    out: dict[str, dict[str, float]] = {}
    batch = jnp.asarray(vdm.pixels_to_x(crops))
    image = jax.random.normal(jax.random.PRNGKey(0), (1, size, size, 3))
    for label, z in ((f"batch {batch.shape[0]}x{batch.shape[1]}x{batch.shape[2]}", batch), (f"1x{size}x{size}", image)):
        gamma = jnp.full(z.shape[:1], -5.0)
        out[label] = {}
        for name, fn in (("float", jax.jit(float_fn)), ("integer", integer_fn)):
            jax.block_until_ready(fn(z, gamma))
            times = []
            for _ in range(3):
                start = time.perf_counter()
                jax.block_until_ready(fn(z, gamma))
                times.append(time.perf_counter() - start)
            out[label][name] = round(sorted(times)[1], 4)
    return out


if __name__ == "__main__":
    main()
