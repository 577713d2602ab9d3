"""Make abtem_srtio3_reference.h5: a thick SrTiO3 crystal as a detector records it, by abTEM.

The forward-model issue began with abTEM SrTiO3 data on which MSP found the thickness 14 %
short. This is such a case, made independently of our simulator: SrTiO3 [001], periodic
4 x 4 x 30 cells (15.62 Å wide = the detector's real-space window, 117.15 Å thick), one
atomic plane in the middle of each slice of a/2; 300 keV, 25 mrad, defocus 50 Å
(underfocus), specimen mistilt (4, 0) mrad; a 12 x 12 raster of 0.4 Å steps from (1, 1) Å.
abTEM simulates on 768² pixels of 0.020 Å (antialias at 323 mrad; at 512² the patterns
differ by 6.5e-4 in mean Σ|Î/ΣÎ − I/ΣI|, so they have converged) and the far field is
cropped to a 64 x 64 detector of 1.2604 mrad per pixel. Noise-free patterns as a fraction
of the incident beam.

Run with abTEM 1.0.x, ase and h5py installed:  python make_abtem_srtio3_reference.py
(about a minute on two cores).
"""

import os
import time

import abtem
import h5py
import numpy as np
from abtem.core.energy import energy2wavelength
from ase import Atoms

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "abtem_srtio3_reference.h5")
abtem.config.set({"dask.lazy": False})

ENERGY = 300e3
A = 3.905
CELLS = (4, 4, 30)
GPTS = 768
NDET = 64
NSCAN = 12
STEP = 0.4
DEFOCUS = 50.0
MISTILT = (4.0, 0.0)  # specimen (column) tilt, mrad; abTEM Probe(tilt = -mistilt)


def main():
    t0 = time.time()
    lam = energy2wavelength(ENERGY)
    basis = [
        ("Sr", (0, 0, 0)),
        ("Ti", (0.5, 0.5, 0.5)),
        ("O", (0.5, 0.5, 0)),
        ("O", (0.5, 0, 0.5)),
        ("O", (0, 0.5, 0.5)),
    ]
    unit = Atoms([s for s, _ in basis], scaled_positions=[p for _, p in basis], cell=[A, A, A], pbc=True)
    atoms = unit * CELLS
    atoms.positions[:, 2] += A / 4  # each plane in the middle of its slice
    potential = abtem.Potential(
        atoms, gpts=GPTS, slice_thickness=A / 2, projection="infinite", parametrization="lobato"
    )
    extent = CELLS[0] * A
    start = np.array([1.0, 1.0])
    scan = abtem.GridScan(start=tuple(start), end=tuple(start + NSCAN * STEP), gpts=(NSCAN, NSCAN), endpoint=False)
    positions = np.transpose(scan.get_positions(), (1, 0, 2))[..., ::-1].reshape(-1, 2)
    probe = abtem.Probe(energy=ENERGY, semiangle_cutoff=25.0, defocus=DEFOCUS, tilt=(-MISTILT[0], -MISTILT[1]))
    probe.grid.match(potential)
    patterns = np.asarray(
        probe.multislice(potential, scan=scan, detectors=abtem.PixelatedDetector(max_angle=None)).array
    )
    kept = float(patterns.sum(axis=(-2, -1)).mean())
    c = patterns.shape[-1] // 2
    patterns = patterns[..., c - NDET // 2 : c + NDET // 2, c - NDET // 2 : c + NDET // 2]
    patterns = np.transpose(patterns, (1, 0, 3, 2)).astype(np.float32)
    with h5py.File(OUT + ".tmp", "w") as f:
        f.attrs.update(
            dict(
                generator="make_abtem_srtio3_reference.py",
                abtem_version=abtem.__version__,
                specimen="SrTiO3 [001], a = 3.905 Å, periodic 4 x 4 x 30 cells, planes at slice centres",
                energy_eV=ENERGY,
                wavelength_A=lam,
                semiangle_mrad=25.0,
                defocus_A=DEFOCUS,
                thickness_A=CELLS[2] * A,
                slice_thickness_A=A / 2,
                cell_xy_A=extent,
                simulation_gpts=GPTS,
                detector_sampling_mrad=lam / extent * 1e3,
                scan_shape=(NSCAN, NSCAN),
                scan_step_A=STEP,
                mistilt_mrad=np.array(MISTILT),
                fraction_on_full_simulation_grid=kept,
                axes="intensities (scan_y, scan_x, k_y, k_x), centred: pixel N//2 is k = 0; k_x along x",
                intensity_units="fraction of the incident beam per pixel (noise-free)",
            )
        )
        f.create_dataset("positions_yx_A", data=positions.astype(np.float64))
        f.create_dataset("intensities", data=patterns, compression="gzip", shuffle=True)
    os.replace(OUT + ".tmp", OUT)
    print(f"wrote {OUT} ({os.path.getsize(OUT) / 1e6:.1f} MB) in {time.time() - t0:.0f} s; kept {kept:.4f}")


if __name__ == "__main__":
    main()
