"""Atom tracing on a noisy plane-wave (HRTEM) reconstruction made with the package's own
simulator: a small Au particle with a few light Si / O atoms on one facet, a tilt ×
defocus series with Poisson noise, :func:`reconstruct_plane_wave`, then
:func:`trace_atoms` with its defaults, scored against the true atoms.

Few tilts for the particle's size leave streaks along the lattice rows in the tilt plane
(x, z); where they run out of the particle or between rows they carry bumps that a
band-pass takes for atoms. The tracer's bridge, relative-width and intensity criteria
drop them. The full-size case (≈ 180 atoms, 31 tilts, 128² images) is
``benchmarks/atoms.py --hrtem``.
"""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo import score_atoms, trace_atoms
from napari_ptychotomo.joint import JointParams, reconstruct_plane_wave
from napari_ptychotomo.simulate import Specimen, fcc_nanoparticle, simulate_hrtem_series

PIXEL = 0.25  # Å
AU_LATTICE = 4.078  # Å


def au_particle_with_light_atoms(size, facet, light, pixels, axis=1, height=1.9, seed=0):
    """An Au sphere ``size`` Å across cut by a {100} facet ``facet`` Å from its centre on
    the + side of ``axis`` (0, 1, 2 = z, y, x), with the ``light`` elements on bridge sites
    ``height`` Å above that facet, at least 2.9 Å apart; centred in a cubic cell of
    ``pixels`` pixels whose centre falls on pixel (pixels − 1) / 2, the reconstruction's
    rotation centre."""
    particle = fcc_nanoparticle("Au", size, "sphere", vacuum=0.0)
    xyz = particle.positions - particle.positions.mean(0)
    xyz = xyz[xyz[:, axis] <= facet]
    top = xyz[:, axis].max()
    others = [a for a in range(3) if a != axis]
    surface = xyz[np.abs(xyz[:, axis] - top) < 0.1]
    quarter = AU_LATTICE / 4
    sites = []
    for atom in surface:
        for du, dv in ((quarter, quarter), (quarter, -quarter), (-quarter, quarter), (-quarter, -quarter)):
            site = atom.copy()
            site[others[0]] += du
            site[others[1]] += dv
            site[axis] = top + height
            sites.append(site)
    sites = np.unique(np.round(np.array(sites), 3), axis=0)
    chosen = []
    for k in np.random.default_rng(seed).permutation(len(sites)):
        if all(np.linalg.norm(sites[k] - c) >= 2.9 for c in chosen):
            chosen.append(sites[k])
        if len(chosen) == len(light):
            break
    positions = np.concatenate([xyz, np.array(chosen)])
    side = (pixels - 0.999) * PIXEL
    return Specimen(positions - positions.mean(0) + side / 2, ["Au"] * len(xyz) + list(light),
                    np.full(3, side), {"name": "Au particle with light atoms on a facet"})


def noisy_series_at_the_engines_defocus(particle, n_tilts, defoci, dose, seed, pixels):
    """The simulator's series (its defaults, 0.25 Å pixels, Poisson noise), its defoci moved
    from the exit surface of the simulator's slab to that of the engine's cubic volume:
    free propagation over a distance d is a change of defocus by d."""
    series = simulate_hrtem_series(particle, np.linspace(-90.0, 90.0, n_tilts), defoci, pixel_size=PIXEL,
                                   dose=dose, seed=seed)
    depth = 2 * (np.linalg.norm(particle.positions - particle.centre, axis=1).max() + 1.0)
    slab_exit = series.truth["num_slices"] * series.truth["slice_thickness"] - depth / 2
    for images in series.scans:
        images.defocus = np.asarray(images.defocus) + (pixels * PIXEL / 2 - slab_exit)
    return series


@pytest.fixture(scope="module")
def reconstruction():
    """46 Au and 3 light atoms (Si, O, O) 1.9 Å above the +y facet (the tilt axis: no
    streaks there), 21 tilts over ±90°, 3 defoci, 64² images, 1000 e/Å² per image;
    plane-wave tomography with 30 iterations, 8 slices, TV 0.1 V."""
    pixels = 64
    particle = au_particle_with_light_atoms(12.0, 3.5, ("Si", "O", "O"), pixels)
    series = noisy_series_at_the_engines_defocus(particle, 21, [-100.0, 0.0, 100.0], 1000.0, 5, pixels)
    params = JointParams(iterations=30, num_slices=8, tv_weight=0.1, plane_wave_step=4.0,
                         volume_shape=(pixels,) * 3)
    result = reconstruct_plane_wave(series, params=params, device="cpu")
    truth = particle.positions - particle.centre + (pixels - 1) / 2 * PIXEL
    return result.volume, truth, particle.numbers


def split_score(traced, truth, numbers):
    """score_atoms (within 1 Å) with the recall of heavy and light atoms apart."""
    heavy = numbers == 79
    score = score_atoms(traced, (truth, heavy.astype(int)), radius=1.0)
    found = np.zeros(len(truth), bool)
    found[score["matches"][1]] = True
    return score, found[heavy].mean(), found[~heavy].mean()


def test_plane_wave_reconstruction_is_traced_without_ghost_atoms(reconstruction):
    volume, truth, numbers = reconstruction
    score, heavy, light = split_score(trace_atoms(volume, device="cpu"), truth, numbers)
    print(f"heavy recall {heavy:.4f}, light {light:.2f}, false positives {score['false_positives']} "
          f"({score['false_positive_rate']:.3f}), RMS {score['rms_error_3d']:.3f} Å, species {score['species_accuracy']:.3f}")
    assert heavy >= 0.995
    assert score["false_positive_rate"] <= 0.03
    assert score["rms_error_3d"] <= 0.1
    assert light >= 0.6
    assert score["species_accuracy"] >= 0.97


def test_without_the_ghost_criteria_the_streaks_give_false_atoms(reconstruction):
    volume, truth, numbers = reconstruction
    loose = trace_atoms(volume, device="cpu", max_bridge=1e6, max_relative_width=1e6, min_relative_intensity=0.05)
    score, heavy, _ = split_score(loose, truth, numbers)
    print(f"loose: false positives {score['false_positives']}, species {score['species_accuracy']:.3f}")
    assert heavy >= 0.995
    assert score["false_positive_rate"] >= 0.3
