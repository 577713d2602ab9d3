"""Sequential ptychographic tomography: rotation and projection, denoising, rigid
alignment with linear tomography (You et al. 2025, Algorithm 2; Romanov et al. 2025),
support masks, and the bridge from MSP results."""

from .projector import project
from .rotation import bin_along_beam, rotate_volume, rotation_matrix

__all__ = ["project", "rotate_volume", "rotation_matrix", "bin_along_beam"]

from .denoise import denoise_projections, estimate_noise, fourier_sparsity_filter

__all__ += ["denoise_projections", "estimate_noise", "fourier_sparsity_filter"]

from .align import AlignStage, align_tilt_series, align_tilt_series_steps
from .reconstruct import reconstruct_linear, reconstruct_linear_steps

__all__ += [
    "AlignStage", "align_tilt_series", "align_tilt_series_steps", "reconstruct_linear",
    "reconstruct_linear_steps",
]
