"""Atom tracing on a noisy plane-wave (HRTEM) reconstruction made with the package's own
simulator: a small Au particle with a few light Si / O atoms on one facet, a tilt ×
defocus series with Poisson noise, :func:`reconstruct_plane_wave`, then
:func:`trace_atoms` with its defaults, scored against the true atoms.

Few tilts for the particle's size leave streaks along the lattice rows in the tilt plane
(x, z); where they run out of the particle or between rows they carry bumps that a
band-pass takes for atoms. The tracer's bridge and intensity criteria drop
them. The full-size case (≈ 180 atoms, 31 tilts, 128² images) is
``benchmarks/atoms.py --hrtem``.
"""

from __future__ import annotations

import pytest
from hrtem_particle_case import reconstructed_case, split_score

from napari_ptychotomo import trace_atoms


@pytest.fixture(scope="module")
def reconstruction():
    """46 Au and 3 light atoms (Si, O, O) 1.9 Å above the +y facet (the tilt axis: no
    streaks there), 21 tilts over ±90°, 3 defoci, 64² images, 1000 e/Å² per image;
    plane-wave tomography with 30 iterations, 8 slices, TV 0.1 V."""
    case = reconstructed_case(
        size=12.0, facet=3.5, light=("Si", "O", "O"), pixels=64, n_tilts=21, iterations=30, num_slices=8
    )
    return case["volume"], case["truth"], case["numbers"]


def test_plane_wave_reconstruction_is_traced_without_ghost_atoms(reconstruction):
    """The targets: heavy recall ≥ 99.5 %, false positives ≤ 1 % of the true atoms (here:
    none), RMS ≤ 0.1 Å, light recall ≥ 90 %, species ≥ 97 %. Measured: 46 / 46 Au, 3 / 3
    light, RMS 0.048 Å, species all right, no false atom."""
    volume, truth, numbers = reconstruction
    score, heavy, light = split_score(trace_atoms(volume, device="cpu"), truth, numbers)
    assert heavy >= 0.995
    assert score["false_positives"] == 0
    assert score["rms_error_3d"] <= 0.06
    assert light >= 0.9
    assert score["species_accuracy"] >= 0.97


def test_without_the_ghost_criteria_the_streaks_give_false_atoms(reconstruction):
    volume, truth, numbers = reconstruction
    loose = trace_atoms(volume, device="cpu", max_bridge=1e6, min_relative_intensity=0.05)
    score, heavy, _ = split_score(loose, truth, numbers)
    assert heavy >= 0.995
    assert score["false_positive_rate"] >= 0.5  # measured 70 of 49 (143 %)
