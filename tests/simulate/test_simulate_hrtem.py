"""The default plane-wave (HRTEM) sample: a small Si/SiO2-like particle over 180°, 3 defoci."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo.data import DefocusSeries
from napari_ptychotomo.simulate import Specimen, default_hrtem_sample, simulate_hrtem_series


def test_default_hrtem_sample_is_a_si_sio2_particle_over_180_degrees_at_3_defoci():
    series = default_hrtem_sample()
    series.validate()
    assert all(isinstance(s, DefocusSeries) for s in series.scans)
    angles = series.angles_deg
    assert len(angles) >= 8 and angles.max() - angles.min() + np.diff(angles).mean() == pytest.approx(180.0)
    for stack in series.scans:
        assert stack.images.shape[0] == 3 and stack.images.shape[1] == stack.images.shape[2]
        np.testing.assert_allclose(stack.defocus, [-100.0, 0.0, 100.0])
    numbers = series.truth["atoms"]["numbers"]
    assert set(np.unique(numbers).tolist()) == {8, 14}
    assert 50 < len(numbers) < 400  # small: the plane-wave demo runs in seconds
    volume = series.truth["volume"]
    assert np.iscomplexobj(volume.data)
    strong = volume.data.real > 10.0
    np.testing.assert_allclose(volume.data.imag[strong] / volume.data.real[strong], 0.05, rtol=1e-5)
    # absorption takes a little of the beam; the images stay normalised to a unit beam
    means = np.array([s.images.mean() for s in series.scans])
    assert np.all(means < 1.0) and np.all(means > 0.97)


def test_hrtem_absorption_darkens_the_image_where_the_atoms_are():
    column = Specimen(np.array([[2.0 + 2 * k, 6.0, 6.0] for k in range(4)]), [78] * 4, np.array([12.0, 12.0, 12.0]))
    options = dict(pixel_size=0.2, slice_thickness=2.0)
    clear = simulate_hrtem_series(column, [0.0], [0.0], **options).scans[0].images[0]
    dark = simulate_hrtem_series(column, [0.0], [0.0], absorption=0.1, **options).scans[0].images[0]
    far = np.zeros_like(clear, dtype=bool)
    far[:5, :5] = True  # a corner 5 Å from the column
    assert np.abs(dark[far] - clear[far]).max() < 2e-3
    assert dark.sum() < clear.sum() - 3.0  # several pixels' worth of beam lost at the column
    with pytest.raises(ValueError, match="absorption"):
        simulate_hrtem_series(column, [0.0], [0.0], absorption=-1.0, **options)
