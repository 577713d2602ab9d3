"""The end-to-end start volume is checked against the memory available before it is
allocated (a 1024³ complex volume is 8 GiB on the host alone)."""

import numpy as np
import pytest

from napari_ptychotomo.data import Volume
from napari_ptychotomo.io import guards
from napari_ptychotomo.joint import JointParams, reconstruct_joint, reconstruct_plane_wave, setup

from .conftest import hrtem_series, stem_series

GiB = 1 << 30


@pytest.fixture(scope="module")
def series():
    return stem_series(np.zeros((16, 24, 24), np.complex64), 0.5, [-30.0, 0.0, 30.0], window=16, scan=(3, 3), step=1.0)


@pytest.fixture
def four_gib(monkeypatch):
    monkeypatch.setattr(guards, "memory_limit", lambda: (4 * GiB, "a test limit of 4 GiB"))


def _never_allocate(monkeypatch):
    """Fail on any numpy allocation of a volume (more than 10⁷ elements)."""
    zeros = np.zeros

    def refuse(shape, *args, **kwargs):
        if np.prod(shape) > 1e7:
            raise AssertionError(f"a {shape} array was allocated before the memory check")
        return zeros(shape, *args, **kwargs)

    monkeypatch.setattr(setup.np, "zeros", refuse)


def test_a_huge_start_volume_is_refused_before_it_is_allocated(series, four_gib, monkeypatch):
    _never_allocate(monkeypatch)
    params = JointParams(iterations=1, num_slices=4, volume_shape=(1024, 1024, 1024))
    with pytest.raises(
        MemoryError,
        match=r"end-to-end volume of 1024×1024×1024 voxels "
        r"\(end_to_end\.volume_shape.*needs 8\.00 GiB before any batch.*"
        r"a test limit of 4 GiB",
    ):
        reconstruct_joint(series, params=params, device="cpu")


def test_the_engines_fixed_memory_is_checked_before_the_start_volume(series, four_gib, monkeypatch):
    """256³ fits on the host as a volume (128 MiB) but not the run on the CPU (~3 GiB)."""
    _never_allocate(monkeypatch)
    params = JointParams(iterations=1, num_slices=4, volume_shape=(256, 512, 512))
    with pytest.raises(MemoryError, match=r"256×512×512 voxels.*before any batch"):
        reconstruct_joint(series, params=params, device="cpu")


def test_a_given_start_volume_counts_twice(series, four_gib):
    setup.check_start_memory((512, 512, 512), 16, 1, 4, given=False)  # 1 GiB: fits
    with pytest.raises(MemoryError, match="768×768×768"):
        setup.check_start_memory((768, 768, 768), 16, 1, 4, given=True)  # 2 × 3.4 GiB
    start = Volume(np.zeros((16, 24, 24), np.float32), 0.5, units="V")
    state = setup.start_state(series, start, 1, 4, (16, 24, 24), device="cpu")  # small: fine
    assert state.volume.shape == (16, 24, 24)


def test_a_huge_plane_wave_volume_is_refused_before_it_is_allocated(four_gib, monkeypatch):
    from napari_ptychotomo.joint import plane_wave

    series = hrtem_series(np.zeros((8, 16, 16), np.complex64), 0.5, [-30.0, 30.0], [0.0, 50.0])
    _never_allocate(monkeypatch)
    monkeypatch.setattr(plane_wave.np, "zeros", setup.np.zeros)  # the same guard in plane_wave
    params = JointParams(iterations=1, num_slices=4, volume_shape=(4 * 1024 * 1024, 16, 16))
    with pytest.raises(MemoryError, match=r"plane-wave volume of 4194304×16×16 voxels \(volume_shape\)"):
        reconstruct_plane_wave(series, params=params, device="cpu")
