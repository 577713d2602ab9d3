"""Make abtem_detector_converged.h5: abTEM's answer for the detector reference, converged.

abtem_detector_reference.h5 was simulated on 384² pixels of 0.064 Å, where 82 Å of Au at
200 keV scatters 3.5 % of the beam past the 131 mrad antialias; at finer grids abTEM's own
patterns move by 0.025 (mean Σ|Î/ΣÎ − I/ΣI|). This script runs the same specimen, probe and
detector crop at GPTS pixels (0.016 Å, antialias at 525 mrad), where abTEM has converged,
for the four corner positions of the 8×8 raster (positions [::7, ::7]) of both mistilts,
and records how far the coarser grids lie from it.

Run with abTEM 1.0.x, ase and h5py installed:  python make_abtem_converged_corners.py
(about a minute on two cores).
"""

import os
import time

import abtem
import h5py
import numpy as np
from ase.build import bulk

HERE = os.path.dirname(os.path.abspath(__file__))
REFERENCE = os.path.join(HERE, "abtem_detector_reference.h5")
OUT = os.path.join(HERE, "abtem_detector_converged.h5")
abtem.config.set({"dask.lazy": False})

ENERGY = 200e3
A_AU = 4.08
CELLS = (6, 6, 20)
SLICE = A_AU / 2
NDET = 64
GPTS = 1536
COARSER = (384, 768, 1152)
MISTILTS = [(0.0, 0.0), (2.0, -1.0)]


def patterns(atoms, positions_yx, gpts, tilt):
    potential = abtem.Potential(
        atoms, gpts=gpts, slice_thickness=SLICE, projection="infinite", parametrization="lobato"
    )
    probe = abtem.Probe(energy=ENERGY, semiangle_cutoff=20.0, defocus=100.0, tilt=(-tilt[0], -tilt[1]))
    probe.grid.match(potential)
    exit_waves = probe.multislice(
        potential, scan=positions_yx[:, ::-1].copy(), detectors=abtem.PixelatedDetector(max_angle=None)
    )
    full = np.asarray(exit_waves.array)
    c = full.shape[-1] // 2
    cropped = full[..., c - NDET // 2 : c + NDET // 2, c - NDET // 2 : c + NDET // 2]
    return np.swapaxes(cropped, -1, -2).astype(np.float32), float(full.sum(axis=(-2, -1)).mean())


def distance(a, b):
    a, b = a.reshape(-1, NDET, NDET), b.reshape(-1, NDET, NDET)
    return float(np.abs(a / a.sum((1, 2), keepdims=True) - b / b.sum((1, 2), keepdims=True)).sum((1, 2)).mean())


def main():
    t0 = time.time()
    atoms = bulk("Au", "fcc", a=A_AU, cubic=True) * CELLS
    atoms.positions[:, 2] += SLICE / 2
    with h5py.File(REFERENCE, "r") as ref:
        positions = ref["positions_yx_A"][()].reshape(8, 8, 2)[::7, ::7].reshape(-1, 2)
    with h5py.File(OUT + ".tmp", "w") as f:
        f.attrs.update(
            dict(
                generator="make_abtem_converged_corners.py",
                abtem_version=abtem.__version__,
                simulation_gpts=GPTS,
                simulation_pixel_A=CELLS[0] * A_AU / GPTS,
                note="as abtem_detector_reference.h5 (same specimen, probe, detector crop), at the "
                "positions [::7, ::7] of its 8x8 raster",
            )
        )
        f.create_dataset("positions_yx_A", data=positions)
        for tilt in MISTILTS:
            converged, kept = patterns(atoms, positions, GPTS, tilt)
            name = f"mistilt_{tilt[0]:+.0f}_{tilt[1]:+.0f}".replace("+", "p").replace("-", "m")
            g = f.create_group(name)
            g.attrs["mistilt_mrad"] = np.array(tilt)
            g.attrs["fraction_on_full_simulation_grid"] = kept
            for gpts in COARSER:
                coarse, _ = patterns(atoms, positions, gpts, tilt)
                g.attrs[f"distance_from_gpts_{gpts}"] = distance(coarse, converged)
            g.create_dataset("intensities", data=converged.reshape(2, 2, NDET, NDET), compression="gzip")
            print(name, dict(g.attrs), f"{time.time() - t0:.0f} s")
    os.replace(OUT + ".tmp", OUT)
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
