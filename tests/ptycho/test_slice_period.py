"""The crystal prior of MSP (``MSPParams.slice_period``): tied slices, then released.

The accuracy it buys on data we did not simulate is tested on abTEM's Au
(test_msp_au_tilt.py); here, what the two stages do.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from msp_data import make_scan

from napari_ptychotomo import engine
from napari_ptychotomo.ptycho import LearningRate, MSPParams, msp_steps
from napari_ptychotomo.ptycho.msp_update import tie_slices


def test_tie_slices_makes_the_stack_repeat_with_the_mean_of_each_class():
    stack = torch.arange(4 * 2 * 3, dtype=torch.float64).reshape(4, 2, 3).to(torch.complex128)
    expected = stack.clone()
    tie_slices(stack, 2)
    for s in range(4):
        np.testing.assert_allclose(stack[s], 0.5 * (expected[s % 2] + expected[s % 2 + 2]))
    assert torch.allclose(stack.sum(0), expected.sum(0))


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (dict(num_slices=6, slice_period=4), "slice_period = 4 does not divide num_slices = 6"),
        (dict(slice_period=-1), "slice_period = -1; expected a whole number of slices"),
        (dict(slice_period=1.5), "slice_period = 1.5"),
        (dict(slice_period=1, tilt_map=True), "slice_period and tilt_map cannot be combined"),
    ],
)
def test_bad_slice_period_is_refused_naming_it(overrides, words):
    with pytest.raises(ValueError, match=words):
        MSPParams(**overrides).validate()


def _run(tolerance: float):
    scan = make_scan(scan_shape=(6, 6), planes=8, mistilt=(3.0, 0.0), dose=None, seed=0)
    params = MSPParams.from_calibration(
        scan.calibration,
        thickness=scan.truth["thickness"],
        num_slices=4,
        slice_period=2,
        iterations=40,
        convergence_window=3,
        convergence_tolerance=tolerance,
        # small steps, so that the rule (tilt settled to 0.05 mrad) can hold within a few iterations
        rates={"tilt": LearningRate(0.005, 2), "thickness": LearningRate(0.005, 2)},
    )
    steps = msp_steps(scan, params, device="cpu", seed=0)
    progress = []
    result = engine.run(steps, progress.append)
    return result, progress


def test_tilt_and_thickness_are_learned_on_tied_slices_then_held_while_the_slices_are_released():
    torch.set_num_threads(1)
    result, progress = _run(tolerance=0.5)
    stage = result.provenance["tied_stage"]
    assert stage["released"], stage
    tied, released = progress[: stage["iterations"]], progress[stage["iterations"] :]
    assert len(tied) >= 6 and len(released) >= 6
    assert all("slices tied" in p.message for p in tied[:-1]) and "slices released" in tied[-1].message
    for p in tied:  # period 2: slices 0, 2 and 1, 3 equal
        np.testing.assert_allclose(p.preview["slices"][:2], p.preview["slices"][2:], atol=1e-5)
    assert not np.allclose(tied[0].preview["tilt_mrad"], tied[-2].preview["tilt_mrad"])  # learned
    held = np.mean([p.preview["tilt_mrad"] for p in tied[-3:]], axis=0)  # its last window
    np.testing.assert_allclose(stage["tilt_mrad"], held, atol=2e-4)
    for p in released:
        np.testing.assert_allclose(p.preview["tilt_mrad"], stage["tilt_mrad"], atol=1e-6)
        assert p.preview["slice_thickness"] == pytest.approx(stage["slice_thickness"])
    assert not np.allclose(released[-1].preview["slices"][:2], released[-1].preview["slices"][2:], atol=1e-3)
    np.testing.assert_allclose(result.tilt_mrad, stage["tilt_mrad"], atol=1e-6)


def test_slices_that_never_converge_stay_tied_and_the_result_says_so():
    result, _ = _run(tolerance=0.0)
    assert result.provenance["tied_stage"] == {"iterations": 40, "released": False}
    np.testing.assert_allclose(result.object[:2], result.object[2:], atol=1e-5)
