import math

import numpy as np
import pytest
import torch

from napari_ptychotomo.physics import band_limit_mask, fresnel_propagator, propagate, wavelength

LAMBDA = wavelength(300e3)


def test_plane_wave_through_vacuum_stays_a_plane_wave():
    wave = torch.ones(64, 64, dtype=torch.complex64)
    out = propagate(wave, fresnel_propagator((64, 64), 0.2, LAMBDA, 50.0, (2.0, -1.0)))
    assert torch.allclose(out, wave, atol=1e-5)


def test_propagators_compose_p_a_times_p_b_equals_p_a_plus_b():
    a = fresnel_propagator((32, 48), (0.2, 0.25), LAMBDA, 7.0, (1.0, 3.0), band_limit=False)
    b = fresnel_propagator((32, 48), (0.2, 0.25), LAMBDA, 11.0, (1.0, 3.0), band_limit=False)
    ab = fresnel_propagator((32, 48), (0.2, 0.25), LAMBDA, 18.0, (1.0, 3.0), band_limit=False)
    assert torch.allclose(a * b, ab, atol=1e-5)


@pytest.mark.parametrize("tilt_mrad", [(20.0, 0.0), (0.0, -15.0), (10.0, 10.0)])
def test_tilted_propagator_shifts_wave_by_dz_tan_theta(tilt_mrad):
    n, sampling, dz = 128, 0.1, 200.0
    y = (torch.arange(n) - n / 2) * sampling
    packet = torch.exp(-(y[:, None] ** 2 + y[None, :] ** 2) / (2 * 0.8**2)).to(torch.complex64)
    # no diffraction term: isolate the tilt (pure shear of the wave relative to the columns)
    out = propagate(packet, fresnel_propagator((n, n), sampling, 1e-9, dz, tilt_mrad, band_limit=False))
    weight = torch.abs(out) ** 2
    cy = float(torch.sum(weight * y[:, None]) / weight.sum())
    cx = float(torch.sum(weight * y[None, :]) / weight.sum())
    # the columns lean by +dz·tanθ over the slice; in the columns' frame the wave moves the
    # other way, by −dz·tanθ (DESIGN.md: this propagator reproduces column tilt +θ)
    expected_x = -dz * math.tan(tilt_mrad[0] * 1e-3)
    expected_y = -dz * math.tan(tilt_mrad[1] * 1e-3)
    assert cx == pytest.approx(expected_x, abs=0.01)
    assert cy == pytest.approx(expected_y, abs=0.01)


def test_intensity_is_conserved_when_the_band_limit_cuts_nothing():
    n = 64
    mask = band_limit_mask((n, n), 0.2)
    rng = np.random.default_rng(3)
    spectrum = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))) * mask.numpy()
    wave = torch.fft.ifft2(torch.tensor(spectrum, dtype=torch.complex64))
    out = propagate(wave, fresnel_propagator((n, n), 0.2, LAMBDA, 30.0, (5.0, -5.0)))
    before = float(torch.sum(torch.abs(wave) ** 2))
    assert float(torch.sum(torch.abs(out) ** 2)) == pytest.approx(before, rel=1e-5)


def test_band_limit_is_two_thirds_of_nyquist():
    mask = band_limit_mask((90, 90), 0.5)
    k = torch.fft.fftfreq(90, d=0.5)
    inside = k[mask[0]].abs().max().item()
    assert inside == pytest.approx(2 / 3 * 1.0, abs=1.0 / 45)
