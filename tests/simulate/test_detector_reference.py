"""4D-STEM as a detector records it, against abTEM (``tests/data/abtem_detector_reference.h5``).

Au [001], 81.6 Å in 40 slices of 2.04 Å, 200 keV, 20 mrad, defocus 100 Å; abTEM simulated on
384² pixels of 0.06375 Å (antialias at 131 mrad) and cropped the far field to a 64² detector
of 1.0245 mrad, whose real-space window (24.48 Å) is the periodic cell. L1 is the mean over
positions of Σ|Î/ΣÎ − I/ΣI|.

What the numbers say (measured on this machine):

* our operators on abTEM's grid, fed abTEM's slices: 4e-6 with abTEM's antialias aperture
  (2/3 of Nyquist with a cosine taper 0.01/pixel wide), 7e-3 with our hard 2/3 cut;
* abTEM's patterns are not converged in the sampling: abTEM itself, run at 768², 1152² and
  1536² pixels (``tests/data/abtem_detector_converged.h5``), moves 0.025 away from its
  384² result and converges (1152² to 1536²: 1e-3). Our simulator, which refines its grid
  until the patterns stop changing, lies 1e-3 from that converged abTEM result and 0.025
  from the 384² one, as abTEM's own converged result does.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from napari_ptychotomo.physics import (
    forward_intensities,
    fresnel_propagator,
    make_probe,
    transmission,
)
from napari_ptychotomo.physics.grids import spatial_frequencies
from napari_ptychotomo.simulate import Specimen, simulate_scan
from napari_ptychotomo.simulate.detector_sampling import (
    CONVERGED_DISTANCE,
    automatic_oversampling,
    average_to_coarse_pixels,
    crop_and_bin,
)

GROUPS = ("mistilt_p0_p0", "mistilt_p2_m1")
DETECTOR = 64


def _l1(ours, reference):
    ours = ours.reshape(-1, *ours.shape[-2:])
    reference = reference.reshape(-1, *reference.shape[-2:])
    return float(
        np.abs(ours / ours.sum((1, 2), keepdims=True) - reference / reference.sum((1, 2), keepdims=True))
        .sum((1, 2))
        .mean()
    )


def _abtem_aperture(shape, pixel):
    """abTEM's antialias aperture: 1 below 2/3 of Nyquist minus a taper of 0.01/pixel, a
    cosine edge to 0 at 2/3 of Nyquist."""
    ky, kx = spatial_frequencies(shape, pixel)
    k = torch.sqrt(ky**2 + kx**2)
    cutoff, taper = (2 / 3) / (2 * pixel), 0.01 / pixel
    edge = 0.5 * (1 + torch.cos(math.pi * (k - cutoff + taper) / taper))
    return torch.where(k < cutoff - taper, torch.ones_like(k), torch.where(k > cutoff, torch.zeros_like(k), edge))


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("aperture", ["abtem", "ours"])
def test_multislice_on_the_fine_grid_matches_abtem_cropped_to_the_detector(abtem_detector_reference, group, aperture):
    ref = abtem_detector_reference
    attrs = dict(ref.attrs)
    n, pixel = int(attrs["simulation_gpts"]), float(attrs["simulation_pixel_A"])
    every = slice(None, None, 9)  # 8 of the 64 positions (the diagonal) keep it quick
    slices = torch.as_tensor(ref["truth/potential_unique_slices"][()])
    tilt = torch.as_tensor(ref[group].attrs["mistilt_mrad"], dtype=torch.float32)  # our column tilt
    wavelength, dz = float(attrs["wavelength_A"]), float(attrs["slice_thickness_A"])
    if aperture == "abtem":
        mask = _abtem_aperture((n, n), pixel)
        trans = torch.fft.ifft2(torch.fft.fft2(transmission(slices, float(attrs["sigma"]), band_limit=False)) * mask)
        prop = fresnel_propagator((n, n), pixel, wavelength, dz, tilt, band_limit=False) * mask
    else:
        trans = transmission(slices, float(attrs["sigma"]))
        prop = fresnel_propagator((n, n), pixel, wavelength, dz, tilt)
    # slice i is unique slice i % 2; the cell is periodic and as wide as the probe window
    trans = trans.repeat(int(attrs["n_slices"]) // 2, 2, 2)
    # the stored probe is a single row of abTEM's probe; ours from the calibration is its
    # equal (the other reference checks that to an overlap of 0.9999)
    probe = make_probe(
        (n, n),
        (pixel, pixel),
        float(attrs["energy_eV"]),
        float(attrs["semiangle_mrad"]),
        {"C10": -float(attrs["defocus_A"])},
    )
    positions = torch.as_tensor(ref["positions_yx_A"][()][every] / pixel + n, dtype=torch.float32)
    with torch.no_grad():
        patterns = forward_intensities(trans, probe[None], positions, prop)
    ours = crop_and_bin(patterns, (DETECTOR, DETECTOR), 1).numpy()
    reference = ref[group]["intensities"][()].reshape(-1, DETECTOR, DETECTOR)[every]
    # measured: abTEM's aperture 3.9e-6 (both groups); our hard cut 7.1e-3 (both)
    assert _l1(ours, reference) <= (1e-3 if aperture == "abtem" else 1e-2)


def _periodic_au(ref, copies=1):
    """The reference's atoms repeated ``copies`` cells each way around the cell, as a
    Specimen whose centre (where the simulator centres its scan) is the scan's centre."""
    attrs = dict(ref.attrs)
    cell = float(attrs["cell_xy_A"])
    atoms = ref["truth/atom_positions_zyx_A"][()].astype(np.float64)
    shifts = [(0.0, iy * cell, ix * cell) for iy in range(-copies, copies + 1) for ix in range(-copies, copies + 1)]
    positions = np.concatenate([atoms + s for s in shifts])
    numbers = np.tile(ref["truth/atomic_numbers"][()], len(shifts))
    side = (2 * copies + 1) * cell
    centre = ref["positions_yx_A"][()].mean(0)
    return Specimen(
        positions + [0.0, side / 2 - centre[0], side / 2 - centre[1]],
        numbers,
        [float(attrs["thickness_A"]), side, side],
    )


