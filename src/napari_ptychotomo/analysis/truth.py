"""A reconstruction against a simulator's ground truth: the truth potential resampled on the
reconstruction's grid, the rigid translation between them removed, then the Fourier shell
correlation, a band-limited Pearson r and the traced atoms scored against the true ones.

Frames: a reconstruction's voxel (n − 1)/2 is the rotation centre, which the simulator puts
at the specimen centre; the truth volume's voxel i sits at i·Δ Å of the specimen frame and
the true atoms are given in that frame. Alignment finds shifts only up to a translation of
the whole volume, so the translation that best matches the truth is found
(``skimage.registration.phase_cross_correlation``) and removed before anything is compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Atoms, Resolution, Volume

__all__ = ["TruthComparison", "compare_with_truth", "truth_atoms_in_volume_frame", "species_classes"]

BAND_SIGMA = 0.7  # Å: about half the probe's λ/α resolution of the default sample


@dataclass
class TruthComparison:
    """``fsc``: FSC of the (registered) reconstruction against the truth, with its 0.5
    crossing in ``fsc.crossings["0.5"]`` (Å, nan when the curve stays above 0.5 up to
    Nyquist); ``pearson_r``: correlation after a Gaussian band limit of ``band_sigma`` Å;
    ``offset_voxels`` (z, y, x): the translation removed; ``atoms``: the score of
    :func:`~napari_ptychotomo.analysis.scoring.score_atoms` when atoms were given."""

    fsc: Resolution
    pearson_r: float
    offset_voxels: np.ndarray
    band_sigma: float = BAND_SIGMA
    atoms: dict[str, Any] = field(default_factory=dict)


def _truth_on_grid(truth: Volume, centre: np.ndarray, shape: tuple[int, ...], voxel: float, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter, map_coordinates

    data = np.real(np.asarray(truth.data, dtype=np.complex128 if np.iscomplexobj(truth.data) else float))
    if sigma:
        data = gaussian_filter(data, sigma / truth.voxel_size)
    origin = np.asarray(truth.origin, dtype=float)
    axes = [((np.arange(n) - (n - 1) / 2) * voxel + c - o) / truth.voxel_size for n, c, o in zip(shape, centre, origin)]
    return map_coordinates(data, np.meshgrid(*axes, indexing="ij"), order=1, mode="constant")


def truth_centre(truth: Volume) -> np.ndarray:
    """The specimen centre (z, y, x) Å of a simulator truth volume: the middle of its grid."""
    return np.asarray(truth.origin, dtype=float) + (np.asarray(truth.shape) - 1) / 2 * truth.voxel_size


def truth_atoms_in_volume_frame(
    positions: Any, truth: Volume, volume: Volume, offset_voxels: Any = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """True atom positions (n, 3) Å, given in the specimen frame of ``truth``, moved into
    the frame of ``volume`` (its ``origin`` and voxel (n − 1)/2 at the specimen centre),
    less the registration ``offset_voxels`` found by :func:`compare_with_truth`."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    centre_index = (np.asarray(volume.shape) - 1) / 2 - np.asarray(offset_voxels, dtype=float)
    index = (pos - truth_centre(truth)) / volume.voxel_size + centre_index
    return np.asarray(volume.origin, dtype=float) + index * volume.voxel_size


def species_classes(numbers: Any) -> np.ndarray:
    """Atomic numbers (n,) as species classes 0, 1, … by increasing Z: the order of
    :func:`~napari_ptychotomo.analysis.trace_atoms`' classes (increasing intensity)."""
    numbers = np.asarray(numbers).ravel()
    return np.searchsorted(np.unique(numbers), numbers)


def compare_with_truth(
    volume: Volume,
    truth: Volume,
    *,
    atoms: Atoms | None = None,
    true_atoms: Any = None,
    true_species: Any = None,
    score_radius: float = 1.0,
    band_sigma: float = BAND_SIGMA,
) -> TruthComparison:
    """Compare a reconstruction with the simulator's truth potential (and traced atoms with
    the true ones: ``true_atoms``, positions (n, 3) Å in the truth's frame, and, to score the
    species too, ``true_species`` (n,) classes as the traced ones count them, e.g.
    :func:`species_classes` of the atomic numbers).

    The units of the two volumes may differ (phase per Å against V): FSC and r do not
    depend on scale."""
    from scipy.ndimage import gaussian_filter, shift
    from skimage.registration import phase_cross_correlation

    from .fsc import fsc
    from .scoring import score_atoms

    data = np.real(np.asarray(volume.data)).astype(float)
    centre = truth_centre(truth)
    voxel = float(volume.voxel_size)
    sharp = _truth_on_grid(truth, centre, data.shape, voxel, 0.0)
    smooth_truth = _truth_on_grid(truth, centre, data.shape, voxel, band_sigma)
    smooth = gaussian_filter(data, band_sigma / voxel)
    # plain cross-correlation: the phase-normalised one locks onto noise in these smooth,
    # mostly empty boxes (a 27-voxel offset and r -0.03 for the demo's end-to-end volume)
    offset, _, _ = phase_cross_correlation(smooth_truth, smooth, upsample_factor=20, normalization=None)
    moved = shift(smooth, offset, order=3)
    a, b = moved - moved.mean(), smooth_truth - smooth_truth.mean()
    r = float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))
    curve = fsc(shift(data, offset, order=3), sharp, voxel, device="cpu")
    from .fsc import first_crossing

    curve.crossings = {"0.5": first_crossing(curve.frequency, curve.fsc, 0.5)}
    curve.thresholds = {"0.5": np.full_like(np.asarray(curve.frequency, dtype=float), 0.5)}
    curve.provenance = {"against": "simulator truth", "offset_voxels": [float(v) for v in offset]}
    result = TruthComparison(fsc=curve, pearson_r=r, offset_voxels=np.asarray(offset), band_sigma=band_sigma)
    if atoms is not None and true_atoms is not None:
        positions = truth_atoms_in_volume_frame(true_atoms, truth, volume, offset)
        if true_species is not None:
            result.atoms = score_atoms(atoms, (positions, np.asarray(true_species)), radius=score_radius)
        else:
            result.atoms = score_atoms(atoms.positions, positions, radius=score_radius)
    return result
