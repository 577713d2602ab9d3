"""Docked widgets "End-to-end ptycho-tomography" and "Plane-wave tomography".

Thin shells over :func:`~napari_ptychotomo.joint.joint_steps` (You et al. 2025,
Algorithm 3) and :func:`~napari_ptychotomo.joint.plane_wave_steps` (Ren et al. 2018). They
start from what earlier steps left in the viewer: the tilt series of a layer's
``metadata["result"]``, the MSP results of ``MSP … [tilt k]`` layers (probes, positions),
an :class:`~napari_ptychotomo.data.Alignment` in any layer's ``metadata["alignment"]`` and
optionally a start volume (e.g. the result of an earlier, stopped run). While running, the
central planes of Re V show as one mosaic layer (``Volume (end-to-end, live)``, see
:func:`.previews.orthogonal_mosaic`) and the loss of each tilt and of each step is
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
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, SpinBox

from ..data import Alignment, DefocusSeries, ScanData, TiltSeries, Volume
from ..engine import Progress
from ..joint.params import volume_step as default_volume_step
from ._runner import EngineRunner
from .choices import msp_results, objects_in
from .layers import volume_layers
from .plots import LivePlot, Panel
from .previews import orthogonal_mosaic
from .show import put_layer, put_layers

__all__ = ["EndToEndWidget", "PlaneWaveWidget", "NOMINAL", "ZERO_VOLUME"]

NOMINAL = "nominal tilts, no shifts"
ZERO_VOLUME = "zero volume"


class _JointWidget(Container):
    """Inputs shared by both modes, the runner, the live preview and the loss plot."""

    step_name = ""
    scan_type: type = ScanData

    def __init__(self, viewer: Any, fields: list, synchronous: bool):
        self.viewer = viewer
        self.dataset = ComboBox(label="tilt series", choices=self._dataset_names, name="dataset")
        self.alignment_from = ComboBox(label="alignment", choices=self._alignment_names, name="alignment_from")
        self.start_volume = ComboBox(label="start volume", choices=self._volume_names, name="start_volume")
        self.iterations = SpinBox(label="iterations (passes)", min=1, max=10000, value=10, name="iterations")
        self.num_slices = SpinBox(label="slices along the beam", min=1, max=1000, value=4, name="num_slices")
        self.tv_weight = FloatSpinBox(label="TV weight (V)", min=0.0, max=100.0, value=0.0, step=0.01, name="tv_weight")
        self.l1_imag = FloatSpinBox(label="L1 of Im V (V)", min=0.0, max=100.0, value=0.0, step=0.01, name="l1_imag")
        self.nonnegative = CheckBox(text="non-negative", value=True, name="nonnegative")
        self.half_data = CheckBox(text="half-data volumes (for FSC)", value=False, name="half_data")
        self.device = ComboBox(label="device", choices=["auto", "cpu", "cuda"], value="auto", name="device")
        self.seed = SpinBox(label="seed", min=0, max=2**31 - 1, value=0, name="seed")
        self.loss_plot = LivePlot(name="loss_plot", label="loss")
        self.runner = EngineRunner(
            self._start,
            on_progress=self._show_progress,
            on_result=self._show_result,
            on_stopped=self._partial,
            synchronous=synchronous,
        )
        self.runner.widget.label = ""  # its Run / Stop buttons say what it is
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
        from ..joint import JointParams

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
        from ..joint import JointResult

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


class EndToEndWidget(_JointWidget):
    """End-to-end ptycho-tomography of a 4D-STEM tilt series (You et al. 2025, Algorithm 3)."""

    step_name = "end-to-end"
    scan_type = ScanData

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.use_msp = CheckBox(text="start from MSP results (probes, positions)", value=True, name="use_msp")
        self.volume_step = FloatSpinBox(
            label="volume step (V)",
            min=0.01,
            max=1000.0,
            value=default_volume_step(False),
            step=0.5,
            name="volume_step",
        )
        self.batch_size = SpinBox(label="batch size (0 = auto)", min=0, max=100000, value=0, name="batch_size")
        self.num_modes = SpinBox(label="probe modes", min=1, max=20, value=1, name="num_modes")
        self.learn_probe = CheckBox(text="refine probes", value=False, name="learn_probe")
        self.learn_positions = CheckBox(text="refine positions", value=False, name="learn_positions")
        self.learn_alignment = CheckBox(text="refine Euler angles and shifts", value=False, name="learn_alignment")
        super().__init__(
            viewer,
            [
                self.use_msp,
                self.volume_step,
                self.batch_size,
                self.num_modes,
                self.learn_probe,
                self.learn_positions,
                self.learn_alignment,
            ],
            synchronous,
        )
        self._volume_step_set = False
        self.volume_step.changed.connect(self._volume_step_changed)
        self.start_volume.changed.connect(self._start_volume_changed)

    def _start_volume_changed(self, value: str) -> None:
        """The default volume step follows the start until set by hand: 5 V from a zero
        volume, 1 V from a volume (a larger step undoes a good start: NRMSE 0.236 against
        0.199 at 1 V in tests/joint/missing_wedge_case.py)."""
        if not self._volume_step_set:
            with self.volume_step.changed.blocked():
                self.volume_step.value = default_volume_step(value not in (None, ZERO_VOLUME))

    def _volume_step_changed(self, _value: float) -> None:
        self._volume_step_set = True

    def _data_words(self) -> str:
        return "4D-STEM tilt series"

    @staticmethod
    def voxel_size(series: TiltSeries) -> float:
        scan = series.scans[0]
        return float(scan.calibration.pixel_size(scan.detector_shape)[1])

    def params(self):
        from ..joint import JointParams, LearningRate

        rates = JointParams().rates
        rates["volume"] = LearningRate(float(self.volume_step.value), 0)
        learn = ["volume"]
        learn += ["probe"] if self.learn_probe.value else []
        learn += ["positions"] if self.learn_positions.value else []
        learn += ["euler", "shifts"] if self.learn_alignment.value else []
        return self.common_params(
            batch_size=int(self.batch_size.value) or None,
            num_modes=int(self.num_modes.value),
            rates=rates,
            learn=tuple(learn),
        )

    def engine(self, series: TiltSeries) -> Generator:
        from ..joint import joint_steps

        init: dict[Any, Any] = dict(msp_results(self.viewer, len(series))) if self.use_msp.value else {}
        init.update(alignment=self.alignment(len(series)), volume=self.start())
        return joint_steps(series, init, self.params(), device=str(self.device.value), seed=int(self.seed.value))


class PlaneWaveWidget(_JointWidget):
    """Plane-wave (HRTEM) tomography of a tilt × defocus series (Ren et al. 2018), through
    the objective lens of the optics fields: filled from the chosen series (what its file
    or simulator recorded), editable, and applied to every tilt for this run only."""

    step_name = "plane-wave"
    scan_type = DefocusSeries

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.step = FloatSpinBox(label="gradient step (V)", min=0.001, max=1000.0, value=1.0, step=0.1, name="step")
        self.fista = CheckBox(text="FISTA acceleration", value=True, name="fista")
        self.learn_alignment = CheckBox(text="refine Euler angles and shifts", value=False, name="learn_alignment")
        optics = self._optics_fields()
        super().__init__(viewer, [self.step, self.fista, self.learn_alignment, *optics], synchronous)
        self.iterations.value, self.tv_weight.value = 20, 1.0
        self.dataset.changed.connect(self._fill_optics)
        self._fill_optics()

    def _optics_fields(self) -> list:
        self.aperture_mrad = FloatSpinBox(
            label="objective aperture (mrad)",
            min=0.0,
            max=999.0,
            value=0.0,
            step=0.5,
            name="aperture_mrad",
            tooltip="Objective aperture semi-angle in mrad; 0 = no aperture (every frequency of the grid "
            "is imaged). Soft edge one reciprocal pixel wide.",
        )
        self.cs = FloatSpinBox(
            label="C30 = Cs (Å)",
            min=-1e9,
            max=1e9,
            value=0.0,
            step=1e4,
            name="cs",
            tooltip="Spherical aberration C30 in Å (1 mm = 1e7 Å), as Calibration.aberrations['C30'].",
        )
        self.c12 = FloatSpinBox(
            label="C12 astigmatism (Å)",
            min=0.0,
            max=1e6,
            value=0.0,
            step=1.0,
            name="c12",
            tooltip="Two-fold astigmatism C12 in Å, as Calibration.aberrations['C12'].",
        )
        self.phi12 = FloatSpinBox(
            label="phi12 (rad)",
            min=-np.pi,
            max=np.pi,
            value=0.0,
            step=0.05,
            name="phi12",
            tooltip="Azimuth of the two-fold astigmatism in rad, as Calibration.aberrations['phi12'].",
        )
        self.focal_spread = FloatSpinBox(
            label="focal spread (Å)",
            min=0.0,
            max=9999.0,
            value=0.0,
            step=1.0,
            name="focal_spread",
            tooltip="Standard deviation of the defocus in Å (chromatic spread, lens current): the "
            "temporal-coherence envelope exp[-½(πλΔk²)²]; 0 = coherent.",
        )
        self.illumination_semiangle_mrad = FloatSpinBox(
            label="illumination semi-angle (mrad)",
            min=0.0,
            max=9.99,
            value=0.0,
            step=0.05,
            name="illumination_semiangle_mrad",
            tooltip="Beam divergence in mrad (1/e half-width of the incidence angles): the "
            "spatial-coherence envelope exp[-(β/2λ)²|∇χ|²]; 0 = parallel beam.",
        )
        self.focal_spread_samples = SpinBox(
            label="focal-spread samples (0 = envelope)",
            min=0,
            max=200,
            value=0,
            name="focal_spread_samples",
            tooltip="0: the focal spread as an envelope (fast, right for weak scatterers); M > 0: each "
            "image as the exact sum over M defoci (e.g. 15), M times the imaging FFTs.",
        )
        self.defocus_reference = ComboBox(
            label="defocus measured from",
            choices=["centre", "exit"],
            value="centre",
            name="defocus_reference",
            tooltip="centre: the plane through the rotation centre (the same for any box); exit: "
            "the exit surface of the reconstruction's box.",
        )
        return [
            self.aperture_mrad,
            self.cs,
            self.c12,
            self.phi12,
            self.focal_spread,
            self.focal_spread_samples,
            self.illumination_semiangle_mrad,
            self.defocus_reference,
        ]

    def _fill_optics(self, *_: Any) -> None:
        """Show the chosen series' optics (its first tilt's)."""
        try:
            first = self.series().scans[0]
        except ValueError:
            return
        ab = first.aberrations
        self.aperture_mrad.value = float(first.aperture_mrad or 0.0)
        self.cs.value, self.c12.value = float(ab.get("C30", 0.0)), float(ab.get("C12", 0.0))
        self.phi12.value = float(ab.get("phi12", 0.0))
        self.focal_spread.value = float(first.focal_spread)
        self.illumination_semiangle_mrad.value = float(first.illumination_semiangle_mrad)
        self.defocus_reference.value = first.defocus_reference

    def optics(self, series: TiltSeries) -> dict[str, Any]:
        """The DefocusSeries optics of the fields (other aberrations of the series are kept)."""
        aberrations = dict(series.scans[0].aberrations)
        for key in ("C30", "C12", "phi12"):
            aberrations.pop(key, None)
        if float(self.cs.value):
            aberrations["C30"] = float(self.cs.value)
        if float(self.c12.value):  # an azimuth means nothing without its astigmatism
            aberrations.update(C12=float(self.c12.value), phi12=float(self.phi12.value))
        return {
            "aperture_mrad": float(self.aperture_mrad.value) or None,
            "aberrations": aberrations,
            "focal_spread": float(self.focal_spread.value),
            "illumination_semiangle_mrad": float(self.illumination_semiangle_mrad.value),
            "defocus_reference": str(self.defocus_reference.value),
        }

    def _data_words(self) -> str:
        return "plane-wave tilt × defocus series"

    @staticmethod
    def voxel_size(series: TiltSeries) -> float:
        return float(series.scans[0].pixel_size)

    def params(self):
        learn = ("volume", "euler", "shifts") if self.learn_alignment.value else ("volume",)
        return self.common_params(plane_wave_step=float(self.step.value), fista=bool(self.fista.value), learn=learn)

    def engine(self, series: TiltSeries) -> Generator:
        from ..joint import plane_wave_steps

        optics = self.optics(series)
        series = TiltSeries([s.with_optics(**optics) for s in series.scans], series.angles_deg, truth=series.truth)
        init = {"alignment": self.alignment(len(series)), "volume": self.start()}
        return plane_wave_steps(
            series,
            init,
            self.params(),
            device=str(self.device.value),
            seed=int(self.seed.value),
            focal_spread_samples=int(self.focal_spread_samples.value),
        )