def _simulate(ref, group, **options):
    attrs = dict(ref.attrs)
    defaults = dict(
        energy_eV=float(attrs["energy_eV"]),
        semiangle_mrad=float(attrs["semiangle_mrad"]),
        defocus=float(attrs["defocus_A"]),
        scan_shape=tuple(attrs["scan_shape"]),
        scan_step=float(attrs["scan_step_A"]),
        detector_shape=(DETECTOR, DETECTOR),
        detector_sampling_mrad=float(attrs["detector_sampling_mrad"]),
        num_slices=None,
        slice_thickness=float(attrs["slice_thickness_A"]),
        mistilt_mrad=tuple(ref[group].attrs["mistilt_mrad"]),
    )
    # 3×3 cells cover the simulated field (the scan, 2 Å margins and one 24.48 Å window)
    return simulate_scan(_periodic_au(ref), **{**defaults, **options})


CORNERS = (slice(None, None, 7), slice(None, None, 7))  # the 4 corners of the 8×8 raster


@pytest.mark.slow
@pytest.mark.parametrize("group", GROUPS)
def test_simulator_at_its_default_sampling_matches_converged_abtem(
    abtem_detector_reference, abtem_detector_converged, group
):
    # ~45 s per group on two cores: the search (3, 5, 8, 12, 18, 27) at the 4 positions,
    # then the 4 at 1152² pixels
    ref = abtem_detector_reference
    scan = _simulate(ref, group, scan_shape=(2, 2), scan_step=7 * float(ref.attrs["scan_step_A"]))
    # the search stops at 18: refining to 27 moves a pattern by at most 3.5e-3 (12 to 18:
    # 1.4e-2)
    assert scan.truth["oversampling"] == 18
    assert [f for f, _ in scan.truth["oversampling_search"]] == [3, 5, 8, 12, 18]
    assert scan.truth["intensity_kept"].min() > 0.99  # measured 0.997
    # the reference's frame: the specimen's, less the shift that centred the scan in it
    offset = scan.truth["specimen_offset"][1:] + 1.5 * float(ref.attrs["cell_xy_A"]) - ref["positions_yx_A"][()].mean(0)
    corners = ref["positions_yx_A"][()].reshape(8, 8, 2)[CORNERS].reshape(-1, 2)
    np.testing.assert_allclose(scan.positions - offset, corners, atol=1e-9)
    np.testing.assert_allclose(abtem_detector_converged["positions_yx_A"][()], corners)
    # measured: 1.1e-3 / 1.2e-3 from converged abTEM (abTEM's 1152² result lies 1.0e-3 from
    # it); 0.025 / 0.026 from the stored 384² patterns, which abTEM's own converged result
    # lies 0.025 / 0.026 from: the 1e-2 asked against those is out of reach of any
    # converged simulation, abTEM's included
    assert _l1(scan.intensities, abtem_detector_converged[group]["intensities"][()]) <= 3e-3
    stored = ref[group]["intensities"][()][CORNERS]
    assert _l1(scan.intensities, stored) <= 1.1 * abtem_detector_converged[group].attrs["distance_from_gpts_384"]


