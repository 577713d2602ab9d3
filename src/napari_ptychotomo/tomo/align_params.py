"""Settings of the gradient alignment (:func:`.align.align_tilt_series_steps` with
``method="gradient"``): one :class:`AlignStage` per scale, and the default stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..engine import LearningRate
from ..params_meta import param, ui

__all__ = ["AlignStage", "default_stages"]

#: the Euler angles a stage may learn, by name
ANGLES = ("phi", "theta", "psi")


def _default_rates() -> dict[str, LearningRate]:
    return {"shifts": LearningRate(0.3, 0), "angles": LearningRate(0.2, 0)}


@dataclass
class AlignStage:
    """One scale of the alignment.

    Parameters
    ----------
    scale : fraction of the projection size (Romanov et al.: 0.1 for translations, 0.2 for
        rotations), floored at ``min_size`` pixels.
    learn_shifts, learn_phi, learn_theta, learn_psi : what the outer step updates: the
        shifts of the tilts (on by default) and the Euler angles φ, θ, ψ (off), each from
        its ``rates`` entry's start.
    n_outer : outer iterations: a volume fit with the alignment fixed, then an alignment
        step with the volume fixed.
    n_inner, n_align : volume-fit and alignment iterations per outer iteration.
    rates : :class:`~napari_ptychotomo.engine.LearningRate` (Adam) of ``shifts``, in px of
        this stage's downsampled projections per update, and of ``angles`` (φ, θ, ψ
        alike), in degrees per update; ``start`` is the outer iteration of the stage
        (0-based) from which the quantity is learned.
    per_tilt_angles : one angle correction per tilt (else one shared by all).
    min_size : smallest side of the downsampled projections, px.
    """

    scale: float
    learn_shifts: bool = param(
        True, label="refine shifts", tooltip="Refine the shift (y, x) of every tilt in this stage's outer steps."
    )
    learn_phi: bool = param(
        False, label="refine φ", tooltip="Refine φ, the tilt axis' deviation from perpendicular to the beam."
    )
    learn_theta: bool = param(False, label="refine θ", tooltip="Refine θ, the stage tilt about the axis.")
    learn_psi: bool = param(
        False,
        label="refine ψ",
        tooltip="Refine ψ, the in-plane rotation of the tilt axis (gradient steps; see "
        "default_stages for why the common-line estimate is the default).",
    )
    n_outer: int = param(
        15,
        label="outer iterations per stage (gradient)",
        min=1,
        max=1000,
        tooltip="Outer iterations of a gradient stage: each an alignment step (shifts, angles) with the volume "
        "fixed after a volume fit with the alignment fixed.",
    )
    n_inner: int = 10
    n_align: int = 5
    rates: dict[str, LearningRate] = param(
        default_factory=_default_rates,
        label="learning rates",
        parts={
            "shifts": ui(
                "shift step",
                unit="px",
                min=0.0,
                max=100.0,
                step=0.05,
                tooltip="Adam learning rate of the shifts, px of the stage's downsampled projections per update.",
            ),
            "angles": ui(
                "angle step",
                unit="°",
                min=0.0,
                max=90.0,
                step=0.05,
                tooltip="Adam learning rate of the Euler angles φ, θ, ψ, ° (degrees) per update.",
            ),
        },
    )
    per_tilt_angles: bool = False
    min_size: int = 24

    @property
    def learned(self) -> tuple[str, ...]:
        """What this stage refines (switches only, not rates): ``shifts``, ``phi``, ``theta``, ``psi``."""
        return tuple(name for name in ("shifts", *ANGLES) if getattr(self, f"learn_{name}"))

    def learns(self, name: str, iteration: int) -> bool:
        """Whether ``name`` (``shifts``, ``phi``, ``theta`` or ``psi``) is refined at outer
        iteration ``iteration`` of this stage: its switch is on, the iteration is at or
        after its rate's start and the step is > 0."""
        if name not in ("shifts", *ANGLES):
            raise ValueError(f"{name!r} is not refined by an AlignStage; expected shifts, {', '.join(ANGLES)}")
        rate = self.rates["shifts" if name == "shifts" else "angles"]
        return bool(getattr(self, f"learn_{name}")) and iteration >= rate.start and rate.step > 0

    def validate(self) -> AlignStage:
        """Raise ``ValueError`` naming the first bad field; return ``self``."""
        for name in ("shifts", *ANGLES):
            value = getattr(self, f"learn_{name}")
            if not isinstance(value, (bool, np.bool_)):
                raise ValueError(f"AlignStage.learn_{name} = {value!r}; expected True or False")
        if set(self.rates) != {"shifts", "angles"}:
            raise ValueError(f"AlignStage.rates has keys {sorted(self.rates)}; expected ['angles', 'shifts']")
        for name, rate in self.rates.items():
            if not isinstance(rate, LearningRate):
                raise ValueError(f"AlignStage.rates[{name!r}] = {rate!r}; expected LearningRate(step, start)")
            if not (np.isfinite(rate.step) and rate.step >= 0) or not isinstance(rate.start, (int, np.integer)):
                raise ValueError(f"AlignStage.rates[{name!r}] = {rate!r}; expected a step >= 0 and an integer start")
            if rate.start < 0:
                raise ValueError(f"AlignStage.rates[{name!r}] = {rate!r}; expected a start iteration >= 0")
        return self


def default_stages() -> list[AlignStage]:
    """Translations at 10 % scale (at least 24 px), then again at 20 % (at least 48 px),
    after Romanov et al. 2025.

    The in-plane axis angle ψ comes from the common-line estimate
    (``estimate_axis=True``), not from the alternating gradient steps: for a single-axis
    series a small change of ψ is almost matched by rotating the volume about z (only the
    common line tells them apart), so gradient steps on ψ with a volume refit each outer
    iteration drift (tests: 2° true, drifting from 2.4° to 0.9° over 20 iterations). Set a
    stage's ``learn_psi``, ``learn_theta`` or ``learn_phi`` for a gradient refinement of
    the Euler angles where the data constrain them (several axes, strong priors)."""
    return [
        AlignStage(scale=0.1, learn_shifts=True, n_outer=10, min_size=24),
        AlignStage(scale=0.2, learn_shifts=True, n_outer=10, min_size=48),
    ]
