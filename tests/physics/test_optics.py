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
