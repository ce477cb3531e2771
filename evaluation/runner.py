"""The sweep: every codec at every target on every image, kept in one resumable results dict.

The results dict is what results.json holds (schema ``diffc-eval-rd/1``):

- ``command``: the command line that made it; ``settings``: the images (name, size, SHA-256 of
  the file), crop, limit, target rates, modes, model, method and each codec's settings;
  ``versions``: diffc, numpy, scipy, the model card hash and the codec libraries; ``notes``.
- ``points``: one per (image, codec, target): ``bytes``, ``bpp`` (bits over H * W),
  ``bits_per_dim`` (bits over H * W * C), ``encode_s``, ``decode_s``, ``megapixels``; lossy points
  add ``mse``, ``psnr`` (RGB, dB; null when the decoded image is identical) and ``ms_ssim``.
  Lossless points are checked to decode exactly.

A run that finds results of the same settings and versions skips every (image, codec) pair they
already hold; the caller saves the dict after each pair, so an interruption loses one pair at most.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from PIL import Image, UnidentifiedImageError

from diffc.evaluation import metrics
from diffc.evaluation.codecs import Codec, Target, library_versions
from diffc.evaluation.errors import EvaluationError

SCHEMA = "diffc-eval-rd/1"
IMAGE_SUFFIXES = frozenset({".png", ".bmp", ".ppm", ".pgm", ".tif", ".tiff", ".jpg", ".jpeg", ".webp"})


@dataclass(frozen=True)
class EvalImage:
    """One image of the set as the codecs see it: 8-bit RGB, cropped if asked."""

    name: str
    pixels: np.ndarray  # (H, W, 3) uint8
    sha256: str  # of the file it came from

    def describe(self) -> dict[str, Any]:
        h, w = self.pixels.shape[:2]
        return {"name": self.name, "height": h, "width": w, "sha256": self.sha256}


def find_images(folder: Path, limit: int | None = None) -> list[Path]:
    """The image files of ``folder`` in name order, the first ``limit`` of them."""
    paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not paths:
        raise EvaluationError(f"{folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return paths[:limit]


def load_image(path: Path, crop: int | None = None) -> EvalImage:
    """Read an 8-bit RGB or grayscale image (grayscale is evaluated as RGB) and centre-crop it to
    ``crop`` x ``crop``."""
    data = path.read_bytes()
    try:
        with Image.open(path) as im:
            if im.mode not in ("RGB", "L", "P"):
                raise EvaluationError(f"{path} is a {im.mode} image; diffc eval takes 8-bit RGB or grayscale images")
            pixels = np.asarray(im.convert("RGB"))
    except UnidentifiedImageError as exc:
        raise EvaluationError(f"{path} is not an image Pillow can read") from exc
    if crop is not None:
        h, w = pixels.shape[:2]
        if crop > min(h, w):
            raise EvaluationError(f"{path} is {w}x{h}, smaller than --crop {crop}")
        top, left = (h - crop) // 2, (w - crop) // 2
        pixels = pixels[top : top + crop, left : left + crop]
    return EvalImage(path.stem, np.ascontiguousarray(pixels), hashlib.sha256(data).hexdigest())


def software_versions(model_card_hash: str | None) -> dict[str, Any]:
    """What the numbers depend on besides the settings: diffc, the model, the libraries."""
    return {"diffc": version("diffc"), "model_card_hash": model_card_hash, "numpy": np.__version__,
            "scipy": scipy.__version__, **library_versions(), "cpu": f"{platform.machine()}, {os.cpu_count()} CPUs"}


def new_results(command: str, settings: dict[str, Any], versions: dict[str, Any], notes: Sequence[str]) -> dict[str, Any]:
    """An empty results dict for a run of these settings."""
    return {"schema": SCHEMA, "command": command, "settings": settings, "versions": versions,
            "notes": list(notes), "points": []}


def differences(results: dict[str, Any], settings: dict[str, Any], versions: dict[str, Any]) -> list[str]:
    """The names of what differs between stored results and a new run; empty when it can resume."""
    if results.get("schema") != SCHEMA:
        return ["schema"]
    stored = {**results.get("settings", {}), **results.get("versions", {})}
    wanted = {**settings, **versions}
    return sorted(key for key in stored.keys() | wanted.keys() if stored.get(key) != wanted.get(key))


def measure(codec: Codec, image: EvalImage, target: Target) -> dict[str, Any]:
    """Encode and decode one image at one target, time both and score the result."""
    start = time.perf_counter()
    data = codec.encode(image.pixels, target)
    encoded = time.perf_counter()
    encode_s = getattr(codec, "encode_seconds", encoded - start)
    decoded = codec.decode(data)
    decode_s = time.perf_counter() - encoded
    if decoded.shape != image.pixels.shape or decoded.dtype != np.uint8:
        raise EvaluationError(
            f"{codec.name} decoded {image.name} to {decoded.dtype} {decoded.shape}, not uint8 {image.pixels.shape}"
        )
    h, w, c = image.pixels.shape
    bits = 8 * len(data)
    point = {"image": image.name, "codec": codec.name, "lossless": codec.lossless, "target": target,
             "bytes": len(data), "bpp": bits / (h * w), "bits_per_dim": bits / (h * w * c),
             "encode_s": encode_s, "decode_s": decode_s, "megapixels": h * w / 1e6}
    if codec.lossless:
        if not np.array_equal(decoded, image.pixels):
            raise EvaluationError(f"{codec.name} did not decode {image.name} exactly; it is not lossless")
        return point
    error = metrics.mse(image.pixels, decoded)
    point.update(mse=error, psnr=metrics.psnr_from_mse(error) if error else None,
                 ms_ssim=metrics.ms_ssim(image.pixels, decoded))
    return point


def run(
    results: dict[str, Any],
    images: Sequence[EvalImage],
    codecs: Sequence[Codec],
    bpps: Sequence[float],
    *,
    save: Callable[[dict[str, Any]], None],
    progress: Callable[[str, int], None],
) -> None:
    """Measure every (image, codec) pair that ``results`` lacks, appending its points and calling
    ``save(results)`` after each pair. ``progress(label, images_done)`` tells what runs now."""
    done = {(p["image"], p["codec"]) for p in results["points"]}
    for index, image in enumerate(images):
        for codec in codecs:
            if (image.name, codec.name) in done:
                continue
            progress(f"{image.name} {codec.name}", index)
            results["points"] += [measure(codec, image, target) for target in codec.targets(bpps)]
            save(results)
        progress(image.name, index + 1)
