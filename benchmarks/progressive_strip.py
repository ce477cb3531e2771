"""One image decoded from growing prefixes of a single lossy stream: the progressive picture.

    python benchmarks/progressive_strip.py ../shared/data/kodak/kodim23.png --crop 256 --bpp 1 \\
        -o docs/progressive.png

Encodes once at ``--bpp``, then decodes the prefix ending after each chunk (probability-flow
reconstruction) and lays the results out in a row, labelled with the prefix's bpp and PSNR.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from diffc import bitstreams  # noqa: E402
from diffc.codec import denoiser, lossy  # noqa: E402
from diffc.evaluation import metrics, runner  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image", type=Path)
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--bpp", type=float, default=1.0)
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--model", default="default")
    parser.add_argument("--method", default="flow", choices=("flow", "ancestral", "mean"))
    args = parser.parse_args()
    den = denoiser.load(args.model)
    pixels = runner.load_image(args.image, args.crop).pixels
    h, w = pixels.shape[:2]
    data = lossy.encode(pixels, den, bpp=args.bpp).data
    container = bitstreams.read(data)
    ends = [container.header_bytes]
    for chunk in container.chunks:
        ends.append(ends[-1] + len(chunk))
    panels = []
    for end in ends[1:]:
        latent = lossy.decode_latent(data, den, max_bytes=end)
        out = lossy.reconstruct(latent, den, method=args.method)
        psnr = metrics.psnr_from_mse(metrics.mse(pixels, out))
        panels.append((out, f"{8 * end / (h * w):.3f} bpp\n{psnr:.2f} dB"))
    panels.append((pixels, "original"))
    fig, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.7))
    for ax, (image, label) in zip(axes, panels):
        ax.imshow(image)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    fig.suptitle(f"{args.image.name} ({w}x{h} crop): prefixes of one {len(data)}-byte stream, {args.method} decoding",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
