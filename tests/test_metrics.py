"""PSNR and MS-SSIM against values known in closed form and against independent implementations."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage, signal

from diffc.evaluation import metrics
from helpers import sample_photo

C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def photo_crop(top: int, left: int, height: int, width: int) -> np.ndarray:
    """A crop of the photo shipped with diffc: a real photo on every machine, without a data set."""
    crop = sample_photo()[top : top + height, left : left + width]
    assert crop.shape == (height, width, 3)
    return crop.copy()


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def test_psnr_of_known_errors():
    image = np.full((16, 24, 3), 100, np.uint8)
    assert metrics.psnr(image, image) == float("inf")
    # Every value off by exactly 5: MSE 25.
    signs = np.indices(image.shape).sum(axis=0) % 2 * 2 - 1
    noisy = (image.astype(int) + 5 * signs).astype(np.uint8)
    assert metrics.mse(image, noisy) == 25.0
    assert metrics.psnr(image, noisy) == pytest.approx(10 * np.log10(255**2 / 25), abs=1e-12)
    assert metrics.psnr(image, noisy) == pytest.approx(34.1514, abs=1e-4)
    # One channel off by 30, the others exact: the MSE pools the channels (900 / 3 = 300).
    shifted = image.copy()
    shifted[..., 1] += 30
    assert metrics.psnr(image, shifted) == pytest.approx(10 * np.log10(255**2 / 300), abs=1e-12)


def test_psnr_of_gaussian_noise_matches_its_level():
    rng = np.random.default_rng(0)
    image = rng.integers(40, 216, (256, 256, 3)).astype(np.uint8)
    noisy = np.clip(np.rint(image + rng.normal(0, 4, image.shape)), 0, 255).astype(np.uint8)
    # Rounded Gaussian noise of sigma 4 has variance 16 + 1/12.
    assert metrics.psnr(image, noisy) == pytest.approx(10 * np.log10(255**2 / (16 + 1 / 12)), abs=0.03)


def test_ms_ssim_of_identical_images_is_one():
    image = photo_crop(0, 0, 192, 200)
    assert metrics.ms_ssim(image, image) == pytest.approx(1.0, abs=1e-12)
    assert metrics.ms_ssim(image[..., 0], image[..., 0]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize(("size", "scales"), [(192, 5), (64, 3)])
def test_ms_ssim_of_flat_images_with_an_offset(size, scales):
    # Flat images: no variance, so every contrast-structure term is 1 and only the luminance term
    # of the coarsest scale remains, raised to its (rescaled, for small images) weight.
    a, b = 100.0, 110.0
    x = np.full((size, size, 3), a, np.uint8)
    y = np.full((size, size, 3), b, np.uint8)
    weights = metrics.MS_SSIM_WEIGHTS[:scales]
    weight = weights[-1] if scales == 5 else weights[-1] / sum(weights)
    luminance = (2 * a * b + C1) / (a**2 + b**2 + C1)
    assert metrics.ms_ssim(x, y) == pytest.approx(luminance**weight, abs=1e-12)


def test_ms_ssim_scale_counts_for_small_images():
    assert [metrics.ms_ssim_scales(s, 1000) for s in (161, 160, 81, 80, 64, 21, 20, 11, 10)] == [5, 4, 4, 3, 3, 2, 1, 1, 0]
    with pytest.raises(ValueError, match="at least 11x11"):
        metrics.ms_ssim(np.zeros((10, 40, 3), np.uint8), np.zeros((10, 40, 3), np.uint8))


def test_metrics_refuse_mismatched_images():
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.psnr(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5, 3), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        metrics.ms_ssim(np.zeros((32, 32), np.float32), np.zeros((32, 32), np.float32))


def reference_ms_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Wang's msssim.m line by line, per channel: 2-D 'valid' filtering with fspecial('gaussian',
    11, 1.5), imfilter(ones(2)/4, 'symmetric') and decimation between scales."""
    window = np.exp(-(np.arange(-5, 6)[:, None] ** 2 + np.arange(-5, 6)[None, :] ** 2) / (2 * 1.5**2))
    window /= window.sum()
    weights = np.array(metrics.MS_SSIM_WEIGHTS)
    scores = []
    for channel in range(x.shape[2]):
        a, b = x[..., channel].astype(np.float64), y[..., channel].astype(np.float64)
        mcs, mssim = [], []
        for _ in range(5):
            mu1, mu2 = signal.convolve2d(a, window, "valid"), signal.convolve2d(b, window, "valid")
            s11 = signal.convolve2d(a * a, window, "valid") - mu1 * mu1
            s22 = signal.convolve2d(b * b, window, "valid") - mu2 * mu2
            s12 = signal.convolve2d(a * b, window, "valid") - mu1 * mu2
            cs = (2 * s12 + C2) / (s11 + s22 + C2)
            mssim.append(np.mean((2 * mu1 * mu2 + C1) / (mu1**2 + mu2**2 + C1) * cs))
            mcs.append(np.mean(cs))
            # imfilter with a 2x2 kernel anchored at its first tap; 'symmetric' repeats the edge.
            a = ndimage.correlate(a, np.full((2, 2), 0.25), mode="reflect", origin=-1)[::2, ::2]
            b = ndimage.correlate(b, np.full((2, 2), 0.25), mode="reflect", origin=-1)[::2, ::2]
        scores.append(np.prod(np.array(mcs[:4]) ** weights[:4]) * mssim[4] ** weights[4])
    return float(np.mean(scores))


@pytest.mark.parametrize(("height", "width", "quality"), [(192, 256, 10), (173, 190, 40), (200, 167, 80)])
def test_ms_ssim_matches_a_direct_port_of_the_reference_code(height, width, quality):
    image = photo_crop(256 - height, 256 - width, height, width)
    decoded = jpeg(image, quality)
    expected = reference_ms_ssim(image, decoded)
    assert 0.5 < expected < 1.0
    assert metrics.ms_ssim(image, decoded) == pytest.approx(expected, abs=1e-12)


def test_ms_ssim_matches_sewar():
    sewar = pytest.importorskip("sewar.full_ref")
    from sewar.utils import Filter

    image = photo_crop(32, 64, 192, 192)
    rng = np.random.default_rng(1)
    decoded = np.clip(np.rint(image + rng.normal(0, 8, image.shape)), 0, 255).astype(np.uint8)
    # One scale (short side under 21 pixels): the weighted mean is plain SSIM, which sewar computes
    # the same way (Gaussian window, 'valid' positions, channels averaged).
    gaussian = {"fltr": Filter.GAUSSIAN, "sigma": 1.5, "ws": 11}
    single, _ = sewar.ssim(image[:20, :48], decoded[:20, :48], ws=11, MAX=255, fltr_specs=gaussian)
    assert metrics.ms_ssim(image[:20, :48], decoded[:20, :48]) == pytest.approx(single, abs=1e-12)
    # Five scales on one channel: sewar averages 2x2 blocks shifted by one pixel between scales, so
    # it agrees to about 1e-3 only (less on blocky JPEG errors).
    ours = metrics.ms_ssim(image[..., 1], decoded[..., 1])
    assert ours == pytest.approx(sewar.msssim(image[..., 1], decoded[..., 1], MAX=255), abs=1e-3)
    assert 0.8 < ours < 0.99
