"""Mixed-state probe and the bright-field defocus estimate.

Scaled to seconds: partial coherence on a 12×12 scan of a 6-plane slab (1 slice, 30
iterations, no noise, Gaussian source of 0.8 Å FWHM made as an incoherent sum of 16
shifted probes); defocus on a 20×20 scan at 0.8 Å of a 2-plane slab, 64×64 detector at
2 mrad/px, 1e5 e/Å².
"""

from __future__ import annotations

import numpy as np
import pytest
from msp_data import make_scan

from napari_ptychotomo import estimate_defocus as top_level_estimate
from napari_ptychotomo.ptycho import MSPParams, estimate_defocus, reconstruct_msp


def test_three_probe_modes_fit_partially_coherent_data_better_than_one():
    # measured final error: 1 mode 1.22e-4, 3 modes 9.0e-5
    scan = make_scan(scan_shape=(12, 12), planes=6, mistilt=(0.0, 0.0), source_fwhm=0.8, dose=None)
    errors = {}
    for modes in (1, 3):
        params = MSPParams.from_calibration(
            scan.calibration,
            thickness=scan.truth["thickness"],
            num_slices=1,
            num_modes=modes,
            iterations=30,
            learn_tilt=False,
            learn_thickness=False,
        )
        result = reconstruct_msp(scan, params, device="cpu")
        errors[modes] = result.loss_history[-1]
        assert result.probe.shape[0] == modes
    assert errors[3] < 0.9 * errors[1]


def test_probe_modes_stay_orthogonal():
    scan = make_scan(scan_shape=(6, 6), planes=2, mistilt=(0.0, 0.0), source_fwhm=0.8, dose=None)
    params = MSPParams.from_calibration(
        scan.calibration,
        thickness=4.0,
        num_slices=1,
        num_modes=3,
        iterations=4,
        learn_tilt=False,
        learn_thickness=False,
    )
    probe = reconstruct_msp(scan, params, device="cpu").probe.reshape(3, -1)
    gram = probe.conj() @ probe.T
    off = np.abs(gram - np.diag(np.diag(gram)))
    assert off.max() < 1e-3 * np.abs(np.diag(gram)).max()


@pytest.mark.parametrize("defocus", [150.0, 300.0])
def test_bright_field_defocus_within_10_percent(defocus):
    # measured: 142.9 Å for 150, 290.2 Å for 300 (96 px detector); 199.1 Å for 200
    scan = make_scan(
        scan_shape=(20, 20),
        step=0.8,
        detector=64,
        mrad_per_px=2.0,
        planes=2,
        defocus=defocus,
        mistilt=(0.0, 0.0),
        seed=1,
    )
    found = estimate_defocus(scan)
    assert abs(found["defocus"] / defocus - 1) < 0.10
    assert found["contrast_gain"] > 1
    # the two half-disc estimates agree (measured spread 4.6 Å at 200 Å)
    assert found["reliable"] and found["spread"] < 0.1 * defocus


def test_estimate_defocus_is_exported_at_top_level():
    assert top_level_estimate is estimate_defocus


def test_estimate_defocus_needs_a_raster():
    scan = make_scan(scan_shape=(4, 4), planes=2, dose=None)
    scan.intensities = scan.intensities.reshape(16, 32, 32)
    scan.scan_shape = None
    with pytest.raises(ValueError, match="raster"):
        estimate_defocus(scan)


def test_patterns_with_the_beam_at_the_corner_are_called_uncentred_not_miscalibrated():
    scan = make_scan(scan_shape=(4, 4), planes=2, dose=None)
    scan.intensities = np.fft.ifftshift(np.asarray(scan.intensities), axes=(-2, -1))
    with pytest.raises(ValueError, match="mean pattern is dark: the patterns must be centred") as info:
        estimate_defocus(scan)
    assert "check semiangle_mrad" not in str(info.value)


def test_reconstruction_can_start_from_the_bright_field_estimate():
    scan = make_scan(
        scan_shape=(20, 20), step=0.8, detector=64, mrad_per_px=2.0, planes=2, defocus=200.0, mistilt=(0.0, 0.0), seed=1
    )
    scan.calibration.defocus = 0.0  # the calibration does not know it
    params = MSPParams.from_calibration(
        scan.calibration,
        thickness=4.0,
        num_slices=1,
        iterations=1,
        defocus="estimate",
        learn_tilt=False,
        learn_thickness=False,
    )
    result = reconstruct_msp(scan, params, device="cpu")
    assert abs(result.provenance["defocus_start"] / 200.0 - 1) < 0.10


def _thin_scan_at(defocus, calibrated):
    scan = make_scan(
        scan_shape=(20, 20),
        step=0.8,
        detector=64,
        mrad_per_px=2.0,
        planes=2,
        defocus=defocus,
        mistilt=(0.0, 0.0),
        seed=1,
    )
    scan.calibration.defocus = calibrated
    return scan


def test_default_start_is_the_bright_field_estimate_for_a_thin_specimen_on_a_raster():
    scan = _thin_scan_at(200.0, 0.0)  # the calibration is wrong
    params = MSPParams.from_calibration(
        scan.calibration, thickness=4.0, num_slices=1, iterations=1, learn_tilt=False, learn_thickness=False
    )
    assert params.defocus == "auto"
    result = reconstruct_msp(scan, params, device="cpu")
    assert result.provenance["defocus_source"] == "bright-field estimate"
    assert abs(result.provenance["defocus_start"] / 200.0 - 1) < 0.10


def test_default_start_is_the_calibration_for_a_thick_specimen_or_no_raster():
    # a 78 Å slab at 40 Å defocus: the parallax refers the focus into the specimen
    # (measured estimate −29 Å), so the calibration's 40 Å is kept
    thick = make_scan(dose=None)
    params = MSPParams.from_calibration(thick.calibration, thickness=78.0, num_slices=4, iterations=1)
    result = reconstruct_msp(thick, params, device="cpu")
    assert (result.provenance["defocus_source"], result.provenance["defocus_start"]) == ("calibration", 40.0)
    scattered = make_scan(scan_shape=(4, 4), planes=2, dose=None)
    scattered.intensities = scattered.intensities.reshape(16, 32, 32)
    scattered.scan_shape = None
    params = MSPParams.from_calibration(scattered.calibration, thickness=4.0, num_slices=1, iterations=1)
    assert reconstruct_msp(scattered, params, device="cpu").provenance["defocus_source"] == "calibration"


def test_bright_field_estimates_two_fold_astigmatism_roughly():
    # stated tolerance: C12 within 15 Å, φ12 within 0.25 rad, defocus within 10 %;
    # measured: C12 66.0 Å, φ12 0.554 rad, defocus 200.3 Å for (60 Å, 0.4 rad, 200 Å);
    # (40 Å, −1.0 rad) gives 22.6 Å, −1.017 rad: the magnitude is the weak part
    scan = make_scan(
        scan_shape=(20, 20),
        step=0.8,
        detector=64,
        mrad_per_px=2.0,
        planes=2,
        defocus=200.0,
        mistilt=(0.0, 0.0),
        seed=1,
        aberrations={"C12": 60.0, "phi12": 0.4},
    )
    found = estimate_defocus(scan, astigmatism=True)
    assert abs(found["C12"] - 60.0) < 15.0 and abs(found["phi12"] - 0.4) < 0.25
    assert abs(found["defocus"] / 200.0 - 1) < 0.10
