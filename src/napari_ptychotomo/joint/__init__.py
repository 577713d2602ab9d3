"""End-to-end joint ptycho-tomography from 4D-STEM tilt series (You et al. 2025,
Algorithm 3) and plane-wave (HRTEM) tilt × defocus tomography (Ren et al. 2018), sharing
one volume, rotation and multislice model."""

from .end_to_end import joint_steps, reconstruct_joint
from .params import JointParams, LearningRate
from .plane_wave import plane_wave_steps, reconstruct_plane_wave
from .result import JointResult

__all__ = [
    "JointParams",
    "LearningRate",
    "JointResult",
    "joint_steps",
    "reconstruct_joint",
    "plane_wave_steps",
    "reconstruct_plane_wave",
]
