"""Lossy DiffC's reverse channel coding overhead and peak memory, one fresh process per image.

    python benchmarks/lossy_stats.py ../shared/data/kodak --crop 256 --bpp 0.5 --json docs/results/lossy-stats.json

For each image (centre-cropped like ``diffc eval rd --crop``), runs ``diffc encode --bpp B --stats``
and ``diffc decode --stats`` in their own processes, so that each peak memory is that image's, and
reads from the stats the stream's bits, the sum of the steps' KL (the ideal rate of the coded
samples), their ratio (the RCC overhead, header and side information included), the steps and the
seconds. Prints a Markdown table with the mean and range; ``--json`` keeps the rows.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from diffc.codec import lossy
from diffc.evaluation import runner


def _stats(args: list[str], stats: Path) -> dict:
    subprocess.run(["diffc", *args, "--stats", str(stats), "--force", "--quiet"], check=True)
    return json.loads(stats.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--bpp", type=float, default=0.5)
    parser.add_argument("--limit", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print("| image | bpp | KL bits | coded / KL | steps | encode s | decode s | encode MiB | decode MiB |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for path in runner.find_images(args.data, args.limit):
            image = runner.load_image(path, args.crop)
            source, stream, decoded = folder / "in.png", folder / "s.dfc", folder / "out.png"
            Image.fromarray(image.pixels).save(source)
            enc = _stats(["encode", str(source), "--bpp", str(args.bpp), "-o", str(stream)], folder / "enc.json")
            dec = _stats(["decode", str(stream), "-o", str(decoded)], folder / "dec.json")
            row = {"image": image.name, "bpp": enc["bpp"], "kl_bits": enc["kl_bits"], "overhead": enc["overhead_ratio"],
                   "steps": lossy.grid_steps(len(enc["steps"])), "encode_s": enc["seconds_total"], "decode_s": dec["seconds_total"],
                   "encode_peak_mib": enc["peak_memory_mib"], "decode_peak_mib": dec["peak_memory_mib"]}
            rows.append(row)
            print(f"| {row['image']} | {row['bpp']:.3f} | {row['kl_bits']:.0f} | {row['overhead']:.3f} | {row['steps']} | "
                  f"{row['encode_s']:.1f} | {row['decode_s']:.1f} | {row['encode_peak_mib']:.0f} | "
                  f"{row['decode_peak_mib']:.0f} |", flush=True)
    for key in ("bpp", "overhead", "encode_s", "decode_s", "encode_peak_mib", "decode_peak_mib"):
        values = np.array([r[key] for r in rows])
        print(f"{key}: mean {values.mean():.3f}, range {values.min():.3f} - {values.max():.3f}")
    if args.json:
        args.json.write_text(json.dumps({"command": " ".join(sys.argv), "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
