"""Docked widget "Multislice ptychography": a thin shell over :func:`~napari_ptychotomo.ptycho.msp_steps`.

Gathers the dataset, tilt(s) and :class:`~napari_ptychotomo.ptycho.MSPParams` (defaults
from the scan's calibration), runs the engine with :class:`._runner.EngineRunner`, and
shows the object phase (per slice), probe modes and the loss curve of each tilt live; the
fitted tilt and slice thickness are in the status line. Results land as the layers of :func:`.layers.msp_layers`
(``MSP phase [tilt k]``, ``MSP probe [tilt k]``, ``MSP positions [tilt k]``, ``MSP tilt
map θx/θy [tilt k]``), replacing earlier ones. "All tilts" runs the series tilt by tilt;
Stop keeps every finished tilt and the live preview of the current one. The learning-rate
steps of the object and the tilt sit in an "advanced" section shown on demand.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
from magicgui.widgets import CheckBox, ComboBox, Container, Label, SpinBox

from ...data import ScanData, TiltSeries
from ...engine import Progress
from .._runner import EngineRunner
from ..choices import objects_in
from ..layers import msp_layers, summed_phase_layer
from ..plots import LivePlot, Panel
from ..show import put_layer, put_layers
from .fields import device_field, field_widget

__all__ = ["MSPWidget", "parse_defocus"]

_DEFOCUS_MODES = {"auto": "auto", "estimate": "estimate", "calibration": None}


def parse_defocus(text: str) -> float | str | None:
    """``MSPParams.defocus`` from the widget's text: ``"auto"``, ``"estimate"``,
    ``"calibration"`` (→ ``None``) or a length in Å (positive = underfocus; a trailing
    ``Å`` or ``A`` is allowed)."""
    value = str(text).strip()
    if value.lower() in _DEFOCUS_MODES:
        return _DEFOCUS_MODES[value.lower()]
    number = value.rstrip("ÅA").strip()
    try:
        defocus = float(number)
    except ValueError:
        defocus = float("nan")
    if not np.isfinite(defocus):
        raise ValueError(
            f"start defocus = {value!r}; expected 'auto', 'estimate', 'calibration' "
            "or a length in Å (positive = underfocus), e.g. 150"
        )
    return defocus


class MSPWidget(Container):
    """Multislice ptychography of one tilt or of every tilt of a 4D-STEM dataset.

    Parameters
    ----------
    viewer : the napari viewer (injected by napari, which matches the annotation's text
        ``napari.viewer.Viewer``; annotations stay strings in this module).
    synchronous : run in the GUI thread (tests); the default runs in a worker thread.
    """

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        from ...ptycho import MSPParams

        # every field (default, label, range, tooltip) is the engine's own
        self.viewer = viewer
        self.dataset = ComboBox(label="dataset", choices=self._dataset_names, name="dataset")
        self.tilt = SpinBox(label="tilt index", min=0, max=0, name="tilt")
        self.all_tilts = CheckBox(text="all tilts", value=False, name="all_tilts")
        self.iterations = field_widget(MSPParams, "iterations")
        self.num_slices = field_widget(MSPParams, "num_slices")
        self.slice_thickness = field_widget(MSPParams, "slice_thickness")
        self.num_modes = field_widget(MSPParams, "num_modes")
        self.learn_tilt = field_widget(MSPParams, "learn_tilt")
        self.learn_thickness = field_widget(MSPParams, "learn_thickness")
        self.tilt_map = field_widget(MSPParams, "tilt_map")
        self.tilt_map_window = field_widget(MSPParams, "tilt_map_window", enabled=False)
        self.z_smoothness = field_widget(MSPParams, "z_smoothness")
        self.slice_period = field_widget(MSPParams, "slice_period")
        self.defocus = field_widget(MSPParams, "defocus")
        self.learn_positions = field_widget(MSPParams, "learn_positions")
        self.show_advanced = CheckBox(text="advanced", value=False, name="show_advanced")
        self.object_step = field_widget(MSPParams, "rates.object", name="object_step")
        self.tilt_step = field_widget(MSPParams, "rates.tilt", name="tilt_step")
        self.advanced = Container(
            widgets=[self.object_step, self.tilt_step], name="advanced", label="learning rates", visible=False
        )
        self.device = device_field()
        self.fitted = Label(value="", name="fitted", label="fitted values")
        self.loss_plot = LivePlot(name="loss_plot", label="loss")
        self.runner = EngineRunner(
            self._start,
            on_progress=self._show_progress,
            on_result=self._show_result,
            on_stopped=self._partial,
            synchronous=synchronous,
            must_show=lambda p: "result" in (p.preview or {}),
        )
        super().__init__(
            widgets=[
                self.dataset,
                self.tilt,
                self.all_tilts,
                self.iterations,
                self.num_slices,
                self.slice_thickness,
                self.num_modes,
                self.defocus,
                self.learn_tilt,
                self.learn_thickness,
                self.z_smoothness,
                self.slice_period,
                self.tilt_map,
                self.tilt_map_window,
                self.learn_positions,
                self.show_advanced,
                self.advanced,
                self.device,
                self.runner.widget,
                self.fitted,
                self.loss_plot,
            ]
        )
        self.finished: dict[int, Any] = {}
        self.loss_curves: dict[int, np.ndarray] = {}
        self._current = 0
        self._suggested_for: str | None = None  # the dataset whose suggested settings were taken
        self.dataset.changed.connect(self._dataset_changed)
        self.tilt_map.changed.connect(self._tilt_map_changed)
        self.show_advanced.changed.connect(self._show_advanced_changed)
        self.slice_thickness.changed.connect(self._slice_thickness_changed)
        self._object_step_set = False
        self.object_step.changed.connect(self._object_step_changed)
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self._refresh()

    # ------------------------------------------------------------------ inputs
    def _dataset_names(self, *_: Any) -> list[str]:
        return [name for name, _ in objects_in(self.viewer, ScanData, TiltSeries)]

    def _refresh(self, *_: Any) -> None:
        self.dataset.reset_choices()
        self._dataset_changed()

    def selected(self) -> tuple[list[ScanData], np.ndarray]:
        """The scans and tilt angles (degrees) of the chosen dataset."""
        found = dict(objects_in(self.viewer, ScanData, TiltSeries))
        data = found.get(self.dataset.value)
        if data is None:
            raise ValueError(
                "no 4D-STEM dataset: open a scan or tilt series first "
                "(File > Open, or File > Open Sample > Ptycho-Tomo)"
            )
        if isinstance(data, TiltSeries):
            if not all(isinstance(s, ScanData) for s in data.scans):
                raise ValueError(
                    f"{self.dataset.value!r} is a plane-wave series; multislice ptychography needs 4D-STEM scans"
                )
            return list(data.scans), np.asarray(data.angles_deg, dtype=float)
        return [data], np.array([float(data.tilt_deg)])

    def _dataset_changed(self, *_: Any) -> None:
        try:
            scans, _angles = self.selected()
        except ValueError:
            return
        self.tilt.max = len(scans) - 1
        self.all_tilts.enabled = len(scans) > 1
        if self.dataset.value != self._suggested_for:  # once per choice: later edits stay
            self._suggested_for = self.dataset.value
            self._take_suggested_settings()

    def _take_suggested_settings(self) -> None:
        """Set the fields a dataset's layer suggests (``metadata["msp_settings"]``: the
        sample data's settings that suit it) and say so in the status line."""
        layer = self.viewer.layers[self.dataset.value]
        suggested = layer.metadata.get("msp_settings") or {}
        for name, value in suggested.items():
            getattr(self, name).value = value
        if suggested:
            said = ", ".join(f"{name} = {value}" for name, value in suggested.items())
            self.runner.status.value = f"settings suggested by {layer.name!r}: {said}"

    def _tilt_map_changed(self, *_: Any) -> None:
        self.tilt_map_window.enabled = bool(self.tilt_map.value)

    def _slice_thickness_changed(self, value: float) -> None:
        """The default object step follows the slice thickness (2 V × Δz) until set by hand."""
        if not self._object_step_set:
            with self.object_step.changed.blocked():
                from ...ptycho.params import OBJECT_STEP_PER_ANGSTROM

                self.object_step.value = OBJECT_STEP_PER_ANGSTROM * float(value)

    def _object_step_changed(self, _value: float) -> None:
        self._object_step_set = True

    def _show_advanced_changed(self, *_: Any) -> None:
        self.advanced.visible = bool(self.show_advanced.value)

    def params(self, scan: ScanData):
        """The :class:`MSPParams` of the widget's fields, defaults from ``scan``.

        Raises ``ValueError`` naming the field (shown in the status line by the runner).
        """
        from ...ptycho import LearningRate, MSPParams

        default = MSPParams()
        slices = int(self.num_slices.value)
        return MSPParams.from_calibration(
            scan.calibration,
            thickness=float(self.slice_thickness.value) * slices,
            num_slices=slices,
            iterations=int(self.iterations.value),
            num_modes=int(self.num_modes.value),
            learn_tilt=bool(self.learn_tilt.value),
            learn_thickness=bool(self.learn_thickness.value),
            tilt_map=bool(self.tilt_map.value),
            tilt_map_window=float(self.tilt_map_window.value),
            z_smoothness=float(self.z_smoothness.value),
            slice_period=int(self.slice_period.value),
            defocus=parse_defocus(self.defocus.value),
            learn_positions=bool(self.learn_positions.value),
            rates={
                "object": LearningRate(float(self.object_step.value), default.rate("object").start),
                "tilt": LearningRate(float(self.tilt_step.value), default.rate("tilt").start),
            },
        )

    # ------------------------------------------------------------------ engine
    def _start(self) -> Generator:
        scans, _angles = self.selected()
        tilts = list(range(len(scans))) if self.all_tilts.value else [int(self.tilt.value)]
        jobs = [(k, scans[k], self.params(scans[k])) for k in tilts]  # check all before running
        self.finished, self.loss_curves = {}, {}
        # the previews are drawn at the pixel size of the scans being reconstructed, even
        # when the dataset is changed or its layer removed while the run goes on
        self._scans = scans
        from ...ptycho import msp_series_steps

        return msp_series_steps(jobs, device=str(self.device.value))

    # ------------------------------------------------------------------ display
    def _show_progress(self, progress: Progress) -> None:
        preview = progress.preview or {}
        k = self._current = preview.get("tilt_index", 0)
        if "result" in preview:
            self._put_result(k, preview["result"])
            return
        if "slices" in preview:
            self._show_preview(k, preview)
        if "loss_history" in preview:
            self.loss_curves[k] = np.asarray(preview["loss_history"], dtype=float)
            self._plot_losses(k)

    def _plot_losses(self, k: int) -> None:
        curves = {f"tilt {t}": (np.arange(1, len(c) + 1), c) for t, c in sorted(self.loss_curves.items())}
        last = self.loss_curves[k]
        self.loss_plot.show(
            [Panel("iteration", "relative amplitude error", curves, log_y=True)],
            f"tilt {k}: iteration {len(last)}, loss {last[-1]:.4g}",
        )

    def _show_preview(self, k: int, preview: dict) -> None:
        scan = self._scans[k]
        pixel = scan.calibration.pixel_size(scan.detector_shape)[1]
        stride = preview["phase"].shape[-1] / preview["slices"].shape[-1]
        thickness = float(preview.get("slice_thickness", self.slice_thickness.value))
        put_layer(
            self.viewer,
            (
                preview["slices"],
                {
                    "name": f"MSP phase [tilt {k}]",
                    "scale": (thickness, pixel * stride, pixel * stride),
                    "axis_labels": ("z", "y", "x"),
                    "units": ("angstrom",) * 3,
                    "colormap": "gray",
                    "metadata": {"kind": "msp-preview", "tilt_index": k},
                },
                "image",
            ),
        )
        if "phase" in preview:
            put_layer(self.viewer, summed_phase_layer(preview["phase"], pixel, k))
        amplitude = np.sqrt(np.asarray(preview["probe_intensity"], dtype=np.float32))
        put_layer(
            self.viewer,
            (
                np.concatenate(list(amplitude), axis=-1),
                {
                    "name": f"MSP probe [tilt {k}]",
                    "scale": (pixel, pixel),
                    "axis_labels": ("y", "x"),
                    "units": ("angstrom", "angstrom"),
                    "colormap": "inferno",
                    "metadata": {"kind": "msp-preview", "tilt_index": k},
                },
                "image",
            ),
        )
        tx, ty = (float(v) for v in preview.get("tilt_mrad", (np.nan, np.nan)))
        self.fitted.value = f"tilt {k}: θ = ({tx:.2f}, {ty:.2f}) mrad, slice {thickness:.2f} Å"

    def _show_result(self, results: Any) -> None:
        from ...data import MSPResult

        if isinstance(results, MSPResult):  # the last good state of a diverged tilt
            results = {self._current: results}
        if not isinstance(results, dict):
            return
        for k, result in results.items():
            if result is not None and k not in self.finished:
                self._put_result(k, result)

    def _put_result(self, k: int, result: Any) -> None:
        self.finished[k] = result
        put_layers(self.viewer, msp_layers(result, k))
        put_layer(self.viewer, summed_phase_layer(result.phase(), result.pixel_size, k, result))

    def _partial(self, last: Progress) -> dict | None:
        """After Stop: the finished tilts (the current tilt's live preview stays shown)."""
        return dict(self.finished) or None
