"""Bits-back rate and time against the number of diffusion steps T, beside the model's T-step ELBO.

    python benchmarks/bitsback_steps.py ../shared/data/kodak --names kodim05,kodim14,kodim23 \\
        --crop 64 --steps 50,100,250,500 --json docs/results/bitsback-steps.json

For each crop and T: encode and decode one lossless-vdm stream (checking the round trip), its
bits/dim (whole stream, header and seed patch included) and steady-state bits/dim (chained patches
only), the T-step negative ELBO of the same image (eval ``image_elbo``, 16 diffusion times) and the
encode and decode seconds. Prints a Markdown table; ``--json`` keeps the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from diffc.codec import bitsback, denoiser
from diffc.evaluation import runner
from diffc.evaluation.elbo import image_elbo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--names", default="kodim05,kodim14,kodim23")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--steps", default="50,100,250,500")
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    den = denoiser.load(args.model)
    rows = []
    print("| image | T | bits/dim | steady bits/dim | T-step ELBO | ratio | encode s | decode s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.names.split(","):
        pixels = runner.load_image(args.data / f"{name}.png", args.crop).pixels
        for steps in (int(s) for s in args.steps.split(",")):
            result = bitsback.encode(pixels, den, steps=steps)
            start = time.perf_counter()
            decoded = bitsback.decode(result.data, den)
            decode_s = time.perf_counter() - start
            if not np.array_equal(decoded, pixels):
                raise SystemExit(f"{name} T={steps}: the round trip is not exact")
            elbo = image_elbo(den.config, den.params, pixels, samples=16, steps=steps).discrete
            row = {"image": name, "crop": args.crop, "steps": steps, "bpd": result.bpd,
                   "steady_bpd": result.stats.steady_bpd, "elbo_bpd": elbo, "ratio": result.bpd / elbo,
                   "encode_s": result.seconds, "decode_s": decode_s}
            rows.append(row)
            print(f"| {name} | {steps} | {row['bpd']:.4f} | {row['steady_bpd']:.4f} | {elbo:.4f} | "
                  f"{row['ratio']:.4f} | {row['encode_s']:.1f} | {decode_s:.1f} |", flush=True)
    if args.json:
        command = " ".join(["python", "benchmarks/bitsback_steps.py", *sys.argv[1:]])
        args.json.write_text(json.dumps({"command": command, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
