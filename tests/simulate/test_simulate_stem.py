"""Specimens and simulated 4D-STEM / HRTEM data: geometry, dose statistics, ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo.physics import rotation_matrix_deg
from napari_ptychotomo.simulate import (
    Specimen,
    amorphous_blob,
    core_shell_particle,
    fcc_nanoparticle,
    projected_potential_slices,
    simulate_hrtem_series,
    simulate_scan,
    simulate_tilt_series,
    srtio3_slab,
    two_grain_specimen,
)


def _one_atom(z=5.0):
    return Specimen(np.array([[z, 6.0, 6.0]]), [78], np.array([10.0, 12.0, 12.0]))


def test_positive_stage_tilt_moves_an_atom_above_the_centre_towards_plus_x():
    # R_y(θ) acting on (x, y, z): an atom at z = +2 Å above the centre goes to x = +2 sin θ
    atom = Specimen(np.array([[7.0, 5.0, 5.0]]), [14], np.array([10.0, 10.0, 10.0]))
    turned = atom.rotate((0.0, 30.0, 0.0))
    np.testing.assert_allclose(turned.positions[0], [5 + 2 * np.cos(np.pi / 6), 5.0, 5 + 2 * 0.5], atol=1e-12)
    # ψ rotates in-plane: an atom at +x goes to +y for ψ = 90°
    side = Specimen(np.array([[5.0, 5.0, 7.0]]), [14], np.array([10.0, 10.0, 10.0]))
    np.testing.assert_allclose(side.rotate((0, 0, 90)).positions[0], [5.0, 7.0, 5.0], atol=1e-12)
    r = rotation_matrix_deg((10, 20, 30))
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)


def _atom_position(image, pixel):
    """(y, x) Å of the one atom in a periodic ``image`` from the phase of its lowest
    Fourier coefficients (exact for a symmetric atom; the slices ring at the grid's Nyquist
    frequency, which biases a centroid of pixel values)."""
    spectrum = np.fft.fft2(image)
    ny, nx = image.shape
    return (-np.angle(spectrum[1, 0]) / (2 * np.pi) * ny * pixel) % (ny * pixel), (
        -np.angle(spectrum[0, 1]) / (2 * np.pi) * nx * pixel
    ) % (nx * pixel)


def test_mistilt_moves_columns_by_depth_times_tan_theta_in_the_slices():
    column = Specimen(np.array([[0.5 + 2 * k, 6.0, 6.0] for k in range(5)]), [78] * 5, np.array([10.0, 12, 12]))
    tilted = column.tilt((20.0, -10.0))  # mrad
    slices = projected_potential_slices(tilted.positions, tilted.numbers, (96, 96), 0.125, 2.0, 5)
    for k, sl in enumerate(slices):
        dz = 0.5 + 2 * k - 5.0
        y, x = _atom_position(sl, 0.125)
        assert x == pytest.approx(6.0 + dz * np.tan(0.020), abs=0.01)
        assert y == pytest.approx(6.0 + dz * np.tan(-0.010), abs=0.01)


def test_specimens_have_their_composition_and_spacing():
    sto = srtio3_slab((2, 2, 2))
    assert np.bincount(sto.numbers)[[38, 22, 8]].tolist() == [8, 8, 24]
    cube = fcc_nanoparticle("Au", size=12.0, shape="cube")
    nearest = np.sort(np.linalg.norm(cube.positions[:, None] - cube.positions[None], axis=-1), 1)[:, 1]
    assert nearest.min() == pytest.approx(4.078 / np.sqrt(2), rel=1e-6)
    blob = amorphous_blob(radius=8.0, min_distance=1.6, seed=1)
    d = np.linalg.norm(blob.positions[:, None] - blob.positions[None], axis=-1) + np.eye(len(blob)) * 9
    assert d.min() >= 1.6 and len(blob) > 100
    shell = core_shell_particle(seed=2)
    assert {8, 13, 78} == set(np.unique(shell.numbers).tolist())
    grains = two_grain_specimen()
    assert set(np.unique(grains.info["grain"])) == {0, 1}


def test_scan_conserves_intensity_and_dose_gives_poisson_counts():
    clean = simulate_scan(_one_atom(), scan_shape=(4, 4), scan_step=0.5, detector_shape=(48, 48), num_slices=2)
    totals = clean.intensities.sum(axis=(2, 3))
    # unit incident intensity; only what scatters beyond the band limit is lost (a few %)
    assert totals.max() <= 1.005 and totals.min() > 0.95
    dose = 2e4
    noisy = simulate_scan(
        _one_atom(), scan_shape=(4, 4), scan_step=0.5, detector_shape=(48, 48), num_slices=2, dose=dose, seed=3
    )
    counts = noisy.intensities.sum(axis=(2, 3))
    expected = dose * 0.5**2
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected))
    assert np.allclose(noisy.intensities, np.round(noisy.intensities))
    # variance equals mean in bright pixels (Poisson)
    mean = clean.intensities * expected
    bright = mean > 5
    assert bright.sum() > 1000
    resid = (noisy.intensities - mean)[bright] / np.sqrt(mean[bright])
    assert resid.std() == pytest.approx(1.0, abs=0.15)


def test_scan_truth_is_consistent_with_the_data():
    scan = simulate_scan(
        _one_atom(),
        scan_shape=(3, 3),
        scan_step=0.6,
        detector_shape=(32, 32),
        num_slices=2,
        position_jitter=0.2,
        mistilt_mrad=(2.0, -1.0),
        seed=5,
    )
    truth = scan.truth
    assert truth["thickness"] == pytest.approx(10.0)
    assert truth["potential"].shape[0] == 2
    assert np.abs(truth["positions"] - scan.positions).std() == pytest.approx(0.2, rel=0.6)
    # the potential's atom sits where the truth atoms say (object frame)
    dy, dx = truth["pixel_size"]
    peak = np.unravel_index(truth["potential"].sum(0).argmax(), truth["potential"].shape[1:])
    assert peak[0] * dy == pytest.approx(truth["atoms"]["positions"][0, 1], abs=dy)
    assert peak[1] * dx == pytest.approx(truth["atoms"]["positions"][0, 2], abs=dx)
    np.testing.assert_allclose(truth["mistilt_mrad"], [2.0, -1.0])
    scan.validate()


def test_tilt_series_truth_holds_angles_shifts_and_volume():
    atom = Specimen(np.array([[6.0, 6.0, 7.5]]), [78], np.array([12.0, 12.0, 12.0]))
    series = simulate_tilt_series(
        atom,
        [-30, 0, 30],
        shift_std=0.5,
        seed=1,
        scan_shape=(2, 2),
        scan_step=1.0,
        detector_shape=(32, 32),
        num_slices=2,
    )
    truth = series.truth
    np.testing.assert_allclose(truth["euler_deg"][:, 1], [-30, 0, 30])
    assert truth["shifts"].shape == (3, 2) and np.abs(truth["shifts"]).max() > 0
    vol = truth["volume"]
    peak = np.array(np.unravel_index(vol.data.argmax(), vol.shape)) * vol.voxel_size
    np.testing.assert_allclose(peak, atom.positions[0], atol=vol.voxel_size)
    # at +30° the off-centre atom (x = +1.5 Å) moves along x by 1.5 (cos θ − 1) plus the shift
    for k, theta in enumerate(np.deg2rad([-30, 0, 30])):
        frame = series.scans[k].truth
        _, x = _atom_position(frame["potential"].sum(0), frame["pixel_size"][1])
        centre_x = frame["specimen_offset"][2] + 6.0
        assert x - centre_x == pytest.approx(1.5 * np.cos(theta) + truth["shifts"][k, 1], abs=0.03)
    series.validate()


def test_hrtem_series_is_a_unit_plane_wave_image_stack():
    particle = fcc_nanoparticle("Pt", size=8.0, vacuum=2.0)
    series = simulate_hrtem_series(particle, [0, 20], [0.0, 200.0], pixel_size=0.25)
    images = series.scans[0].images
    assert images.shape[0] == 2
    assert images.mean() == pytest.approx(1.0, abs=0.02)  # phase object: intensity conserved
    # in focus a (nearly) pure phase object shows little contrast; defocus brings it up
    assert images[1].std() > 2 * images[0].std()
    noisy = simulate_hrtem_series(particle, [0], [200.0], pixel_size=0.25, dose=1e3, seed=4)
    electrons = 1e3 * 0.25**2
    resid = (noisy.scans[0].images[0] - images[1]) * np.sqrt(electrons / images[1])
    assert resid.std() == pytest.approx(1.0, abs=0.1)
    series.validate()
