"""Resolution (FSC, directional FSC, per-axis power spectra) and atom tracing
(tracing, species, lattice registration, scoring) of reconstructed volumes."""

from .atom_tracing import trace_atoms, trace_atoms_steps
from .directional import directional_fsc
from .fsc import fsc, threshold_curve
from .lattice_registration import LatticeRegistration, register_lattice
from .power_spectra import axis_power_spectra
from .resolution import resolution_of
from .scoring import match_atoms, score_atoms
from .species import classify_species

__all__ = [
    "fsc",
    "resolution_of",
    "threshold_curve",
    "directional_fsc",
    "axis_power_spectra",
    "trace_atoms",
    "trace_atoms_steps",
    "classify_species",
    "score_atoms",
    "match_atoms",
    "register_lattice",
    "LatticeRegistration",
]
