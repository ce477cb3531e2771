"""A lossless run of ``diffc eval rd`` beside the model's ELBO: the Markdown table of docs/lossless.md.

    python benchmarks/lossless_table.py docs/results/kodak-lossless docs/results/kodak-elbo-exact.json \\
        docs/results/kodak-elbo-exact-06-12.json --coder diffc-lossless-vdm

For every image the run coded with ``--coder``: the stream's bits/dim, the T-step ELBO from the
``diffc eval elbo --json`` files (``elbo_T100``; images they lack are left out), their ratio, the
classical codecs of the same run and the coder's encode and decode seconds; then the totals over
those images, weighted by their subpixels (bits over subpixels, not a mean of ratios).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CLASSICAL = ("jpegxl-lossless", "webp-lossless", "png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="an eval rd --out folder")
    parser.add_argument("elbo", type=Path, nargs="+", help="diffc eval elbo --json files")
    parser.add_argument("--coder", default="diffc-lossless-vdm")
    args = parser.parse_args()
    points = json.loads((args.run / "results.json").read_text())["points"]
    elbo = {i["image"]: i for path in args.elbo for i in json.loads(path.read_text())["images"]}
    by = {(p["image"], p["codec"]): p for p in points}
    images = sorted(p["image"] for p in points if p["codec"] == args.coder and p["image"] in elbo)
    head = ["image", "stream", "T = 100 ELBO", "ratio", *CLASSICAL, "encode s", "decode s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    totals = {name: 0.0 for name in ("stream", "elbo", *CLASSICAL, "dims")}
    for image in images:
        coded, dims = by[image, args.coder], elbo[image]["dims"]
        row = [coded["bits_per_dim"], elbo[image]["elbo_T100"]]
        classical = [by[image, c]["bits_per_dim"] for c in CLASSICAL]
        print(f"| {image} | {row[0]:.3f} | {row[1]:.3f} | {row[0] / row[1]:.3f} | "
              + " | ".join(f"{v:.3f}" for v in classical)
              + f" | {coded['encode_s']:.0f} | {coded['decode_s']:.0f} |")
        for name, v in zip(("stream", "elbo", *CLASSICAL), row + classical):
            totals[name] += v * dims
        totals["dims"] += dims
    t = {name: v / totals["dims"] for name, v in totals.items() if name != "dims"}
    print(f"| **all {len(images)}** | **{t['stream']:.3f}** | **{t['elbo']:.3f}** | **{t['stream'] / t['elbo']:.3f}** | "
          + " | ".join(f"**{t[c]:.3f}**" for c in CLASSICAL) + " | | |")


if __name__ == "__main__":
    main()
