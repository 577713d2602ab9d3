"""Docked widget "Plane-wave tomography": a thin shell over
:func:`~napari_ptychotomo.joint.plane_wave_steps` (Ren et al. 2018) through the objective
lens of its optics fields; see :mod:`._joint` for the inputs, previews and results it
shares with the end-to-end widget."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from ...data import DefocusSeries, TiltSeries
from ...joint.params import PLANE_WAVE_DEFAULTS
from ._joint import _JointWidget
from .fields import field_widget

__all__ = ["PlaneWaveWidget"]


class PlaneWaveWidget(_JointWidget):
    """Plane-wave (HRTEM) tomography of a tilt × defocus series (Ren et al. 2018), through
    the objective lens of the optics fields: filled from the chosen series (what its file
    or simulator recorded), editable, and applied to every tilt for this run only."""

    step_name = "plane-wave"
    scan_type = DefocusSeries
    defaults = PLANE_WAVE_DEFAULTS

    def __init__(self, viewer: napari.viewer.Viewer, synchronous: bool = False):
        self.step = self._param_field("plane_wave_step", name="step")
        self.fista = self._param_field("fista")
        self.learn_euler = self._param_field("learn_euler")
        self.learn_shifts = self._param_field("learn_shifts")
        optics = self._optics_fields()
        super().__init__(viewer, [self.step, self.fista, self.learn_euler, self.learn_shifts, *optics], synchronous)
        self.dataset.changed.connect(self._fill_optics)
        self._fill_optics()

    def _optics_fields(self) -> list:
        from ...joint.plane_wave import plane_wave_steps  # the function that carries the descriptions

        self.aperture_mrad = field_widget(DefocusSeries, "aperture_mrad")
        self.cs = field_widget(DefocusSeries, "aberrations.C30", name="cs")
        self.c12 = field_widget(DefocusSeries, "aberrations.C12", name="c12")
        self.phi12 = field_widget(DefocusSeries, "aberrations.phi12", name="phi12")
        self.focal_spread = field_widget(DefocusSeries, "focal_spread")
        self.illumination_semiangle_mrad = field_widget(DefocusSeries, "illumination_semiangle_mrad")
        self.focal_spread_samples = field_widget(plane_wave_steps, "focal_spread_samples")
        self.defocus_reference = field_widget(DefocusSeries, "defocus_reference")
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
        return self.common_params(
            plane_wave_step=float(self.step.value),
            fista=bool(self.fista.value),
            learn_euler=bool(self.learn_euler.value),
            learn_shifts=bool(self.learn_shifts.value),
        )

    def engine(self, series: TiltSeries) -> Generator:
        from ...joint import plane_wave_steps

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
