"""Parameters of multislice ptychography: every learned quantity in one place.

Following PtyRAD's model parameters, each quantity that the reconstruction learns has a
step size (Adam learning rate, or gradient-descent step) and the iteration at which it
starts to be learned; everything is checked by :meth:`MSPParams.validate` before any
computation, with messages that name the field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np

from ..data.checks import _positive
from ..engine import LearningRate
from ..params_meta import param, ui

__all__ = ["MSPParams", "LearningRate", "OBJECT_STEP_PER_ANGSTROM"]

# Default object step per Å of slice (V): a slice's projected potential grows with its
# thickness, so a fixed step in V·Å is too small for thick slices of heavy crystals (on the
# simulator's SrTiO3, 10 V·Å for 13-20 Å slices left r = 0.76 and tilt maps at half the
# truth after 40 iterations; 2 V × Δz gave r 0.9 and tilt maps within 0.4 mrad).
OBJECT_STEP_PER_ANGSTROM = 2.0


def _default_rates() -> dict[str, LearningRate]:
    return {
        "object": LearningRate(OBJECT_STEP_PER_ANGSTROM * 15.0, 0),
        "probe": LearningRate(2e-3, 2),
        "positions": LearningRate(0.01, 3),
        "tilt": LearningRate(0.2, 2),
        "thickness": LearningRate(0.1, 15),
        "tilt_map": LearningRate(0.0, 2),
    }


@dataclass
class MSPParams:
    """Settings of :func:`~napari_ptychotomo.ptycho.reconstruct_msp`.

    Parameters
    ----------
    num_slices : number of object slices along the beam.
    slice_thickness : start value of the slice thickness in Å.
    num_modes : number of mixed-state probe modes.
    iterations : the most passes over all scan positions.
    convergence_window, convergence_tolerance : the run stops early, as converged, once
        every learned quantity has started and the means over the last two windows of
        ``convergence_window`` iterations agree: the data error fell by less than
        ``convergence_tolerance`` (relative), the tilt moved by less than 0.05 mrad and
        the slice thickness by less than 0.2 %. A tolerance of 0 always runs
        ``iterations``. The result's ``converged`` says which.
    batch_size : positions per update (adjacent positions, batches shuffled); ``None``
        picks one from the available memory.
    tilt_mrad : start value of the specimen mistilt (θx, θy) in mrad.
    learn_tilt, learn_thickness : learn the global tilt / slice thickness (adaptive
        propagator, Sha et al. 2022). Only a specimen thick enough for them to change the
        patterns determines them: on the 14 Å default sample the defaults learned a tilt
        of (4.3, −0.2) mrad for the true (0, 0) (4 mrad moves the wave by 0.06 Å across
        it); from 2 slices and 16 Å in all, (−9.8, 3.3) mrad and 5.8 Å at the data error
        reached with the tilt held at 0. Turn them off for thin specimens (README).
    tilt_map : learn a per-position tilt offset on top of the global tilt.
    z_smoothness : weight of the penalty Σ|V_{s+1} − V_s|² / Σ|V_s|² between adjacent
        slices. A free multislice object can mimic a tilt exactly by shifting its slices
        laterally (the tilted propagator is the untilted one times a shift), so without a
        coupling between slices the tilt is not determined by the data; this prior, a
        simple form of the k_z regularisation of You et al. (2025), makes it so.
    slice_period : a crystal viewed down a zone axis repeats along the beam: with a period
        p ≥ 1, slice s is tied to slice s − p (p × slice_thickness must be a whole number of
        the crystal's repeat distances along the beam; 1 for slices of whole unit cells).
        Tied slices cannot slide, so the data determine the tilt and thickness: they are
        learned with the slices tied until the convergence rule holds, then held at their
        means over its last window while the slices are released and refined to
        convergence (surfaces, defects). The result's provenance records the tied stage.
        Measured on abTEM's Au [001] (82 Å, 64 patterns, 10 slices of two unit cells, from
        (0, 0)): (1.95, −1.14), (1.79, −1.05), (1.91, −1.02) mrad for the true (2, −1) with
        seeds 0–2, where free slices converge at (0.28, −1.17); 20 slices of one cell left
        the untilted group 0.41 mrad off. On abTEM's SrTiO3 (117 Å, 6 slices from 80 % of
        the thickness) (3.65, −0.15) for (4, 0) against (3.41, −0.33) with free slices, but
        the thickness −3.5 % against −0.2 %. 0 (default): the slices are free throughout.
    object_step_decay : the steps of the object, the tilt and the thickness decay (cosine)
        from their ``rates`` at the first iteration to this fraction of them at the last
        of ``iterations`` (1: constant).
    tilt_map_smoothness : weight of the squared-difference penalty between the tilts of
        neighbouring scan positions, in (loss units) per mrad².
    tilt_map_window : standard deviation (Å) of the Gaussian window over which the local
        drift of adjacent slices is measured and moved into the tilt map each iteration
        (:mod:`~napari_ptychotomo.ptycho.local_drift`); the lateral resolution of the map.
    learn_positions : refine the scan positions.
    max_position_step : largest change of a position per update, Å.
    learn_probe : refine the probe modes.
    optimizer : ``"adam"`` or ``"sgd"`` (plain gradient descent).
    rates : :class:`~napari_ptychotomo.engine.LearningRate` per quantity: ``object``
        (V·Å), ``probe`` (relative amplitude), ``positions`` (Å), ``tilt`` (mrad),
        ``thickness`` (Å), ``tilt_map`` (mrad: the gradient step of the per-position tilts,
        default 0, so the map comes from the local slice-drift step alone, which starts at
        its ``start``; the gradient is weak, since the object can mimic a local tilt, and
        the smoothness penalty dominates it).
    defocus : start defocus in Å for the probe (positive = underfocus); ``None`` takes the
        calibration's value; ``"estimate"`` the bright-field estimate of
        :func:`~napari_ptychotomo.ptycho.estimate_defocus` (needs a raster scan);
        ``"auto"`` (default) the estimate when the scan is a raster, the estimate is
        ``reliable`` and the specimen (``num_slices × slice_thickness``) is thinner than
        half the estimated defocus (the parallax refers the focus to a plane within the
        specimen), else the calibration's value. The result's provenance records
        ``defocus_start`` and ``defocus_source``.
    probe_mode_power : fraction of the power put in the higher modes at start.
    object_padding : extra object pixels around the scanned area beyond half a window.
    oversampling : the model's grid is this many times finer than the detector's
        real-space pixel 1/(K Δk); its far field spans as many times the detector's
        angles and only the detector's pixels enter the loss, so scattering past the
        detector's edge leaves the model instead of wrapping around. With 1 the model
        works on the detector's grid without a band limit (so it can predict every
        detector pixel); with 2 or more, with the usual 2/3 antialias of its own grid.
    """

    num_slices: int = param(6, label="slices", min=1, max=500)
    slice_thickness: float = param(15.0, label="slice thickness", unit="Å", min=0.1, max=1e4, step=0.5)
    num_modes: int = param(1, label="probe modes", min=1, max=20)
    iterations: int = param(300, label="iterations", min=1, max=10000)
    convergence_window: int = 20
    convergence_tolerance: float = 2e-3
    batch_size: int | None = None
    tilt_mrad: tuple[float, float] = (0.0, 0.0)
    learn_tilt: bool = param(True, label="learn tilt")
    learn_thickness: bool = param(True, label="learn thickness")
    tilt_map: bool = param(False, label="tilt map")
    tilt_map_smoothness: float = 1e-3
    tilt_map_window: float = param(
        3.0,
        label="tilt map window σ",
        unit="Å",
        min=0.1,
        max=1e3,
        step=0.5,
        tooltip="Standard deviation (Å) of the Gaussian window over which the local drift of adjacent slices is "
        "measured: the lateral resolution of the tilt map. Used only when 'tilt map' is checked.",
    )
    z_smoothness: float = param(
        0.03,
        label="z smoothness (weight)",
        min=0.0,
        max=100.0,
        step=0.001,
        tooltip="Weight (dimensionless, loss units) of the penalty Σ|V(s+1) − V(s)|² / Σ|V(s)|² between adjacent "
        "slices; it couples the slices so that the data determine the tilt. 0 switches it off.",
    )
    slice_period: int = param(
        0,
        label="crystal period (slices)",
        min=0,
        max=500,
        tooltip="For a crystal on a zone axis: tie slice s to slice s − period (slices of whole unit cells: 1) "
        "so that the data determine the tilt and thickness; the slices are released once they have converged. "
        "0: slices free.",
    )
    object_step_decay: float = 0.1
    learn_positions: bool = param(False, label="refine positions")
    max_position_step: float = 0.05
    learn_probe: bool = True
    optimizer: str = "adam"
    rates: dict[str, LearningRate] = param(
        default_factory=_default_rates,
        label="learning rates",
        parts={
            "object": ui(
                "object step",
                unit="V·Å",
                min=0.0,
                max=1e5,
                step=1.0,
                tooltip="Learning rate of the object's projected potential per slice, V·Å per update. Follows the "
                "slice thickness (2 V × Δz, the engine's default) until you set it.",
            ),
            "tilt": ui(
                "tilt step",
                unit="mrad",
                min=0.0,
                max=100.0,
                step=0.05,
                tooltip="Learning rate of the global specimen tilt (θx, θy), mrad per update.",
            ),
        },
    )
    defocus: float | str | None = param(
        "auto",
        label="start defocus",
        unit="Å",
        tooltip="Start defocus of the probe: 'auto' (bright-field estimate when reliable, else the calibration's), "
        "'estimate' (bright-field estimate, raster scans), 'calibration' (the calibration's value) or a number in Å "
        "(positive = underfocus).",
    )
    probe_mode_power: float = 0.1
    object_padding: int = 2
    oversampling: int = 1

    @classmethod
    def from_calibration(cls, calibration: Any, thickness: float | None = None, **overrides) -> MSPParams:
        """Defaults for a scan with this calibration.

        The specimen depth is given either as ``thickness`` (Å, split into ``num_slices``
        slices, default 6) or as ``slice_thickness`` (Å per slice), never both unless they
        agree; without either a slice is 15 Å. Other fields as keywords. Unless ``rates``
        names it, the object step is ``OBJECT_STEP_PER_ANGSTROM`` (2 V) × the slice
        thickness, in V·Å, computed after every override, so the same physical setting gives
        the same parameters whichever way it is written.
        """
        calibration.validate()
        if thickness is not None:  # named as given, before it is split into slices
            _positive("thickness", thickness, "Å")
        num_slices = overrides.pop("num_slices", 6)
        # checked before it divides the thickness (int() would also turn 2.7 into 2)
        if not isinstance(num_slices, (int, np.integer)) or isinstance(num_slices, bool) or num_slices < 1:
            raise ValueError(f"num_slices = {num_slices!r}; expected a positive integer")
        num_slices = int(num_slices)
        slice_thickness = overrides.pop("slice_thickness", None)
        if slice_thickness is not None and thickness is not None:
            if not np.isclose(float(slice_thickness) * num_slices, float(thickness), rtol=1e-6):
                raise ValueError(
                    f"thickness = {thickness!r} Å and slice_thickness = {slice_thickness!r} Å × "
                    f"{num_slices} slices disagree; give one of them"
                )
        if slice_thickness is None:
            slice_thickness = (15.0 * num_slices if thickness is None else float(thickness)) / num_slices
        params = cls(num_slices=num_slices, slice_thickness=float(slice_thickness))
        params.rates["object"] = LearningRate(OBJECT_STEP_PER_ANGSTROM * params.slice_thickness, 0)
        rates = overrides.pop("rates", None)
        params = replace(params, **overrides)
        if rates:
            merged = dict(params.rates)
            merged.update(rates)
            params.rates = merged
        return params.validate()

    def rate(self, name: str) -> LearningRate:
        return self.rates[name]

    def validate(self) -> MSPParams:
        """Check every field; raise ``ValueError`` naming the field."""

        def positive_int(name):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} = {value!r}; expected a positive integer")

        for name in ("num_slices", "num_modes", "iterations", "oversampling"):
            positive_int(name)
        if self.batch_size is not None:
            positive_int("batch_size")
        if not (np.isfinite(self.slice_thickness) and self.slice_thickness > 0):
            raise ValueError(f"slice_thickness = {self.slice_thickness!r}; expected a positive length in Å")
        tilt = np.asarray(self.tilt_mrad, dtype=float)
        if tilt.shape != (2,) or not np.all(np.isfinite(tilt)):
            raise ValueError(f"tilt_mrad = {self.tilt_mrad!r}; expected (θx, θy) in mrad")
        if np.any(np.abs(tilt) > 200):
            raise ValueError(
                f"tilt_mrad = {self.tilt_mrad!r}; a specimen mistilt above 200 mrad "
                "is not a small mistilt (did you give degrees?)"
            )
        if not isinstance(self.convergence_window, (int, np.integer)) or self.convergence_window < 2:
            raise ValueError(
                f"convergence_window = {self.convergence_window!r}; expected an integer number of iterations ≥ 2"
            )
        if not (np.isfinite(self.convergence_tolerance) and self.convergence_tolerance >= 0):
            raise ValueError(
                f"convergence_tolerance = {self.convergence_tolerance!r}; expected a "
                "relative change ≥ 0 (0 runs every iteration)"
            )
        if not (self.max_position_step > 0):
            raise ValueError(f"max_position_step = {self.max_position_step!r}; expected a positive length in Å")
        if not (self.z_smoothness >= 0):
            raise ValueError(f"z_smoothness = {self.z_smoothness!r}; expected ≥ 0")
        period = self.slice_period
        if not isinstance(period, (int, np.integer)) or isinstance(period, bool) or period < 0:
            raise ValueError(f"slice_period = {period!r}; expected a whole number of slices ≥ 0 (0: slices free)")
        if period and self.num_slices % period:
            raise ValueError(
                f"slice_period = {period} does not divide num_slices = {self.num_slices}; the tied slices "
                "repeat as a whole along the specimen"
            )
        if period and self.tilt_map:
            raise ValueError(
                "slice_period and tilt_map cannot be combined: the tilt map is measured from the drift "
                "of free slices; learn the global tilt with tied slices first, then the map from it"
            )
        if not (0 < self.object_step_decay <= 1):
            raise ValueError(f"object_step_decay = {self.object_step_decay!r}; expected a fraction in (0, 1]")
        if self.tilt_map_smoothness < 0:
            raise ValueError(f"tilt_map_smoothness = {self.tilt_map_smoothness!r}; expected ≥ 0")
        if not (np.isfinite(self.tilt_map_window) and self.tilt_map_window > 0):
            raise ValueError(f"tilt_map_window = {self.tilt_map_window!r}; expected a positive length in Å")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer = {self.optimizer!r}; expected 'adam' or 'sgd'")
        if not (0 <= self.probe_mode_power < 1):
            raise ValueError(f"probe_mode_power = {self.probe_mode_power!r}; expected a fraction in [0, 1)")
        if self.object_padding < 0:
            raise ValueError(f"object_padding = {self.object_padding!r}; expected ≥ 0 pixels")
        if isinstance(self.defocus, str):
            if self.defocus not in ("auto", "estimate"):
                raise ValueError(f"defocus = {self.defocus!r}; expected a length in Å, None, 'auto' or 'estimate'")
        elif self.defocus is not None and not np.isfinite(self.defocus):
            raise ValueError(f"defocus = {self.defocus!r}; expected a finite length in Å")
        expected = set(_default_rates())
        missing = expected - set(self.rates)
        unknown = set(self.rates) - expected
        if unknown:
            raise ValueError(f"rates has unknown key(s) {sorted(unknown)}; expected {sorted(expected)}")
        if missing:
            raise ValueError(
                f"rates has no {sorted(missing)}; rates holds every learned quantity: change one of the "
                "defaults, e.g. params.rates['tilt'] = LearningRate(step, start), or pass rates= to "
                "MSPParams.from_calibration, which merges it with them"
            )
        for name, rate in self.rates.items():
            if isinstance(rate, (tuple, list)):
                rate = self.rates[name] = LearningRate(*rate)
            if not (np.isfinite(rate.step) and rate.step >= 0):
                raise ValueError(f"rates[{name!r}].step = {rate.step!r}; expected ≥ 0")
            if not isinstance(rate.start, (int, np.integer)) or rate.start < 0:
                raise ValueError(f"rates[{name!r}].start = {rate.start!r}; expected an iteration ≥ 0")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain dictionary (for provenance and config files)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "rates"}
        out["tilt_mrad"] = [float(v) for v in self.tilt_mrad]
        out["rates"] = {k: {"step": v.step, "start": v.start} for k, v in self.rates.items()}
        return out
