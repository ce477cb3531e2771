"""Exact against float bits-back in one run: the same images coded with the model's float network
(format field exact = 0) and with its integer network (exact = 1), each stream decoded and checked,
with bits/dim and encode/decode seconds per image and over the set.

    python benchmarks/exact_bitsback.py --data ../shared/data/kodak --size 64 \\
        --json docs/results/kodak-exact-bitsback-64.json

``--size S`` codes the centre S x S crop of each image (0: the full image).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np

from diffc.codec import bitsback, denoiser
from diffc.models import data


def centre(image: np.ndarray, size: int) -> np.ndarray:
    if size == 0:
        return image
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def code(image: np.ndarray, den: denoiser.Denoiser, exact: bool, steps: int) -> dict[str, float]:
    """One encode and decode: bits/dim, seconds, and whether the decode is the image."""
    start = time.perf_counter()
    result = bitsback.encode(image, den, steps=steps, exact=exact)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    back = bitsback.decode(result.data, den)
    decode_s = time.perf_counter() - start
    return {"bits": 8 * len(result.data), "bits_per_dim": 8 * len(result.data) / image.size,
            "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3),
            "lossless": bool(np.array_equal(back, image))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=bitsback.DEFAULT_STEPS)
    ap.add_argument("--limit", type=int, default=0, help="the first N images only (0: all)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    den = denoiser.load(args.model)
    if den.integer is None:
        ap.error(f"{args.model} has no integer network (diffc models {args.model} --quantise DIR)")
    paths = data.list_images([args.data])[: args.limit or None]
    warm = centre(data.load_image(paths[0]), args.size)
    for exact in (False, True):  # compile both paths once, outside the timings
        code(warm, den, exact, args.steps)
    rows = []
    for path in paths:
        image = centre(data.load_image(path), args.size)
        row = {"image": path.stem, "shape": list(image.shape)}
        for name, exact in (("float", False), ("exact", True)):
            row[name] = code(image, den, exact, args.steps)
        rows.append(row)
        print(path.stem, {k: row[k]["bits_per_dim"] for k in ("float", "exact")}, flush=True)
    dims = sum(int(np.prod(r["shape"])) for r in rows)
    total = {name: {"bits_per_dim": sum(r[name]["bits"] for r in rows) / dims,
                    "encode_s": round(sum(r[name]["encode_s"] for r in rows), 2),
                    "decode_s": round(sum(r[name]["decode_s"] for r in rows), 2),
                    "all_lossless": all(r[name]["lossless"] for r in rows)} for name in ("float", "exact")}
    total["ratio"] = total["exact"]["bits_per_dim"] / total["float"]["bits_per_dim"]
    result = {"model": den.name, "weights_sha256": den.weights_sha256, "integer_sha256": den.integer_sha256,
              "data": str(args.data), "size": args.size, "steps": args.steps, "images": len(rows),
              "machine": f"{platform.machine()}, 2 CPUs, nice-19 training running",
              "total": total, "rows": rows}
    print(json.dumps(total, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
