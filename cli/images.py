"""Reading and writing images at the CLI's edge: 8-bit RGB or grayscale, clear refusals otherwise."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from diffc.bitstreams import DEFAULT_MAX_PIXELS
from diffc.cli.errors import UserError
from diffc.cli.io import atomic_output, read_bytes

_SIXTEEN_BIT = {"I;16", "I;16B", "I;16L", "I;16N", "I", "F"}


def read_image(path: Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """(H, W, C) uint8 with C = 3 (RGB) or 1 (grayscale). Alpha is refused; 16-bit input is
    reduced to 8 bits with a warning."""
    data = read_bytes(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > max_pixels:
                raise UserError(
                    f"{path}: {image.width}x{image.height} exceeds the limit of {max_pixels} pixels"
                )
            image.load()
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image Pillow can read") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{path} exceeds the limit of {max_pixels} pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"{path} is a damaged image ({exc})") from None
    mode = image.mode
    if "A" in mode or (mode == "P" and "transparency" in image.info):
        raise UserError(f"{path} has an alpha channel ({mode}); diffc codes RGB or grayscale only")
    if mode in _SIXTEEN_BIT:
        print(f"diffc: warning: {path} is {mode}; reducing it to 8 bits", file=sys.stderr)
        array = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or array.max() > 255 else 255.0
        return np.clip(np.round(array / peak * 255.0), 0, 255).astype(np.uint8)[..., None]
    if mode in ("1", "L"):
        return np.asarray(image.convert("L"), dtype=np.uint8)[..., None]
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def write_png(path: Path, pixels: np.ndarray, *, force: bool) -> None:
    """Write (H, W, C) uint8 as PNG, atomically (``-`` for stdout)."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    with atomic_output(path, force=force) as f:
        image.save(f, format="PNG")
