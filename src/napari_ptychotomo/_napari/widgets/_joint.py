"""What the widgets "End-to-end ptycho-tomography" and "Plane-wave tomography" share
(one module each: :mod:`.end_to_end`, :mod:`.plane_wave`).

They start from what earlier steps left in the viewer: the tilt series of a layer's
``metadata["result"]``, the MSP results of ``MSP … [tilt k]`` layers (probes, positions),
an :class:`~napari_ptychotomo.data.Alignment` in any layer's ``metadata["alignment"]`` and
optionally a start volume (e.g. the result of an earlier, stopped run). While running, the
central planes of Re V show as one mosaic layer (``Volume (end-to-end, live)``, see
:func:`..previews.orthogonal_mosaic`) and the loss of each tilt and of each step is
plotted. The result is ``Volume (end-to-end)`` / ``Volume (plane-wave)`` (Re V) and
``… absorption)`` (Im V) with the voxel size in Å, the refined alignment and the
``JointResult`` in ``metadata``. Stop keeps the last good volume as the (partial) result:
the engines put it in every Progress as ``preview["volume"]``.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import replace
from typing import Any

import numpy as np
from magicgui.widgets import ComboBox, Container, SpinBox

from ...data import Alignment, ScanData, TiltSeries, Volume
from ...engine import Progress
from ...joint.params import JointParams
from .._runner import EngineRunner
from ..choices import objects_in
from ..layers import volume_layers
from ..plots import LivePlot, Panel
from ..previews import orthogonal_mosaic
from ..show import put_layer, put_layers
from .fields import device_field, field_widget

__all__ = ["NOMINAL", "ZERO_VOLUME"]

NOMINAL = "nominal tilts, no shifts"
ZERO_VOLUME = "zero volume"


class _JointWidget(Container):
    """Inputs shared by both modes, the runner, the live preview and the loss plot."""

    step_name = ""
    scan_type: type = ScanData
    #: where this mode's fields start away from JointParams' defaults
    defaults: dict[str, Any] = {}

    def __init__(self, viewer: Any, fields: list, synchronous: bool):
        self.viewer = viewer
        self.dataset = ComboBox(label="tilt series", choices=self._dataset_names, name="dataset")
        self.alignment_from = ComboBox(label="alignment", choices=self._alignment_names, name="alignment_from")
        self.start_volume = ComboBox(label="start volume", choices=self._volume_names, name="start_volume")
        self.iterations = self._param_field("iterations")
        self.num_slices = self._param_field("num_slices")
        self.tv_weight = self._param_field("tv_weight")
        self.l1_imag = self._param_field("l1_imag")
        self.nonnegative = self._param_field("nonnegative")
        self.half_data = self._param_field("half_data")
        self.device = device_field()
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0, name="seed")
        self.loss_plot = LivePlot(name="loss_plot", label="loss")
        self.runner = EngineRunner(
            self._start,
            on_progress=self._show_progress,
            on_result=self._show_result,
            on_stopped=self._partial,
            synchronous=synchronous,
        )
        super().__init__(
            widgets=[
                self.dataset,
                self.alignment_from,
                self.start_volume,
                self.iterations,
                self.num_slices,
                *fields,
                self.tv_weight,
                self.l1_imag,
                self.nonnegative,
                self.half_data,
                self.device,
                self.seed,
                self.runner.widget,
                self.loss_plot,
            ]
        )
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)

    def _param_field(self, name: str, /, **overrides: Any) -> Any:
        """The widget of the JointParams setting ``name``, starting at this mode's default."""
        if name in self.defaults:
            overrides.setdefault("value", self.defaults[name])
        return field_widget(JointParams, name, **overrides)

    # ------------------------------------------------------------------ choices
    def _accepts(self, series: TiltSeries) -> bool:
        return len(series.scans) > 0 and all(isinstance(s, self.scan_type) for s in series.scans)

    def _dataset_names(self, *_: Any) -> list[str]:
        return [name for name, obj in objects_in(self.viewer, TiltSeries) if self._accepts(obj)]

    def _alignment_names(self, *_: Any) -> list[str]:
        found = [layer.name for layer in self.viewer.layers if isinstance(layer.metadata.get("alignment"), Alignment)]
        return [*found, NOMINAL]

    def _volume_names(self, *_: Any) -> list[str]:
        found = [
            layer.name
            for layer in self.viewer.layers
            if isinstance(layer.metadata.get("result"), Volume)
            and layer.metadata.get("kind") == "volume"
            and np.ndim(layer.data) == 3
        ]
        return [ZERO_VOLUME, *dict.fromkeys(found)]

    def _refresh(self, *_: Any) -> None:
        self.reset_choices()

    # ------------------------------------------------------------------ inputs
    def series(self) -> TiltSeries:
        found = dict(objects_in(self.viewer, TiltSeries))
        series = found.get(self.dataset.value)
        if series is None or not self._accepts(series):
            raise ValueError(
                f"no {self._data_words()}: open one first (File > Open, or File > Open Sample > Ptycho-Tomo)"
            )
        return series

    def _data_words(self) -> str:
        return "tilt series"

    def alignment(self, n_tilts: int) -> Alignment | None:
        """The chosen layer's Alignment (``None``: nominal tilts); checks the tilt count."""
        name = self.alignment_from.value
        if name in (None, NOMINAL) or name not in self.viewer.layers:
            return None
        alignment = self.viewer.layers[name].metadata.get("alignment")
        if len(alignment.euler_deg) != n_tilts:
            raise ValueError(
                f"the alignment of {name!r} has {len(alignment.euler_deg)} tilts; the series has {n_tilts}"
            )
        return alignment

    def start(self) -> Volume | None:
        name = self.start_volume.value
        if name in (None, ZERO_VOLUME) or name not in self.viewer.layers:
            return None
        return self.viewer.layers[name].metadata["result"]

    def common_params(self, **kwargs: Any):
        start = self.start()
        return JointParams(
            iterations=int(self.iterations.value),
            num_slices=int(self.num_slices.value),
            tv_weight=float(self.tv_weight.value),
            l1_imag=float(self.l1_imag.value),
            nonnegative=bool(self.nonnegative.value),
            half_data=bool(self.half_data.value),
            # a potential (an earlier run's result) keeps its grid; a phase volume (linear
            # tomography) is converted and centred on the engine's own grid
            volume_shape=start.shape if start is not None and start.units == "V" else None,
            **kwargs,
        ).validate()

    # ------------------------------------------------------------------ engine
    def _start(self) -> Generator:
        series = self.series()
        self._angles = np.asarray(series.angles_deg, dtype=float)
        self._voxel = self.voxel_size(series)
        self._steps, self._losses = [], []
        return self.engine(series)

    # ------------------------------------------------------------------ display
    def _show_progress(self, progress: Progress) -> None:
        self._steps.append(progress.step)
        self._losses.append(progress.loss)
        preview = progress.preview or {}
        if "yx" in preview:
            v = self._voxel
            put_layer(
                self.viewer,
                (
                    orthogonal_mosaic(preview),
                    {
                        "name": f"Volume ({self.step_name}, live)",
                        "scale": (v, v),
                        "axis_labels": ("y | z", "x | z"),
                        "units": ("angstrom", "angstrom"),
                        "colormap": "gray",
                        "metadata": {"kind": "preview"},
                    },
                    "image",
                ),
            )
        per_tilt = preview.get("loss_per_tilt")
        panels = [Panel("step", "loss", {"loss": (self._steps, self._losses)}, log_y=True)]
        summary = f"step {progress.step}/{progress.total}, loss {progress.loss:.4g}"
        if per_tilt is not None and len(per_tilt) == len(self._angles):
            panels.insert(
                0, Panel("tilt (°)", "loss this pass", {"per tilt": (self._angles, np.asarray(per_tilt))}, style="o-")
            )
        self.loss_plot.show(panels, summary)

    def _show_result(self, result: Any) -> None:
        from ...joint import JointResult

        joint = result if isinstance(result, JointResult) else None
        volume = joint.volume if joint is not None else result
        if not isinstance(volume, Volume):
            return
        layers = volume_layers(volume, self.step_name)
        for _data, kwargs, _kind in layers:
            kwargs["metadata"]["joint"] = joint
            if joint is not None:
                kwargs["metadata"]["alignment"] = joint.alignment
        put_layers(self.viewer, layers)
        live = f"Volume ({self.step_name}, live)"
        if live in self.viewer.layers:
            self.viewer.layers[live].visible = False

    def _partial(self, last: Progress) -> Volume | None:
        """After Stop: the volume of the last step (the engine's ``preview["volume"]``, a
        host copy), marked where it stopped."""
        volume = (last.preview or {}).get("volume")
        if not isinstance(volume, Volume):
            return None
        return replace(
            volume, provenance={**volume.provenance, "partial": True, "stopped_at": f"{last.step}/{last.total}"}
        )
