"""Simulated specimens, potentials and 4D-STEM / HRTEM tilt series with ground truth.

The simulator shares the physics core (:mod:`napari_ptychotomo.physics`) with the
reconstructions; potentials come from published atomic parameterisations (Lobato & Van
Dyck 2014; Kirkland 2010).
"""

from __future__ import annotations

from .elements import atomic_number, atomic_numbers, chemical_symbol, scattering_factor
from .hrtem import default_hrtem_sample, simulate_hrtem_series
from .potentials import (
    atom_potential,
    atom_projected_potential,
    projected_potential_slices,
)
from .specimens import (
    Specimen,
    amorphous_blob,
    core_shell_particle,
    crystal,
    fcc_nanoparticle,
    fcc_slab,
    silicon_slab,
    srtio3_slab,
    two_grain_specimen,
)
from .stem import simulate_scan
from .stem_series import default_sample, simulate_tilt_series
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
    "Specimen",
    "crystal",
    "srtio3_slab",
    "fcc_slab",
    "silicon_slab",
    "fcc_nanoparticle",
    "core_shell_particle",
    "amorphous_blob",
    "two_grain_specimen",
    "simulate_scan",
    "simulate_tilt_series",
    "simulate_hrtem_series",
    "default_sample",
    "default_hrtem_sample",
]
