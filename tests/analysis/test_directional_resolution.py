"""Directional (conical) FSC of a missing-wedge reconstruction and the per-axis power
spectra of Romanov et al."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo import directional_fsc
from napari_ptychotomo.analysis import axis_power_spectra
from napari_ptychotomo.analysis.directional import direction_vectors

SHAPE, VOXEL, SIGMA, NOISE, MAX_TILT = (64, 64, 64), 0.5, 0.6, 0.1, 60.0


def measured_region(kz, kx):
    """Fourier voxels seen by a tilt series about y over ±60°: the (kx, kz) direction within
    60° of kx; the 60° wedge around kz is missing."""
    inside = np.abs(kz) <= np.tan(np.deg2rad(MAX_TILT)) * np.abs(kx)
    return inside | ((kz == 0) & (kx == 0))


@pytest.fixture(scope="module")
def wedge_halves():
    """Two half-data 'reconstructions' of a blurred random volume: signal only where the
    tilt range measured it, independent noise everywhere (as reconstruction noise and
    artefacts are)."""
    rng = np.random.default_rng(1)
    kz, ky, kx = np.meshgrid(*[np.fft.fftfreq(n, d=VOXEL) for n in SHAPE], indexing="ij")
    gain = np.exp(-2 * np.pi**2 * SIGMA**2 * (kx**2 + ky**2 + kz**2))
    signal = np.fft.fftn(rng.standard_normal(SHAPE)) * gain * measured_region(kz, kx)
    return [np.fft.ifftn(signal).real + NOISE * rng.standard_normal(SHAPE) for _ in range(2)]


def measured_fraction_of_cone(axis, half_angle_deg, rng, n=400_000):
    """Monte-Carlo fraction of a double cone of directions that the tilt range measured."""
    v = rng.standard_normal((n, 3))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    in_cone = np.abs(v[:, axis]) >= np.cos(np.deg2rad(half_angle_deg))
    kz, kx = v[in_cone, 0], v[in_cone, 2]
    return np.mean(np.abs(kz) <= np.tan(np.deg2rad(MAX_TILT)) * np.abs(kx))


def expected_one_bit_resolution(fraction, counts, frequency):
    """First k where f·G²/(f·G² + σₙ²) falls below the one-bit threshold (cone FSC with a
    measured fraction f of its voxels carrying signal)."""
    k = np.linspace(0.05, frequency[-1], 20000)
    gain = np.exp(-4 * np.pi**2 * SIGMA**2 * k**2)
    curve = fraction * gain / (fraction * gain + NOISE**2)
    n = np.interp(k, frequency, counts)
    threshold = (0.5 + 2.4142 / np.sqrt(n)) / (1.5 + 1.4142 / np.sqrt(n))
    return 1 / k[np.argmax(curve < threshold)]


def test_missing_wedge_makes_z_resolution_worse_than_x_by_the_expected_factor(wedge_halves):
    rng = np.random.default_rng(2)
    table = directional_fsc(*wedge_halves, VOXEL, cone_half_angle_deg=45)
    expected = {}
    for name, axis in (("z", 0), ("x", 2)):
        fraction = measured_fraction_of_cone(axis, 45, rng)
        entry = table[name]
        expected[name] = expected_one_bit_resolution(fraction, entry["shell_counts"], entry["frequency"])
        assert entry["crossings"]["one_bit"] == pytest.approx(expected[name], rel=0.05), name
    factor = table["z"]["crossings"]["one_bit"] / table["x"]["crossings"]["one_bit"]
    # the test's statement: 45° cones, ±60° tilts: z is 1.18× worse than x (expected
    # from the measured fraction of the z cone), certainly more than 1.1×
    assert factor == pytest.approx(expected["z"] / expected["x"], rel=0.05)
    assert factor > 1.1
    assert table["anisotropy"]["one_bit"] == pytest.approx(factor, rel=1e-9)


def test_cone_inside_the_missing_wedge_has_no_resolution(wedge_halves):
    table = directional_fsc(*wedge_halves, VOXEL, directions=("x", "z"), cone_half_angle_deg=20)
    box = SHAPE[0] * VOXEL
    assert table["z"]["crossings"]["one_bit"] == pytest.approx(box)  # no better than the box
    assert table["x"]["crossings"]["one_bit"] < 2.0
    assert table["anisotropy"]["one_bit"] > 15


def test_isotropic_volume_has_no_anisotropy():
    rng = np.random.default_rng(3)
    shape = (48, 48, 48)
    k2 = sum(np.meshgrid(*[np.fft.fftfreq(n, d=VOXEL) ** 2 for n in shape], indexing="ij"))
    signal = np.fft.ifftn(np.fft.fftn(rng.standard_normal(shape)) * np.exp(-2 * np.pi**2 * SIGMA**2 * k2)).real
    a, b = (signal + NOISE * rng.standard_normal(shape) for _ in range(2))
    table = directional_fsc(a, b, VOXEL, directions={"x": "x", "diagonal": (1, 1, 1)})
    assert table["anisotropy"]["one_bit"] < 1.08
    assert np.allclose(table["diagonal"]["direction"], np.ones(3) / np.sqrt(3))


def test_direction_names_and_errors():
    assert set(direction_vectors(("x", "y", "z"))) == {"x", "y", "z"}
    assert np.allclose(direction_vectors("z")["z"], (1, 0, 0))
    with pytest.raises(ValueError, match="direction"):
        direction_vectors(("w",))
    with pytest.raises(ValueError, match="cone_half_angle_deg"):
        directional_fsc(np.zeros((8, 8, 8)), np.zeros((8, 8, 8)), 1.0, cone_half_angle_deg=120)


def lattice_volume(shape, voxel, spacing, sigma_zyx, noise, rng):
    """Gaussian blobs on a simple cubic lattice (anisotropic width σ (z, y, x) in Å) + noise."""
    grids = np.meshgrid(*[np.arange(n) * voxel for n in shape], indexing="ij")
    # periodic distance to the nearest lattice site along each axis
    r2 = sum(((g + spacing / 2) % spacing - spacing / 2) ** 2 / s**2 for g, s in zip(grids, sigma_zyx))
    volume = np.exp(-r2 / 2)
    return volume + noise * rng.standard_normal(shape) if noise else volume


def test_power_spectrum_last_peak_is_a_bragg_reflection_and_sees_anisotropic_blur():
    rng = np.random.default_rng(4)
    spacing, voxel = 2.0, 0.25  # 8 cells of 2 Å in a 16 Å box; reflections every 0.5 Å⁻¹
    volume = lattice_volume((64, 64, 64), voxel, spacing, (0.35, 0.15, 0.15), 0.3, rng)
    spectra = axis_power_spectra(volume, voxel)
    for name in ("z", "y", "x"):
        peaks = spectra[name]["peaks"]
        # every peak that stands out is a reflection h / a
        assert np.allclose(peaks * spacing, np.round(peaks * spacing), atol=1e-9), name
    assert spectra["x"]["resolution"] == pytest.approx(spectra["y"]["resolution"])
    assert spectra["z"]["resolution"] > 1.5 * spectra["x"]["resolution"]
    assert spectra["x"]["resolution"] <= 2.0 / 3  # the 1.5 Å⁻¹ reflection survives the 0.15 Å blur
    assert spectra["projections"]["z"].shape == (64, 64)


def test_noise_free_lattice_shows_every_reflection_to_nyquist():
    spacing, voxel = 2.0, 0.25
    volume = lattice_volume((32, 32, 32), voxel, spacing, (0.2, 0.2, 0.2), 0.0, None)
    spectra = axis_power_spectra(volume, voxel)
    # reflections at 0.5, 1.0, 1.5 Å⁻¹ (2.0 is Nyquist, the last bin, not a local maximum)
    assert np.allclose(spectra["x"]["peaks"], [0.5, 1.0, 1.5])
    assert spectra["x"]["resolution"] == pytest.approx(1 / 1.5)
