"""End-to-end 4D-STEM engine: contract, inputs, memory, half data, recovery of a small volume.

Small cases (24³–32³ voxels of 0.5 Å, 16×16 detector, 4×4–5×5 scans, a few tilts) so each
test takes seconds on 2 shared cores.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from napari_ptychotomo import JointParams, JointResult, Progress, reconstruct_joint
from napari_ptychotomo.data import Alignment, DefocusSeries, TiltSeries, Volume
from napari_ptychotomo.joint import joint_steps
from napari_ptychotomo.joint.params import LearningRate

from .conftest import gaussian_atoms, nrmse, particle_atoms, stem_series

VOXEL = 0.5
SHAPE = (24, 24, 24)


@pytest.fixture(scope="module")
def small_case():
    rng = np.random.default_rng(3)
    centre = (np.array(SHAPE) - 1) / 2 * VOXEL
    atoms = particle_atoms(rng, 4, 2.0, centre)
    volume = gaussian_atoms(SHAPE, VOXEL, atoms, 250.0)
    series = stem_series(volume, VOXEL, [-30.0, 0.0, 30.0], window=16, scan=(4, 4), step=1.0)
    return volume, series


def _params(**kw):
    p = JointParams(
        iterations=kw.pop("iterations", 4), num_slices=4, batch_size=8, volume_shape=SHAPE, momentum=0.5, **kw
    )
    p.rates["volume"] = LearningRate(5.0, 0)
    return p


def test_params_validate_names_the_field():
    with pytest.raises(ValueError, match="num_slices"):
        JointParams(num_slices=5, volume_shape=(24, 24, 24)).validate()
    with pytest.raises(ValueError, match="learn_probe"):
        JointParams(learn_probe="yes").validate()
    with pytest.raises(ValueError, match="rates\\['shifts'\\]"):
        JointParams(rates={**JointParams().rates, "shifts": LearningRate(-1.0)}).validate()
    with pytest.raises(ValueError, match="momentum"):
        JointParams(momentum=1.5).validate()
    with pytest.raises(ValueError, match="butterworth_stop"):
        JointParams(butterworth_cutoff=0.3, butterworth_start=5, butterworth_stop=5).validate()


def test_a_misspelt_or_missing_rate_is_refused_naming_it():
    params = JointParams(learn_shifts=True)
    params.rates["shift"] = LearningRate(0.05, 2)  # would be ignored, the default step used
    with pytest.raises(ValueError, match=r"rates has unknown key\(s\) \['shift'\]"):
        params.validate()
    with pytest.raises(ValueError, match=r"rates has no 'volume'; .*params.rates\['volume'\] = LearningRate"):
        JointParams(rates={"shifts": LearningRate(0.05, 2)}).validate()


def test_learned_quantities_are_switched_on_by_learn_fields_and_start_at_their_rate():
    params = JointParams(learn_shifts=True).validate()
    assert params.learned == ("volume", "shifts")
    start = params.rates["shifts"].start
    assert not params.learns("shifts", start - 1) and params.learns("shifts", start)
    assert params.learns("volume", 0) and not params.learns("euler", 100) and not params.learns("probe", 100)
    params.rates["shifts"] = LearningRate(0.0, 0)  # a zero step learns nothing
    assert not params.learns("shifts", 100)
    with pytest.raises(ValueError, match="not a learned quantity"):
        params.learns("tilt", 0)


def test_low_pass_runs_from_its_start_to_its_stop_pass():
    coarse = JointParams(butterworth_cutoff=0.3, butterworth_start=2, butterworth_stop=4).validate()
    assert [coarse.low_passes(it) for it in range(6)] == [False, False, True, True, False, False]
    assert JointParams(butterworth_cutoff=0.3).low_passes(100)
    assert not JointParams().low_passes(0)


def test_bad_inputs_get_clear_errors(small_case):
    volume, series = small_case
    with pytest.raises(ValueError, match="TiltSeries"):
        reconstruct_joint([series.scans[0]], params=_params(), device="cpu")
    images = DefocusSeries(np.ones((1, 16, 16)), np.zeros(1), VOXEL, 300e3)
    with pytest.raises(ValueError, match="reconstruct_plane_wave"):
        reconstruct_joint(TiltSeries([images], [0.0]), device="cpu")
    with pytest.raises(ValueError, match="init holds a str"):
        reconstruct_joint(series, init="volume.mrc", params=_params(), device="cpu")
    coarse = Volume(np.zeros(SHAPE, np.complex64), 2 * VOXEL)
    with pytest.raises(ValueError, match="init volume has voxels of 1 Å"):
        reconstruct_joint(series, init=coarse, params=_params(), device="cpu")
    counts = Volume(np.ones(SHAPE, np.float32), VOXEL, units="counts")
    with pytest.raises(ValueError, match="init volume is in 'counts'"):
        reconstruct_joint(series, init=counts, params=_params(), device="cpu")
    too_big = Volume(np.ones((32, 32, 32), np.complex64), VOXEL)  # content out to its edges
    with pytest.raises(ValueError, match="cut off more than 1 %"):
        reconstruct_joint(series, init=too_big, params=_params(), device="cpu")
    with pytest.raises(ValueError, match="too small laterally"):
        reconstruct_joint(series, params=JointParams(volume_shape=(8, 8, 8), num_slices=4), device="cpu")


def test_a_linear_tomography_start_is_converted_to_volts_and_centred(small_case):
    """A start volume in phase per Å on another grid (what linear tomography of MSP phases
    gives) becomes V on the engine's grid: divided by σ(E) and centre-padded (both grids are
    centred on the rotation centre); a potential of the right shape is taken as it is."""
    from napari_ptychotomo.joint.setup import start_state
    from napari_ptychotomo.physics import interaction_constant

    volume, series = small_case
    sigma = float(interaction_constant(series.scans[0].calibration.energy_eV))
    inner = np.real(volume)[2:-2, 2:-2, 2:-2]  # 20³, the atoms well inside
    assert inner.sum() > 0.999 * np.real(volume).sum()
    phase = Volume((inner * sigma).astype(np.float32), VOXEL, units="projection unit per Å")
    state = start_state(series, phase, 1, 4, SHAPE)
    np.testing.assert_allclose(np.real(state.volume)[2:-2, 2:-2, 2:-2], inner, rtol=1e-5, atol=1e-3)
    assert np.abs(state.volume).sum() == pytest.approx(inner.sum(), rel=1e-5)
    as_volts = start_state(series, Volume(volume.astype(np.complex64), VOXEL), 1, 4, SHAPE)
    np.testing.assert_array_equal(as_volts.volume, volume.astype(np.complex64))
    with pytest.warns(UserWarning, match="no units; taken as a potential in V"):
        unknown = start_state(series, Volume(volume.astype(np.complex64), VOXEL, units=""), 1, 4, SHAPE)
    np.testing.assert_array_equal(unknown.volume, as_volts.volume)


def test_memory_refusal_suggests_a_batch_size(small_case, monkeypatch):
    import napari_ptychotomo.engine as engine
    import napari_ptychotomo.joint.memory as memory

    _, series = small_case
    fake = lambda device: 60e6  # noqa: E731  (60 MB free)
    monkeypatch.setattr(engine, "available_memory", fake)
    monkeypatch.setattr(memory, "available_memory", fake)
    params = _params()
    params.batch_size = 100_000
    with pytest.raises(MemoryError, match=r"use batch_size=\d+"):
        reconstruct_joint(series, params=params, device="cpu")


@pytest.fixture(scope="module")
def one_pass(small_case):
    """One pass from zero, seed 0, through the generator: (progress list, result)."""
    _, series = small_case
    steps = joint_steps(series, params=_params(iterations=1), device="cpu", seed=0)
    progress = []
    while True:
        try:
            progress.append(next(steps))
        except StopIteration as stop:
            return progress, stop.value


def test_generator_yields_progress_with_orthogonal_slices_and_loss_per_tilt(one_pass):
    steps, result = one_pass
    assert [p.step for p in steps] == [1, 2, 3] and all(isinstance(p, Progress) for p in steps)
    assert isinstance(result, JointResult)
    preview = steps[-1].preview
    assert preview["yx"].shape == (24, 24) and preview["zx"].shape == (24, 24)
    assert preview["loss_per_tilt"].shape == (3,) and np.all(np.isfinite(preview["loss_per_tilt"]))


def test_every_progress_carries_the_volume_after_its_tilt_as_a_detached_partial_volume(one_pass):
    steps, result = one_pass
    volumes = [p.preview["volume"] for p in steps]
    assert all(isinstance(v, Volume) and v.provenance["partial"] for v in volumes)
    assert [(v.provenance["pass"], v.provenance["tilt"]) for v in volumes] == [(1, 1), (1, 2), (1, 3)]
    assert volumes[0].voxel_size == pytest.approx(VOXEL) and volumes[0].units == "V"
    # host copies: later tilts do not change an earlier step's volume (CPU tensors share memory)
    assert not np.array_equal(volumes[0].data, volumes[1].data)
    assert np.array_equal(volumes[-1].data, result.volume.data)
    # run() takes Progress.result as the result, so intermediate steps must not set it
    assert all(p.result is None for p in steps)


def test_recovers_a_small_volume_and_lowers_the_loss(small_case):
    volume, series = small_case
    result = reconstruct_joint(series, params=_params(iterations=6), device="cpu")
    assert isinstance(result, JointResult)
    assert result.volume.shape == SHAPE and result.volume.voxel_size == pytest.approx(VOXEL, rel=1e-3)
    assert np.iscomplexobj(result.volume.data)
    assert result.loss_history[-1] < 0.1 * result.loss_history[0]
    assert np.all(np.diff(result.loss_history) < 0)
    # zero start has NRMSE 1; three tilts over ±30° leave a wide missing wedge
    assert nrmse(result.volume.data, volume) < 0.9
    # positions come back in the frame they were given in (unchanged when not learned)
    assert np.allclose(result.positions[1], series.scans[1].positions, atol=1e-4)
    assert np.allclose(result.alignment.euler_deg[:, 1], [-30, 0, 30])


def test_starting_from_the_true_volume_keeps_it(small_case, one_pass):
    volume, series = small_case
    start = Volume(volume, VOXEL)
    init = [start, Alignment.from_angles(series.angles_deg)]
    result = reconstruct_joint(series, init=init, params=_params(iterations=1), device="cpu")
    assert nrmse(result.volume.data, volume) < 0.05
    from_zero = one_pass[1]
    # what is left is the ~0.3 % of the beam the band limit scatters out of the patterns
    assert result.loss_history[0] < 0.03 * from_zero.loss_history[0]


def test_half_data_gives_two_volumes_their_mean_and_what_they_share(small_case):
    """Each half fits its own half of the positions, from one start state; that shared
    start is recorded, so the halves' FSC is not taken for a resolution
    (``resolution_of`` warns)."""
    from napari_ptychotomo.analysis import resolution_of

    volume, series = small_case
    params = _params(iterations=3, half_data=True)
    result = reconstruct_joint(series, params=params, device="cpu")
    a, b = result.volume.halves
    assert not np.allclose(a, b)
    assert np.allclose(result.volume.data, (a + b) / 2)
    corr = np.corrcoef(a.real.ravel(), b.real.ravel())[0, 1]
    assert corr > 0.5
    assert len(result.positions[0]) == 16
    assert result.volume.provenance["halves_share"] == ["one start volume (zero)"]
    with pytest.warns(UserWarning, match="not independent"):
        assert resolution_of(result.volume).provenance["independent"] is False


def test_halves_share_names_every_start_given_in_init():
    from napari_ptychotomo.data import MSPResult
    from napari_ptychotomo.joint.setup import halves_share

    msp = MSPResult(
        object=np.zeros((1, 4, 4), np.complex64),
        probe=np.ones((1, 4, 4), np.complex64),
        positions=np.zeros((1, 2)),
        tilt_mrad=np.zeros(2),
        slice_thickness=1.0,
        pixel_size=VOXEL,
        energy_eV=300e3,
    )
    alignment = Alignment.from_angles([0.0])
    start = Volume(np.zeros((2, 4, 4), np.complex64), VOXEL)
    assert halves_share(None) == ["one start volume (zero)"]
    assert halves_share([[msp], alignment, start]) == [
        "one start volume (the one given in init)",
        "the MSP probes and positions given in init",
        "the alignment given in init",
    ]
    # the plane-wave engine takes no probes or positions from MSP
    assert halves_share([[msp], alignment], uses_msp=False) == [
        "one start volume (zero)",
        "the alignment given in init",
    ]


def test_same_seed_same_result(small_case, one_pass):
    _, series = small_case
    again = reconstruct_joint(series, params=_params(iterations=1), device="cpu", seed=0)
    assert np.array_equal(again.volume.data, one_pass[1].volume.data)


def test_top_level_name_points_to_the_joint_package():
    import napari_ptychotomo
    from napari_ptychotomo import joint

    assert napari_ptychotomo.reconstruct_joint is joint.reconstruct_joint
    assert napari_ptychotomo.JointParams is joint.JointParams
    assert torch.get_default_dtype() == torch.float32


def test_refining_euler_angles_reduces_an_in_plane_angle_error(small_case):
    """Our step beyond You et al.: Euler angles are learned. Started from the true volume
    with the in-plane angle ψ of each tilt 4° off, a few passes that learn the angles
    (and the volume, slowly) bring ψ back towards 0 while θ stays at the nominal tilt.
    Measured: ψ = (4, −4, 4)° → (−0.27, 0.40, 0.74)°; θ within 0.3° of nominal."""
    volume, series = small_case
    start = Alignment.from_angles(series.angles_deg)
    errors = np.array([4.0, -4.0, 4.0])
    start.euler_deg[:, 2] = errors
    params = _params(iterations=6, learn_euler=True)
    params.rates["volume"] = LearningRate(0.5, 0)
    params.rates["euler"] = LearningRate(0.5, 0)
    result = reconstruct_joint(series, init=[Volume(volume, VOXEL), start], params=params, device="cpu")
    after = result.alignment.euler_deg
    assert np.all(np.abs(after[:, 2]) < 0.5 * np.abs(errors))
    assert np.allclose(after[:, 1], series.angles_deg, atol=1.0)


def test_a_runaway_shift_is_clamped_so_the_probe_window_stays_inside(small_case):
    """A shift step of 2 Å (4 px) per update used to crash in crop_patches: the 24-voxel
    volume leaves the 16-px window of the 6-px-wide scan 0.5 px of room on one side and
    2.5 px on the other. Now the run finishes, the shifts end at the edge of what fits
    (−1.2495 … 0.2495 Å, measured: 23 clamped updates in 3 passes) and a warning says so."""
    _, series = small_case
    params = _params(iterations=3, learn_shifts=True)
    params.rates["shifts"] = LearningRate(2.0, 0)
    with pytest.warns(UserWarning, match=r"\d+ shift and 0 position updates were clamped"):
        result = reconstruct_joint(series, params=params, device="cpu")
    assert result.provenance["clamped"]["shifts"] > 0
    assert result.provenance["clamped"]["positions"] == 0
    assert np.all(np.isfinite(result.volume.data))
    # scan centres at 11.5 ± 3 px, windows of 16 px need 8 <= p − shift < 17
    shifts_px = result.alignment.shifts / VOXEL
    assert shifts_px.min() >= -2.5 and shifts_px.max() <= 0.5
    assert np.abs(shifts_px).max() > 2.0  # it did run to the edge
    # a state kept inside is accepted again as the start of a run on the same grid
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # and nothing is counted as clamped
        again = reconstruct_joint(series, init=result.alignment, params=_params(iterations=1), device="cpu")
    assert np.allclose(again.alignment.shifts, result.alignment.shifts)


def test_keep_windows_inside_moves_the_shift_first_then_single_positions():
    from napari_ptychotomo.joint.end_to_end import keep_windows_inside

    low, high = torch.tensor([8.0, 8.0]), torch.tensor([16.9, 16.9])
    positions = torch.tensor([[9.0, 9.0], [14.0, 14.0]])
    shift = torch.tensor([3.0, -1.0])
    assert keep_windows_inside(positions, shift, low, high) == (1, 0)
    assert torch.allclose(shift, torch.tensor([1.0, -1.0]))  # y: 9 − 1 = 8 at the edge
    positions[1] = torch.tensor([30.0, 14.0])  # the scan is now wider than fits: clamp it
    assert keep_windows_inside(positions, shift, low, high) == (0, 1)
    effective = positions - shift
    assert float(effective.min()) >= 8.0 and float(effective.max()) <= 16.9
