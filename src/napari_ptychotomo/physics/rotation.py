"""The one rotation convention of the package (docs/conventions.md, "Rotations").

``euler = (φ, θ, ψ)`` and R = R_z(ψ) · R_y(θ) · R_x(φ) acting on column vectors ``(x, y, z)``;
each factor is right-handed. The simulator places atoms, the projector and the end-to-end
step rotate volumes, and lattice registration reads orientations, all with this matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = ["rotation_matrix", "rotation_matrix_deg"]


def rotation_matrix(euler_rad: torch.Tensor) -> torch.Tensor:
    """R = R_z(ψ) R_y(θ) R_x(φ) for Euler angles ``(..., 3)`` = (φ, θ, ψ) in radians.

    Returns ``(..., 3, 3)`` acting on ``(x, y, z)`` column vectors; differentiable.
    """
    euler_rad = torch.as_tensor(euler_rad)
    if euler_rad.shape[-1:] != (3,):
        raise ValueError(f"euler_rad has shape {tuple(euler_rad.shape)}; expected (..., 3) as (φ, θ, ψ) in rad")
    phi, theta, psi = euler_rad.unbind(-1)
    one, zero = torch.ones_like(phi), torch.zeros_like(phi)
    c, s = torch.cos, torch.sin

    def mat(rows):
        return torch.stack([torch.stack(r, -1) for r in rows], -2)

    rx = mat([[one, zero, zero], [zero, c(phi), -s(phi)], [zero, s(phi), c(phi)]])
    ry = mat([[c(theta), zero, s(theta)], [zero, one, zero], [-s(theta), zero, c(theta)]])
    rz = mat([[c(psi), -s(psi), zero], [s(psi), c(psi), zero], [zero, zero, one]])
    return rz @ ry @ rx


def rotation_matrix_deg(euler_deg: Any) -> np.ndarray:
    """:func:`rotation_matrix` of one set of Euler angles (φ, θ, ψ) in degrees, as a
    float64 numpy ``(3, 3)``."""
    euler = np.deg2rad(np.asarray(euler_deg, dtype=np.float64).reshape(3))
    return rotation_matrix(torch.from_numpy(euler)).numpy()
