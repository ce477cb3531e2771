"""Training data: 8-bit RGB images from folders, sampled as random crops with random flips.

Images are held in memory as uint8 (H, W, 3). The sampler's randomness for step n comes from a numpy
Generator seeded with (seed, process, n), so the data order is a function of the step: a resumed
run, or any process of a multi-host run, draws exactly the crops it would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp")


def list_images(folders: Sequence[Path]) -> list[Path]:
    """Image files directly inside each folder, sorted by name within each folder."""
    files: list[Path] = []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            raise FileNotFoundError(2, "not a folder", str(folder))
        files += sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and p.is_file())
    return files


def load_image(path: Path) -> np.ndarray:
    """An image file as uint8 (H, W, 3) RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


class CropSampler:
    """Random ``crop`` x ``crop`` crops with random horizontal flips, images drawn in proportion to
    their number of crop positions."""

    def __init__(self, images: Sequence[np.ndarray], crop: int, seed: int, process: int = 0) -> None:
        self.images = [im for im in images if min(im.shape[:2]) >= crop]
        if not self.images:
            raise ValueError(f"no image is at least {crop}x{crop} pixels")
        self.crop = crop
        sizes = np.array([(im.shape[0] - crop + 1) * (im.shape[1] - crop + 1) for im in self.images], float)
        self.weights = sizes / sizes.sum()
        self.seed, self.process = seed, process

    def batch(self, n: int, step: int) -> np.ndarray:
        """The (n, crop, crop, 3) uint8 crops of training step ``step``."""
        rng = np.random.default_rng([self.seed, self.process, step])
        c = self.crop
        out = np.empty((n, c, c, 3), np.uint8)
        for i, j in enumerate(rng.choice(len(self.images), size=n, p=self.weights)):
            im = self.images[j]
            y = rng.integers(0, im.shape[0] - c + 1)
            x = rng.integers(0, im.shape[1] - c + 1)
            patch = im[y : y + c, x : x + c]
            out[i] = patch[:, ::-1] if rng.random() < 0.5 else patch
        return out


def fixed_crops(images: Sequence[np.ndarray], crop: int, count: int, seed: int = 0) -> np.ndarray:
    """A reproducible set of ``count`` crops (no flips), e.g. the validation set."""
    sampler = CropSampler(images, crop, seed)
    rng = np.random.default_rng(seed)
    c = crop
    out = np.empty((count, c, c, 3), np.uint8)
    for i in range(count):
        im = sampler.images[i % len(sampler.images)]
        y = rng.integers(0, im.shape[0] - c + 1)
        x = rng.integers(0, im.shape[1] - c + 1)
        out[i] = im[y : y + c, x : x + c]
    return out


def describe_folders(folders: Sequence[Path]) -> list[dict[str, Any]]:
    """Folder names and image counts, as recorded in model cards."""
    return [{"folder": str(f), "images": len(list_images([f]))} for f in folders]
