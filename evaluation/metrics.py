"""Distortion metrics on 8-bit images: PSNR and MS-SSIM, as pure numpy functions.

Both take ``(H, W)`` or ``(H, W, C)`` uint8 arrays (the reference first) and compare them on the
0..255 scale, over every channel, as most codec papers do for RGB.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import correlate1d

PEAK = 255.0

# Wang, Simoncelli and Bovik, "Multi-scale structural similarity for image quality assessment" (2003).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


def _as_float(reference: np.ndarray, reconstruction: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images as float64 (C, H, W), after checking they are 8-bit and of one shape."""
    if reference.shape != reconstruction.shape:
        raise ValueError(f"images differ in shape: {reference.shape} and {reconstruction.shape}")
    if reference.dtype != np.uint8 or reconstruction.dtype != np.uint8:
        raise ValueError(f"expected uint8 images, got {reference.dtype} and {reconstruction.dtype}")
    if reference.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (H, W, C) images, got shape {reference.shape}")
    x, y = (np.atleast_3d(image).transpose(2, 0, 1).astype(np.float64) for image in (reference, reconstruction))
    return x, y


def mse(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """Mean squared error over every pixel and channel, on the 0..255 scale."""
    x, y = _as_float(reference, reconstruction)
    return float(np.mean((x - y) ** 2))


def psnr_from_mse(error: float) -> float:
    """10 log10(255^2 / MSE) in dB; infinite for identical images."""
    return float("inf") if error == 0 else float(10.0 * np.log10(PEAK**2 / error))


def psnr(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """PSNR in dB from the MSE over all channels together (RGB PSNR, not a mean over channels)."""
    return psnr_from_mse(mse(reference, reconstruction))


def _gaussian_window() -> np.ndarray:
    """The normalised 1-D Gaussian whose outer product is MATLAB's fspecial('gaussian', 11, 1.5)."""
    t = np.arange(WINDOW) - WINDOW // 2
    g = np.exp(-(t**2) / (2 * SIGMA**2))
    return g / g.sum()


def _blur_valid(x: np.ndarray) -> np.ndarray:
    """Gaussian-weighted local means over 11x11 windows lying wholly inside the image.

    (N, H, W) -> (N, H - 10, W - 10): the 'valid' filtering of Wang et al.'s reference code.
    """
    g = _gaussian_window()
    r = WINDOW // 2
    rows = correlate1d(x, g, axis=1)[:, r:-r]
    return correlate1d(rows, g, axis=2)[:, :, r:-r]


def _ssim_and_cs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean SSIM and contrast-structure term at one scale, each of shape (C,)."""
    c1, c2 = (K1 * PEAK) ** 2, (K2 * PEAK) ** 2
    channels = len(x)
    moments = _blur_valid(np.concatenate([x, y, x * x, y * y, x * y]))  # (5 C, h, w), filtered in one call
    mu_x, mu_y, xx, yy, xy = np.split(moments, 5)  # each (C, h, w)
    var_x, var_y, cov = xx - mu_x**2, yy - mu_y**2, xy - mu_x * mu_y
    cs = (2 * cov + c2) / (var_x + var_y + c2)
    luminance = (2 * mu_x * mu_y + c1) / (mu_x**2 + mu_y**2 + c1)
    return (luminance * cs).reshape(channels, -1).mean(axis=1), cs.reshape(channels, -1).mean(axis=1)


def _halve(x: np.ndarray) -> np.ndarray:
    """2x2 average then decimation, repeating the last row/column of odd sizes (Wang et al.'s
    imfilter(..., 'symmetric') followed by taking every other pixel). (C, H, W) -> (C, ceil(H/2), ceil(W/2))."""
    c, h, w = x.shape
    x = np.pad(x, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    return x.reshape(c, x.shape[1] // 2, 2, x.shape[2] // 2, 2).mean(axis=(2, 4))


def ms_ssim_scales(height: int, width: int) -> int:
    """How many of the 5 scales fit: the coarsest must still hold one 11x11 window.

    A short side of 161 pixels or more gets all 5 (161, 81, 41, 21, 11); 64 gets 3 (64, 32, 16).
    """
    side, scales = min(height, width), 0
    while scales < len(MS_SSIM_WEIGHTS) and side >= WINDOW:
        scales += 1
        side = (side + 1) // 2
    return scales


def ms_ssim(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """Multi-scale SSIM (Wang et al. 2003) of two 8-bit images, in [0, 1].

    Standard parameters: 5 scales weighted (0.0448, 0.2856, 0.3001, 0.2363, 0.1333), an 11x11
    Gaussian window of sigma 1.5 over 'valid' positions, K1 = 0.01, K2 = 0.03, dynamic range 255.
    Each channel gets its own MS-SSIM and the channels are averaged (as TensorFlow's
    ssim_multiscale and pytorch_msssim, which CompressAI uses, do for RGB). Negative
    contrast-structure terms, which make the fractional powers undefined, count as 0 (as they do).

    Small images: when the short side is under 161 pixels not all 5 scales hold an 11x11 window;
    only the scales that do are used (see ``ms_ssim_scales``) and their weights are rescaled to
    sum to 1, so the result stays a weighted geometric mean (with all 5 scales the published
    weights are used as they are; they sum to 1.0001). Images under 11 pixels are refused.
    """
    x, y = _as_float(reference, reconstruction)
    scales = ms_ssim_scales(*x.shape[1:])
    if scales == 0:
        raise ValueError(f"MS-SSIM needs images of at least {WINDOW}x{WINDOW} pixels, got {x.shape[1:]}")
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    if scales < len(MS_SSIM_WEIGHTS):
        weights /= weights.sum()
    terms = []  # (scales, C): cs at every scale but the coarsest, full SSIM there
    for scale in range(scales):
        if scale:
            x, y = _halve(x), _halve(y)
        ssim, cs = _ssim_and_cs(x, y)
        terms.append(ssim if scale == scales - 1 else cs)
    per_channel = np.prod(np.maximum(np.array(terms), 0.0) ** weights[:, None], axis=0)
    return float(per_channel.mean())
