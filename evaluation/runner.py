"""The sweep: every codec at every target on every image, kept in one resumable results dict.

The results dict is what results.json holds (schema ``diffc-eval-rd/1``):

- ``command``: the command line that made it; ``settings``: the images (name, size, SHA-256 of
  the file), crop, limit, target rates, modes, model, method and each codec's settings;
  ``versions``: diffc, the stream format, numpy, scipy, the model card hash and the codec
  libraries; ``notes``.
- ``points``: one per (image, codec, target): ``bytes``, ``bpp`` (bits over H * W),
  ``bits_per_dim`` (bits over H * W * C), ``encode_s``, ``decode_s``, ``megapixels``, the facts a
  diffc coder adds (lossy: ``kl_bits``, ``steps``; lossless: ``ideal_bits_per_dim``); lossy
  points add ``mse``, ``psnr`` (RGB, dB; null when the decoded image is identical) and ``ms_ssim``.
  Lossless points are checked to decode exactly. A point timed while other images were measured
  in parallel says how many at once in ``jobs``.

A run that finds results of the same settings and versions skips every (image, codec) pair they
already hold; the caller saves the dict after each pair (each image, in a parallel run), so an
interruption loses one pair (one image per process) at most.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import platform
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from PIL import Image, UnidentifiedImageError

from diffc import bitstreams
from diffc.evaluation import metrics
from diffc.evaluation.baselines import library_versions
from diffc.evaluation.contenders import Codec, Target
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
    """What the numbers depend on besides the settings: diffc and its stream format (the package's
    version alone does not move with every change of a coder), the model, the libraries."""
    return {"diffc": version("diffc"), "dfc_format": bitstreams.VERSION, "model_card_hash": model_card_hash,
            "numpy": np.__version__, "scipy": scipy.__version__, **library_versions(),
            "cpu": f"{platform.machine()}, {os.cpu_count()} CPUs"}


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
             "encode_s": encode_s, "decode_s": decode_s, "megapixels": h * w / 1e6,
             **getattr(codec, "encode_facts", {})}
    if codec.lossless:
        if not np.array_equal(decoded, image.pixels):
            raise EvaluationError(f"{codec.name} did not decode {image.name} exactly; it is not lossless")
        return point
    error = metrics.mse(image.pixels, decoded)
    point.update(mse=error, psnr=metrics.psnr_from_mse(error) if error else None,
                 ms_ssim=metrics.ms_ssim(image.pixels, decoded))
    return point


def codec_points(codec: Codec, image: EvalImage, bpps: Sequence[float]) -> list[dict[str, Any]]:
    """The points of ``image`` under ``codec``, one per target the codec needs for ``bpps``."""
    return [measure(codec, image, target) for target in codec.targets(bpps)]


def _missing(results: dict[str, Any], images: Sequence[EvalImage], codecs: Sequence[Codec]) -> list[tuple[int, list[str]]]:
    """(image index, names of the codecs it still lacks) for every image that lacks any."""
    done = {(p["image"], p["codec"]) for p in results["points"]}
    todo = [(i, [c.name for c in codecs if (image.name, c.name) not in done]) for i, image in enumerate(images)]
    return [(i, names) for i, names in todo if names]


def sort_points(points: list[dict[str, Any]], images: Sequence[str], codecs: Sequence[str]) -> None:
    """Points in image order, then codec order (targets keep their order), however they arrived:
    by one process, by several, or by several shards."""
    image_rank = {name: i for i, name in enumerate(images)}
    codec_rank = {name: i for i, name in enumerate(codecs)}
    points.sort(key=lambda p: (image_rank.get(p["image"], -1), codec_rank.get(p["codec"], -1)))


def run(
    results: dict[str, Any],
    images: Sequence[EvalImage],
    codecs: Sequence[Codec],
    bpps: Sequence[float],
    *,
    save: Callable[[dict[str, Any]], None],
    progress: Callable[[str, int], None],
    jobs: int = 1,
    rebuild: Callable[[], Sequence[Codec]] | None = None,
) -> None:
    """Measure every (image, codec) pair that ``results`` lacks, appending its points and calling
    ``save(results)`` after each pair. ``progress(label, images_done)`` tells what runs now.

    With ``jobs`` > 1, that many worker processes measure an image each at a time; each worker
    builds its codecs with ``rebuild`` (picklable; it must give the codecs of ``codecs``' names),
    and ``save`` follows each image."""
    todo = _missing(results, images, codecs)
    if jobs > 1 and len(todo) > 1:
        if rebuild is None:
            raise ValueError("a parallel run needs rebuild, to make its codecs in the workers")
        _run_parallel(results, images, todo, bpps, save, progress, jobs, rebuild)
    else:
        by_name = {codec.name: codec for codec in codecs}
        for index, names in todo:
            for name in names:
                progress(f"{images[index].name} {name}", index)
                results["points"] += codec_points(by_name[name], images[index], bpps)
                save(results)
            progress(images[index].name, index + 1)
    sort_points(results["points"], [image.name for image in images], [codec.name for codec in codecs])


def _run_parallel(
    results: dict[str, Any], images: Sequence[EvalImage], todo: list[tuple[int, list[str]]], bpps: Sequence[float],
    save: Callable[[dict[str, Any]], None], progress: Callable[[str, int], None], jobs: int,
    rebuild: Callable[[], Sequence[Codec]],
) -> None:
    """``run``'s missing images over ``jobs`` spawned processes (JAX does not survive a fork). When
    an image fails, the images not yet started are dropped, those under way are finished and kept,
    and the failure is raised as an ``EvaluationError`` that names the image."""
    workers = min(jobs, len(todo))
    finished = len(images) - len(todo)
    progress(f"{len(todo)} images in {workers} processes", finished)
    failure: tuple[str, BaseException] | None = None
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(rebuild,)) as pool:
        futures = {pool.submit(_measure_image, images[i], names, tuple(bpps), workers): i for i, names in todo}
        for future in as_completed(futures):
            name = images[futures[future]].name
            try:
                points = future.result()
            except Exception as exc:  # the worker's error, or a pool broken by a dead worker
                if failure is None:
                    failure = (name, exc)
                    for other in futures:
                        other.cancel()
                continue
            results["points"] += points
            save(results)
            finished += 1
            progress(name, finished)
    if failure is not None:
        name, exc = failure
        if isinstance(exc, EvaluationError):
            raise exc
        raise EvaluationError(f"measuring {name} failed in a worker process: {type(exc).__name__}: {exc}") from exc


_WORKER_CODECS: dict[str, Codec] = {}


def _start_worker(rebuild: Callable[[], Sequence[Codec]]) -> None:
    """Build a worker's codecs; workers on one accelerator share it, so each allocates as it goes."""
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    _WORKER_CODECS.update((codec.name, codec) for codec in rebuild())


def _measure_image(image: EvalImage, names: Sequence[str], bpps: Sequence[float], jobs: int) -> list[dict[str, Any]]:
    """In a worker: the points of ``image`` under the codecs ``names``, marked with ``jobs``, the
    number of worker processes."""
    points = []
    for name in names:
        codec = _WORKER_CODECS[name]
        points += [{**point, "jobs": jobs} for point in codec_points(codec, image, bpps)]
    return points
