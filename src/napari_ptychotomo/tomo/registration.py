"""Image registration for projection matching (:mod:`.projection_matching`).

The shift of each projection against its model image: :func:`register_shifts`, a global
search by skimage's upsampled cross-correlation, and :func:`_register`, a search of the
low-passed cross-correlation near a guessed shift refined on the full band by a matrix
DFT of the cross-power spectrum (:func:`_correlation_at`) to a fraction of a pixel.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["register_shifts"]


def register_shifts(
    data: torch.Tensor, model: torch.Tensor, upsample: int = 20, lowpass_px: float = 0.0
) -> torch.Tensor:
    """Shift (T, 2) (y, x) in pixels by which each ``data`` image is displaced from its
    ``model`` image: a global search by cross-correlation over the whole image, refined
    by upsampled DFT (skimage ``phase_cross_correlation``, Guizar-Sicairos et al. 2008)."""
    from scipy.ndimage import gaussian_filter
    from skimage.registration import phase_cross_correlation

    out = np.zeros((data.shape[0], 2))
    d, m = data.detach().cpu().double().numpy(), model.detach().cpu().double().numpy()
    for k in range(len(d)):
        a, b = d[k], m[k]
        if lowpass_px > 0:
            a, b = gaussian_filter(a, lowpass_px), gaussian_filter(b, lowpass_px)
        shift, _, _ = phase_cross_correlation(b, a, upsample_factor=upsample, normalization=None)
        out[k] = -shift  # skimage: the shift that moves data onto model
    return torch.as_tensor(out, dtype=data.dtype, device=data.device)


def _correlation_at(cross: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """Cross-correlation Σ_k X(k) exp(2πi k·s) at the shifts sy × sx (pixels), by a
    matrix DFT of the cross-power spectrum ``cross`` (an upsampled DFT, as Guizar-Sicairos
    et al. 2008, on a small grid only)."""
    ky = np.fft.fftfreq(cross.shape[0])
    kx = np.fft.fftfreq(cross.shape[1])
    ey = np.exp(2j * np.pi * sy[:, None] * ky[None, :])
    ex = np.exp(2j * np.pi * kx[:, None] * sx[None, :])
    return (ey @ cross @ ex).real


def _register(
    data: np.ndarray,
    template: np.ndarray,
    upsample: int,
    lowpass_px: float,
    guess_px=(0.0, 0.0),
    max_shift_fraction: float = 0.1,
):
    """Shift (y, x) in pixels of ``data`` against ``template`` (data ≈ template moved by
    +shift) and the normalised correlation at it.

    A search of the cross-correlation of both images low-passed by a Gaussian of
    ``lowpass_px`` (which removes the periodic detail of a crystal lattice, whose
    correlation peaks a lattice vector away can beat the right one) over shifts within
    ``max_shift_fraction`` of the image sides of ``guess_px`` (y, x), then the full-band
    correlation maximised within ±1.5 px of it to 1/``upsample`` px.
    """
    d = np.fft.fft2(data - data.mean())
    t = np.fft.fft2(template - template.mean())
    cross = d * t.conj()
    ky = np.fft.fftfreq(data.shape[0])[:, None]
    kx = np.fft.fftfreq(data.shape[1])[None, :]
    k2 = ky**2 + kx**2
    # a band: above it the lattice, below it a phase image's smooth background and halo
    smooth = np.exp(-2 * np.pi**2 * lowpass_px**2 * k2)
    coarse = np.fft.ifft2(cross * smooth).real
    size = np.array(data.shape)
    # only shifts near the guess (the coarse stage's error is a few pixels): further out
    # the low-passed correlation of a phase image's smooth background and halo with the
    # template, or a particle's outline one row of columns over, can win (measured: jumps
    # of 40 px and of 18 px on the demo's MSP phases of 84 px)
    lag_y = (np.fft.fftfreq(size[0]) * size[0] - guess_px[0] + size[0] / 2) % size[0] - size[0] / 2
    lag_x = (np.fft.fftfreq(size[1]) * size[1] - guess_px[1] + size[1] / 2) % size[1] - size[1] / 2
    reach = (lag_y[:, None] / size[0]) ** 2 + (lag_x[None, :] / size[1]) ** 2 <= max_shift_fraction**2
    coarse = np.where(reach, coarse, -np.inf)
    peak = np.array(np.unravel_index(int(np.argmax(coarse)), coarse.shape), dtype=float)
    peak = np.where(peak > size // 2, peak - size, peak)
    centre, radius, step = peak, 1.5, 0.1
    while True:
        grid = np.arange(-radius, radius + step / 2, step)
        values = _correlation_at(cross, centre[0] + grid, centre[1] + grid)
        iy, ix = np.unravel_index(int(np.argmax(values)), values.shape)
        centre = centre + grid[[iy, ix]]
        if step <= 1.0 / upsample:
            break
        radius, step = 1.5 * step, max(step / 10, 1.0 / upsample)
    norm = np.sqrt((np.abs(d) ** 2).sum() * (np.abs(t) ** 2).sum())
    return centre, float(values.max() / norm) if norm > 0 else 0.0
