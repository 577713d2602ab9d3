"""Arguments of the wrong type or without content are refused by the data objects and the
engines with an error that names the argument and what was expected, never an
AttributeError from deep inside."""

from __future__ import annotations

import numpy as np
import pytest

import napari_ptychotomo as pt
from napari_ptychotomo.joint import reconstruct_plane_wave

CAL = pt.Calibration(300e3, 25.0, 1.0, scan_step=0.4)
PATTERNS = np.ones((4, 4, 16, 16), np.float32)


@pytest.fixture(scope="module")
def scan():
    return pt.ScanData(PATTERNS, CAL)


def test_intensities_given_as_a_nested_list_are_taken_as_an_array_like_positions():
    scan = pt.ScanData(intensities=PATTERNS.tolist(), calibration=CAL).validate()
    assert isinstance(scan.intensities, np.ndarray) and scan.scan_shape == (4, 4)
    images = pt.DefocusSeries(np.ones((2, 8, 8)).tolist(), [0.0, 100.0], 1.0, 300e3).validate()
    assert images.images.shape == (2, 8, 8)


def test_intensities_that_are_not_an_array_are_a_type_error():
    with pytest.raises(TypeError, match=r"intensities is a str; expected an array of \(Ny, Nx, Ky, Kx\)"):
        pt.ScanData("scan.npy", CAL)
    with pytest.raises(ValueError, match=r"intensities is a ragged list"):
        pt.ScanData([np.ones((16, 16)), np.ones((8, 8))], CAL)


@pytest.mark.parametrize("calibration, found", [(None, "None"), ({"energy_eV": 300e3}, "a dict")])
def test_a_calibration_that_is_not_a_calibration_is_a_type_error(calibration, found):
    with pytest.raises(TypeError, match=rf"calibration is {found}; expected Calibration; give Calibration\("):
        pt.ScanData(PATTERNS, calibration)


def test_a_scan_without_positions_says_so_not_that_the_detector_is_small():
    for shape in [(0, 4, 16, 16), (0, 16, 16)]:
        with pytest.raises(ValueError, match=r"the scan has no positions; expected at least one diffraction pattern"):
            pt.ScanData(np.zeros(shape, np.float32), CAL).validate()


def test_msp_refuses_an_array_for_the_scan_and_a_dict_for_the_params(scan):
    with pytest.raises(TypeError, match=r"scan is a ndarray; expected ScanData; wrap the patterns as ScanData\("):
        pt.reconstruct_msp(PATTERNS, pt.MSPParams(iterations=1))
    with pytest.raises(TypeError, match=r"params is a dict; expected MSPParams or None; MSPParams.from_calibration"):
        pt.reconstruct_msp(scan, {"iterations": 2})
    with pytest.raises(TypeError, match=r"params is a JointParams; expected MSPParams or None"):
        pt.reconstruct_msp(scan, pt.JointParams())
    with pytest.raises(TypeError, match=r"scan is a ndarray; expected ScanData"):
        pt.estimate_defocus(PATTERNS)


def test_the_other_engines_refuse_params_and_alignments_of_the_wrong_type(scan):
    series = pt.TiltSeries([scan], [0.0])
    for engine in (pt.reconstruct_joint, reconstruct_plane_wave):
        with pytest.raises(
            TypeError, match=r"params is a dict; expected JointParams or None; JointParams\(\*\*settings\)"
        ):
            engine(series, None, {"iterations": 1})
    with pytest.raises(TypeError, match=r"msp_params is a dict; expected MSPParams or None"):
        pt.sequential_tomography(series, msp_params={"iterations": 1})
    projections = np.ones((3, 8, 8), np.float32)
    with pytest.raises(TypeError, match=r"alignment is a dict; expected Alignment; Alignment.from_angles"):
        pt.reconstruct_linear(projections, {"euler_deg": np.zeros((3, 3))}, 0.5, device="cpu")
    with pytest.raises(TypeError, match=r"initial is a dict; expected Alignment"):
        pt.align_tilt_series(projections, [0.0, 10.0, 20.0], 0.5, initial={"euler_deg": np.zeros((3, 3))}, device="cpu")
