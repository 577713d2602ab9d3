"""Multislice ptychography (MSP) of one 4D-STEM scan.

Adaptive propagator (specimen tilt and slice thickness learned, Sha et al. 2022), optional
per-position tilt map, mixed-state probe, position correction, and a bright-field
(tilt-corrected parallax) defocus estimate for the start (You et al. 2025).
"""

from .msp import msp_steps, reconstruct_msp
from .params import LearningRate, MSPParams
from .series import msp_series_steps

__all__ = ["MSPParams", "LearningRate", "msp_steps", "msp_series_steps", "reconstruct_msp", "estimate_defocus"]


def __getattr__(name):
    if name == "estimate_defocus":
        from .bright_field import estimate_defocus

        return estimate_defocus
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
