"""Physics core: optics constants, probe and aberrations, propagators, multislice.

Differentiable torch, float32 / complex64, on any device. Each formula lives in one
module and is shared by the simulator and every reconstruction.
"""

from ..optics import interaction_constant, mrad_to_inverse_angstrom, wavelength
from .grids import band_limit_mask, spatial_frequencies
from .multislice import (
    crop_patches,
    exit_wave,
    far_field,
    forward_intensities,
    propagate,
    shift_waves,
    transmission,
)
from .probe import aberration_phase, ctf, make_probe, orthogonalize_modes, probe_modes, soft_aperture
from .propagator import fresnel_propagator
from .rotation import rotation_matrix, rotation_matrix_deg

__all__ = [
    "wavelength",
    "interaction_constant",
    "mrad_to_inverse_angstrom",
    "spatial_frequencies",
    "band_limit_mask",
    "aberration_phase",
    "ctf",
    "soft_aperture",
    "make_probe",
    "probe_modes",
    "orthogonalize_modes",
    "fresnel_propagator",
    "rotation_matrix",
    "rotation_matrix_deg",
    "transmission",
    "crop_patches",
    "shift_waves",
    "propagate",
    "exit_wave",
    "far_field",
    "forward_intensities",
]
