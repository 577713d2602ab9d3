"""Denoising of phase projections before alignment (Romanov et al. 2025, section 2).

Romanov et al. denoise every MSP phase projection with BM3D (Dabov et al. 2007) and then
apply a Fourier-sparsity constraint that suppresses the noise floor between the sparse
Bragg peaks of a single-grain particle. Here the denoiser is selectable:

- ``"bm3d"``: the ``bm3d`` package (licensed for non-commercial use only; optional). When it
  is missing, a warning says so and non-local means is used instead.
- ``"nlm"``: scikit-image non-local means.
- ``"tv"``: scikit-image total-variation (Chambolle) denoising.

The noise level is estimated per projection with ``skimage.restoration.estimate_sigma``
(wavelet median absolute deviation, Donoho & Johnstone 1994) when not given.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..params_meta import describes, ui

__all__ = ["denoise_projections", "estimate_noise", "fourier_sparsity_filter"]

_METHODS = ("bm3d", "nlm", "tv")


def estimate_noise(stack: np.ndarray) -> np.ndarray:
    """Gaussian noise standard deviation of each image of ``(T, ny, nx)``, in its units."""
    from skimage.restoration import estimate_sigma

    stack = np.asarray(stack, dtype=np.float64)
    return np.array([float(estimate_sigma(img)) for img in stack])


def fourier_sparsity_filter(stack: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Keep only the strongest ``keep_fraction`` of each image's Fourier coefficients.

    A hard threshold on |F(p)| per projection: the coefficients above the
    ``1 - keep_fraction`` quantile of the amplitude are kept (with the zero frequency
    always kept), the rest set to zero. This is the Fourier-sparsity constraint of
    Romanov et al. 2025: suitable for crystalline particles whose projections are
    dominated by a few Bragg reflections, not for disordered material.

    Parameters
    ----------
    stack : (T, ny, nx) or (ny, nx) real images.
    keep_fraction : fraction in (0, 1] of the Fourier coefficients to keep.
    """
    if not (0 < keep_fraction <= 1):
        raise ValueError(
            f"fourier_sparsity = {keep_fraction!r}; expected the fraction of Fourier "
            "coefficients to keep, in (0, 1] (e.g. 0.05)"
        )
    stack = np.asarray(stack, dtype=np.float64)
    spectra = np.fft.fft2(stack)
    amp = np.abs(spectra)
    flat = amp.reshape(*amp.shape[:-2], -1)
    cut = np.quantile(flat, 1 - keep_fraction, axis=-1)[..., None, None]
    keep = amp >= cut
    keep[..., 0, 0] = True
    return np.real(np.fft.ifft2(np.where(keep, spectra, 0)))


def _denoise_one(img: np.ndarray, method: str, sigma: float, strength: float) -> np.ndarray:
    if sigma <= 0:
        return img
    if method == "bm3d":
        import bm3d

        return np.asarray(bm3d.bm3d(img, sigma_psd=strength * sigma), dtype=np.float64)
    if method == "nlm":
        from skimage.restoration import denoise_nl_means

        return denoise_nl_means(
            img,
            h=0.8 * strength * sigma,
            sigma=sigma,
            patch_size=5,
            patch_distance=6,
            fast_mode=True,
        )
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle(img, weight=strength * sigma)


def _bm3d_available() -> bool:
    try:
        import bm3d  # noqa: F401
    except ImportError:
        return False
    return True


@describes(
    method=ui("method", choices=("nlm", "bm3d", "tv")),
    strength=ui("strength", min=0.05, max=20.0, step=0.1),
    fourier_sparsity=ui("Fourier sparsity (kept fraction, 0 = off)", min=0.0, max=1.0, step=0.05, none=0.0),
)
def denoise_projections(
    stack,
    method: str = "nlm",
    sigma=None,
    fourier_sparsity: float | None = None,
    strength: float = 1.0,
) -> np.ndarray:
    """Denoise a stack of projections, optionally followed by a Fourier-sparsity constraint.

    Parameters
    ----------
    stack : (T, ny, nx) or (ny, nx) array of projections (e.g. phases in rad).
    method : ``"nlm"`` (default), ``"bm3d"`` (the method of Romanov et al.; the optional
        ``bm3d`` package is licensed for non-commercial use only; without it ``"nlm"``
        is used, with a warning) or ``"tv"``.
    sigma : noise standard deviation in the stack's units: a number, one per projection
        ``(T,)``, or ``None`` to estimate it per projection (``estimate_noise``).
    fourier_sparsity : ``None`` (off) or the fraction of Fourier coefficients to keep
        per projection after denoising (Romanov et al. 2025); see
        :func:`fourier_sparsity_filter`.
    strength : multiplies the noise level handed to the denoiser (1 = as estimated).

    Returns
    -------
    float32 array of the input's shape.
    """
    if method not in _METHODS:
        raise ValueError(f"method = {method!r}; expected one of {_METHODS}")
    data = np.asarray(stack, dtype=np.float64)
    single = data.ndim == 2
    if single:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"stack has shape {np.shape(stack)}; expected (n_tilts, ny, nx)")
    if not np.all(np.isfinite(data)):
        raise ValueError("stack contains NaN or infinite values; clean the projections first")
    if method == "bm3d" and not _bm3d_available():
        warnings.warn(
            "denoise_projections: the optional 'bm3d' package is not installed "
            "(pip install bm3d; non-commercial licence), so non-local means ('nlm') "
            "is used instead",
            RuntimeWarning,
            stacklevel=2,
        )
        method = "nlm"
    if sigma is None:
        sigmas = estimate_noise(data)
    else:
        sigmas = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (len(data),))
        if np.any(sigmas < 0) or not np.all(np.isfinite(sigmas)):
            raise ValueError(f"sigma = {sigma!r}; expected non-negative noise level(s)")
    out = np.stack([_denoise_one(img, method, float(s), strength) for img, s in zip(data, sigmas)])
    if fourier_sparsity is not None:
        out = fourier_sparsity_filter(out, fourier_sparsity)
    out = out.astype(np.float32)
    return out[0] if single else out
