"""The objective lens of a plane-wave (HRTEM) microscope: aperture, aberrations and the
partial-coherence envelopes, as one transfer function per defocus.

Quasi-coherent imaging (Frank 1973, *Optik* 38, 519; Wade & Frank 1977; Kirkland,
*Advanced Computing in Electron Microscopy*, 2nd ed., sec. 3.3.2): the exit wave's
spectrum is multiplied by

    T(k) = A(k) · E_t(k) · E_s(k) · exp(−iχ(k))

with A the objective aperture (abTEM's soft edge, :func:`~.probe.soft_aperture`), χ the
aberration phase of :func:`~.probe.aberration_phase` (``C10 = −defocus``) and

* the temporal-coherence envelope of a Gaussian defocus spread of standard deviation Δ
  (Å): averaging exp(−iπλδk²) over δ ~ N(0, Δ²) gives E_t = exp[−½(πλΔk²)²];
* the spatial-coherence envelope of a Gaussian spread of incidence angles
  p(θ) ∝ exp(−|θ|²/β²) (β the illumination semi-angle, rad): a tilt θ changes χ(k) by
  ∇_k χ · θ/λ to first order, and its average gives E_s = exp[−(β/(2λ))² |∇_k χ|²]
  (for a round lens (π β/λ)²(C30 λ³k³ − Δf λk)², Kirkland eq. 3.74-form).

Where the envelope form is poor: it damps each Fourier component of the *wave*, which is
exact only for the interference of scattered beams with the unscattered beam (linear
imaging, weak objects). For strong, thick scatterers the interference of two scattered
beams is damped by the transmission cross-coefficient, which no product of envelopes
reproduces; large spreads (E_t or E_s ≪ 1 inside the aperture) also break the
first-order expansion behind E_s. An incoherent sum of images over defocus / incidence
angle is exact in both cases, at one multislice-free image per sample.
tests/joint/test_optics.py measures both envelopes against such sums: for weak objects
they agree to the objects' quadratic term; for a strong (1.5 rad) phase object the
focal-spread envelope is the poorer of the two, by an order of magnitude. The simulator
can therefore make data with the exact sum over defocus (``focal_spread_samples``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from .grids import spatial_frequencies
from .probe import aberration_phase, soft_aperture

__all__ = ["objective_transfer", "temporal_envelope", "spatial_envelope", "chi_gradient"]


def temporal_envelope(ky: torch.Tensor, kx: torch.Tensor, wavelength: float, focal_spread: float) -> torch.Tensor:
    """E_t(k) = exp[−½(πλΔk²)²] for a defocus spread of standard deviation Δ Å."""
    k2 = ky**2 + kx**2
    return torch.exp(-0.5 * (math.pi * wavelength * focal_spread * k2) ** 2)


def spatial_envelope(
    ky: torch.Tensor, kx: torch.Tensor, wavelength: float, aberrations: Mapping[str, Any], semiangle_mrad: float
) -> torch.Tensor:
    """E_s(k) = exp[−(β/(2λ))² |∇_k χ|²] for illumination semi-angle β (1/e half-width, mrad).

    ``aberrations`` as :func:`~.probe.aberration_phase`; ``C10`` may be a ``(D, 1, 1)``
    tensor (one envelope per defocus).
    """
    dy, dx = chi_gradient(ky, kx, wavelength, aberrations)
    beta = semiangle_mrad * 1e-3
    return torch.exp(-((beta / (2.0 * wavelength)) ** 2) * (dy**2 + dx**2))


def chi_gradient(
    ky: torch.Tensor, kx: torch.Tensor, wavelength: float, aberrations: Mapping[str, Any]
) -> tuple[torch.Tensor, torch.Tensor]:
    """∇_k χ (rad·Å) on the grid. The defocus term πλC10k² gives 2πλ·C10·k exactly (so C10
    may carry a defocus axis); the others are differentiated automatically from the one χ
    of the package, so every aberration it knows enters."""
    ky, kx = torch.broadcast_tensors(ky, kx)  # one pixel per element, so grad is per pixel
    rest = {k: v for k, v in aberrations.items() if k != "C10"}
    dy, dx = torch.zeros_like(ky), torch.zeros_like(kx)
    if rest:
        with torch.enable_grad():
            qy = ky.detach().clone().requires_grad_(True)
            qx = kx.detach().clone().requires_grad_(True)
            chi = aberration_phase(qy, qx, wavelength, rest)
            dy, dx = torch.autograd.grad(chi.sum(), (qy, qx))  # each pixel depends on its own k
        # |k| and atan2 have no derivative at k = 0, where χ ∝ |k|^(n+1), n ≥ 1, is flat
        origin = (ky == 0) & (kx == 0)
        dy, dx = torch.where(origin, 0.0, dy), torch.where(origin, 0.0, dx)
    c10 = torch.as_tensor(aberrations.get("C10", 0.0), dtype=ky.dtype, device=ky.device)
    scale = 2.0 * math.pi * wavelength * c10
    return dy + scale * ky, dx + scale * kx


def objective_transfer(
    shape: tuple[int, int],
    pixel_size: float,
    wavelength: float,
    defocus: Any,
    *,
    aperture_mrad: float | None = None,
    aberrations: Mapping[str, float] | None = None,
    focal_spread: float = 0.0,
    illumination_semiangle_mrad: float = 0.0,
    device: Any = None,
) -> torch.Tensor:
    """Transfer functions ``(D, ny, nx)`` complex64 (fftfreq order), one per defocus.

    Parameters
    ----------
    shape : (ny, nx) image grid; pixel_size : Å; wavelength : Å.
    defocus : (D,) defocus in Å (positive underfocus, C10 = −defocus) of the plane the
        wave is given at.
    aperture_mrad : objective aperture semi-angle in mrad, ``None`` for none.
    aberrations : C12, phi12, C30, ... in Å and rad (no C10), as :class:`~..data.Calibration`.
    focal_spread : standard deviation of the defocus in Å (temporal coherence).
    illumination_semiangle_mrad : 1/e half-width of the incidence angles in mrad.
    """
    ky, kx = spatial_frequencies(shape, pixel_size, device=device)
    defocus = torch.as_tensor(defocus, dtype=torch.float32, device=device).reshape(-1, 1, 1)
    coefficients = {**dict(aberrations or {}), "C10": -defocus}
    chi = aberration_phase(ky, kx, wavelength, coefficients)
    amplitude = torch.ones_like(chi)
    if aperture_mrad is not None:
        amplitude = amplitude * soft_aperture(ky, kx, wavelength, aperture_mrad)
    if focal_spread:
        amplitude = amplitude * temporal_envelope(ky, kx, wavelength, focal_spread)
    if illumination_semiangle_mrad:
        amplitude = amplitude * spatial_envelope(ky, kx, wavelength, coefficients, illumination_semiangle_mrad)
    return torch.polar(amplitude, -chi).to(torch.complex64)
