"""The end-to-end step's shift refinement, started from the alignment's output on
simulator data: 4D-STEM of a Pt particle over a few tilts with random shifts (the
package simulator: tabulated potentials, multislice), MSP per tilt, the alignment of the
phase projections, then the end-to-end step learning the shifts from there.

Shift errors are compared with the true shifts after removing what a translation of the
volume explains (a constant along the tilt axis, a·cos θ + b·sin θ across it).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_ptychotomo import MSPParams
from napari_ptychotomo.joint import JointParams, reconstruct_joint
from napari_ptychotomo.joint.params import Rate
from napari_ptychotomo.ptycho import LearningRate
from napari_ptychotomo.simulate import fcc_nanoparticle, simulate_tilt_series
from napari_ptychotomo.tomo import sequential_tomography
from napari_ptychotomo.tomo.align import remove_gauge

ANGLES = np.linspace(-45, 45, 5)


def shift_error_rms(shifts, truth, angles_deg):
    """RMS (Å) of shift errors (T, 2) less the part a volume translation explains."""
    error = torch.as_tensor(np.asarray(shifts, float) - np.asarray(truth, float))
    error = remove_gauge(error, torch.deg2rad(torch.as_tensor(angles_deg, dtype=torch.float64)))
    return float(error.pow(2).mean().sqrt())


@pytest.fixture(scope="module")
def aligned_case():
    torch.set_num_threads(1)
    particle = fcc_nanoparticle("Pt", size=8.0, shape="cuboctahedron", vacuum=2.0)
    series = simulate_tilt_series(
        particle, ANGLES, shift_std=0.5, seed=3, scan_shape=(8, 8), scan_step=1.0, defocus=80.0,
        detector_shape=(32, 32), semiangle_mrad=15.0, num_slices=2, dose=None, workers=1)
    scan = series.scans[0]
    msp = MSPParams.from_calibration(scan.calibration, thickness=scan.truth["thickness"], num_slices=2,
                                     iterations=8, defocus=None, learn_thickness=False, learn_tilt=False,
                                     object_step_decay=1.0)
    msp.rates["object"] = LearningRate(50.0, 0)  # Pt columns reach ~1000 V·Å
    alignment, volume, results = sequential_tomography(series, msp_params=msp, denoise="tv", device="cpu")
    return series, alignment, volume, results
