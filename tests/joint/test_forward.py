"""The forward models of the end-to-end step against geometry and weak-phase theory."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from napari_ptychotomo.joint.forward import (
    defocus_transfer,
    plane_wave_images,
    stem_intensities,
    tilt_slices,
)
from napari_ptychotomo.physics import (
    aberration_phase,
    fresnel_propagator,
    interaction_constant,
    make_probe,
    spatial_frequencies,
    wavelength,
)

from .conftest import ENERGY, gaussian_atoms

VOXEL = 0.5


def _peak(array):
    return np.unravel_index(np.argmax(np.abs(array)), array.shape)


def test_tilt_moves_an_atom_to_R_r_and_into_the_slice_at_its_new_depth():
    # one atom 5 Å along +x from the centre; θ = 30° about y moves it to
    # x' = x cos θ, z' = −x sin θ (DESIGN.md: R_y(θ) acting on (x, y, z))
    shape = (32, 32, 32)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    atom = centre + np.array([0.0, 0.0, 5.0])
    volume = torch.as_tensor(gaussian_atoms(shape, VOXEL, [atom], 100.0, width=0.5, absorption=0))
    theta = math.radians(30)
    slices = tilt_slices(volume, torch.tensor([0.0, theta, 0.0]), 8, VOXEL).real.numpy()
    s, y, x = _peak(slices)
    expected_x = (shape[2] - 1) / 2 + 5.0 * math.cos(theta) / VOXEL
    expected_z = (shape[0] - 1) / 2 - 5.0 * math.sin(theta) / VOXEL
    assert abs(x - expected_x) <= 0.6 and y in (15, 16)
    assert s == int(expected_z // 4)  # 4 planes per slice
    # binning keeps the integrated potential: Σ slices (V·Å) · pixel area = ∫V d³r
    assert slices.sum() * VOXEL**2 == pytest.approx(100.0, rel=0.02)


def test_plane_wave_image_of_a_weak_phase_object_follows_the_ctf():
    # weak phase object in one slice: Î(k) = 2 sin χ_eff(k) φ̂(k), where the wave is
    # propagated by the slice thickness Δz after the slice, so χ_eff uses defocus df − Δz
    shape = (8, 48, 48)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    atoms = centre + np.array([[0.0, -3.0, 2.0], [0.0, 4.0, -5.0]])
    volume = torch.as_tensor(gaussian_atoms(shape, VOXEL, atoms, 5.0, width=0.6, absorption=0))
    lam, sigma = float(wavelength(ENERGY)), float(interaction_constant(ENERGY))
    thickness = shape[0] * VOXEL
    prop = fresnel_propagator(shape[1:], VOXEL, lam, thickness, band_limit=False)
    defocus = 80.0
    transfer = defocus_transfer(shape[1:], VOXEL, lam, [defocus])
    image = plane_wave_images(volume, torch.zeros(3), torch.zeros(2), transfer, prop, 1, VOXEL, sigma)[0]
    phase = sigma * volume.real.sum(0) * VOXEL
    ky, kx = spatial_frequencies(shape[1:], VOXEL)
    chi = aberration_phase(ky, kx, lam, {"C10": -(defocus - thickness)})
    expected = torch.fft.ifft2(2 * torch.sin(chi) * torch.fft.fft2(phase)).real
    contrast = image - image.mean()
    error = torch.linalg.vector_norm(contrast - expected) / torch.linalg.vector_norm(expected)
    assert float(error) < 0.1


def test_plane_wave_shift_moves_the_image_by_whole_voxels():
    shape = (8, 32, 32)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    volume = gaussian_atoms(shape, VOXEL, [centre + [0, 1.0, -2.0]], 80.0, width=0.5)
    lam, sigma = float(wavelength(ENERGY)), float(interaction_constant(ENERGY))
    prop = fresnel_propagator(shape[1:], VOXEL, lam, 2 * VOXEL)
    transfer = defocus_transfer(shape[1:], VOXEL, lam, [0.0, 50.0])
    args = (transfer, prop, 4, VOXEL, sigma)
    shifted = plane_wave_images(torch.as_tensor(volume), torch.zeros(3), torch.tensor([3.0, -2.0]), *args)
    rolled = np.roll(volume, (3, -2), axis=(1, 2))
    reference = plane_wave_images(torch.as_tensor(rolled), torch.zeros(3), torch.zeros(2), *args)
    assert torch.allclose(shifted, reference, atol=1e-4)


def test_stem_patterns_keep_the_probe_power_without_absorption():
    shape = (16, 40, 40)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    volume = torch.as_tensor(gaussian_atoms(shape, VOXEL, [centre], 300.0, absorption=0))
    lam, sigma = float(wavelength(ENERGY)), float(interaction_constant(ENERGY))
    probe = make_probe((16, 16), VOXEL, ENERGY, 12.0)[None]
    prop = fresnel_propagator((16, 16), VOXEL, lam, 4 * VOXEL)
    positions = torch.tensor([[19.5, 19.5], [17.25, 21.0], [22.0, 18.0]])
    patterns = stem_intensities(
        volume, torch.tensor([0.0, 0.4, 0.0]), torch.zeros(2), probe, positions, prop, 4, VOXEL, sigma
    )
    assert patterns.shape == (3, 16, 16)
    # the band limit of the transmission scatters a little power out; < 2 % here
    assert torch.allclose(patterns.sum((-2, -1)), torch.ones(3), atol=0.02)
    # an atom under the probe scatters: patterns differ from the vacuum pattern
    vacuum = stem_intensities(
        torch.zeros_like(volume), torch.zeros(3), torch.zeros(2), probe, positions, prop, 4, VOXEL, sigma
    )
    assert float((patterns - vacuum).abs().sum()) > 0.01


def test_stem_shift_moves_the_specimen_under_the_probe():
    # a shift of whole voxels is the same as the volume moved by np.roll
    shape = (8, 32, 32)
    centre = (np.array(shape) - 1) / 2 * VOXEL
    volume = gaussian_atoms(shape, VOXEL, [centre + [0, 0.7, -1.1]], 200.0)
    lam, sigma = float(wavelength(ENERGY)), float(interaction_constant(ENERGY))
    probe = make_probe((16, 16), VOXEL, ENERGY, 12.0)[None]
    prop = fresnel_propagator((16, 16), VOXEL, lam, 2 * VOXEL)
    positions = torch.tensor([[15.5, 15.5], [14.25, 17.0]])
    args = (probe, positions, prop, 4, VOXEL, sigma)
    shifted = stem_intensities(torch.as_tensor(volume), torch.zeros(3), torch.tensor([2.0, -1.0]), *args)
    rolled = torch.as_tensor(np.roll(volume, (2, -1), axis=(1, 2)))
    reference = stem_intensities(rolled, torch.zeros(3), torch.zeros(2), *args)
    unshifted = stem_intensities(torch.as_tensor(volume), torch.zeros(3), torch.zeros(2), *args)
    moved = float((unshifted - reference).abs().max())
    assert float((shifted - reference).abs().max()) < 0.01 * moved


def test_stage_axis_slices_equal_the_general_rotation_and_binning():
    from napari_ptychotomo.joint.forward import stage_axis_slices
    from napari_ptychotomo.tomo import rotate_volume
    from napari_ptychotomo.tomo.rotation import bin_along_beam

    rng = np.random.default_rng(5)
    volume = torch.tensor(rng.random((12, 7, 10)) + 1j * rng.random((12, 7, 10)), dtype=torch.complex64)
    for theta in (0.0, 0.4, -1.2, np.pi / 2):
        general = bin_along_beam(rotate_volume(volume, torch.tensor([0.0, theta, 0.0])), 3)
        assert torch.allclose(stage_axis_slices(volume, theta, 3), general, atol=1e-5)
    thetas = [0.0, 0.4, -1.2]  # several angles in one stacked product
    stacked = stage_axis_slices(volume, thetas, 3)
    assert stacked.shape == (3, 3, 7, 10)
    for k, theta in enumerate(thetas):
        assert torch.allclose(stacked[k], stage_axis_slices(volume, theta, 3), atol=1e-6)
    grad = torch.zeros_like(volume, requires_grad=True)
    stage_axis_slices(grad, 0.4, 3).real.sum().backward()  # differentiable in the volume
    assert grad.grad is not None and float(grad.grad.real.abs().sum()) > 0
    with pytest.raises(ValueError, match="dividing the volume depth"):
        stage_axis_slices(volume, 0.1, 5)


def test_batched_plane_wave_images_equal_the_step_by_step_model():
    """One Fourier product for the last propagation, the shift and the transfer, and B
    tilts at once, give the images of exit wave → Fourier shift → transfer, tilt by tilt."""
    from napari_ptychotomo.joint.forward import tilt_slices
    from napari_ptychotomo.physics import exit_wave, shift_waves, transmission

    rng = np.random.default_rng(6)
    shape, slices = (8, 16, 16), 4
    volume = torch.tensor(rng.random(shape) * 30, dtype=torch.complex64)
    lam, sigma = float(wavelength(ENERGY)), float(interaction_constant(ENERGY))
    prop = fresnel_propagator(shape[1:], VOXEL, lam, shape[0] / slices * VOXEL)
    transfer = defocus_transfer(shape[1:], VOXEL, lam, [0.0, 40.0], 30.0, aberrations={"C30": 1e5})
    euler = torch.tensor([[0.0, 0.3, 0.0], [0.05, -0.6, 0.1]], requires_grad=True)
    shift = torch.tensor([[0.4, -1.3], [2.0, 0.25]])
    batch = plane_wave_images(volume, euler, shift, torch.stack([transfer, transfer]), prop, slices, VOXEL, sigma)
    for b in range(2):
        trans = transmission(tilt_slices(volume, euler[b], slices, VOXEL), sigma)
        wave = shift_waves(exit_wave(trans, torch.ones(shape[1:], dtype=torch.complex64), prop), shift[b][None])[0]
        expected = torch.abs(torch.fft.ifft2(torch.fft.fft2(wave) * transfer)) ** 2
        assert torch.allclose(batch[b], expected, atol=1e-5)
        single = plane_wave_images(volume, euler[b], shift[b], transfer, prop, slices, VOXEL, sigma)
        assert torch.allclose(single, batch[b], atol=1e-6)
