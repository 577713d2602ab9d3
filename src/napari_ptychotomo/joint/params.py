"""Parameters of end-to-end ptycho-tomography: every learned quantity and regulariser in one place.

As in PtyRAD's model parameters, each quantity that the reconstruction learns has a step
size and the iteration (pass over all tilts, 0-based) at which it starts to be learned;
each regulariser has a weight and a start iteration. :meth:`JointParams.validate` checks
everything before any computation, with messages that name the field.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from ..engine import LearningRate
from ..params_meta import param, ui

__all__ = ["JointParams", "LearningRate", "PLANE_WAVE_DEFAULTS"]


#: volume step, V per update, from a zero volume
VOLUME_STEP_FROM_ZERO = 5.0
#: volume step, V per update, from a start volume (an earlier result, linear tomography):
#: 5 V per update undoes a good start (missing-wedge case: NRMSE 0.236 against 0.199 at 1 V)
VOLUME_STEP_FROM_START = 1.0


def volume_step(from_start_volume: bool) -> float:
    """The default volume step in V per update, for a run with or without a start volume."""
    return VOLUME_STEP_FROM_START if from_start_volume else VOLUME_STEP_FROM_ZERO


def _default_rates() -> dict[str, LearningRate]:
    return {
        "volume": LearningRate(VOLUME_STEP_FROM_ZERO, 0),
        "probe": LearningRate(1e-3, 3),
        "positions": LearningRate(0.02, 5),
        "euler": LearningRate(0.05, 5),
        "shifts": LearningRate(0.05, 2),
    }


#: where the plane-wave mode starts away from JointParams' defaults: TV 1 V (as
#: ``plane_wave_steps`` without params) and 20 passes (the plane-wave widget's start)
PLANE_WAVE_DEFAULTS: dict[str, Any] = {"iterations": 20, "tv_weight": 1.0}

_LEARNED = ("volume", "probe", "positions", "euler", "shifts")


@dataclass
class JointParams:
    """Settings of :func:`~napari_ptychotomo.joint.reconstruct_joint` (You et al. 2025,
    Algorithm 3) and of the plane-wave mode (Ren et al. 2018).

    Parameters
    ----------
    iterations : passes over all tilts (E of Algorithm 3).
    num_slices : slices the rotated volume is binned into along the beam (operator B_b of
        You et al. eq. 14; N_B of Ren et al.); must divide the volume depth.
    batch_size : scan positions per minibatch (adjacent positions; batch order reshuffled
        every pass); ``None`` picks the largest that fits in memory, at most 64.
    num_modes : mixed-state probe modes when the probe starts from the calibration.
    volume_shape : (nz, ny, nx) voxels; ``None`` makes a cube that holds the scan and the
        probe window (4D-STEM) or the images (plane wave).
    rates : :class:`LearningRate` per learned quantity: ``volume``, ``probe``, ``positions``,
        ``euler``, ``shifts``. A quantity other than the volume is learned only when its
        ``learn_<name>`` switch is on. The volume step (the most any voxel moves in one
        update, V) defaults to 5 V, for a zero start; from a sequential start use about 1 V
        (the pipeline and the widget do): 5 V undoes part of it
        (tests/joint/missing_wedge_case.py: NRMSE 0.236 against 0.199).
    learn_probe, learn_positions, learn_euler, learn_shifts : refine the probe modes, the
        scan positions, the Euler angles or the shifts of the tilts, each from its
        ``rates`` entry's start (the volume is always learned). The paper keeps Euler
        angles and shifts fixed; refining them is this package's step beyond it.
    l1_imag, l1_start : weight (V per update, the shrinkage threshold of You et al. eq. 17)
        and start iteration of the L1 shrinkage of Im V.
    nonnegative, nonnegative_start : clip Re V and Im V at zero after each update.
    butterworth_cutoff, butterworth_order, butterworth_start : 3D Butterworth low-pass of
        Re V (cut-off in Å⁻¹; Im V kept), after each tilt; ``None`` disables.
    butterworth_stop : first pass without the low-pass (``None``: to the end). A low-pass
        for the first passes only is a coarse-to-fine alignment: shifts learned against a
        smooth volume cannot be absorbed by atom-sized detail of a volume fitted to the
        wrong shifts (see the shift-refinement tests in tests/joint/test_achievements.py).
    kz_beta, kz_start : strength of the k_z regularisation kernel
        w = 1 − (2/π) arctan(β² k_∥² / k_⊥²) applied to each tilt's volume update along that
        tilt's beam (Tsai et al. 2016 as used by You et al.); 0 disables.
    tv_weight, tv_start : weight (V) of the proximal total variation of Re V after each
        tilt (4D-STEM) or each FISTA step (plane wave). For 4D-STEM at 0.5 Å voxels,
        0.01 V lowered the error to the truth by 8-16 % in the missing-wedge cases
        (tests/joint/missing_wedge_case.py), 0.1 V already over-smooths.
    half_data : reconstruct the two halves of the data (alternate positions or defocus
        images) separately for the FSC; the result volume is their mean, ``halves`` both.
        Both halves start from one state (the start volume, zero by default, and what
        ``init`` gives); ``volume.provenance["halves_share"]`` lists it, and
        :func:`~napari_ptychotomo.analysis.resolution_of` warns that their FSC then
        overstates the resolution.
    fista : Nesterov (FISTA) acceleration in the plane-wave mode (Ren et al. 2018).
    plane_wave_step : gradient step of the plane-wave mode in V per unit normalised
        gradient.
    momentum : heavy-ball momentum of the volume's gradient descent (0 = the paper's plain
        gradient step).
    preview_every : yield a volume preview every this many tilts.
    band_limit : cut the 4D-STEM model on the detector's grid at 2/3 of its Nyquist
        (transmission and propagator). Off (default), the model predicts every detector
        pixel, but what scatters past the detector's edge wraps around to the opposite side
        of that grid; on, it predicts nothing past 2/3 of the edge. Measured on the fine-grid
        simulator's data (tests/joint/missing_wedge_case.py, Pt13, 16-px detector, 15 mrad):
        volume NRMSE 0.213 off against 0.316 on (sequential 0.321). Shift refinement on a
        detector whose edge (here 19.7 mrad) is close to the probe's semi-angle needs the
        cut: coarse to fine it converges with it (0.44 → 0.06 Å) and not without it
        (0.44 → 0.47 Å).
    """

    iterations: int = param(10, label="iterations (passes)", min=1, max=10000)
    num_slices: int = param(4, label="slices along the beam", min=1, max=1000)
    batch_size: int | None = param(None, label="batch size (0 = auto)", min=0, max=100000, none=0)
    num_modes: int = param(1, label="probe modes", min=1, max=20)
    volume_shape: tuple[int, int, int] | None = None
    rates: dict[str, LearningRate] = param(
        default_factory=_default_rates,
        label="learning rates",
        parts={
            "volume": ui(
                "volume step",
                unit="V",
                min=0.01,
                max=1000.0,
                step=0.5,
                tooltip="The most any voxel of the volume moves in one update, V: 5 V from a zero volume, 1 V from a "
                "start volume (a larger step undoes a good start). Follows the start volume until you set it.",
            )
        },
    )
    learn_probe: bool = param(
        False,
        label="refine probes",
        tooltip="Refine the probe modes (4D-STEM), from the start pass of rates['probe']; the volume is always "
        "learned.",
    )
    learn_positions: bool = param(
        False,
        label="refine positions",
        tooltip="Refine the scan positions of every tilt (4D-STEM), from the start pass of rates['positions'].",
    )
    learn_euler: bool = param(
        False,
        label="refine Euler angles",
        tooltip="Refine the Euler angles (φ, θ, ψ) of every tilt, from the start pass of rates['euler'].",
    )
    learn_shifts: bool = param(
        False,
        label="refine shifts",
        tooltip="Refine the shift (y, x) of every tilt, from the start pass of rates['shifts'].",
    )
    l1_imag: float = param(0.0, label="L1 of Im V", unit="V", min=0.0, max=100.0, step=0.01)
    l1_start: int = 0
    nonnegative: bool = param(True, label="non-negative")
    nonnegative_start: int = 0
    butterworth_cutoff: float | None = None
    butterworth_order: int = 2
    butterworth_start: int = 0
    butterworth_stop: int | None = None
    kz_beta: float = 0.0
    kz_start: int = 0
    tv_weight: float = param(0.0, label="TV weight", unit="V", min=0.0, max=100.0, step=0.01)
    tv_start: int = 0
    half_data: bool = param(False, label="half-data volumes (for FSC)")
    fista: bool = param(True, label="FISTA acceleration")
    plane_wave_step: float = param(1.0, label="gradient step", unit="V", min=0.001, max=1000.0, step=0.1)
    momentum: float = 0.5
    preview_every: int = 1
    band_limit: bool = False

    def validate(self) -> JointParams:
        """Raise ``ValueError`` naming the first bad field; return ``self``."""
        for name in ("iterations", "num_slices", "num_modes", "preview_every"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} = {value!r}; expected a positive integer")
        if self.batch_size is not None and (not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1):
            raise ValueError(f"batch_size = {self.batch_size!r}; expected a positive integer or None")
        if self.volume_shape is not None:
            shape = tuple(self.volume_shape)
            if len(shape) != 3 or shape[0] < 1 or min(shape[1:]) < 2:
                raise ValueError(f"volume_shape = {self.volume_shape!r}; expected (nz, ny, nx) voxels")
            if shape[0] % self.num_slices:
                raise ValueError(
                    f"num_slices = {self.num_slices} does not divide the volume depth "
                    f"nz = {shape[0]} of volume_shape; choose a divisor of nz"
                )
        for name in _LEARNED[1:]:
            value = getattr(self, f"learn_{name}")
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"learn_{name} = {value!r}; expected True or False")
        unknown = sorted(set(self.rates) - set(_LEARNED))
        if unknown:  # else a misspelt key is ignored and the default step used
            raise ValueError(f"rates has unknown key(s) {unknown}; expected {list(_LEARNED)}")
        for name in _LEARNED:
            rate = self.rates.get(name)
            if rate is None:
                raise ValueError(
                    f"rates has no {name!r}; rates holds every learned quantity: change one of the "
                    f"defaults, e.g. params.rates[{name!r}] = LearningRate(step, start)"
                )
            if not isinstance(rate, LearningRate):
                raise ValueError(f"rates[{name!r}] = {rate!r}; expected LearningRate(step, start)")
            if not (np.isfinite(rate.step) and rate.step >= 0) or rate.start < 0:
                raise ValueError(f"rates[{name!r}] = {rate!r}; expected a step >= 0 and a start iteration >= 0")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum = {self.momentum!r}; expected 0 <= momentum < 1")
        for name in ("l1_imag", "kz_beta", "tv_weight", "plane_wave_step"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(f"{name} = {value!r}; expected a number >= 0")
        if self.butterworth_cutoff is not None and not self.butterworth_cutoff > 0:
            raise ValueError(
                f"butterworth_cutoff = {self.butterworth_cutoff!r}; expected a frequency in Å⁻¹ > 0 or None"
            )
        if self.butterworth_order < 1:
            raise ValueError(f"butterworth_order = {self.butterworth_order!r}; expected >= 1")
        if self.butterworth_stop is not None and not (
            isinstance(self.butterworth_stop, (int, np.integer)) and self.butterworth_stop > self.butterworth_start
        ):
            raise ValueError(
                f"butterworth_stop = {self.butterworth_stop!r}; expected None or a pass after "
                f"butterworth_start = {self.butterworth_start}"
            )
        for f in fields(self):
            if f.name.endswith("_start") and getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} = {getattr(self, f.name)!r}; expected an iteration >= 0")
        return self

    def learns(self, name: str, iteration: int) -> bool:
        """Whether ``name`` (one of ``volume``, ``probe``, ``positions``, ``euler``,
        ``shifts``) is learned at pass ``iteration``: its switch ``learn_<name>`` is on (the
        volume's always is), the pass is at or after its rate's start and its step is > 0."""
        if name not in _LEARNED:
            raise ValueError(f"{name!r} is not a learned quantity; expected one of {_LEARNED}")
        switched_on = name == "volume" or getattr(self, f"learn_{name}")
        return bool(switched_on) and iteration >= self.rates[name].start and self.rates[name].step > 0

    @property
    def learned(self) -> tuple[str, ...]:
        """The quantities this run learns, ``volume`` first (switches only, not rates)."""
        return tuple(name for name in _LEARNED if name == "volume" or getattr(self, f"learn_{name}"))

    def low_passes(self, iteration: int) -> bool:
        """Whether the Butterworth low-pass is applied at pass ``iteration``."""
        stop = self.butterworth_stop
        return (
            self.butterworth_cutoff is not None
            and iteration >= self.butterworth_start
            and (stop is None or iteration < stop)
        )

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (rates as ``{name: (step, start)}``) for provenance."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["rates"] = {k: (r.step, r.start) for k, r in self.rates.items()}
        return out
