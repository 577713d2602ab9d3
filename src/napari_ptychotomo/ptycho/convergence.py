"""The convergence rule of an MSP run (:func:`_converged`, the rule of
:class:`~.params.MSPParams`) and the record of each iteration it reads (:class:`_History`:
data error, global tilt, thickness)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import msp_update as update
from .params import MSPParams

# the means of the last two windows of iterations must agree this well (minibatch updates
# make single iterations jitter by ~0.1 mrad and ~0.1 %): tilt in mrad, thickness relative
_TILT_SETTLED_MRAD = 0.05
_THICKNESS_SETTLED = 2e-3


def _converged(params: MSPParams, losses: list[float], tilts: list[np.ndarray], thicknesses: list[float]) -> bool:
    """The convergence rule of :class:`MSPParams` after the latest iteration: the means
    of the data error, the tilt and the thickness over the last ``convergence_window``
    iterations agree with those over the window before."""
    window, tol = params.convergence_window, params.convergence_tolerance
    learned = [
        name
        for name, on in (
            ("object", True),
            ("probe", params.learn_probe),
            ("positions", params.learn_positions),
            ("tilt", params.learn_tilt),
            ("thickness", params.learn_thickness),
            ("tilt_map", params.tilt_map),
        )
        if on
    ]
    last_start = max(params.rate(name).start for name in learned)
    if tol <= 0 or len(losses) < last_start + 2 * window:
        return False

    def means(values):
        values = np.asarray(values[-2 * window :], dtype=np.float64)
        return values[:window].mean(0), values[window:].mean(0)

    loss_before, loss_now = means(losses)
    tilt_before, tilt_now = means(tilts)
    dz_before, dz_now = means(thicknesses)
    return bool(
        loss_before - loss_now < tol * loss_before
        and np.max(np.abs(tilt_now - tilt_before)) < _TILT_SETTLED_MRAD
        and abs(dz_now - dz_before) < _THICKNESS_SETTLED * dz_now
    )


@dataclass
class _History:
    """Per iteration: the relative data error, the global tilt (mrad), the thickness (Å)."""

    losses: list[float] = field(default_factory=list)
    tilts: list[np.ndarray] = field(default_factory=list)
    thicknesses: list[float] = field(default_factory=list)

    def record(self, loss: float, state: update.State) -> None:
        self.losses.append(loss)
        self.tilts.append(state.tilt.detach().cpu().numpy().astype(np.float64))
        self.thicknesses.append(float(state.thickness.detach()))
