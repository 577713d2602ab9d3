"""Specimen tilt per position (tilt maps, two grains), absorption, the field edge, threads."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo.physics import interaction_constant, make_probe
from napari_ptychotomo.simulate import (
    Specimen,
    fcc_slab,
    simulate_scan,
    simulate_tilt_series,
    two_grain_specimen,
)

SCAN = dict(scan_shape=(2, 3), scan_step=1.0, detector_shape=(32, 32), num_slices=3)


def _relative_difference(a, b):
    """‖a − b‖ / ‖a‖ per pattern, for patterns (n, ky, kx)."""
    return np.linalg.norm(a - b, axis=(1, 2)) / np.linalg.norm(a, axis=(1, 2))


def test_tilt_map_gives_each_position_the_pattern_of_its_own_tilt():
    slab = fcc_slab("Pt", (3, 3, 3))
    tilts = {0: (15.0, 0.0), 1: (-10.0, 5.0)}
    uniform = {g: simulate_scan(slab, mistilt_mrad=t, **SCAN).intensities.reshape(6, 32, 32) for g, t in tilts.items()}
    left = np.tile([True, True, False], 2)  # raster order, scan x = −1, 0, +1 Å
    per_position = np.where(left[:, None], tilts[0], tilts[1])
    as_array = simulate_scan(slab, mistilt_mrad=per_position, **SCAN)
    centre_x = slab.centre[2]
    as_function = simulate_scan(
        slab, mistilt_mrad=lambda yx: np.where(yx[:, 1:] < centre_x + 0.5, tilts[0], tilts[1]), **SCAN
    )
    expected = np.where(left[:, None, None], uniform[0], uniform[1])
    np.testing.assert_allclose(as_array.intensities.reshape(6, 32, 32), expected, atol=1e-6)
    np.testing.assert_allclose(as_function.intensities, as_array.intensities, atol=1e-7)
    np.testing.assert_allclose(as_array.truth["tilt_map_mrad"], per_position)
    np.testing.assert_allclose(as_array.truth["mistilt_mrad"], per_position.mean(0))
    # the two tilts give clearly different data
    assert _relative_difference(uniform[0], uniform[1]).min() > 0.02


def test_tilt_map_of_the_wrong_shape_is_explained():
    slab = fcc_slab("Pt", (2, 2, 2))
    with pytest.raises(ValueError, match=r"mistilt_mrad .*\(n_positions=6, 2\)"):
        simulate_scan(slab, mistilt_mrad=np.zeros((5, 2)), **SCAN)


def test_two_grain_data_carry_each_grains_mistilt_as_a_tilted_propagator_would():
    base = fcc_slab("Pt", (8, 4, 6))
    mistilts = ((20.0, 0.0), (-20.0, 0.0))
    grains = two_grain_specimen(base, mistilts)
    # one atomic plane per slice; scan x from −5 to +5 Å about the grain boundary
    options = dict(
        scan_shape=(2, 6), scan_step=2.0, detector_shape=(48, 48), num_slices=None, slice_thickness=base.info["a"] / 2
    )
    data = simulate_scan(grains, **options).intensities.reshape(12, 48, 48)
    deep = {0: np.tile(np.arange(6) == 0, 2), 1: np.tile(np.arange(6) == 5, 2)}  # 5 Å from it
    # the same slab, untilted atoms, tilted propagator: an atom at depth z then sits at
    # z·tanθ from its column, the grain's atoms at (z − centre)·tanθ, hence the shift
    for g, tilt in enumerate(mistilts):
        shift = base.centre[0] * np.tan(tilt[0] * 1e-3)
        by_propagator = simulate_scan(base.translate((0.0, 0.0, -shift)), mistilt_mrad=tilt, **options)
        own = _relative_difference(data, by_propagator.intensities.reshape(12, 48, 48))
        other_tilt = simulate_scan(base.tilt(mistilts[1 - g]), **options).intensities.reshape(12, 48, 48)
        other = _relative_difference(data, other_tilt)
        # measured: own ≤ 1e-5, the other grain's tilt 0.078 (above 0.08 when the simulator
        # stopped at the detector's least oversampling, 3; the search takes 8 here)
        assert own[deep[g]].max() < 0.02, own
        assert other[deep[g]].min() > 0.06, other
        assert own[deep[g]].max() < 0.2 * other[deep[g]].min()


def test_absorption_removes_the_beam_fraction_of_exp_minus_2_sigma_im_v():
    atom = Specimen(np.array([[1.0, 6.0, 6.0]]), [78], np.array([4.0, 12.0, 12.0]))
    options = dict(scan_shape=(3, 3), scan_step=0.4, detector_shape=(48, 48), num_slices=1)
    a = 0.05
    clear = simulate_scan(atom, **options)
    dark = simulate_scan(atom, absorption=a, **options)
    # the whole simulated beam (the detector misses the high angles, where the absorbing
    # core scatters most: its share of the loss is 0.0449 against 0.0500 on the atom)
    assert dark.truth["oversampling"] == clear.truth["oversampling"] == 5
    kept = dark.truth["intensity_kept"] / clear.truth["intensity_kept"]
    # independent estimate: |t|² averaged over the probe's intensity, on the grid the
    # patterns were simulated on, t = exp(iσ(1 + i·a)V) limited to 2/3 of its Nyquist
    # frequency as in the multislice, relative to the same without absorption (measured:
    # 0.04998 against 0.05002 on the atom; exp(−2σ a V) without the limit says 0.0519)
    truth = dark.truth
    dy, dx = truth["simulation_pixel_size"]
    n = 48 * truth["oversampling"]
    probe_wave = make_probe((n, n), (dy, dx), 300e3, 25.0, {}).numpy()
    fy, fx = np.fft.fftfreq(n)[:, None], np.fft.fftfreq(n)[None, :]
    sigma = float(interaction_constant(300e3))
    field = truth["simulation_potential"][0].astype(np.float64)
    ky, kx = np.fft.fftfreq(field.shape[0], dy)[:, None], np.fft.fftfreq(field.shape[1], dx)[None, :]
    limit = np.hypot(ky, kx) <= (2 / 3) / (2 * max(dy, dx))
    t = np.fft.ifft2(np.fft.fft2(np.exp(1j * sigma * (1 + 1j * a) * field)) * limit)
    t_clear = np.fft.ifft2(np.fft.fft2(np.exp(1j * sigma * field)) * limit)
    expected = []
    for y, x in truth["positions"] / (dy, dx):
        iy, ix = int(np.floor(y)), int(np.floor(x))
        ramp = np.exp(-2j * np.pi * (fy * (y - iy) + fx * (x - ix)))
        probe = np.abs(np.fft.ifft2(np.fft.fft2(probe_wave) * ramp)) ** 2
        window = (slice(iy - n // 2, iy + n // 2), slice(ix - n // 2, ix + n // 2))
        expected.append((probe * np.abs(t[window]) ** 2).sum() / (probe * np.abs(t_clear[window]) ** 2).sum())
    loss, expected_loss = 1 - kept, 1 - np.array(expected)
    assert expected_loss.max() > 0.01  # a loss worth measuring
    np.testing.assert_allclose(loss, expected_loss, rtol=0.01)
    assert truth["absorption"] == a and clear.truth["absorption"] == 0.0
    with pytest.raises(ValueError, match="absorption"):
        simulate_scan(atom, absorption=-0.1, **options)


def test_atoms_outside_the_field_do_not_wrap_into_it():
    # one atom far beyond the +x edge of the scanned field (the slices are periodic)
    outside = Specimen(np.array([[2.0, 20.0, 38.0]]), [78], np.array([4.0, 40.0, 40.0]))
    scan = simulate_scan(outside, scan_shape=(2, 2), scan_step=0.5, detector_shape=(32, 32), num_slices=1)
    assert scan.truth["potential"].shape[-1] * scan.truth["pixel_size"][1] < 14.0
    assert np.abs(scan.truth["potential"]).max() < 1e-3
    inside = Specimen(np.array([[2.0, 20.0, 21.0]]), [78], np.array([4.0, 40.0, 40.0]))
    peak = (
        simulate_scan(inside, scan_shape=(2, 2), scan_step=0.5, detector_shape=(32, 32), num_slices=1)
        .truth["potential"]
        .max()
    )
    assert peak > 100.0  # V·Å: the atom itself is there when inside


def test_tilt_series_threads_give_the_same_data_and_restore_torch_threads():
    atom = Specimen(np.array([[6.0, 6.0, 7.0]]), [78], np.array([12.0, 12.0, 12.0]))
    before = torch.get_num_threads()
    options = dict(
        shift_std=0.3,
        seed=2,
        scan_shape=(2, 2),
        scan_step=1.0,
        detector_shape=(32, 32),
        num_slices=2,
        dose=1e4,
        voxel_size=0.5,
    )
    one = simulate_tilt_series(atom, [-40, 0, 40], workers=1, **options)
    two = simulate_tilt_series(atom, [-40, 0, 40], workers=2, **options)
    for a, b in zip(one.scans, two.scans):
        np.testing.assert_array_equal(a.intensities, b.intensities)
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="workers"):
        simulate_tilt_series(atom, [0], workers=0, **options)
