"""The end_to_end step on a plane-wave (HRTEM) project: the series' optics, or those of
``[end_to_end.optics]``, reach the engine; bad optics are refused naming the field."""

from __future__ import annotations

import numpy as np
import pytest

from napari_ptychotomo import Project, load, save
from napari_ptychotomo.data import DefocusSeries, TiltSeries
from napari_ptychotomo.pipeline import Pipeline
from napari_ptychotomo.pipeline.config import ConfigError, validate_config


@pytest.fixture(scope="module")
def hrtem_project(tmp_path_factory):
    rng = np.random.default_rng(0)
    stacks = [
        DefocusSeries(
            (1 + 0.1 * rng.standard_normal((2, 16, 16))).astype(np.float32),
            np.array([0.0, 50.0]),
            0.5,
            300e3,
            float(a),
            aperture_mrad=20.0,
            aberrations={"C30": 1e5},
        )
        for a in (-30.0, 30.0)
    ]
    path = tmp_path_factory.mktemp("hrtem") / "hrtem.ptycho.h5"
    save(Project(series=TiltSeries(stacks, [-30.0, 30.0])), path)
    return path


def _config(project, **end_to_end):
    return {
        "run": {"project": str(project), "steps": ["end_to_end"], "device": "cpu"},
        "input": {"simulate": "none"},
        "end_to_end": {"iterations": 2, "num_slices": 2, "volume_shape": [16, 16, 16], **end_to_end},
    }


def test_plane_wave_project_runs_with_the_series_optics_or_the_configured_ones(tmp_path, hrtem_project, monkeypatch):
    import napari_ptychotomo.joint.plane_wave as plane_wave

    seen = []
    original = plane_wave.plane_wave_steps

    def spy(series, *args, **kwargs):
        seen.append(series.scans[0])
        return original(series, *args, **kwargs)

    monkeypatch.setattr(plane_wave, "plane_wave_steps", spy)
    project = tmp_path / "a.ptycho.h5"
    project.write_bytes(hrtem_project.read_bytes())
    Pipeline(validate_config(_config(project)), report=lambda m: None).run()
    assert seen[-1].aperture_mrad == 20.0 and seen[-1].aberrations == {"C30": 1e5}
    optics = {"aperture_mrad": 15.0, "focal_spread": 30.0, "aberrations": {"C12": 10.0, "phi12": 0.2}}
    Pipeline(validate_config(_config(project, optics=optics, focal_spread_samples=5)), report=lambda m: None).run()
    used = seen[-1]
    assert used.aperture_mrad == 15.0 and used.focal_spread == 30.0 and used.aberrations == optics["aberrations"]
    volume = load(project, as_project=True).volumes["end-to-end"]
    assert volume.provenance["mode"] == "plane-wave"
    assert volume.provenance["optics"]["aperture_mrad"] == 15.0
    assert volume.provenance["focal_spread_samples"] == 5
    # the engine's own record stays under the step's: the atom tracer reads the tilt range
    assert volume.provenance["step"] == "end_to_end" and volume.provenance["engine"]["step"] == "plane-wave tomography"
    assert len(volume.provenance["tilt_range_deg"]) == 2
    assert load(project, as_project=True).series.scans[0].aperture_mrad == 20.0  # the data stay as recorded


@pytest.mark.parametrize(
    "optics, message",
    [
        ({"aperture": 19.0}, "end_to_end.optics.aperture is not an optics setting; did you mean 'aperture_mrad'?"),
        ({"focal_spread": "30"}, "end_to_end.optics.focal_spread: expected a number"),
        ({"focal_spread": -2.0}, "end_to_end.optics.focal_spread = -2.0"),
        ({"defocus_reference": "top"}, "end_to_end.optics.defocus_reference = 'top'"),
        ({"aberrations": {"Cs": 1e5}}, "end_to_end.optics.aberrations has unknown key(s) ['Cs']"),
        ({"illumination_semiangle_mrad": 50.0}, "end_to_end.optics.illumination_semiangle_mrad = 50.0"),
    ],
)
def test_bad_optics_in_the_config_are_refused_naming_the_field(hrtem_project, optics, message):
    with pytest.raises(ConfigError) as info:
        validate_config(_config(hrtem_project, optics=optics))
    assert message in str(info.value)
