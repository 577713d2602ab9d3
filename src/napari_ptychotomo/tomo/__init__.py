"""Sequential ptychographic tomography (Romanov et al. 2025; You et al. 2025, Algorithm 2).

- :mod:`.rotation`, :mod:`.projector`: the one differentiable rotation and projection
  operator (Euler angles of docs/conventions.md), shared with the end-to-end step.
- :mod:`.denoise`: BM3D / NLM / TV denoising and the Fourier-sparsity constraint.
- :mod:`.tilt_axis`, :mod:`.align`: joint rigid alignment and linear tomography.
- :mod:`.reconstruct`: full-resolution linear tomography; :mod:`.masks`: support masks.
- :mod:`.from_msp`: phase projections from MSP results. The whole chain MSP → projections
  → denoise → align → linear tomography in one call is a workflow:
  :func:`napari_ptychotomo.pipeline.sequential.sequential_tomography`.
"""

from .align import align_tilt_series, align_tilt_series_steps
from .align_params import AlignStage
from .denoise import denoise_projections, estimate_noise, fourier_sparsity_filter
from .from_msp import projections_from_msp
from .masks import make_support_mask, project_mask
from .projector import project
from .reconstruct import reconstruct_linear, reconstruct_linear_steps
from .rotation import bin_along_beam, rotate_volume, rotation_matrix
from .tilt_axis import estimate_tilt_axis

__all__ = [
    "AlignStage",
    "align_tilt_series",
    "align_tilt_series_steps",
    "bin_along_beam",
    "denoise_projections",
    "estimate_noise",
    "estimate_tilt_axis",
    "fourier_sparsity_filter",
    "make_support_mask",
    "project",
    "project_mask",
    "projections_from_msp",
    "reconstruct_linear",
    "reconstruct_linear_steps",
    "rotate_volume",
    "rotation_matrix",
]
