"""The Au [001] reference of tests/data (abTEM, a 64² detector) as the MSP tests read it:
the scan of one group and MSP's settings for it."""

from __future__ import annotations

from napari_ptychotomo.data import Calibration, ScanData
from napari_ptychotomo.ptycho.params import MSPParams

ITERATIONS = 60
#: the converged data error of the former model (cut at 2/3 of the detector grid's Nyquist),
#: measured by test_msp_on_detector_reference.py::test_models_that_predict_the_whole_detector_fit_abtem_data_3x_better
FORMER_MODEL_ERROR = {"mistilt_p0_p0": 0.2045, "mistilt_p2_m1": 0.2024}


def au_scan(reference, group: str) -> ScanData:
    a = reference.attrs
    calibration = Calibration(
        energy_eV=float(a["energy_eV"]),
        semiangle_mrad=float(a["semiangle_mrad"]),
        detector_sampling_mrad=float(a["detector_sampling_mrad"]),
        defocus=float(a["defocus_A"]),
        scan_step=float(a["scan_step_A"]),
    )
    return ScanData(
        intensities=reference[group]["intensities"][...],
        calibration=calibration,
        positions=reference["positions_yx_A"][...],
        scan_shape=(8, 8),
    )


def au_params(scan: ScanData, **overrides) -> MSPParams:
    """10 slices over the known 81.6 Å, probe from the calibration (defocus 100 Å),
    positions fixed, a fixed number of iterations so the two models are compared alike."""
    options = dict(
        num_slices=10,
        iterations=ITERATIONS,
        defocus=None,
        batch_size=16,
        learn_thickness=False,
        convergence_tolerance=0.0,
    )
    options.update(overrides)
    return MSPParams.from_calibration(scan.calibration, thickness=81.6, **options)
