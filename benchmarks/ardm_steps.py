"""ARDM lossless rate and time against the budget of network calls, beside the model's own cost.

    python benchmarks/ardm_steps.py ../shared/data/kodak --names kodim05,kodim14,kodim23 \\
        --crop 128 --steps 20,50,100,250 --json docs/results/ardm-steps.json

For each image and budget K: encode and decode one lossless-ardm stream (checking the round trip),
its bits/dim (whole stream, header included), the ideal cost of the quantised probabilities it
coded with (the model's -log2 p(x) for that order and plan, to within 0.001 bits per subpixel:
tests/test_ardm.py), their ratio, and the encode and decode seconds. Prints a Markdown table;
``--json`` keeps the rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from diffc.codec import ardm
from diffc.evaluation import runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--names", default="kodim05,kodim14,kodim23")
    parser.add_argument("--crop", type=int, default=128, help="centre crop side; 0 for the whole image")
    parser.add_argument("--steps", default="20,50,100,250")
    parser.add_argument("--model", default="default")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    prior = ardm.load(args.model)
    rows = []
    print("| image | K | calls | bits/dim | model bits/dim | ratio | encode s | decode s |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.names.split(","):
        pixels = runner.load_image(args.data / f"{name}.png", args.crop or None).pixels
        for steps in (int(s) for s in args.steps.split(",")):
            result = ardm.encode(pixels, prior, steps=steps)
            start = time.perf_counter()
            decoded = ardm.decode(result.data, prior)
            decode_s = time.perf_counter() - start
            if not np.array_equal(decoded, pixels.reshape(decoded.shape)):
                raise SystemExit(f"{name} K={steps}: the round trip is not exact")
            model_bpd = result.ideal_bits / result.dims
            row = {"image": name, "crop": args.crop, "steps": steps, "calls": result.calls, "bpd": result.bpd,
                   "model_bpd": model_bpd, "ratio": result.bpd / model_bpd, "encode_s": result.seconds,
                   "decode_s": decode_s}
            rows.append(row)
            print(f"| {name} | {steps} | {result.calls} | {row['bpd']:.4f} | {model_bpd:.4f} | {row['ratio']:.4f} | "
                  f"{row['encode_s']:.1f} | {decode_s:.1f} |", flush=True)
    for steps in sorted({r["steps"] for r in rows}):
        mean = np.mean([r["bpd"] for r in rows if r["steps"] == steps])
        print(f"K={steps}: mean {mean:.4f} bits/dim over {len(args.names.split(','))} images")
    if args.json:
        command = " ".join(["python", "benchmarks/ardm_steps.py", *sys.argv[1:]])
        args.json.write_text(json.dumps({"command": command, "model": prior.name, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
