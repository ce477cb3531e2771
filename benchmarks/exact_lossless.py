"""Exact against float lossless coding in one run: the same images coded with the model's float
network (format field exact = 0) and with its integer network (exact = 1), each stream decoded and
checked, with bits/dim and encode/decode seconds per image and over the set; for bits-back with a
VDM prior or for an ARDM.

    python benchmarks/exact_lossless.py --coder bitsback --data ../shared/data/kodak --size 64 \\
        --json docs/results/kodak-exact-bitsback-64.json

``--size S`` codes the centre S x S crop of each image (0: the full image). Full-size Kodak with
bits-back takes hours on two cores, so the run can be split and resumed: ``--shard I/N`` codes
every N-th image from the I-th (as ``diffc eval rd --shard`` does), the JSON is rewritten after
every image and a rerun into the same file skips the images it holds; ``--merge A.json B.json
--json ALL.json`` joins the shards of one run (same model, integer network, coder, size, steps).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from diffc.evaluation.shards import Shard, names_sha256
from diffc.models import data

SETTINGS = ("coder", "model", "weights_sha256", "integer_sha256", "data", "size", "steps", "names_sha256")


def centre(image: np.ndarray, size: int) -> np.ndarray:
    if size == 0:
        return image
    top, left = (image.shape[0] - size) // 2, (image.shape[1] - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def coder(name: str, model: str) -> tuple[Any, Callable, Callable, int]:
    """(the loaded prior, encode(image, prior, steps, exact), decode(data, prior), default steps)."""
    if name == "ardm":
        from diffc.codec import ardm

        prior = ardm.load(model)
        return (prior, lambda im, p, steps, exact: ardm.encode(im, p, steps=steps, exact=exact),
                ardm.decode, ardm.DEFAULT_STEPS)
    from diffc.codec import bitsback, denoiser

    prior = denoiser.load(model)
    return (prior, lambda im, p, steps, exact: bitsback.encode(im, p, steps=steps, exact=exact),
            bitsback.decode, bitsback.DEFAULT_STEPS)


def code(image: np.ndarray, prior: Any, encode: Callable, decode: Callable, exact: bool, steps: int) -> dict[str, Any]:
    """One encode and decode: bits/dim, seconds, and whether the decode is the image."""
    start = time.perf_counter()
    result = encode(image, prior, steps, exact)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    back = decode(result.data, prior)
    decode_s = time.perf_counter() - start
    return {"bits": 8 * len(result.data), "bits_per_dim": 8 * len(result.data) / image.size,
            "encode_s": round(encode_s, 3), "decode_s": round(decode_s, 3),
            "lossless": bool(np.array_equal(back.reshape(image.shape), image))}


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """bits/dim over all the rows' dimensions, summed seconds, and the exact/float ratio."""
    dims = sum(int(np.prod(r["shape"])) for r in rows)
    total: dict[str, Any] = {
        name: {"bits_per_dim": sum(r[name]["bits"] for r in rows) / dims,
               "encode_s": round(sum(r[name]["encode_s"] for r in rows), 2),
               "decode_s": round(sum(r[name]["decode_s"] for r in rows), 2),
               "all_lossless": all(r[name]["lossless"] for r in rows)} for name in ("float", "exact")}
    total["ratio"] = total["exact"]["bits_per_dim"] / total["float"]["bits_per_dim"]
    return total


def merge(paths: list[Path]) -> dict[str, Any]:
    """One result from the shards' files; SystemExit if they are not shards of one run."""
    parts = [json.loads(p.read_text()) for p in paths]
    for p, part in zip(paths, parts):
        if any(part.get(k) != parts[0].get(k) for k in SETTINGS):
            raise SystemExit(f"{p} is not a shard of the same run as {paths[0]} (model, coder, size, steps or images differ)")
    rows = sorted((r for part in parts for r in part["rows"]), key=lambda r: r["image"])
    if len({r["image"] for r in rows}) != len(rows):
        raise SystemExit("an image appears in two shards")
    result = {k: parts[0][k] for k in SETTINGS} | {"machine": parts[0]["machine"], "images": len(rows),
                                                    "shards": [str(p) for p in paths]}
    return result | {"total": totals(rows), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--coder", choices=("bitsback", "ardm"), default="bitsback")
    ap.add_argument("--model", default="default")
    ap.add_argument("--data", type=Path)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, help="network calls (default: the coder's)")
    ap.add_argument("--limit", type=int, default=0, help="the first N images only (0: all)")
    ap.add_argument("--shard", type=Shard.parse, help="I/N: every N-th image from the I-th")
    ap.add_argument("--merge", type=Path, nargs="+", help="join these shards' files into --json")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.merge:
        result = merge(args.merge)
        print(json.dumps(result["total"], indent=2))
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
        return
    if args.data is None:
        ap.error("--data is required (or --merge)")

    prior, encode, decode, default_steps = coder(args.coder, args.model)
    steps = args.steps or default_steps
    if prior.integer is None:
        ap.error(f"{args.model} has no integer network (diffc models {args.model} --quantise DIR)")
    all_paths = data.list_images([args.data])[: args.limit or None]
    paths = args.shard.select(all_paths) if args.shard else all_paths
    settings = {"coder": args.coder, "model": prior.name, "weights_sha256": prior.weights_sha256,
                "integer_sha256": prior.integer_sha256, "data": str(args.data), "size": args.size, "steps": steps,
                "names_sha256": names_sha256([p.stem for p in all_paths])}
    rows: list[dict[str, Any]] = []
    if args.json and args.json.exists():
        old = json.loads(args.json.read_text())
        if any(old.get(k) != v for k, v in settings.items()):
            ap.error(f"{args.json} holds another run's results; choose another --json")
        rows = old["rows"]
    done = {r["image"] for r in rows}
    todo = [p for p in paths if p.stem not in done]
    if todo:
        warm = centre(data.load_image(todo[0]), args.size)
        for exact in (False, True):  # compile both paths once, outside the timings
            code(warm, prior, encode, decode, exact, steps)
    for path in todo:
        image = centre(data.load_image(path), args.size)
        row = {"image": path.stem, "shape": list(image.shape)}
        for name, exact in (("float", False), ("exact", True)):
            row[name] = code(image, prior, encode, decode, exact, steps)
        rows.append(row)
        print(path.stem, {k: row[k]["bits_per_dim"] for k in ("float", "exact")}, flush=True)
        result = settings | {"machine": f"{platform.machine()}, 2 CPUs, nice-19 training running",
                             "shard": str(args.shard) if args.shard else None, "images": len(rows),
                             "complete": len(rows) == len(paths), "total": totals(rows), "rows": rows}
        if args.json:
            args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(totals(rows), indent=2))


if __name__ == "__main__":
    main()
