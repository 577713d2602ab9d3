"""Simulated specimens, potentials and 4D-STEM / HRTEM tilt series with ground truth.

The simulator shares the physics core (:mod:`napari_ptychotomo.physics`) with the
reconstructions; potentials come from published atomic parameterisations (Lobato & Van
Dyck 2014; Kirkland 2010).
"""

from __future__ import annotations

from .elements import atomic_number, atomic_numbers, chemical_symbol, scattering_factor
from .potentials import (
    atom_potential,
    atom_projected_potential,
    projected_potential_slices,
)
from .volume import potential_volume

__all__ = [
    "atomic_number",
    "atomic_numbers",
    "chemical_symbol",
    "scattering_factor",
    "atom_potential",
    "atom_projected_potential",
    "projected_potential_slices",
    "potential_volume",
]
