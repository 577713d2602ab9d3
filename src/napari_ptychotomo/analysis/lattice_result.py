"""The result of :func:`~napari_ptychotomo.analysis.register_lattice`: the fitted
orientation and translation, the expected sites, which of them hold an atom, and the
displacements per axis (the figures of Romanov et al. 2025: found / missing sites, mean
displacement along x, y, z)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data import Atoms

__all__ = ["LatticeRegistration", "euler_from_rotation"]


@dataclass
class LatticeRegistration:
    """A crystal lattice registered to a volume.

    ``rotation`` (3, 3) maps crystal-frame (x, y, z) onto the volume frame (R of docs/conventions.md,
    Euler angles ``euler_deg`` (φ, θ, ψ)); a site at crystal-frame position p (Å, x y z)
    sits at R·p + t, with ``translation`` t (3,) in Å as (z, y, x) in the volume frame:
    the lattice origin nearest the volume centre. ``sites`` (n, 3) Å (z, y, x) are the
    expected sites inside the crystal and the volume, ``site_basis`` (n,) their basis
    index, ``found`` (n,) bool, ``peaks`` (n, 3) Å the local maximum of each found site
    (NaN where missing), ``heights`` (n,) the blurred volume at the peak.
    """

    rotation: np.ndarray
    euler_deg: np.ndarray
    translation: np.ndarray
    sites: np.ndarray
    site_basis: np.ndarray
    found: np.ndarray
    peaks: np.ndarray
    heights: np.ndarray
    species: list | None = None
    n_bragg: int = 0
    n_outside: int = 0
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def displacement(self) -> np.ndarray:
        """(n, 3) peak − site in Å as (z, y, x); NaN for missing sites."""
        return self.peaks - self.sites

    @property
    def n_found(self) -> int:
        return int(self.found.sum())

    @property
    def n_missing(self) -> int:
        return int((~self.found).sum())

    @property
    def missing_sites(self) -> np.ndarray:
        """(m, 3) Å (z, y, x) of the sites without an atom."""
        return self.sites[~self.found]

    def summary(self) -> dict[str, Any]:
        """Counts, orientation and displacement statistics per axis (z, y, x) in Å."""
        d = self.displacement[self.found]
        nan3 = np.full(3, np.nan)
        return {
            "n_sites": len(self.sites),
            "n_found": self.n_found,
            "n_missing": self.n_missing,
            "found_fraction": self.n_found / max(len(self.sites), 1),
            "euler_deg": self.euler_deg.tolist(),
            "translation_A": self.translation.tolist(),
            "mean_abs_displacement_zyx": (np.abs(d).mean(0) if len(d) else nan3).tolist(),
            "rms_displacement_zyx": (np.sqrt((d**2).mean(0)) if len(d) else nan3).tolist(),
            "mean_displacement_3d": float(np.linalg.norm(d, axis=1).mean()) if len(d) else float("nan"),
            "n_bragg": self.n_bragg,
        }

    def found_atoms(self) -> Atoms:
        """The found peaks as :class:`Atoms` (species = basis index of their site)."""
        return Atoms(
            positions=self.peaks[self.found],
            species=self.site_basis[self.found],
            names=list(self.species) if self.species is not None else None,
        ).validate()


def euler_from_rotation(r: np.ndarray) -> np.ndarray:
    """(φ, θ, ψ) in degrees of R = R_z(ψ) R_y(θ) R_x(φ) (docs/conventions.md)."""
    theta = -np.arcsin(np.clip(r[2, 0], -1, 1))
    return np.rad2deg([np.arctan2(r[2, 1], r[2, 2]), theta, np.arctan2(r[1, 0], r[0, 0])])
