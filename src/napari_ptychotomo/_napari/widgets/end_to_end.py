"""Docked widget "End-to-end ptycho-tomography": a thin shell over
:func:`~napari_ptychotomo.joint.joint_steps` (You et al. 2025, Algorithm 3); see
:mod:`._joint` for the inputs, previews and results it shares with the plane-wave widget."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from magicgui.widgets import CheckBox

from ...data import ScanData, TiltSeries
from ...joint.params import JointParams
from ...joint.params import volume_step as default_volume_step
from ..choices import msp_results
from ._joint import NOMINAL, ZERO_VOLUME, _JointWidget

__all__ = ["EndToEndWidget", "NOMINAL", "ZERO_VOLUME"]


class EndToEndWidget(_JointWidget):
    """End-to-end ptycho-tomography of a 4D-STEM tilt series (You et al. 2025, Algorithm 3)."""

    step_name = "end-to-end"
    scan_type = ScanData

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.use_msp = CheckBox(text="start from MSP results (probes, positions)", value=True, name="use_msp")
        self.volume_step = self._param_field("rates.volume", name="volume_step")
        self.batch_size = self._param_field("batch_size")
        self.num_modes = self._param_field("num_modes")
        self.learn_probe = self._param_field("learn_probe")
        self.learn_positions = self._param_field("learn_positions")
        self.learn_euler = self._param_field("learn_euler")
        self.learn_shifts = self._param_field("learn_shifts")
        super().__init__(
            viewer,
            [
                self.use_msp,
                self.volume_step,
                self.batch_size,
                self.num_modes,
                self.learn_probe,
                self.learn_positions,
                self.learn_euler,
                self.learn_shifts,
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
        from ...joint import LearningRate

        rates = JointParams().rates
        rates["volume"] = LearningRate(float(self.volume_step.value), 0)
        return self.common_params(
            batch_size=int(self.batch_size.value) or None,
            num_modes=int(self.num_modes.value),
            rates=rates,
            learn_probe=bool(self.learn_probe.value),
            learn_positions=bool(self.learn_positions.value),
            learn_euler=bool(self.learn_euler.value),
            learn_shifts=bool(self.learn_shifts.value),
        )

    def engine(self, series: TiltSeries) -> Generator:
        from ...joint import joint_steps

        init: dict[Any, Any] = dict(msp_results(self.viewer, len(series))) if self.use_msp.value else {}
        init.update(alignment=self.alignment(len(series)), volume=self.start())
        return joint_steps(series, init, self.params(), device=str(self.device.value), seed=int(self.seed.value))
