import pytest

from napari_ptychotomo.physics import interaction_constant, wavelength


@pytest.mark.parametrize(
    "energy_eV, lam, sigma",
    [(200e3, 0.025079, 7.2884e-4), (300e3, 0.019687, 6.5262e-4)],
)
def test_wavelength_and_interaction_constant_match_published_values(energy_eV, lam, sigma):
    assert wavelength(energy_eV) == pytest.approx(lam, abs=5e-7)
    assert interaction_constant(energy_eV) == pytest.approx(sigma, rel=1e-4)


def test_wavelength_is_relativistic():
    # the non-relativistic value h / sqrt(2 m E) is 3 % too long at 300 keV
    non_relativistic = 12.2643 / (300e3) ** 0.5
    assert wavelength(300e3) < 0.97 * non_relativistic


def test_angle_and_frequency_conversions_invert_each_other():
    from napari_ptychotomo.optics import inverse_angstrom_to_mrad, mrad_to_inverse_angstrom

    # 20 mrad at 200 keV is 0.020 / 0.025079 Å = 0.7975 Å⁻¹
    assert mrad_to_inverse_angstrom(20.0, 200e3) == pytest.approx(0.7975, abs=1e-4)
    assert inverse_angstrom_to_mrad(0.7975, 200e3) == pytest.approx(20.0, abs=3e-3)
    assert inverse_angstrom_to_mrad(mrad_to_inverse_angstrom(7.3, 300e3), 300e3) == pytest.approx(7.3)


def test_phase_shift_is_the_phase_of_the_transmission_for_numpy_and_torch():
    import numpy as np
    import torch

    from napari_ptychotomo.optics import phase_shift
    from napari_ptychotomo.physics import transmission

    sigma = float(interaction_constant(300e3))
    potential = np.array([[10.0 + 2.0j, -5.0 + 0.5j], [300.0, 0.0]], dtype=np.complex64)  # V·Å
    expected = sigma * np.array([[10.0, -5.0], [300.0, 0.0]])
    assert np.allclose(phase_shift(potential, sigma), expected, rtol=1e-6)
    assert np.allclose(phase_shift(potential.real, sigma), expected, rtol=1e-6)
    t = transmission(torch.from_numpy(potential), sigma, band_limit=False)
    assert torch.allclose(phase_shift(torch.from_numpy(potential), sigma), torch.angle(t), atol=1e-6)