@pytest.mark.parametrize("group", GROUPS)
def test_simulator_at_the_detectors_least_sampling_is_far_from_abtem_and_says_so(abtem_detector_reference, group):
    ref = abtem_detector_reference
    # 82 Å of Au scatter 17 % of the beam beyond the detector's least antialias (66 mrad)
    with pytest.warns(UserWarning, match="not converged"):
        scan = _simulate(ref, group, oversampling="detector")
    assert scan.truth["oversampling"] == automatic_oversampling((DETECTOR, DETECTOR)) == 3
    assert scan.truth["oversampling_search"] == []
    reference = ref[group]["intensities"][()]
    # measured: 0.172 / 0.176 (the detector's own grid, oversampling 1: 0.72 / 0.74)
    assert _l1(scan.intensities, reference) <= 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        old = _simulate(ref, group, oversampling=1)
    assert _l1(scan.intensities, reference) < 0.3 * _l1(old.intensities, reference)


def test_automatic_oversampling_refines_until_the_patterns_stop_changing():
    # one Si atom: the detector's least f (3) already converges (measured: the pattern moves
    # by 4e-5 at f = 5), the search costs one run; a 60 Å Pt column needs 18 (measured
    # 0.086, 0.032, 0.0092, 0.0100, 0.0030 from f = 3, 5, 8, 12, 18 to the next f)
    thin = Specimen(np.array([[1.0, 6.0, 6.0]]), [14], np.array([2.0, 12.0, 12.0]))
    options = dict(scan_shape=(1, 1), detector_shape=(32, 32), semiangle_mrad=25.0)
    scan = simulate_scan(thin, num_slices=1, **options)
    ((f, moved),) = scan.truth["oversampling_search"]
    assert scan.truth["oversampling"] == f == 3 and moved <= CONVERGED_DISTANCE
    column = Specimen(np.array([[z, 6.0, 6.0] for z in np.arange(1.0, 60.0, 2.0)]), [78] * 30, [60.0, 12.0, 12.0])
    scan = simulate_scan(column, num_slices=30, **options)
    search = scan.truth["oversampling_search"]
    assert scan.truth["oversampling"] > 3 and search[-1][1] <= CONVERGED_DISTANCE < search[-2][1]
    # each step of the search is the 1.5× refinement, and the chosen f is what ran
    assert [f for f, _ in search] == [3, 5, 8, 12, 18][: len(search)]
    again = simulate_scan(column, num_slices=30, oversampling=scan.truth["oversampling"], **options)
    np.testing.assert_array_equal(again.intensities, scan.intensities)


def test_sampling_search_stops_at_the_largest_grid_and_says_so(monkeypatch):
    from napari_ptychotomo.simulate import detector_sampling

    def patterns_at(f):  # a pattern that changes by 0.02 at every refinement
        pattern = np.zeros((1, 4, 4))
        pattern[0, 0, 0], pattern[0, 1, 1] = 1.0, 0.01 * f
        return pattern

    monkeypatch.setattr(detector_sampling, "MAX_SIMULATION_PIXELS", 12 * 64)
    with pytest.warns(UserWarning, match="from oversampling 8 to 12"):
        f, search = detector_sampling.converged_oversampling(patterns_at, 3, 64)
    assert f == 12 and [k for k, _ in search] == [3, 5, 8]
    # a detector so large that the least f already fills the largest grid: no search
    with pytest.warns(UserWarning, match="unchecked"):
        assert detector_sampling.converged_oversampling(patterns_at, 3, 256) == (3, [])


