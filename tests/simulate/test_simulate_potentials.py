"""Atomic potentials: analytic profiles, projected slices and 3D volumes in the right units."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo.simulate import (
    atom_potential,
    atom_projected_potential,
    atomic_number,
    potential_volume,
    projected_potential_slices,
    scattering_factor,
)
from napari_ptychotomo.simulate.elements import POTENTIAL_PREFACTOR

SPECIES = ("O", "Si", "Sr", "Pt")


def test_potential_prefactor_is_h2_over_2pi_m0_e_in_volt_angstrom2():
    # 2π a₀ e/(4πε₀) = 2π · 0.529177 Å · 14.39964 V·Å
    assert POTENTIAL_PREFACTOR == pytest.approx(2 * np.pi * 0.52917721 * 14.3996454, rel=1e-6)


def test_symbols_and_numbers_round_trip():
    assert [atomic_number(s) for s in ("H", "O", "Al", "Si", "Ti", "Sr", "Pt", "Au")] == [
        1,
        8,
        13,
        14,
        22,
        38,
        78,
        79,
    ]
    with pytest.raises(ValueError, match="unknown chemical symbol"):
        atomic_number("Xx")


@pytest.mark.parametrize("parameterisation", ["lobato", "kirkland"])
@pytest.mark.parametrize("element", SPECIES)
def test_projected_potential_matches_abtem_profile(abtem_reference, parameterisation, element):
    group = abtem_reference["single_atom_projected_potential"]
    r = group["r_A"][()]
    reference = group[f"{parameterisation}_{element}"][()]
    ours = atom_projected_potential(r, element, parameterisation)
    far = r >= 0.1
    np.testing.assert_allclose(ours[far], reference[far], rtol=1e-3)


@pytest.mark.parametrize("parameterisation", ["lobato", "kirkland"])
def test_projected_potential_is_the_z_integral_of_the_potential(parameterisation):
    rho = np.array([0.2, 0.7, 1.5])
    z = np.linspace(-12, 12, 200001)
    r = np.sqrt(rho[:, None] ** 2 + z[None, :] ** 2)
    numeric = np.trapezoid(atom_potential(r, "Sr", parameterisation), z, axis=1)
    np.testing.assert_allclose(atom_projected_potential(rho, "Sr", parameterisation), numeric, rtol=1e-4)


@pytest.mark.parametrize("parameterisation", ["lobato", "kirkland"])
def test_scattering_factor_at_zero_is_the_integrated_projected_potential(parameterisation):
    # ∫ v_z d²r = C f_e(0): the forward-scattering amplitude is the potential's volume integral
    rho = np.geomspace(1e-6, 30, 400001)
    integral = np.trapezoid(2 * np.pi * rho * atom_projected_potential(rho, "Ti", parameterisation), rho)
    expected = POTENTIAL_PREFACTOR * scattering_factor(0.0, "Ti", parameterisation)
    assert integral == pytest.approx(expected, rel=2e-3)


def test_one_atom_slice_matches_analytic_projected_potential_in_volt_angstrom():
    # The slice is the projected potential band-limited at the grid's Nyquist frequency with
    # no roll-off, so single pixels ring (Gibbs, along the axes: up to 46 V·Å at 0.05 Å
    # pixels, 27 V·Å at 0.025 Å for Pt); averaged around the atom the profile is the
    # analytic one (measured: within 1.0 % at 0.025 Å pixels, 4.9 % at 0.05 Å).
    d, n = 0.025, 512
    y0, x0 = n * d / 2 + 0.013, n * d / 2 - 0.021
    slices = projected_potential_slices(np.array([[1.0, y0, x0]]), [78], (n, n), d, slice_thickness=2.0, num_slices=1)
    assert slices.shape == (1, n, n) and slices.dtype == np.float32
    grid = np.arange(n) * d
    rho = np.hypot(grid[:, None] - y0, grid[None, :] - x0)
    ring = (rho >= 0.3) & (rho <= 1.5)
    bins = np.round(rho[ring] / 0.05).astype(int)
    count = np.bincount(bins)
    used = count > 0
    ours = np.bincount(bins, slices[0][ring])[used] / count[used]
    analytic = np.bincount(bins, atom_projected_potential(rho[ring], "Pt"))[used] / count[used]
    np.testing.assert_allclose(ours, analytic, rtol=0.015)
    # the total is exact: Σ v d² = C f_e(0)
    total = slices.sum(dtype=np.float64) * d * d
    assert total == pytest.approx(POTENTIAL_PREFACTOR * scattering_factor(0.0, "Pt"), rel=1e-4)


def test_atoms_go_to_the_slice_that_holds_their_depth():
    pos = np.array([[0.5, 2.0, 2.0], [2.6, 2.0, 2.0], [5.9, 2.0, 2.0]])
    slices = projected_potential_slices(pos, [8, 8, 8], (32, 32), 0.25, 2.0, 3)
    per_slice = slices.sum(axis=(1, 2))
    np.testing.assert_allclose(per_slice / per_slice[0], [1.0, 1.0, 1.0], rtol=1e-5)
    with pytest.raises(ValueError, match="outside the slices"):
        projected_potential_slices(pos, [8, 8, 8], (32, 32), 0.25, 2.0, 2)


def test_periodic_silicon_slices_match_abtem_bragg_reflections(abtem_reference):
    a = 5.431
    basis = np.array(
        [
            [0, 0, 0],
            [0, 0.5, 0.5],
            [0.5, 0, 0.5],
            [0.5, 0.5, 0],
            [0.25, 0.25, 0.25],
            [0.25, 0.75, 0.75],
            [0.75, 0.25, 0.75],
            [0.75, 0.75, 0.25],
        ]
    )
    cells = np.array([[i, j, k] for i in range(3) for j in range(3) for k in range(4)])
    xyz = ((basis[None] + cells[:, None]).reshape(-1, 3)) * a
    xyz[:, 2] += a / 8
    sampling = float(abtem_reference.attrs["sampling_A"])
    ours = projected_potential_slices(xyz[:, ::-1], np.full(len(xyz), 14), (128, 128), sampling, a / 4, 16)
    reference = abtem_reference["potential_slices"][()]
    assert ours.mean() == pytest.approx(reference.mean(), rel=1e-4)
    f_ours, f_ref = np.fft.fft2(ours), np.fft.fft2(reference)
    k = np.fft.fftfreq(128, sampling)
    q = np.hypot(k[:, None], k[None, :])
    strong = np.abs(f_ours) > 0.01 * np.abs(f_ours).max()
    low = strong & (q[None] < 0.6)  # abTEM's bilinear atom deposition damps higher orders
    assert low.sum() >= 16 * 13
    ratio = f_ref[low] / f_ours[low]
    np.testing.assert_allclose(np.abs(ratio), 1.0, atol=0.02)
    assert np.abs(np.angle(ratio)).max() < 1e-3


def _single_atom_volume(element, parameterisation="lobato"):
    n, d = 48, 0.25
    atom = np.array([[6.03, 5.91, 6.17]])
    volume = potential_volume(atom, [element], (n, n, n), d, parameterisation)
    g = np.arange(n) * d
    zz, yy, xx = np.meshgrid(g, g, g, indexing="ij")
    r = np.sqrt((zz - atom[0, 0]) ** 2 + (yy - atom[0, 1]) ** 2 + (xx - atom[0, 2]) ** 2)
    return volume, r, atom, d


@pytest.mark.parametrize("parameterisation", ["lobato", "kirkland"])
def test_volume_matches_analytic_potential_in_volt(parameterisation):
    volume, r, _, _ = _single_atom_volume("Pt", parameterisation)
    assert volume.dtype == np.float32 and volume.min() >= 0
    away = (r > 1.0) & (r < 3.5)
    np.testing.assert_allclose(volume[away], atom_potential(r[away], "Pt", parameterisation), rtol=1e-4)
    near = (r > 0.5) & (r <= 1.0)  # voxel averaging of a steep potential: a few %
    np.testing.assert_allclose(volume[near], atom_potential(r[near], "Pt", parameterisation), rtol=0.06)
    # the core is finite and of the right size: the voxel mean of V there is ~ 2000 V for Pt
    assert 1000 < volume.max() < 4000


def test_volume_summed_along_z_matches_projected_slices_away_from_cores():
    # fine sampling so that the band-limited slice and the voxel grid both resolve the atom
    n, d = 160, 0.05
    atom = np.array([[4.013, 3.991, 4.017]])
    volume = potential_volume(atom, [78], (n, n, n), d, cutoff=3.9)
    slices = projected_potential_slices(atom, [78], (n, n), d, 8.0, 1)[0]
    g = np.arange(n) * d
    rho = np.hypot(g[:, None] - atom[0, 1], g[None, :] - atom[0, 2])
    ring = (rho > 0.5) & (rho < 2.0)
    # averaged over rings 0.25 Å wide: single pixels of the slice ring at Nyquist (no roll-off)
    bins = np.floor(rho[ring] / 0.25).astype(int)
    count = np.bincount(bins)
    used = count > 0
    projected = np.bincount(bins, volume.sum(axis=0)[ring] * d)[used] / count[used]
    np.testing.assert_allclose(projected, np.bincount(bins, slices[ring])[used] / count[used], rtol=0.02)


def test_volume_origin_moves_the_grid_not_the_atom():
    atom = np.array([[3.0, 3.0, 3.0]])
    base = potential_volume(atom, [14], (16, 16, 16), 0.5)
    shifted = potential_volume(atom + 1.0, [14], (16, 16, 16), 0.5, origin=(1.0, 1.0, 1.0))
    np.testing.assert_allclose(shifted, base, rtol=1e-5, atol=1e-4)
    assert np.unravel_index(base.argmax(), base.shape) == (6, 6, 6)


def test_bad_inputs_are_explained():
    with pytest.raises(ValueError, match=r"expected \(n, 3\)"):
        potential_volume(np.zeros((3, 2)), [1, 1, 1], (8, 8, 8), 0.5)
    with pytest.raises(ValueError, match="one atomic number per atom"):
        potential_volume(np.zeros((3, 3)), [1, 1], (8, 8, 8), 0.5)
    with pytest.raises(ValueError, match="parameterisation"):
        projected_potential_slices(np.zeros((1, 3)), [1], (8, 8), 0.5, 1.0, 1, "peng")
