"""MSP's learned tilt on abTEM's Au [001] (tests/data), from (0, 0): free slices cannot give
it, tied slices (the crystal prior ``MSPParams.slice_period``) do."""

from __future__ import annotations

import numpy as np
import pytest
from au_reference import FORMER_MODEL_ERROR, au_params, au_scan

from napari_ptychotomo.ptycho import reconstruct_msp
from napari_ptychotomo.ptycho.params import MSPParams


@pytest.mark.slow
@pytest.mark.parametrize(("group", "truth"), [("mistilt_p0_p0", (0.0, 0.0)), ("mistilt_p2_m1", (2.0, -1.0))])
def test_learned_tilt_of_abtem_au_within_0p3_mrad_with_tied_slices(abtem_detector_reference, group, truth):
    """Free slices cannot give the tilt: a free multislice object carries any tilt as a
    lateral drift of its slices (the tilted propagator is the untilted one times a shift),
    so the data fix only tilt + shear. Converged from (0, 0) with these settings and free
    slices the (2, −1) group gave (0.28, −1.17) mrad at E 0.038; 40 slices, abTEM's
    converged patterns, 256 positions, a fixed probe or the slices tied for the first 200
    iterations did no better (sessions 9–12).

    Tied slices (``slice_period=1``: 10 slices of two unit cells each) cannot shear. With
    the tilt learned from (0, 0) until the tied slices converge, then held while the slices
    are released (MSP's rule, at most 1500 iterations). Measured with seeds 0 / 1 / 2:
    (2, −1) group (1.951, −1.140) / (1.786, −1.047) / (1.913, −1.024) mrad, tied stage
    358 / 466 / 625 iterations; untilted (−0.153, −0.189) / (−0.066, −0.096) /
    (−0.102, −0.017). The released slices fit to E 0.021 / 0.022 (seed 0; still falling at
    1500 iterations, so not converged by the rule), 9.5× below the former model's
    converged 0.20 (test_msp_on_detector_reference.py). ~90 s per group on one core."""
    scan = au_scan(abtem_detector_reference, group)
    params = au_params(scan, slice_period=1, iterations=1500, convergence_tolerance=MSPParams.convergence_tolerance)
    result = reconstruct_msp(scan, params, device="cpu")
    stage = result.provenance["tied_stage"]
    assert stage["released"] and stage["iterations"] < 1000, stage
    assert np.all(np.abs(result.tilt_mrad - truth) < 0.3), result.tilt_mrad
    assert result.loss_history[-1] < FORMER_MODEL_ERROR[group] / 3, result.loss_history[-1]
