"""The napari-ptychotomo pipeline step by step on a simulated tilt series.

Run ``python examples/step_by_step.py`` (add ``--show`` to open the results in napari,
``--fast`` for a quick pass with fewer iterations). Every step is a plain function on plain
data objects; the results are saved in one project file that ``napari`` opens directly.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import napari_ptychotomo as pt
from napari_ptychotomo import simulate


def main(output: Path, fast: bool, show: bool) -> pt.Project:
    scale = 0.34 if fast else 1.0

    def its(n):
        return max(2, int(n * scale))

    # 1. data: a ~1.6 nm Pt particle, 5 tilts over ±60°, 16×16 scans, with ground truth
    series = simulate.default_sample(seed=0)
    print(f"{len(series)} tilts, {series.scans[0].num_positions} patterns each")

    # 2. multislice ptychography per tilt, starting from the bright-field defocus estimate
    msp = {}
    for k, scan in enumerate(series.scans):
        params = pt.MSPParams.from_calibration(scan.calibration, iterations=its(12), num_slices=4, defocus="estimate")
        msp[k] = pt.reconstruct_msp(scan, params, seed=k)
        print(f"tilt {k}: mistilt {np.round(msp[k].tilt_mrad, 2)} mrad, slice {msp[k].slice_thickness:.1f} Å")

    # 3. phase projections, denoised
    projections, _angles, pixel_size = pt.projections_from_msp(msp)
    denoised = pt.denoise_projections(projections, method="tv")

    # 4. joint rigid alignment, then full-resolution linear tomography
    alignment, _ = pt.align_tilt_series(denoised, series.angles_deg, pixel_size)
    linear = pt.reconstruct_linear(denoised, alignment, pixel_size, n_iter=its(60))

    # 5. end-to-end ptycho-tomography from all diffraction data, two half-data volumes
    joint = pt.reconstruct_joint(
        series,
        init=[[msp[k] for k in sorted(msp)], alignment],
        params=pt.JointParams(iterations=its(3), half_data=True),
    )
    volume = joint.volume

    # 6. resolution from the half-data volumes, atoms traced in the end-to-end volume
    resolution = pt.fsc(*volume.halves, volume.voxel_size)
    atoms = pt.trace_atoms(volume)
    print("FSC crossings (Å):", {k: round(v, 2) for k, v in resolution.crossings.items()})
    print(f"{len(atoms)} atoms traced")

    project = pt.Project(
        series=series,
        msp=msp,
        alignment=alignment,
        volumes={"linear": linear, "end-to-end": volume},
        resolution={"end-to-end": resolution},
        atoms={"end-to-end": atoms},
    )
    output.mkdir(parents=True, exist_ok=True)
    path = pt.save(project, output / "example.ptycho.h5")
    print(f"saved {path}")
    if show:
        import napari

        viewer = napari.Viewer()
        pt.show(project, viewer=viewer)
        napari.run()
    return project


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("example-output"))
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--show", action="store_true")
    args = parser.parse_args()
    main(args.output, args.fast, args.show)
