"""The plane-wave widget shows the series' objective lens (units in the labels, tooltips)
and hands the optics it shows to the engine."""

import pytest

from napari_ptychotomo.data import TiltSeries

OPTICS_FIELDS = (
    "aperture_mrad",
    "cs",
    "c12",
    "phi12",
    "focal_spread",
    "illumination_semiangle_mrad",
    "defocus_reference",
    "focal_spread_samples",
)


def _with_lens(series):
    lens = dict(
        aperture_mrad=19.0,
        aberrations={"C30": 1.2e5, "C12": 20.0, "phi12": 0.5, "C23": 7.0},
        focal_spread=30.0,
        illumination_semiangle_mrad=0.2,
        defocus_reference="exit",
    )
    return TiltSeries([s.with_optics(**lens) for s in series.scans], series.angles_deg, truth=series.truth)


@pytest.mark.gui
def test_optics_fields_show_the_series_lens_with_units_and_tooltips(viewer, tiny_hrtem_series):
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.plane_wave import PlaneWaveWidget

    show(_with_lens(tiny_hrtem_series), viewer)
    widget = PlaneWaveWidget(viewer, synchronous=True)
    assert widget.aperture_mrad.value == 19.0 and widget.cs.value == 1.2e5
    assert widget.c12.value == 20.0 and widget.phi12.value == pytest.approx(0.5)
    assert widget.focal_spread.value == 30.0 and widget.illumination_semiangle_mrad.value == pytest.approx(0.2)
    assert widget.defocus_reference.value == "exit"
    for name in OPTICS_FIELDS:
        field = getattr(widget, name)
        assert field.tooltip, name
        unitless = ("defocus_reference", "focal_spread_samples")
        assert name in unitless or any(u in field.label for u in ("(mrad)", "(Å)", "(rad)")), field.label


@pytest.mark.gui
def test_edited_optics_reach_the_engine_and_keep_the_other_aberrations(viewer, tiny_hrtem_series, monkeypatch):
    import napari_ptychotomo.joint as joint
    from napari_ptychotomo import show
    from napari_ptychotomo._napari.widgets.plane_wave import PlaneWaveWidget

    seen, seen_samples = [], []
    original = joint.plane_wave_steps

    def spy(series, *args, **kwargs):
        seen.append(series)
        seen_samples.append(kwargs.get("focal_spread_samples"))
        return original(series, *args, **kwargs)

    monkeypatch.setattr(joint, "plane_wave_steps", spy)
    show(_with_lens(tiny_hrtem_series), viewer)
    widget = PlaneWaveWidget(viewer, synchronous=True)
    widget.iterations.value, widget.device.value = 2, "cpu"
    widget.aperture_mrad.value, widget.focal_spread.value, widget.c12.value = 0.0, 45.0, 0.0
    widget.focal_spread_samples.value = 5
    widget.runner.run()
    assert widget.runner.status.value.startswith("done"), widget.runner.status.value
    used = seen[-1].scans[2]
    assert used.aperture_mrad is None and used.focal_spread == 45.0
    assert used.aberrations == {"C30": 1.2e5, "C23": 7.0}
    assert used.defocus_reference == "exit" and used.illumination_semiangle_mrad == pytest.approx(0.2)
    assert seen_samples[-1] == 5
