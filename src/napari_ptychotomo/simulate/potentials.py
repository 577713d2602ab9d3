"""Electrostatic potentials of atoms: analytic radial profiles, projected slices, 3D volumes.

The potential of an atom is V(r) = C ∫ f_e(q) exp(2πi q·r) d³q with the scattering factor
f_e of :mod:`.elements` and C = h²/(2π m₀ e) (Kirkland 2010, eq. 5.9). Each term of both
parameterisations has a closed-form transform:

* Lobato & Van Dyck (2014), eqs. 16-18, with β_i = 2π/√b_i:
  V(r) = C Σ π² a_i b_i^(-3/2) (2/(β_i r) + 1) exp(−β_i r),
  v_z(ρ) = C Σ 2π² a_i b_i^(-3/2) (2 K₀(β_i ρ)/β_i + ρ K₁(β_i ρ)).
* Kirkland (2010), eqs. C.19 and C.20:
  V(r) = C Σ [π a_i exp(−2π√b_i r)/r + c_i (π/d_i)^(3/2) exp(−π² r²/d_i)],
  v_z(ρ) = C Σ [2π a_i K₀(2π√b_i ρ) + (π c_i/d_i) exp(−π² ρ²/d_i)].

Slices are built in Fourier space: a slice's projected potential is the 2D inverse
transform of C f_e(|k|) times the structure factor Σ_j exp(−2πi k·r_j) of its atoms (the
infinite projection of each atom into the slice that holds its centre), divided by the pixel
area. This is the exact potential band-limited at the grid's Nyquist frequency: sub-pixel
positions need no interpolation and the logarithmic core is bounded by the band limit. No
roll-off below Nyquist: the transmission exp(iσV) carries every frequency of V into the
wave, so a taper of V would lower the peaks of the projected potential on coarse pixels and
change the physics; the multislice antialias acts on the transmission function instead.
Slices are periodic, so leave vacuum around non-periodic specimens. The 3D volume is built
in real space (:mod:`.volume`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy import special

from ..engine import resolve_device
from .elements import (
    POTENTIAL_PREFACTOR,
    _check_parameterisation,
    atomic_numbers,
    parameters,
    scattering_factor,
)

__all__ = [
    "atom_potential",
    "atom_projected_potential",
    "projected_potential_slices",
    "slices_tensor",
]


def _radius(r: Any, name: str = "r") -> np.ndarray:
    radius = np.asarray(r, dtype=np.float64)
    if np.any(~np.isfinite(radius)) or np.any(radius <= 0):
        raise ValueError(f"{name} must be positive distances in Å (the potential diverges at 0)")
    return radius


def atom_potential(r: Any, element: str | int, parameterisation: str = "lobato") -> np.ndarray:
    """Potential V(r) in V of a neutral atom at distances ``r`` > 0 in Å (float64)."""
    key = _check_parameterisation(parameterisation)
    radius = _radius(r)
    r = radius.reshape(1, -1)
    p = parameters(element, key)[:, :, None]
    if key == "lobato":
        a, b = p
        beta = 2.0 * np.pi / np.sqrt(b)
        terms = np.pi**2 * a / b**1.5 * (2.0 / (beta * r) + 1.0) * np.exp(-beta * r)
    else:
        a, b, c, d = p
        terms = np.pi * a * np.exp(-2.0 * np.pi * np.sqrt(b) * r) / r
        terms = terms + c * (np.pi / d) ** 1.5 * np.exp(-(np.pi**2) * r**2 / d)
    return (POTENTIAL_PREFACTOR * terms.sum(axis=0)).reshape(radius.shape)


def atom_projected_potential(r: Any, element: str | int, parameterisation: str = "lobato") -> np.ndarray:
    """Projected potential v_z(ρ) = ∫ V dz in V·Å of a neutral atom at radii ``r`` > 0 Å.

    The integral runs over the whole atom (infinite projection); float64.
    """
    key = _check_parameterisation(parameterisation)
    radius = _radius(r)
    r = radius.reshape(1, -1)
    p = parameters(element, key)[:, :, None]
    if key == "lobato":
        a, b = p
        beta = 2.0 * np.pi / np.sqrt(b)
        terms = 2.0 * np.pi**2 * a / b**1.5 * (2.0 * special.k0(beta * r) / beta + r * special.k1(beta * r))
    else:
        a, b, c, d = p
        terms = 2.0 * np.pi * a * special.k0(2.0 * np.pi * np.sqrt(b) * r)
        terms = terms + np.pi * c / d * np.exp(-(np.pi**2) * r**2 / d)
    return (POTENTIAL_PREFACTOR * terms.sum(axis=0)).reshape(radius.shape)


def _check_atoms(positions: Any, numbers: Any) -> tuple[np.ndarray, np.ndarray]:
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"positions has shape {pos.shape}; expected (n, 3) in Å as (z, y, x)")
    if not np.all(np.isfinite(pos)):
        raise ValueError("positions contains NaN or infinite values")
    z = atomic_numbers(numbers)
    if z.shape != (len(pos),):
        raise ValueError(f"numbers has {z.size} entries; expected one atomic number per atom ({len(pos)})")
    return pos, z


def _pair(value: Any, name: str) -> tuple[float, float]:
    arr = np.broadcast_to(np.asarray(value, dtype=np.float64), (2,))
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(f"{name} = {value!r}; expected a positive pixel size in Å")
    return float(arr[0]), float(arr[1])


def _frequencies(n: int, spacing: float, device: torch.device) -> torch.Tensor:
    return torch.fft.fftfreq(n, d=spacing, dtype=torch.float64, device=device)


def _phase_factors(coord: np.ndarray, freq: torch.Tensor) -> torch.Tensor:
    """exp(−2πi k x_j) as ``(n_atoms, n_k)`` complex128 (float64 keeps large k·x exact)."""
    x = torch.as_tensor(coord, dtype=torch.float64, device=freq.device)
    angle = (-2.0 * math.pi) * x[:, None] * freq[None, :]
    return torch.polar(torch.ones_like(angle), angle)


def projected_potential_slices(
    positions: Any,
    numbers: Any,
    shape: tuple[int, int],
    sampling: Any,
    slice_thickness: float,
    num_slices: int,
    parameterisation: str = "lobato",
    device: Any = "cpu",
) -> np.ndarray:
    """Projected potential of every slice of a specimen, in V·Å.

    Parameters
    ----------
    positions : (n, 3) array, atom positions in Å as (z, y, x). Pixel (i, j) of the grid is
        centred at (y, x) = (i·dy, j·dx); z = 0 is the entrance surface. An atom belongs to
        slice ``floor(z / slice_thickness)``; its whole potential is projected into it.
    numbers : (n,) atomic numbers (or symbols).
    shape : (ny, nx) grid size; the field is periodic (atoms outside wrap around).
    sampling : pixel size in Å, scalar or (dy, dx).
    slice_thickness : Å. num_slices : number of slices S; atoms must have
        0 ≤ z < S·slice_thickness.
    parameterisation : ``"lobato"`` or ``"kirkland"``.
    device : torch device or ``"auto"`` for the computation; the result is numpy.

    Returns
    -------
    numpy.ndarray (S, ny, nx) float32, V·Å.
    """
    out = slices_tensor(
        positions,
        numbers,
        shape,
        sampling,
        slice_thickness,
        num_slices,
        parameterisation,
        resolve_device(device),
    )
    return out.cpu().numpy()


def slices_tensor(
    positions: Any,
    numbers: Any,
    shape: tuple[int, int],
    sampling: Any,
    slice_thickness: float,
    num_slices: int,
    parameterisation: str,
    device: torch.device,
) -> torch.Tensor:
    """:func:`projected_potential_slices` as a float32 torch tensor on ``device``."""
    key = _check_parameterisation(parameterisation)
    pos, z = _check_atoms(positions, numbers)
    ny, nx = (int(s) for s in shape)
    if ny < 2 or nx < 2:
        raise ValueError(f"shape = {shape!r}; expected (ny, nx) with at least 2 pixels each")
    dy, dx = _pair(sampling, "sampling")
    if not (np.isfinite(slice_thickness) and slice_thickness > 0):
        raise ValueError(f"slice_thickness = {slice_thickness!r}; expected a positive length in Å")
    if int(num_slices) < 1:
        raise ValueError(f"num_slices = {num_slices!r}; expected at least 1")
    num_slices = int(num_slices)
    slice_index = np.floor(pos[:, 0] / slice_thickness).astype(np.int64)
    total = num_slices * slice_thickness
    bad = (slice_index < 0) | (slice_index >= num_slices)
    if np.any(bad):
        raise ValueError(
            f"{int(bad.sum())} atom(s) have z outside the slices [0, {total:.4g}) Å "
            f"(z from {pos[:, 0].min():.4g} to {pos[:, 0].max():.4g} Å); shift the "
            "specimen or add slices"
        )
    dev = torch.device(device)
    ky = _frequencies(ny, dy, dev)
    kx = _frequencies(nx, dx, dev)
    q = torch.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)
    # per element: its form factor on the grid, the atoms' phase factors and slices
    elements = []
    for element in np.unique(z):
        members = z == element
        elements.append(
            (
                POTENTIAL_PREFACTOR * scattering_factor(q, int(element), key),
                _phase_factors(pos[members, 1], ky),  # (m, ny)
                _phase_factors(pos[members, 2], kx),  # (m, nx)
                torch.as_tensor(slice_index[members], device=dev),
            )
        )
    # one slice's spectrum at a time (complex128 for the whole stack would be 16 bytes a
    # pixel); a slice whose atoms (y, x, Z) repeat an earlier slice's, as every plane of an
    # untilted crystal does, is copied from it
    out = torch.zeros((num_slices, ny, nx), dtype=torch.float32, device=dev)
    order = np.lexsort((pos[:, 2], pos[:, 1], z))
    done: dict[bytes, int] = {}
    for s in range(num_slices):
        mine = order[slice_index[order] == s]
        key = z[mine].tobytes() + pos[mine, 1:].tobytes()
        if key in done:
            out[s] = out[done[key]]
            continue
        done[key] = s
        spectrum = None
        for form, ey, ex, index in elements:
            rows = index == s
            if bool(rows.any()):
                term = form * (ey[rows].T @ ex[rows])
                spectrum = term if spectrum is None else spectrum + term
        if spectrum is not None:
            out[s] = torch.fft.ifft2(spectrum).real / (dy * dx)
    return out
