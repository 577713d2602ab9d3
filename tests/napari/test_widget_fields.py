"""Widgets hold no numbers: every engine field of every docked widget is built from the
engine's own description (``params_meta``), so it starts at the engine's default, its range
holds that default, and it has a tooltip that names its unit."""

import dataclasses
import math

import pytest

from napari_ptychotomo.params_meta import Setting, setting

# (module, class) of every docked widget with engine fields
WIDGETS = [
    ("msp", "MSPWidget"),
    ("denoise", "DenoiseWidget"),
    ("align", "AlignWidget"),
    ("linear", "LinearTomographyWidget"),
    ("end_to_end", "EndToEndWidget"),
    ("plane_wave", "PlaneWaveWidget"),
    ("atoms", "AtomTracingWidget"),
]


def _described_settings():
    from napari_ptychotomo.analysis.atom_tracing import trace_atoms_steps
    from napari_ptychotomo.data import DefocusSeries
    from napari_ptychotomo.joint import JointParams
    from napari_ptychotomo.joint.plane_wave import plane_wave_steps
    from napari_ptychotomo.ptycho import MSPParams
    from napari_ptychotomo.tomo.align import align_tilt_series_steps
    from napari_ptychotomo.tomo.align_params import AlignStage
    from napari_ptychotomo.tomo.denoise import denoise_projections
    from napari_ptychotomo.tomo.masks import make_support_mask
    from napari_ptychotomo.tomo.reconstruct import reconstruct_linear_steps

    for source in (MSPParams, JointParams, DefocusSeries, AlignStage):
        for f in dataclasses.fields(source):
            entry = f.metadata.get("ui")
            if entry is None:
                continue
            names = [f"{f.name}.{key}" for key in entry.get("parts") or {}] or [f.name]
            yield from ((source, name) for name in names)
    for function in (
        plane_wave_steps,
        denoise_projections,
        align_tilt_series_steps,
        make_support_mask,
        reconstruct_linear_steps,
        trace_atoms_steps,
    ):
        yield from ((function, name) for name in function.__param_ui__)


def _check(found: Setting, value, where: str) -> None:
    assert found.label, where
    assert found.tooltip.strip(), f"{where}: no tooltip"
    if found.unit:
        assert found.unit in found.tooltip and f"({found.unit})" in found.text, f"{where}: unit {found.unit!r}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        assert math.isfinite(float(value)), where
        if found.min is not None:
            assert found.min <= value, f"{where}: {value} below min {found.min}"
        if found.max is not None:
            assert value <= found.max, f"{where}: {value} above max {found.max}"
    if found.choices:
        assert value in found.choices, f"{where}: {value!r} not in {found.choices}"


def test_every_described_setting_has_a_label_a_tooltip_and_a_range_holding_its_default():
    settings = list(_described_settings())
    assert len(settings) > 40
    for source, name in settings:
        found = setting(source, name)
        _check(found, found.value, f"{source.__qualname__}.{name}")


def test_a_setting_without_description_is_refused():
    from napari_ptychotomo.ptycho import MSPParams

    with pytest.raises(KeyError, match="no user-interface description"):
        setting(MSPParams, "oversampling")


def _fields(container):
    for widget in container:
        if hasattr(widget, "_ptychotomo_setting"):
            yield widget
        elif hasattr(widget, "__iter__") and not hasattr(widget, "value"):
            yield from _fields(widget)


@pytest.mark.gui
@pytest.mark.parametrize(("module", "name"), WIDGETS)
def test_every_engine_field_of_a_widget_starts_at_the_engines_default(viewer, module, name):
    import importlib

    from napari_ptychotomo.joint.params import PLANE_WAVE_DEFAULTS
    from napari_ptychotomo.tomo.align_params import default_stages

    cls = getattr(importlib.import_module(f"napari_ptychotomo._napari.widgets.{module}"), name)
    widget = cls(viewer, synchronous=True)
    # where a widget starts away from the field's own default, on purpose and from the engines
    started = {("AlignWidget", "outer_iterations"): default_stages()[0].n_outer}
    if name == "PlaneWaveWidget":
        started.update({(name, key): value for key, value in PLANE_WAVE_DEFAULTS.items()})
    fields = list(_fields(widget))
    assert fields, name
    for field in fields:
        found = field._ptychotomo_setting
        where = f"{name}.{field.name}"
        expected = started.get((name, field.name), found.value)
        value = field.value
        if isinstance(expected, str):
            value = str(value)
        assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected, where
        assert field.tooltip == found.tooltip, where
        label = field.text if hasattr(field, "text") and isinstance(found.value, bool) else field.label
        assert label == found.text, where
        _check(found, value, where)
