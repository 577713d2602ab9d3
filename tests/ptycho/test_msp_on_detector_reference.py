"""MSP on data it did not simulate: abTEM's Au [001] as a 64² detector records it.

abTEM simulated on a 384² grid and cropped the far field to the detector, so 18–19 % of
the counts lie beyond 2/3 of the detector grid's Nyquist (tests/data/README.md). A model
band-limited at 2/3 of the detector's own grid predicts zero there; ours has no band limit
on that grid (or, with ``oversampling`` ≥ 2, a grid finer than the detector's whose 2/3
antialias lies beyond its edge).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest

from napari_ptychotomo.data import Calibration, ScanData
from napari_ptychotomo.physics import fresnel_propagator
from napari_ptychotomo.ptycho import msp as msp_module
from napari_ptychotomo.ptycho import reconstruct_msp
from napari_ptychotomo.ptycho.params import MSPParams

ITERATIONS = 60


def _scan(reference, group: str) -> ScanData:
    a = reference.attrs
    calibration = Calibration(
        energy_eV=float(a["energy_eV"]), semiangle_mrad=float(a["semiangle_mrad"]),
        detector_sampling_mrad=float(a["detector_sampling_mrad"]), defocus=float(a["defocus_A"]),
        scan_step=float(a["scan_step_A"]),
    )
    return ScanData(intensities=reference[group]["intensities"][...], calibration=calibration,
                    positions=reference["positions_yx_A"][...], scan_shape=(8, 8))


def _params(scan: ScanData, **overrides) -> MSPParams:
    """10 slices over the known 81.6 Å, probe from the calibration (defocus 100 Å),
    positions fixed, a fixed number of iterations so the two models are compared alike."""
    options = dict(num_slices=10, iterations=ITERATIONS, defocus=None, batch_size=16,
                   learn_thickness=False, convergence_tolerance=0.0)
    options.update(overrides)
    return MSPParams.from_calibration(scan.calibration, thickness=81.6, **options)


@pytest.fixture(scope="module")
def tilted(abtem_detector_reference):
    return _scan(abtem_detector_reference, "mistilt_p2_m1")


@pytest.mark.slow
def test_models_that_predict_the_whole_detector_fit_abtem_data_3x_better(tilted, monkeypatch):
    """Data error E = Σ(√I − √I_meas)² / ΣI_meas after 60 iterations (10 slices, probe
    learned, (2, −1) mrad group). Measured: 2/3 cut on the detector grid (the former model)
    0.23; detector grid without a band limit (default) 0.088 (2.6×; 0.075–0.079 at 100
    iterations, 2.9×); oversampling 2 0.060 (3.8×; 0.043 at 120 iterations). ~2 min on
    one core."""
    errors = {}
    for oversampling in (1, 2):
        result = reconstruct_msp(tilted, _params(tilted, oversampling=oversampling), device="cpu")
        errors[oversampling] = result.loss_history[-1]
    monkeypatch.setattr(msp_module, "fresnel_propagator",
                        functools.partial(_band_limited, fresnel_propagator))
    cut = reconstruct_msp(tilted, _params(tilted), device="cpu").loss_history[-1]
    assert cut > 3.0 * errors[2], (errors, cut)
    assert cut > 2.4 * errors[1], (errors, cut)


def _band_limited(propagator, *args, band_limit=True, **kwargs):
    """The former model: the propagator cut at 2/3 of the detector grid's Nyquist."""
    return propagator(*args, band_limit=True, **kwargs)


@pytest.mark.slow
@pytest.mark.xfail(strict=False, reason=(
    "not reached: the learned tilt of the (2, −1) mrad group ends at (0.2, −1.3) mrad with the "
    "defaults (10 slices, 300 iterations, E 0.056), (1.1, −1.4) after 100 iterations and "
    "(1.6, −1.2) started from the truth; 20 slices (0.6, −1.3); oversampling 2 (2.4, −2.9): "
    "the effective object of a coarse model (E ≈ 0.05–0.07, not ≈ 0) absorbs the tilt, a "
    "0.16 Å shift over 81.6 Å, on this 3.6 Å scan"))
def test_learned_tilt_of_abtem_au_within_0p3_mrad(abtem_detector_reference):
    scan = _scan(abtem_detector_reference, "mistilt_p2_m1")
    result = reconstruct_msp(scan, _params(scan), device="cpu")
    assert np.all(np.abs(result.tilt_mrad - [2.0, -1.0]) < 0.3), result.tilt_mrad
