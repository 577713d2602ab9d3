"""A misaligned tilt series of a Pt nanoparticle's projected potential: the alignment's accuracy case.

Built with the package simulator's specimens and projected potentials, independently of the
projector under test: each tilt rotates the atoms (R = R_z(ψ) R_y(θ), DESIGN.md) about the
particle centre, projects all of them into one slice (exact band-limited projected
potential, V·Å), and shifts the result by a random (y, x) offset in Å. The particle centre
lands on pixel (n - 1) / 2, the image of the volume centre in :mod:`napari_ptychotomo.tomo.projector`.
"""

from __future__ import annotations

import numpy as np

from napari_ptychotomo.simulate import fcc_nanoparticle
from napari_ptychotomo.simulate.potentials import projected_potential_slices

#: 11 tilts over ±60°, degrees
ANGLES_DEG = tuple(np.linspace(-60, 60, 11))


def pt_particle(size: float = 22.0):
    """A spherical fcc Pt particle ``size`` Å across (22 Å: 369 atoms)."""
    return fcc_nanoparticle("Pt", size=size, shape="sphere", vacuum=2.0)


def pt_tilt_series(
    n_px: int = 144,
    pixel_size: float = 0.22,
    angles_deg=ANGLES_DEG,
    max_shift: float = 2.0,
    noise: float = 0.1,
    psi_deg: float = 0.0,
    angle_error_deg: float = 0.0,
    size: float = 22.0,
    seed: int = 0,
):
    """Projections (T, n, n) in V·Å, true shifts (T, 2) Å (y, x), true Euler angles (T, 3)°.

    Shifts are uniform in [−max_shift, max_shift] Å per axis; ``angle_error_deg`` adds a
    uniform error in [−e, e] to each true tilt (the nominal tilts are ``angles_deg``);
    Gaussian noise has a standard deviation of ``noise`` × the stack maximum.
    """
    rng = np.random.default_rng(seed)
    particle = pt_particle(size)
    angles = np.asarray(angles_deg, dtype=np.float64)
    euler = np.zeros((len(angles), 3))
    euler[:, 1] = angles + rng.uniform(-angle_error_deg, angle_error_deg, len(angles))
    euler[:, 2] = psi_deg
    shifts = rng.uniform(-max_shift, max_shift, size=(len(angles), 2))
    centre_px = (n_px - 1) / 2 * pixel_size
    out = np.empty((len(angles), n_px, n_px), dtype=np.float64)
    for k in range(len(angles)):
        turned = particle.rotate(euler[k])
        pos = turned.positions - particle.centre
        pos[:, 0] += particle.cell.max()  # one slab holding every atom
        pos[:, 1:] += centre_px + shifts[k]
        out[k] = projected_potential_slices(pos, turned.numbers, (n_px, n_px), pixel_size, 2 * particle.cell.max(), 1)[
            0
        ]
    out += noise * out.max() * rng.normal(size=out.shape)
    return out.astype(np.float32), shifts, euler
