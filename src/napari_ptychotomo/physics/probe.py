"""The probe: aberration phase χ(k), soft aperture, the focused probe and its mixed states.

χ(k) = 2π/λ Σ (1/(n+1)) αⁿ⁺¹ C_nm cos(m(φ − φ_nm)) with α = λ|k| and φ the azimuth of k
(Kirkland, *Advanced Computing in Electron Microscopy*, eq. 3.42; abTEM's sign: the wave
in Fourier space is A(k)·exp(−iχ(k)) and ``C10 = -defocus``, so positive defocus is
underfocus).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ..optics import wavelength
from .grids import as_pair, spatial_frequencies

__all__ = [
    "aberration_phase",
    "ctf",
    "soft_aperture",
    "make_probe",
    "probe_modes",
    "orthogonalize_modes",
]

# (n, m) of each supported coefficient C_nm; angles are keyed "phi<nm>" in rad
_ORDERS = {
    "C10": (1, 0),
    "C12": (1, 2),
    "C21": (2, 1),
    "C23": (2, 3),
    "C30": (3, 0),
    "C32": (3, 2),
    "C34": (3, 4),
    "C50": (5, 0),
}


def aberration_phase(
    ky: torch.Tensor, kx: torch.Tensor, wavelength: float, aberrations: Mapping[str, float]
) -> torch.Tensor:
    """Aberration phase χ in rad on the frequency grid ``(ky, kx)`` Å⁻¹.

    ``aberrations`` holds C_nm in Å (``C10`` = −defocus, ``C12`` two-fold astigmatism,
    ``C21`` coma, ``C23`` three-fold, ``C30`` = Cs, ...) and azimuths ``phi<nm>`` in rad.
    Coefficients may be tensors that require grad.
    """
    unknown = set(aberrations) - set(_ORDERS) - {f"phi{k[1:]}" for k in _ORDERS}
    if unknown:
        raise ValueError(f"aberrations has unknown key(s) {sorted(unknown)}; allowed C10..C50, phi12..")
    alpha = wavelength * torch.sqrt(ky**2 + kx**2)
    azimuth = torch.atan2(ky, kx)
    chi = torch.zeros_like(alpha)
    for name, (n, m) in _ORDERS.items():
        coefficient = aberrations.get(name, 0.0)
        if not torch.is_tensor(coefficient) and coefficient == 0.0:
            continue
        term = alpha ** (n + 1) / (n + 1) * coefficient
        if m:
            term = term * torch.cos(m * (azimuth - aberrations.get(f"phi{name[1:]}", 0.0)))
        chi = chi + term
    return 2.0 * math.pi / wavelength * chi


def ctf(ky: torch.Tensor, kx: torch.Tensor, wavelength: float, aberrations: Mapping[str, float]) -> torch.Tensor:
    """Coherent transfer function exp(−iχ(k)) (no aperture), complex64."""
    chi = aberration_phase(ky, kx, wavelength, aberrations)
    return torch.polar(torch.ones_like(chi), -chi)


def soft_aperture(ky: torch.Tensor, kx: torch.Tensor, wavelength: float, semiangle_mrad: float) -> torch.Tensor:
    """Aperture amplitude with an edge one reciprocal pixel wide:
    clip((α_c − α)/Δα + ½, 0, 1), α = λ|k|, Δα = λ·Δk (as abTEM)."""
    dk = max(
        float(ky.flatten()[1] - ky.flatten()[0]) if ky.numel() > 1 else 0.0,
        float(kx.flatten()[1] - kx.flatten()[0]) if kx.numel() > 1 else 0.0,
    )
    alpha = wavelength * torch.sqrt(ky**2 + kx**2)
    edge = wavelength * dk
    return torch.clamp((semiangle_mrad * 1e-3 - alpha) / edge + 0.5, 0.0, 1.0)


def make_probe(
    shape: Sequence[int],
    sampling: float | Sequence[float],
    energy_eV: float,
    semiangle_mrad: float,
    aberrations: Mapping[str, float] | None = None,
    position: Sequence[float] | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """A focused probe ``(ny, nx)`` complex64 in real space, sum |ψ|² = 1.

    The probe is centred at pixel ``(ny//2, nx//2)``, or at ``position`` (y, x) in Å from
    pixel (0, 0) when given. ``aberrations`` as in :func:`aberration_phase` (``C10`` =
    −defocus).
    """
    ny, nx = int(shape[0]), int(shape[1])
    dy, dx = as_pair(sampling)
    lam = float(wavelength(energy_eV))
    ky, kx = spatial_frequencies((ny, nx), (dy, dx), device=device)
    amplitude = soft_aperture(ky, kx, lam, semiangle_mrad)
    if float(amplitude.sum()) == 0.0:
        raise ValueError(
            f"semiangle_mrad = {semiangle_mrad} is smaller than one reciprocal pixel "
            f"({lam / (nx * dx) * 1e3:.3g} mrad); use a larger probe window"
        )
    chi = aberration_phase(ky, kx, lam, dict(aberrations or {}))
    if position is None:
        position = (ny // 2 * dy, nx // 2 * dx)
    py, px = position
    phase = -chi - 2.0 * math.pi * (ky * py + kx * px)
    wave_k = torch.polar(amplitude, phase)
    probe = torch.fft.ifft2(wave_k)
    return (probe / torch.linalg.vector_norm(probe)).to(torch.complex64)


def orthogonalize_modes(modes: torch.Tensor) -> torch.Tensor:
    """Orthogonal modes ``(M, ny, nx)`` spanning the same incoherent sum, sorted by power.

    Uses the singular value decomposition of the modes as rows: the density matrix
    Σ|m⟩⟨m| is unchanged, the returned modes are mutually orthogonal and ordered by
    decreasing power (as in mixed-state ptychography, Thibault & Menzel 2013).
    Modes holding NaN or infinite values are returned as they are (the decomposition
    would fail on them), for the caller's divergence check to report.
    """
    if not bool(torch.isfinite(torch.view_as_real(modes)).all()):
        return modes
    m = modes.shape[0]
    flat = modes.reshape(m, -1)
    u, s, _vh = torch.linalg.svd(flat @ flat.conj().T)
    # eigenvectors of the Gram matrix give the rotation that diagonalises it
    rotated = u.conj().T @ flat
    return rotated.reshape(modes.shape)


def probe_modes(probe: torch.Tensor, num_modes: int, power_fraction: float = 0.1) -> torch.Tensor:
    """Starting modes ``(num_modes, ny, nx)``: the probe and Hermite-like variants of it.

    Mode j > 0 is the probe multiplied by x^a y^b (a + b = 1, 2, ...), Gram–Schmidt
    orthogonalised to the modes before it; the first mode keeps ``1 − power_fraction`` of
    the probe's power (all of it when ``num_modes == 1``), the others share the rest.
    """
    if num_modes < 1:
        raise ValueError(f"num_modes = {num_modes}; expected at least 1")
    total_power = torch.sum(torch.abs(probe) ** 2)
    if num_modes == 1:
        return probe[None].clone()
    ny, nx = probe.shape[-2:]
    weight = torch.abs(probe) ** 2
    y = torch.arange(ny, device=probe.device, dtype=torch.float32)[:, None]
    x = torch.arange(nx, device=probe.device, dtype=torch.float32)[None, :]
    cy = torch.sum(weight * y) / total_power
    cx = torch.sum(weight * x) / total_power
    spread = torch.sqrt(torch.sum(weight * ((y - cy) ** 2 + (x - cx) ** 2)) / total_power) + 1e-6
    yn, xn = (y - cy) / spread, (x - cx) / spread
    exponents = [(a, order - a) for order in range(1, num_modes + 1) for a in range(order + 1)]
    modes = [probe / torch.linalg.vector_norm(probe)]
    for a, b in exponents:
        if len(modes) == num_modes:
            break
        candidate = probe * (xn**a * yn**b).to(probe.dtype)
        for previous in modes:
            candidate = candidate - torch.sum(previous.conj() * candidate) * previous
        norm = torch.linalg.vector_norm(candidate)
        if norm > 1e-6 * torch.linalg.vector_norm(probe):
            modes.append(candidate / norm)
    stacked = torch.stack(modes)
    weights = torch.full((num_modes,), power_fraction / (num_modes - 1), device=probe.device)
    weights[0] = 1.0 - power_fraction
    return (stacked * torch.sqrt(weights * total_power)[:, None, None]).to(torch.complex64)
