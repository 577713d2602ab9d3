"""Alignment on hostile input and faults: too few distinct tilts, shifts and angles that
run away, torch overflow, a matching that finds nothing; every stop carries the engine's
own result type, the pair (Alignment, Volume or None) of the last good state.

A 24³ particle, 7 tilts; each case takes a second or two.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo.data import Alignment, Volume
from napari_ptychotomo.engine import EngineError, LearningRate
from napari_ptychotomo.engine_guards import MAX_ANGLE_CHANGE_DEG
from napari_ptychotomo.tomo import AlignStage, align_tilt_series

ANGLES = np.linspace(-60, 60, 7)


@pytest.fixture(scope="module")
def stack(make_tilt_series):
    return make_tilt_series(24, ANGLES).astype(np.float32)


def _stage(**kw):
    return AlignStage(
        scale=1.0,
        n_outer=kw.pop("n_outer", 4),
        n_inner=2,
        n_align=2,
        min_size=24,
        **kw,
    )


def _run(stack, **kw):
    return align_tilt_series(
        stack,
        kw.pop("angles", ANGLES),
        1.0,
        estimate_axis=False,
        final_n_iter=0,
        device="cpu",
        method=kw.pop("method", "gradient"),
        **kw,
    )


@pytest.mark.parametrize("angles", [[10.0], [20.0, 20.0, 20.0]])
def test_fewer_than_two_distinct_tilt_angles_are_refused(stack, angles):
    with pytest.raises(ValueError, match=r"angles_deg holds 1 distinct tilt angle.*at 2 or more different"):
        align_tilt_series(stack[: len(angles)], angles, 1.0, device="cpu")


def test_tilt_angles_given_in_radians_are_warned_of(stack):
    with pytest.warns(UserWarning, match=r"spans only -1.05° to 1.05°: were they given in radians"):
        _run(stack, stages=[_stage(n_outer=1)], angles=np.deg2rad(ANGLES))


def test_tilt_angles_in_degrees_are_not_warned_of_even_when_they_span_little():
    import warnings

    from napari_ptychotomo.data.checks import warn_if_radians

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_radians("angles_deg", ANGLES)
        warn_if_radians("angles_deg", [-2.0, 0.0, 2.0])  # a small but plain degree series
        warn_if_radians("angles_deg", [0.0, 1.0])  # two tilts: too few to judge


def test_shifts_that_leave_the_field_of_view_stop_with_the_last_good_alignment(stack):
    with pytest.raises(EngineError, match=r"alignment diverged: shifts reached .* beyond the field of view") as info:
        _run(stack, stages=[_stage(rates={"shifts": LearningRate(1e4), "angles": LearningRate(0.2)})])
    alignment, volume = info.value.partial
    assert isinstance(alignment, Alignment) and alignment.provenance["partial"]
    assert np.abs(alignment.shifts).max() <= 24
    assert volume is None or isinstance(volume, Volume)


def test_angles_that_run_away_stop_with_an_alignment_and_its_stage_volume(stack):
    stages = [
        _stage(n_outer=2),
        _stage(
            learn_shifts=False,
            learn_theta=True,
            rates={"shifts": LearningRate(0.3), "angles": LearningRate(200.0)},
            per_tilt_angles=True,
        ),
    ]
    with pytest.raises(EngineError, match=rf"euler_deg moved .* more than {MAX_ANGLE_CHANGE_DEG:g}°") as info:
        _run(stack, stages=stages)
    alignment, volume = info.value.partial
    assert isinstance(alignment, Alignment) and isinstance(volume, Volume)
    assert np.abs(alignment.euler_deg[:, 1] - ANGLES).max() <= MAX_ANGLE_CHANGE_DEG
    assert volume.provenance["partial"] and np.all(np.isfinite(volume.data))


def test_an_overflowing_step_becomes_an_engine_error_with_the_alignment(stack):
    with pytest.raises(EngineError, match="overflowed") as info:
        _run(stack, stages=[_stage(rates={"shifts": LearningRate(1e38), "angles": LearningRate(0.2)})])
    assert isinstance(info.value.partial[0], Alignment)


def test_a_matching_that_finds_no_peaks_stops_with_the_coarse_alignment(stack):
    with pytest.raises(EngineError, match="alignment stopped: projection matching found no peaks") as info:
        _run(stack, method="matching", matching={"peak_threshold": 2.0, "n_rounds": 1})
    alignment, volume = info.value.partial
    assert isinstance(alignment, Alignment) and alignment.shifts.shape == (7, 2) and volume is None


def test_a_stage_says_what_it_learns_with_learn_fields_and_its_steps_in_rates():
    stage = AlignStage(scale=0.1).validate()
    assert stage.learned == ("shifts",)
    assert stage.rates == {"shifts": LearningRate(0.3, 0), "angles": LearningRate(0.2, 0)}
    angles = AlignStage(
        scale=0.2, learn_shifts=False, learn_psi=True, rates={**stage.rates, "angles": LearningRate(0.2, 3)}
    )
    assert angles.learned == ("psi",)
    assert not angles.learns("psi", 2) and angles.learns("psi", 3) and not angles.learns("shifts", 3)
    with pytest.raises(ValueError, match="learn_theta"):
        AlignStage(scale=0.1, learn_theta="yes").validate()
    with pytest.raises(ValueError, match=r"rates has keys \['shifts'\]"):
        AlignStage(scale=0.1, rates={"shifts": LearningRate(0.3)}).validate()
    with pytest.raises(ValueError, match=r"rates\['angles'\]"):
        AlignStage(scale=0.1, rates={"shifts": LearningRate(0.3), "angles": LearningRate(-1.0)}).validate()


def test_shifts_are_not_learned_before_their_start(stack):
    late = _stage(n_outer=2, rates={"shifts": LearningRate(0.3, 2), "angles": LearningRate(0.2)})
    alignment, _volume = _run(stack, stages=[late])
    assert np.all(alignment.shifts == 0)
    alignment, _volume = _run(stack, stages=[_stage(n_outer=2)])
    assert np.abs(alignment.shifts).max() > 0
