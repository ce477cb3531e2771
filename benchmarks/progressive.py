"""PSNR against bytes for lossy streams decoded from evenly spaced prefixes (issue 20).

    python benchmarks/progressive.py --data ../shared/data/kodak --images kodim05,kodim23 \\
        --crop 0 --bpp 0.5 --prefixes 50 --json docs/results/progressive-kodak.json \\
        --plot docs/progressive-curve.png --animation docs/progressive.webp

Each image is coded once at ``--bpp``; its stream is decoded at ``--prefixes`` lengths evenly
spaced from the header's end to the whole stream (``codec.progression``), every one with the
probability-flow reconstruction. Reported per image and as the mean over images at each of the
evenly spaced positions: bytes, share of the file, PSNR; and the first prefix after the header
that holds any coded data (the grid and step 0's first RCC chunk), as a share of the file. The
JSON is rewritten after every image and a rerun into it skips the images it holds.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diffc import bitstreams  # noqa: E402
from diffc.cli.main import main as cli  # noqa: E402
from diffc.codec import denoiser, lossy, progression  # noqa: E402
from diffc.evaluation import metrics, runner  # noqa: E402


def first_coded(data: bytes, den: denoiser.Denoiser) -> int:
    """The shortest prefix (whole words after the header) whose latent holds coded data."""
    start = bitstreams.read_header(data)[1]
    for n in range(start, len(data) + 4, 4):
        latent = lossy.decode_latent(data, den, max_bytes=n)
        if latent.steps_decoded or latent.fraction:
            return min(n, len(data))
    return len(data)


def measure(path: Path, den: denoiser.Denoiser, args: argparse.Namespace) -> dict:
    pixels = runner.load_image(path, args.crop or None).pixels
    start = time.perf_counter()
    data = lossy.encode(pixels, den, bpp=args.bpp).data
    encode_s = time.perf_counter() - start
    if args.streams:
        args.streams.mkdir(parents=True, exist_ok=True)
        (args.streams / f"{path.stem}.dfc").write_bytes(data)
    lengths = progression.prefix_lengths(data, args.prefixes)
    psnrs, steps = [], []
    for n, decoded in progression.frames(data, lengths, model=den, method=args.method, decode_steps=args.decode_steps):
        psnrs.append(metrics.psnr(pixels, decoded.pixels))
        steps.append(decoded.facts["steps_decoded"] + decoded.facts["next_step_share"])
    first = first_coded(data, den)
    return {"image": path.stem, "shape": list(pixels.shape), "bytes": len(data),
            "header_bytes": bitstreams.read_header(data)[1], "first_coded_bytes": first,
            "first_coded_share": first / len(data), "lengths": lengths, "psnr": psnrs, "steps": steps,
            "encode_s": round(encode_s, 1)}


def summary(rows: list[dict]) -> dict:
    psnr = np.array([r["psnr"] for r in rows])
    share = np.array([np.array(r["lengths"]) / r["bytes"] for r in rows])
    mean = psnr.mean(axis=0)
    return {"images": len(rows), "mean_psnr": mean.round(3).tolist(), "mean_share": share.mean(axis=0).round(4).tolist(),
            "mean_bytes": np.mean([r["lengths"] for r in rows], axis=0).round(1).tolist(),
            "mean_psnr_never_falls": bool(np.all(np.diff(mean) >= 0)),
            "largest_first_coded_share": max(r["first_coded_share"] for r in rows)}


def plot(rows: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    for r in rows:
        ax.plot(100 * np.array(r["lengths"]) / r["bytes"], r["psnr"], color="0.75", lw=0.8)
    s = summary(rows)
    ax.plot(100 * np.array(s["mean_share"]), s["mean_psnr"], color="C0", lw=2, label=f"mean of {len(rows)} images")
    ax.set_xlabel("prefix of the stream (% of its bytes)")
    ax.set_ylabel("PSNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--images", help="comma-separated names (default: all)")
    ap.add_argument("--crop", type=int, default=0, help="centre crop side (0: the full image)")
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--prefixes", type=int, default=50)
    ap.add_argument("--method", default="flow", choices=("flow", "ancestral", "mean"))
    ap.add_argument("--decode-steps", type=int, default=16)
    ap.add_argument("--model", default="default")
    ap.add_argument("--streams", type=Path, help="keep the streams in this folder")
    ap.add_argument("--json", type=Path, required=True)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--animation", type=Path, help="the first image's progression (.webp or .gif, 20 frames)")
    args = ap.parse_args()
    den = denoiser.load(args.model)
    paths = runner.find_images(args.data)
    if args.images:
        wanted = args.images.split(",")
        paths = [p for p in paths if p.stem in wanted]
    old = json.loads(args.json.read_text()) if args.json.exists() else {"rows": []}
    rows = old["rows"]
    for path in paths:
        if any(r["image"] == path.stem for r in rows):
            continue
        rows.append(measure(path, den, args))
        print(path.stem, f"first coded {100 * rows[-1]['first_coded_share']:.2f}%",
              [round(p, 2) for p in rows[-1]["psnr"][:: max(1, args.prefixes // 10)]], flush=True)
        settings = {k: str(v) for k, v in vars(args).items()}
        args.json.write_text(json.dumps({"settings": settings, "model": den.name, "weights_sha256": den.weights_sha256,
                                         "summary": summary(rows), "rows": rows}, indent=2) + "\n")
    if args.plot:
        plot(rows, args.plot)
    if args.animation and args.streams:
        first = args.streams / f"{rows[0]['image']}.dfc"
        cli(["decode", str(first), "--progression", str(args.animation), "--frames", "20", "--force", "--quiet"])
    print(json.dumps(summary(rows), indent=2))


if __name__ == "__main__":
    main()
