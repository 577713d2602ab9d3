"""Crystal orientation from the Bragg peaks of a volume's power spectrum.

Romanov et al. 2025 ("Atomic model fitting") register a crystal lattice by starting from a
rough orientation and fitting the positions of the Bragg peaks of the reconstructed
volume in Fourier space. Here: every allowed reflection g of the crystal (the
reciprocal-lattice vectors whose structure factor does not vanish) is predicted at R₀·g,
the strongest voxel of the power spectrum near the prediction is located with sub-voxel
precision (parabola through the log power, i.e. a Gaussian peak), and the rotation that
maps the g onto the measured peaks in the least-squares sense is the weighted Kabsch
solution. A few rounds with shrinking search windows converge from a few degrees off.
The power spectrum is blind to translations, so the orientation is found first.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["allowed_reflections", "kabsch_rotation", "fit_rotation_to_bragg_peaks"]


def allowed_reflections(
    cell: np.ndarray, basis: np.ndarray, weights: np.ndarray, g_max: float, min_structure_factor: float = 0.1
) -> np.ndarray:
    """Reciprocal-lattice vectors g (m, 3) as (x, y, z) in Å⁻¹ of the crystal frame with
    0 < |g| ≤ ``g_max`` whose structure factor |Σ_b w_b exp(2πi hkl·b_b)| is at least
    ``min_structure_factor`` · Σ_b w_b (fcc extinctions and the like are dropped).

    ``cell`` (3, 3) holds the lattice vectors as columns (Å, x y z); ``basis`` (m, 3)
    fractional coordinates; ``weights`` (m,) scattering weights.
    """
    lengths = np.linalg.norm(cell, axis=0)
    h_max = np.ceil(g_max * lengths).astype(int)
    axes = [np.arange(-h, h + 1) for h in h_max]
    hkl = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    g = hkl @ np.linalg.inv(cell)  # rows: g = A⁻ᵀ hkl
    norm = np.linalg.norm(g, axis=1)
    keep = (norm > 0) & (norm <= g_max)
    structure = np.abs(np.exp(2j * np.pi * hkl[keep] @ basis.T) @ weights)
    keep[np.flatnonzero(keep)] = structure >= min_structure_factor * np.abs(weights).sum()
    return g[keep]


def kabsch_rotation(source: np.ndarray, target: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Proper rotation R (3, 3) minimising Σ w |R·source − target|² (no translation)."""
    w = np.ones(len(source)) if weights is None else np.asarray(weights, float)
    h = (source * w[:, None]).T @ target
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(vt.T @ u.T)) or 1.0
    return vt.T @ np.diag([1.0, 1.0, d]) @ u.T


def _power_spectrum(volume: torch.Tensor) -> torch.Tensor:
    """Centred |FFT|² of the mean-free volume times a separable Hann window (less leakage
    from the box faces, Bragg peaks about two Fourier voxels wide)."""
    window = None
    for axis, n in enumerate(volume.shape):
        w = torch.hann_window(n, periodic=False, device=volume.device, dtype=volume.dtype)
        shape = [1, 1, 1]
        shape[axis] = n
        window = w.view(shape) if window is None else window * w.view(shape)
    spectrum = torch.fft.fftn((volume - volume.mean()) * window)
    return torch.fft.fftshift(spectrum.abs() ** 2)


def fit_rotation_to_bragg_peaks(
    volume: torch.Tensor,
    voxel_size: float,
    reflections: np.ndarray,
    rotation: np.ndarray,
    max_rotation_deg: float = 5.0,
    rounds: int = 4,
    min_contrast: float = 20.0,
) -> tuple[np.ndarray, int]:
    """Refine a crystal orientation from the Bragg peaks of ``volume``.

    Parameters
    ----------
    volume : (nz, ny, nx) tensor.
    voxel_size : Å.
    reflections : (m, 3) g vectors (x, y, z) Å⁻¹ in the crystal frame.
    rotation : (3, 3) starting rotation (crystal frame → volume frame, acting on x y z).
    max_rotation_deg : how far from ``rotation`` the true orientation may be.
    rounds : search / fit rounds (the window shrinks to 2 Fourier voxels after the first).
    min_contrast : a peak counts when its power is this many times the median power
        of its search window.

    Returns
    -------
    rotation (3, 3), number of reflections used in the last round.
    """
    power = _power_spectrum(volume).cpu().numpy().astype(np.float64)
    shape = np.array(power.shape)
    dk = 1.0 / (shape * voxel_size)  # Å⁻¹ per Fourier voxel (z, y, x)
    nyquist = shape // 2 - 2
    g_norm = np.linalg.norm(reflections, axis=1)
    r = np.asarray(rotation, float)
    used = 0
    for round_ in range(rounds):
        spread = g_norm * np.sin(np.deg2rad(max_rotation_deg)) / dk.min() if round_ == 0 else 0 * g_norm
        radius = int(np.clip(np.ceil(spread.max(initial=0.0)), 2, 8))
        predicted = (reflections @ r.T)[:, ::-1] / dk  # Fourier voxels from the centre (z, y, x)
        inside = np.all(np.abs(predicted) <= nyquist - radius - 1, axis=1)
        if inside.sum() < 3:
            raise ValueError(
                "too few Bragg reflections fall inside the volume's Fourier box; give a "
                "larger volume or a unit_cell in Å that matches the voxel_size"
            )
        centre = np.round(predicted[inside]).astype(int) + shape // 2
        offsets = np.stack(np.meshgrid(*[np.arange(-radius, radius + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
        local = np.linalg.norm(offsets, axis=1) <= radius + 0.5
        offsets = offsets[local]
        pts = centre[:, None, :] + offsets[None]
        values = power[pts[..., 0], pts[..., 1], pts[..., 2]]
        best = values.argmax(1)
        peak = pts[np.arange(len(pts)), best]
        contrast = values.max(1) / np.maximum(np.median(values, axis=1), 1e-30)
        # sub-voxel: vertex of the parabola through the log power along each axis
        sub = np.zeros_like(peak, dtype=float)
        for axis in range(3):
            step = np.zeros(3, int)
            step[axis] = 1
            lo, mid, hi = (np.log(np.maximum(power[tuple((peak + s * step).T)], 1e-30)) for s in (-1, 0, 1))
            curvature = lo - 2 * mid + hi
            sub[:, axis] = np.where(curvature < 0, 0.5 * (lo - hi) / np.where(curvature < 0, curvature, -1.0), 0.0)
        measured = (peak + np.clip(sub, -0.5, 0.5) - shape // 2) * dk  # Å⁻¹ (z, y, x)
        good = contrast >= min_contrast
        used = int(good.sum())
        if used < 3:
            raise ValueError(
                f"only {used} Bragg peaks stand out of the power spectrum; check unit_cell "
                "(Å, along x y z), the starting rotation and max_rotation_deg"
            )
        weights = np.log(contrast[good])
        r = kabsch_rotation(reflections[inside][good], measured[good][:, ::-1], weights)
    return r, used
