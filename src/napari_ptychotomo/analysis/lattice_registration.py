"""Register a crystal lattice to a volume; found and missing sites, displacement per axis
(Romanov et al. 2025, "Atomic model fitting": lattice registration, then a local-maximum
search started at every expected site).

1. orientation: Bragg peaks of the power spectrum fitted from a rough starting rotation
   (:mod:`.bragg_rotation`);
2. translation: the shift within one unit cell that maximises the (blurred) volume summed
   over the lattice sites, searched on a one-voxel grid;
3. local maxima: from every site a steepest-ascent walk on the blurred volume; a site is
   *found* when its walk ends within ``capture_radius`` on a peak that no nearer site claims
   and that is high enough; several sites ending on one peak leave all but the nearest
   *missing* (Romanov et al.); peaks are refined by Gaussian fits (:mod:`.gaussian_fit`);
4. the rotation and translation are refitted by least squares to the found peaks
   (Kabsch) and steps 3–4 repeat.

Sites whose lattice neighbours are mostly not found either lie outside the crystal
(vacuum around a particle, beyond a slab's surface) and are left out; the others that are
not found are the missing sites (vacancies).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..engine import resolve_device
from .bragg_rotation import allowed_reflections, fit_rotation_to_bragg_peaks, kabsch_rotation
from .gaussian_fit import refine_gaussians
from .lattice_result import LatticeRegistration, euler_from_rotation
from .peak_filters import climb_to_maxima, filter_gain, gaussian_blur, white_noise_sigma
from .volume_input import volume_array

__all__ = ["register_lattice", "LatticeRegistration"]


def _cell_matrix(unit_cell: Any) -> np.ndarray:
    cell = np.asarray(unit_cell, dtype=np.float64)
    if cell.ndim == 0 or cell.shape == (1,):
        cell = np.full(3, float(cell.reshape(-1)[0]))
    if cell.shape == (3,):
        cell = np.diag(cell)
    elif cell.shape == (3, 3):
        cell = cell.T  # rows a1, a2, a3 given → columns
    else:
        raise ValueError(
            f"unit_cell has shape {cell.shape}; expected a lattice constant a in Å, the edges "
            "(a, b, c) in Å along (x, y, z), or (3, 3) lattice vectors as rows (x, y, z) in Å"
        )
    if not np.all(np.isfinite(cell)) or abs(np.linalg.det(cell)) < 1e-6:
        raise ValueError(f"unit_cell = {unit_cell!r} spans no volume; expected lengths in Å > 0")
    return cell


def _sites(cell, basis, rot, t, lo, hi):
    """Crystal-frame positions p (n, 3), basis index and volume positions R·p + t (x y z,
    Å) of every site inside the box [lo, hi]."""
    corners = np.stack(np.meshgrid(*zip(lo, hi), indexing="ij"), -1).reshape(-1, 3)
    frac = (corners - t) @ rot @ np.linalg.inv(cell).T
    ranges = [np.arange(np.floor(a) - 1, np.ceil(b) + 2) for a, b in zip(frac.min(0), frac.max(0))]
    cells = np.stack(np.meshgrid(*ranges, indexing="ij"), -1).reshape(-1, 1, 3)
    p = ((cells + basis[None]) @ cell.T).reshape(-1, 3)
    index = np.tile(np.arange(len(basis)), len(cells))
    x = p @ rot.T + t
    inside = np.all((x >= lo) & (x <= hi), axis=1)
    return p[inside], index[inside], x[inside]


def _sample(volume: torch.Tensor, xyz: np.ndarray, size: float) -> torch.Tensor:
    """Trilinear values of ``volume`` at positions (..., 3) x y z in Å (0 outside)."""
    shape = torch.tensor(volume.shape[::-1], dtype=torch.float32, device=volume.device)
    grid = torch.as_tensor(xyz, dtype=torch.float32, device=volume.device) / size
    grid = 2 * grid / (shape - 1) - 1
    out = F.grid_sample(volume[None, None], grid.reshape(1, -1, 1, 1, 3), align_corners=True)
    return out.reshape(xyz.shape[:-1])


def _search_translation(volume, size, cell, basis, weights, rot, lo, hi):
    """Shift of the lattice within one cell maximising Σ w·volume at the sites."""
    centre = (lo + hi) / 2
    diagonal = np.linalg.norm(cell.sum(1))
    inner_lo, inner_hi = lo + diagonal, hi - diagonal
    if np.any(inner_hi - inner_lo < diagonal):
        inner_lo, inner_hi = lo, hi
    _, index, x = _sites(cell, basis, rot, centre, inner_lo, inner_hi)
    if len(x) > 3000:
        pick = np.random.default_rng(0).choice(len(x), 3000, replace=False)
        index, x = index[pick], x[pick]
    steps = [np.arange(max(2, int(np.ceil(np.linalg.norm(cell[:, i]) / size)))) for i in range(3)]
    fractions = np.stack(np.meshgrid(*[s / len(s) for s in steps], indexing="ij"), -1).reshape(-1, 3)
    shifts = fractions @ (rot @ cell).T
    w = torch.as_tensor(weights[index], dtype=torch.float32, device=volume.device)
    chunk = max(1, 4_000_000 // max(len(x), 1))
    scores = torch.cat(
        [
            (_sample(volume, x[None] + s[:, None], size) * w).sum(1)
            for s in np.array_split(shifts, max(1, len(shifts) // chunk))
        ]
    )
    return centre + shifts[int(scores.argmax())]


def _neighbour_radius(cell, basis):
    """Nearest-site distance (m,) of each basis site in Å, and the number (m,) of sites
    within 1.05 × the largest of these of each basis site (from a 5³-cell block)."""
    cells = np.stack(np.meshgrid(*[np.arange(-2, 3)] * 3, indexing="ij"), -1).reshape(-1, 1, 3)
    block = ((cells + basis[None]) @ cell.T).reshape(-1, 3)
    d = np.linalg.norm(basis @ cell.T - block[:, None], axis=-1)
    d = np.where(d > 1e-6, d, np.inf)
    nearest = d.min(0)
    return nearest, (d <= 1.05 * nearest.max()).sum(0)


def register_lattice(
    volume: Any,
    unit_cell: Any,
    *,
    basis: Any = None,
    species: Any = None,
    weights: Any = None,
    voxel_size: float | None = None,
    rotation: Any = (0.0, 0.0, 0.0),
    max_rotation_deg: float = 5.0,
    mask: Any = None,
    capture_radius: float | None = None,
    threshold_sigma: float = 5.0,
    min_relative_height: float = 0.3,
    fit_blur: float = 0.7,
    iterations: int = 3,
    device: Any = "auto",
) -> LatticeRegistration:
    """Fit a crystal lattice (rotation + translation) to a volume and find its atoms.

    Parameters
    ----------
    volume : Volume, or real array (nz, ny, nx) with ``voxel_size`` in Å.
    unit_cell : lattice constant a (Å, cubic), edges (a, b, c) Å along (x, y, z), or
        (3, 3) lattice vectors as rows in Å (x, y, z), in the crystal frame.
    basis : (m, 3) fractional (x, y, z) positions of the sites in the cell (default one
        site at 0: a primitive lattice).
    species : m labels of the basis sites (e.g. element symbols), kept in the result.
    weights : (m,) relative scattering strengths for the translation search (default 1).
    rotation : rough orientation (φ, θ, ψ) in degrees (Euler angles of docs/conventions.md) or a
        (3, 3) rotation; the true one may be up to ``max_rotation_deg`` away (0: keep it).
    mask : optional bool (nz, ny, nx): only sites inside it are considered.
    capture_radius : Å a local maximum may lie from its site (default half the shortest
        site distance).
    threshold_sigma : a peak must exceed this many noise σ of the blurred volume ...
    min_relative_height : ... and this fraction of the median peak of its basis site.
    fit_blur : Gaussian blur in voxels of the volume the maxima are searched in.
    iterations : local-maximum search / least-squares refit rounds.

    Returns
    -------
    LatticeRegistration
    """
    array, size, origin = volume_array(volume, voxel_size)
    cell = _cell_matrix(unit_cell)
    basis = np.zeros((1, 3)) if basis is None else np.asarray(basis, dtype=np.float64)
    if basis.ndim != 2 or basis.shape[1] != 3:
        raise ValueError(f"basis has shape {basis.shape}; expected (m, 3) fractional (x, y, z)")
    weights = np.ones(len(basis)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if weights.shape != (len(basis),) or np.any(weights <= 0):
        raise ValueError(f"weights = {weights!r}; expected {len(basis)} positive values, one per basis site")
    if species is not None and len(species) != len(basis):
        raise ValueError(f"species has {len(species)} labels; expected one per basis site ({len(basis)})")
    rot = np.asarray(rotation, dtype=np.float64)
    if rot.shape == (3,):
        from ..physics.rotation import rotation_matrix_deg

        rot = rotation_matrix_deg(rot)
    elif rot.shape != (3, 3):
        raise ValueError(f"rotation has shape {rot.shape}; expected Euler angles (φ, θ, ψ) in degrees or (3, 3)")
    if mask is not None and np.shape(mask) != array.shape:
        raise ValueError(f"mask has shape {np.shape(mask)}; expected the volume's shape {array.shape}")
    dev = resolve_device(device)
    raw = torch.as_tensor(np.real(array).astype(np.float32), device=dev)
    nearest, n_neighbours = _neighbour_radius(cell, basis)
    capture = 0.5 * nearest.min() if capture_radius is None else float(capture_radius)

    n_bragg = 0
    if max_rotation_deg > 0:
        g_max = 0.8 / (2 * size)
        reflections = allowed_reflections(cell, basis, weights, g_max)
        rot, n_bragg = fit_rotation_to_bragg_peaks(raw, size, reflections, rot, max_rotation_deg)

    # sites at least two voxels inside the faces (room for the fit windows)
    lo = np.full(3, 2 * size)
    hi = (np.array(array.shape[::-1]) - 3) * size
    search = gaussian_blur(raw, max(1.0, 0.25 * nearest.min() / size))
    t = _search_translation(search, size, cell, basis, weights, rot, lo, hi)

    smooth = gaussian_blur(raw, fit_blur)
    noise = white_noise_sigma(raw) * filter_gain(lambda v: gaussian_blur(v, fit_blur), dev)
    shape = np.array(array.shape)
    for _ in range(max(1, int(iterations))):
        p, index, x = _sites(cell, basis, rot, t, lo, hi)
        start = np.round(x[:, ::-1] / size).astype(int)
        if mask is not None:
            keep = np.asarray(mask, bool)[tuple(start.T)]
            p, index, x, start = p[keep], index[keep], x[keep], start[keep]
        end, converged = climb_to_maxima(smooth, torch.as_tensor(start, device=dev), int(np.ceil(capture / size)) + 3)
        end_np = end.cpu().numpy()
        heights = smooth[tuple(end.T)].cpu().numpy()
        distance = np.linalg.norm(end_np[:, ::-1] * size - x, axis=1)
        captured = converged.cpu().numpy() & (distance <= capture + 0.5 * size)
        # a peak reached from several sites belongs to the nearest one (the others are missing)
        flat = np.ravel_multi_index(tuple(end_np.T), array.shape)
        order = np.lexsort((distance, ~captured))
        first = np.zeros(len(x), bool)
        first[order[np.unique(flat[order], return_index=True)[1]]] = True
        found = captured & first
        level = np.array(
            [
                np.median(heights[found & (index == b)]) if np.any(found & (index == b)) else 0.0
                for b in range(len(basis))
            ]
        )
        found &= heights > np.maximum(threshold_sigma * noise, min_relative_height * level[index])
        if found.sum() < 4:
            raise ValueError(
                f"only {int(found.sum())} lattice sites have an atom; check unit_cell, basis, "
                "voxel_size and the starting rotation"
            )
        peaks = _refine_peaks(smooth, end_np[found], fit_blur) * size
        rot, t = _rigid_fit(p[found], peaks[:, ::-1])
    x = p @ rot.T + t
    # not found, and fewer than half of its lattice neighbours found: outside the crystal
    # (vacuum, beyond a surface), not a vacancy
    from scipy.spatial import cKDTree

    lost = np.flatnonzero(~found)
    pairs = cKDTree(x[lost]).query_ball_tree(cKDTree(x), 1.05 * nearest.max())
    found_neighbours = np.array([found[nb].sum() for nb in pairs], dtype=float)
    found_fraction = found_neighbours / n_neighbours[index[lost]]
    inside = found.copy()
    inside[~found] = found_fraction >= 0.5
    all_peaks = np.full((len(x), 3), np.nan)
    all_peaks[found] = peaks
    all_heights = np.where(found, heights, np.nan)
    # canonical translation: the lattice origin nearest the volume centre
    centre = (shape[::-1] - 1) / 2 * size
    shift = np.round(np.linalg.solve(cell, rot.T @ (centre - t)))
    t = t + rot @ cell @ shift
    return LatticeRegistration(
        rotation=rot,
        euler_deg=euler_from_rotation(rot),
        translation=t[::-1] + origin,
        sites=x[inside][:, ::-1] + origin,
        site_basis=index[inside],
        found=found[inside],
        peaks=all_peaks[inside] + origin,
        heights=all_heights[inside],
        species=list(species) if species is not None else None,
        n_bragg=n_bragg,
        n_outside=int((~inside).sum()),
    )


def _refine_peaks(smooth: torch.Tensor, voxels: np.ndarray, fit_blur: float) -> np.ndarray:
    """Sub-voxel peak positions (m, 3) in voxels (z, y, x): neighbour-subtracted Gaussian
    fits started at the local-maximum voxels (a fit that wanders off keeps its voxel)."""
    start = torch.as_tensor(voxels, dtype=torch.float32, device=smooth.device)
    heights = smooth[tuple(torch.as_tensor(voxels, device=smooth.device).T)].clamp_min(1e-6)
    state = (start, heights, torch.full_like(heights, float(np.hypot(fit_blur, 0.5))), torch.zeros_like(heights))
    for _ in range(3):
        state = refine_gaussians(smooth, *state, radius=2)
    centres = state[0]
    bad = (centres - start).norm(dim=-1) > 1.0
    return torch.where(bad[:, None], start, centres).double().cpu().numpy()


def _rigid_fit(p: np.ndarray, q: np.ndarray, rounds: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """R, t minimising Σ w |R·p + t − q|² (weighted Kabsch with centring); p, q (n, 3)
    x y z. The weights are Tukey's biweight of the residuals (c = 4.685 robust σ), refitted
    a few times, so a few strongly displaced atoms do not tilt the lattice."""
    w = np.ones(len(p))
    for _ in range(rounds):
        pc, qc = np.average(p, axis=0, weights=w), np.average(q, axis=0, weights=w)
        rot = kabsch_rotation(p - pc, q - qc, w)
        t = qc - rot @ pc
        residual = np.linalg.norm(p @ rot.T + t - q, axis=1)
        scale = 4.685 * max(1.4826 * np.median(residual), 0.01)
        w = np.clip(1 - (residual / scale) ** 2, 0, None) ** 2
        if w.sum() < 4:
            break
    return rot, t