def test_binned_far_field_keeps_the_zero_frequency_pixel_and_the_counts():
    patterns = torch.zeros((1, 30, 30))
    patterns[0, 15, 15] = 1.0  # zero frequency of a 30² grid, b = 3 over a 10² detector
    patterns[0, 15 + 3, 15 - 4] = 2.0  # within the detector pixel (1, −1) from zero
    binned = crop_and_bin(patterns, (10, 10), 3)
    assert binned[0, 5, 5] == 1.0 and binned[0, 6, 4] == 2.0 and binned.sum() == 3.0
    fine = torch.rand(2, 12, 18, dtype=torch.float64)
    for factor in (2, 3):
        coarse = average_to_coarse_pixels(fine, factor)
        assert coarse.shape == (2, 12 // factor, 18 // factor)
        torch.testing.assert_close(coarse.mean(dim=(-2, -1)), fine.mean(dim=(-2, -1)))


def test_binning_sums_the_pixels_of_a_three_times_finer_detector():
    # 32 pixels of 3 mrad binned 3×3 from a window three times wider than 1/Δk is the same
    # simulation (same window, pixel and probe) as 96 pixels of 1 mrad, summed in blocks
    # centred on the zero-frequency pixel
    atom = Specimen(np.array([[1.0, 6.0, 6.0]]), [78], np.array([2.0, 12.0, 12.0]))
    options = dict(scan_shape=(2, 2), scan_step=0.5, num_slices=1, oversampling=2)
    binned = simulate_scan(atom, detector_shape=(32, 32), detector_sampling_mrad=3.0, detector_binning=3, **options)
    fine = simulate_scan(atom, detector_shape=(96, 96), detector_sampling_mrad=1.0, **options)
    assert binned.truth["probe"].shape == (32, 32) and binned.truth["detector_binning"] == 3
    summed = crop_and_bin(torch.as_tensor(fine.intensities.reshape(4, 96, 96)), (32, 32), 3).numpy()
    # the first row and column of blocks would reach past the finer detector's edge
    np.testing.assert_allclose(
        binned.intensities.reshape(4, 32, 32)[:, 1:, 1:], summed[:, 1:, 1:], rtol=1e-4, atol=1e-9
    )


@pytest.mark.parametrize(
    "bad",
    [
        dict(oversampling=0),
        dict(oversampling=2.5),
        dict(oversampling="fine"),
        dict(detector_binning=2),
        dict(detector_binning=0),
    ],
)
def test_sampling_factors_that_do_not_fit_the_detector_are_explained(bad):
    atom = Specimen(np.array([[1.0, 6.0, 6.0]]), [78], np.array([2.0, 12.0, 12.0]))
    with pytest.raises(ValueError, match="oversampling|detector_binning"):
        simulate_scan(atom, scan_shape=(1, 1), detector_shape=(16, 16), num_slices=1, **bad)


def test_truth_is_given_on_the_detector_grid_and_on_the_simulation_grid():
    atom = Specimen(np.array([[1.0, 6.0, 6.0]]), [78], np.array([2.0, 12.0, 12.0]))
    scan = simulate_scan(atom, scan_shape=(2, 2), scan_step=0.5, detector_shape=(32, 32), num_slices=1)
    truth = scan.truth
    f = truth["oversampling"]
    # the 4 patterns around a Pt atom move by at most 4.4e-3 from f = 3 to 5
    assert f == 3 and truth["probe"].shape == (32, 32)
    assert truth["simulation_potential"].shape[1:] == tuple(f * s for s in truth["potential"].shape[1:])
    np.testing.assert_allclose(truth["simulation_pixel_size"], np.array(truth["pixel_size"]) / f)
    # the detector-grid potential is the simulated one averaged over each detector pixel
    np.testing.assert_allclose(truth["potential"].mean(), truth["simulation_potential"].mean(), rtol=1e-5)
    assert truth["intensity_kept"].shape == (4,) and truth["intensity_kept"].min() > 0.95


def test_automatic_oversampling_puts_the_antialias_beyond_the_detector_corner():
    # antialias f·min(N)·Δk/3 against the corner Δk·√(Ny² + Nx²)/2, with a 1.25 margin
    assert automatic_oversampling((64, 64)) == 3  # antialias at 1.41× the corner
    assert automatic_oversampling((32, 32)) == 3
    assert automatic_oversampling((64, 32)) == 5  # the 32-pixel axis has the coarser pixel
    for shape in ((64, 64), (48, 32), (128, 96)):
        f = automatic_oversampling(shape)
        antialias, corner = f * min(shape) / 3, np.hypot(*shape) / 2
        assert antialias >= 1.25 * corner and (f - 1) * min(shape) / 3 < 1.25 * corner
