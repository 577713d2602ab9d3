"""Resolution (FSC, directional FSC, per-axis power spectra) and atom tracing
(tracing, species, lattice registration, scoring) of reconstructed volumes."""

from .directional import directional_fsc
from .fsc import fsc, resolution_of, threshold_curve
from .power_spectra import axis_power_spectra

__all__ = [
    "fsc",
    "resolution_of",
    "threshold_curve",
    "directional_fsc",
    "axis_power_spectra",
]
