"""Alignment to a fraction of a pixel from any start.

The case: projected potentials of a 369-atom Pt sphere (the package simulator's specimen
and projected potentials, independent of the projector), 11 tilts over ±60°, random shifts
up to ±2 Å per axis, Gaussian noise of 10 % of the maximum (:mod:`pt_series`). The full
case (144 px at 0.22 Å) runs in ``benchmarks/tomo.py``; CI uses the same 31.7 Å field at
72 px of 0.44 Å, so one pixel here is two there and the 0.3 px bound is 0.13 Å.

Shift errors are compared after removing what a rigid translation of the volume explains
(the gauge: a constant along the axis, a·cos θ + b·sin θ across it).

The axis-angle case runs at the full 144 px: at 72 px the in-plane angle was not found
within 0.2° (measured 1.18° for 2° with the earlier per-tilt rotation estimate; not
measured again since the joint fit replaced it).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pt_series import pt_tilt_series

from napari_ptychotomo.tomo import align_tilt_series
from napari_ptychotomo.tomo.projection_matching import (
    centre_of_mass_shifts,
    is_isolated,
    neighbour_shifts,
    remove_translation,
)

ANGLES = np.linspace(-60, 60, 11)
N_PX, PIXEL = 72, 0.44


def shift_errors(alignment, true_shifts_A, true_euler_deg, pixel):
    """RMS shift error in px over both axes, along the axis (y) and across it (x)."""
    error = torch.as_tensor(alignment.shifts / pixel - true_shifts_A / pixel)
    error = remove_translation(error, torch.deg2rad(torch.as_tensor(true_euler_deg)))
    rms = lambda a: float(a.pow(2).mean().sqrt())  # noqa: E731
    return rms(error), rms(error[:, 0]), rms(error[:, 1])


@pytest.mark.parametrize("seed", [0, 1])
def test_pt_particle_shifts_within_0p3_px_rms_from_a_zero_start(seed):
    """From the nominal tilts and zero shifts (the coarse stage is the centre of mass,
    about 0.3-0.8 px RMS on this case); 60-75 s each on one thread of a loaded machine.
    The full-size seeds 0-4 are in ``benchmarks/results/tomo.json`` ("alignment")."""
    projections, shifts, euler = pt_tilt_series(N_PX, PIXEL, ANGLES, seed=seed)
    alignment, _ = align_tilt_series(projections, ANGLES, PIXEL, final_n_iter=0, device="cpu")
    rms, along, across = shift_errors(alignment, shifts, euler, PIXEL)
    assert rms <= 0.3, f"seed {seed}: {rms:.3f} px RMS ({along:.3f} along, {across:.3f} across)"
    assert alignment.provenance["coarse"] == "centre of mass"


def test_pt_particle_axis_rotated_2_deg_and_tilts_off_by_1_deg_at_full_size():
    """ψ = 2° and each true tilt off its nominal value by up to ±1°; only the nominal tilts
    are given; 144 px of 0.22 Å. The axis angle comes from the joint fit of the peak
    model with the geometry; seeds 0-4 in ``benchmarks/results/tomo.json``: ψ within
    0.13° for all, shifts 0.09-0.24 px RMS (the exact-axis case 0.12-0.17 px)."""
    projections, shifts, euler = pt_tilt_series(144, 0.22, ANGLES, psi_deg=2.0, angle_error_deg=1.0, seed=0)
    alignment, _ = align_tilt_series(projections, ANGLES, 0.22, final_n_iter=0, device="cpu")
    rms, along, across = shift_errors(alignment, shifts, euler, 0.22)
    psi = alignment.euler_deg[:, 2]
    assert np.abs(psi - 2.0).max() <= 0.2, f"ψ {psi[0]:.3f}°"
    assert rms <= 0.3, f"{rms:.3f} px RMS ({along:.3f} along, {across:.3f} across)"
    np.testing.assert_allclose(alignment.euler_deg[:, 1], ANGLES)


def test_centre_of_mass_recovers_shifts_of_a_noise_free_particle_to_0p05_px():
    projections, shifts, euler = pt_tilt_series(N_PX, PIXEL, ANGLES, noise=0.0, seed=2)
    found = centre_of_mass_shifts(torch.as_tensor(projections), torch.deg2rad(torch.as_tensor(euler)))
    error = remove_translation(found.double() - torch.as_tensor(shifts / PIXEL), torch.deg2rad(torch.as_tensor(euler)))
    assert float(error.abs().max()) < 0.05


def test_particle_in_vacuum_is_isolated_and_a_film_is_not():
    projections, _, _ = pt_tilt_series(N_PX, PIXEL, ANGLES, seed=0)
    assert is_isolated(torch.as_tensor(projections))
    film = projections + 0.3 * projections.max()
    assert not is_isolated(torch.as_tensor(film))


def test_neighbouring_tilts_align_a_stretched_film():
    """A flat random-texture film at 11 tilts: its projection across the axis stretches by
    1/cos θ; the chained cross-correlation undoes that and finds the shifts."""
    from scipy.ndimage import affine_transform, gaussian_filter

    rng = np.random.default_rng(5)
    texture = gaussian_filter(rng.normal(size=(96, 160)), 2.0)
    shifts = rng.uniform(-3, 3, size=(len(ANGLES), 2))
    stack = []
    for theta, (dy, dx) in zip(np.deg2rad(ANGLES), shifts):
        # foreshortening: image pixel u (from the centre) shows film point u_x / cos θ
        matrix = np.diag([1.0, 1.0 / np.cos(theta)])
        centre_in, centre_out = (np.array(texture.shape) - 1) / 2, np.array([31.5, 31.5])
        offset = centre_in - matrix @ (centre_out + np.array([dy, dx]))
        stack.append(affine_transform(texture, matrix, offset=offset, output_shape=(64, 64), order=3))
    euler = np.zeros((len(ANGLES), 3))
    euler[:, 1] = ANGLES
    e = torch.deg2rad(torch.as_tensor(euler))
    found = neighbour_shifts(torch.as_tensor(np.array(stack)), e)
    error = remove_translation(found.double() - torch.as_tensor(shifts), e)
    assert float(error.pow(2).mean().sqrt()) < 0.3


def test_centre_of_mass_ignores_a_negative_halo_around_the_object():
    """An MSP phase image has a negative ring around the particle: with it in the sum the
    mass nearly cancels and the centre flies off; clipped at zero it stays put."""
    y, x = np.mgrid[:64, :64] - 31.5
    euler = torch.zeros(3, 3, dtype=torch.float64)
    shifts = np.array([[0.0, 0.0], [2.0, -1.5], [-1.0, 3.0]])
    stack = []
    for dy, dx in shifts:
        r2 = (y - dy) ** 2 + (x - dx) ** 2
        stack.append(np.exp(-r2 / 50) - 0.9 * np.exp(-((np.sqrt(r2) - 14) ** 2) / 8) + (y + x) * 1e-3)
    found = centre_of_mass_shifts(torch.as_tensor(np.array(stack)), euler)
    error = found.double() - torch.as_tensor(shifts) - (found.double() - torch.as_tensor(shifts)).mean(0)
    assert float(error.abs().max()) < 0.1


def test_registration_keeps_to_the_neighbourhood_of_its_guess():
    """A brighter copy of the feature 20 px away does not pull the shift there."""
    from napari_ptychotomo.tomo.projection_matching import _register

    y, x = np.mgrid[:64, :64] - 31.5
    blob = lambda cy, cx, h=1.0: h * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / 8)
    template = blob(0, 0)
    data = blob(2.0, -1.0) + blob(2.0, 19.0, 1.5)
    shift, _ = _register(data, template, 20, 1.0, guess_px=(1.0, 0.0))
    np.testing.assert_allclose(shift, [2.0, -1.0], atol=0.05)


def test_joint_fit_of_peaks_and_geometry_recovers_the_axis_angle_and_shifts():
    """Blobs rendered at ψ = 1.5° with shifts up to ±1 px; the fit starts from ψ = 0,
    zero shifts and the blob positions turned with the wrong ψ (what a volume fitted at
    ψ = 0 would hold), and finds ψ within 0.1° and the shifts within 0.1 px RMS."""
    from napari_ptychotomo.tomo.peak_refinement import refine_peak_model, render_blobs

    rng = np.random.default_rng(0)
    positions = torch.as_tensor(rng.uniform(-16, 16, size=(40, 3)))
    heights = torch.as_tensor(rng.uniform(0.5, 1.0, 40))
    euler = torch.zeros(9, 3, dtype=torch.float64)
    euler[:, 1] = torch.deg2rad(torch.linspace(-60, 60, 9, dtype=torch.float64))
    true = euler.clone()
    true[:, 2] = np.deg2rad(1.5)
    shifts = torch.as_tensor(rng.uniform(-1, 1, size=(9, 2)))
    data = render_blobs(positions, heights, true, shifts, (56, 56), 1.5)
    fit = refine_peak_model(data.float(), positions.numpy(), heights.numpy(), euler, torch.zeros(9, 2), 1.5, n_iter=300)
    assert abs(np.rad2deg(float(fit.euler_rad[0, 2])) - 1.5) < 0.1
    error = remove_translation(fit.shifts_px - shifts, true)
    assert float(error.pow(2).mean().sqrt()) < 0.1
