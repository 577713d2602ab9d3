"""A noisy plane-wave (HRTEM) case for atom tracing, made with the package's own simulator:
an Au particle with a few light atoms on one facet, its tilt × defocus series with Poisson
noise, and its plane-wave reconstruction. Used by test_atom_tracing_hrtem.py (small) and
benchmarks/atoms.py ``--hrtem`` (the full size)."""

from __future__ import annotations

import time

import numpy as np

from napari_ptychotomo.joint import JointParams, reconstruct_plane_wave
from napari_ptychotomo.simulate import Specimen, fcc_nanoparticle, simulate_hrtem_series

PIXEL = 0.25  # Å
AU_LATTICE = 4.078  # Å
DEFOCI = (-100.0, 0.0, 100.0)  # Å


def au_particle_with_light_atoms(size, facet, light, pixels, axis=1, height=1.9, seed=0):
    """An Au sphere ``size`` Å across cut by a {100} facet ``facet`` Å from its centre on
    the + side of ``axis`` (0, 1, 2 = z, y, x), with the ``light`` elements on bridge sites
    ``height`` Å above that facet, at least 2.9 Å apart; centred in a cubic cell of
    ``pixels`` pixels whose centre falls on pixel (pixels − 1) / 2, the reconstruction's
    rotation centre."""
    particle = fcc_nanoparticle("Au", size, "sphere", vacuum=0.0)
    order = [a for a in range(3) if a != axis] + [axis]  # the facet's normal last
    xyz = (particle.positions - particle.positions.mean(0))[:, order]
    xyz = xyz[xyz[:, 2] <= facet]
    top = xyz[:, 2].max()
    quarter = AU_LATTICE / 4
    offsets = [(quarter, quarter), (quarter, -quarter), (-quarter, quarter), (-quarter, -quarter)]
    surface = xyz[np.abs(xyz[:, 2] - top) < 0.1]
    sites = np.array([[s[0] + du, s[1] + dv, top + height] for s in surface for du, dv in offsets])
    sites = np.unique(np.round(sites, 3), axis=0)
    chosen = []
    for k in np.random.default_rng(seed).permutation(len(sites)):
        if all(np.linalg.norm(sites[k] - c) >= 2.9 for c in chosen):
            chosen.append(sites[k])
        if len(chosen) == len(light):
            break
    positions = np.concatenate([xyz, np.array(chosen)])[:, np.argsort(order)]
    side = (pixels - 0.999) * PIXEL
    return Specimen(
        positions - positions.mean(0) + side / 2,
        ["Au"] * len(xyz) + list(light),
        np.full(3, side),
        {"name": "Au particle with light atoms on a facet"},
    )


def noisy_series(particle, n_tilts, dose, seed):
    """The simulator's series (its defaults; 0.25 Å pixels, defoci ``DEFOCI`` measured from
    the rotation centre's plane, Poisson noise at ``dose`` e/Å² per image); the engine
    refers them to its own volume by the series' ``defocus_reference``."""
    return simulate_hrtem_series(
        particle, np.linspace(-90.0, 90.0, n_tilts), DEFOCI, pixel_size=PIXEL, dose=dose, seed=seed
    )


def reconstructed_case(
    *, size, facet, light, pixels, n_tilts, iterations, num_slices, axis=1, dose=1000.0, seed=5
) -> dict:
    """Simulate and reconstruct (plane-wave tomography, TV 0.1 V, FISTA step 4, on the CPU).

    Returns ``volume`` (the reconstruction's Volume), ``truth`` (n, 3) Å in its frame,
    ``numbers`` (n,), ``seconds`` of the reconstruction and ``loss`` (first, last)."""
    particle = au_particle_with_light_atoms(size, facet, light, pixels, axis=axis)
    series = noisy_series(particle, n_tilts, dose, seed)
    params = JointParams(
        iterations=iterations, num_slices=num_slices, tv_weight=0.1, plane_wave_step=4.0, volume_shape=(pixels,) * 3
    )
    start = time.perf_counter()
    result = reconstruct_plane_wave(series, params=params, device="cpu")
    seconds = time.perf_counter() - start
    truth = particle.positions - particle.centre + (pixels - 1) / 2 * PIXEL
    return {
        "volume": result.volume,
        "truth": truth,
        "numbers": particle.numbers,
        "seconds": seconds,
        "loss": (result.loss_history[0], result.loss_history[-1]),
    }


def split_score(traced, truth, numbers, heavy_number=79, radius=1.0):
    """:func:`score_atoms` within ``radius`` Å (species: heavy 1, light 0) and the recall of
    the heavy and the light atoms apart."""
    from napari_ptychotomo import score_atoms

    heavy = np.asarray(numbers) == heavy_number
    score = score_atoms(traced, (truth, heavy.astype(int)), radius=radius)
    found = np.zeros(len(truth), bool)
    found[score["matches"][1]] = True
    return score, float(found[heavy].mean()), float(found[~heavy].mean()) if (~heavy).any() else float("nan")
