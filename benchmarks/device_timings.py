"""Encode and decode seconds of diffc's three coders on whatever JAX runs on (the GPU when it sees one).

    python benchmarks/device_timings.py .devdata/kodak --names kodim05,kodim23 \\
        --save .devdata/streams --json docs/results/device-timings-cpu.json

(benchmarks/device_check.sh runs it on the GPU; docs/gpu-check.md says how.)

For each coder (lossy DiffC at ``--bpp``, with its RCC knobs or ``--chunk-bits``/``--margin``;
bits-back with the VDM; ARDM; each at its default steps) and each image: encode, decode, check
the result (exact for the lossless coders, PSNR for the lossy one; a lossless round trip that is
not exact is reported, not fatal: on a new device that is a finding) and time both. The first
image of a coder pays for compiling its functions, the others show the steady state.
``--save DIR`` keeps each stream and its decode as ``NAME.MODE.dfc`` and ``NAME.MODE.png``;
``--cross DIR`` decodes such streams, made on another machine or in another process, here and
compares with that decode: whether a stream moves between CPU and GPU, or between processes.
Prints a Markdown table and rewrites ``--json`` after every row, so a run cut short keeps its rows.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from diffc.codec import api
from diffc.evaluation import metrics, runner

MODES = {
    "lossy": {},
    "lossless-vdm": {"lossless": True, "prior": "vdm"},
    "lossless-ardm": {"lossless": True, "prior": "ardm"},
}


def device_facts() -> dict:
    """What JAX runs on, and the peak device memory so far where the backend reports it."""
    device = jax.devices()[0]
    stats = device.memory_stats() or {}
    return {"platform": device.platform, "device": device.device_kind, "jax": jax.__version__,
            "peak_bytes": stats.get("peak_bytes_in_use")}


class Report:
    """Rows of results, printed as they come and kept in a JSON file rewritten after each."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.content: dict = {"command": " ".join(["python", "benchmarks/device_timings.py", *sys.argv[1:]])}

    def add(self, key: str, row: dict, line: str) -> None:
        self.content.setdefault(key, []).append(row)
        self.content["device"] = device_facts()
        print(line, flush=True)
        if self.path:
            self.path.write_text(json.dumps(self.content, indent=2) + "\n")


def decode(data: bytes, model: api.Model | None = None) -> tuple[np.ndarray | None, str | None]:
    """The decoded pixels, or the error a stream raised: on a new device, a stream that does not
    decode is a finding to report, not a reason to stop."""
    try:
        return api.decode(data, model=model).pixels, None
    except Exception as error:  # noqa: BLE001
        return None, f"{type(error).__name__}: {error}"


def time_coders(args: argparse.Namespace, report: Report) -> None:
    """Encode and decode every image with every coder, adding a row to ``report`` for each."""
    for mode in filter(None, args.modes.split(",")):
        knobs = {"bpp": args.bpp, "chunk_bits": args.chunk_bits, "margin": args.margin}
        request = dict(MODES[mode], **knobs) if mode == "lossy" else MODES[mode]
        job = api.prepare(**request)
        for index, name in enumerate(args.names.split(",")):
            pixels = runner.load_image(args.data / f"{name}.png", args.crop or None).pixels
            start = time.perf_counter()
            encoded = job.run(pixels)
            encode_s = time.perf_counter() - start
            start = time.perf_counter()
            decoded, error = decode(encoded.data, job.model)
            decode_s = time.perf_counter() - start
            if error:
                report.add("rows", {"image": name, "mode": mode, "error": error}, f"| {name} | {mode} | {error} |")
                continue
            reference = pixels.reshape(decoded.shape)
            exact = bool(np.array_equal(decoded, reference))
            if args.save:
                (args.save / f"{name}.{mode}.dfc").write_bytes(encoded.data)
                Image.fromarray(decoded.squeeze()).save(args.save / f"{name}.{mode}.png")
            pixel_count = reference.shape[0] * reference.shape[1]
            row = {"image": name, "mode": mode, "first": index == 0, "bytes": len(encoded.data),
                   "bpp": 8 * len(encoded.data) / pixel_count, "exact": exact,
                   "psnr": None if exact else metrics.psnr(reference, decoded), "encode_s": encode_s,
                   "decode_s": decode_s, "megapixels": pixel_count / 1e6, "summary": encoded.summary}
            result = "exact" if exact else f"{row['psnr']:.2f} dB" + (", NOT EXACT" if job.lossless else "")
            line = f"| {name} | {mode} | {row['bpp']:.4f} | {result} | {encode_s:.1f} | {decode_s:.1f} |"
            report.add("rows", row, line)


def cross_decode(streams: Path, report: Report) -> None:
    """Decode another machine's streams here and compare with its decodes."""
    for path in sorted(streams.glob("*.dfc")):
        name, mode = path.name.split(".")[:2]
        theirs = np.asarray(Image.open(path.with_suffix(".png")))
        ours, error = decode(path.read_bytes())
        if error:
            report.add("cross", {"image": name, "mode": mode, "error": error}, f"{path.name}: {error}")
            continue
        same = bool(np.array_equal(ours.reshape(theirs.shape), theirs))
        row = {"image": name, "mode": mode, "identical": same,
               "psnr_between": None if same else metrics.psnr(theirs, ours.reshape(theirs.shape))}
        report.add("cross", row, f"{path.name}: " + ("identical" if same else f"{row['psnr_between']:.2f} dB apart"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--names", default="kodim05,kodim23")
    parser.add_argument("--crop", type=int, default=0, help="centre crop side; 0 for the whole image")
    parser.add_argument("--modes", default=",".join(MODES), help="coders to time, comma-separated; '' for none")
    parser.add_argument("--bpp", type=float, default=0.5, help="the lossy coder's rate")
    parser.add_argument("--chunk-bits", type=int, help="the lossy coder's RCC chunk size (default: its own)")
    parser.add_argument("--margin", type=int, help="the lossy coder's RCC candidate margin (default: its own)")
    parser.add_argument("--save", type=Path, help="keep every stream and its decode here")
    parser.add_argument("--cross", type=Path, help="decode the streams another machine saved here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    report = Report(args.json)
    facts = device_facts()
    print(f"JAX {facts['jax']} on {facts['device']} ({facts['platform']})", flush=True)
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
    if args.cross:
        cross_decode(args.cross, report)
    if args.modes:
        print("| image | mode | bpp | result | encode s | decode s |\n|---|---|---|---|---|---|", flush=True)
        time_coders(args, report)


if __name__ == "__main__":
    main()
