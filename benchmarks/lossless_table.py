"""A lossless run of ``diffc eval rd`` beside the model's cost: the Markdown tables of docs/lossless.md
and docs/ardm.md.

    python benchmarks/lossless_table.py docs/results/kodak-lossless docs/results/kodak-elbo-exact.json \\
        docs/results/kodak-elbo-exact-06-12.json --coder diffc-lossless-vdm
    python benchmarks/lossless_table.py docs/results/kodak-lossless-ardm --coder diffc-lossless-ardm

For every image the run coded with ``--coder``: the stream's bits/dim, the model's cost, their
ratio, the classical codecs of the same run and the coder's encode and decode seconds; then the
totals over those images, weighted by their subpixels (bits over subpixels, not a mean of ratios).
The model's cost is the T-step ELBO from the ``diffc eval elbo --json`` files given (``elbo_T100``;
images they lack are left out), or without them the ideal cost the run recorded with each stream
(``ideal_bits_per_dim``: for ARDM, -log2 of the quantised probabilities of the stream's order
and plan, the model's cost). Ratios to 5 decimals: ARDM's streams are within 0.0001 of their cost.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CLASSICAL = ("jpegxl-lossless", "webp-lossless", "png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an eval rd --out folder")
    parser.add_argument("elbo", type=Path, nargs="*", help="diffc eval elbo --json files (default: the ideal cost)")
    parser.add_argument("--coder", default="diffc-lossless-vdm")
    args = parser.parse_args()
    points = json.loads((args.run / "results.json").read_text())["points"]
    by = {(p["image"], p["codec"]): p for p in points}
    if args.elbo:
        files = [json.loads(path.read_text())["images"] for path in args.elbo]
        cost = {i["image"]: i["elbo_T100"] for images in files for i in images}
    else:
        cost = {p["image"]: p["ideal_bits_per_dim"] for p in points if p["codec"] == args.coder
                and "ideal_bits_per_dim" in p}
    images = sorted(p["image"] for p in points if p["codec"] == args.coder and p["image"] in cost)
    if not images:
        raise SystemExit(f"no {args.coder} image of {args.run} has a model cost (older runs lack ideal_bits_per_dim)")
    head = ["image", "stream", "T = 100 ELBO" if args.elbo else "ideal", "ratio", *CLASSICAL, "encode s", "decode s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    totals = {name: 0.0 for name in ("stream", "model", *CLASSICAL, "dims")}
    for image in images:
        coded = by[image, args.coder]
        dims = round(8 * coded["bytes"] / coded["bits_per_dim"])  # H W C, as the run divided by
        row = [coded["bits_per_dim"], cost[image]]
        classical = [by[image, c]["bits_per_dim"] for c in CLASSICAL]
        print(f"| {image} | {row[0]:.3f} | {row[1]:.3f} | {row[0] / row[1]:.5f} | "
              + " | ".join(f"{v:.3f}" for v in classical)
              + f" | {coded['encode_s']:.0f} | {coded['decode_s']:.0f} |")
        for name, v in zip(("stream", "model", *CLASSICAL), row + classical):
            totals[name] += v * dims
        totals["dims"] += dims
    t = {name: v / totals["dims"] for name, v in totals.items() if name != "dims"}
    print(f"| **all {len(images)}** | **{t['stream']:.3f}** | **{t['model']:.3f}** | **{t['stream'] / t['model']:.5f}** | "
          + " | ".join(f"**{t[c]:.3f}**" for c in CLASSICAL) + " | | |")


if __name__ == "__main__":
    main()
