"""What every engine refuses before it starts, and the one rule by which it stops.

Measured data (:func:`checked_counts`): every value is read into the engine once, so the
check there is complete, not sampled: non-finite values are refused, data without counts
(a mean below :data:`MIN_MEAN_COUNTS` per pattern, or per pixel of a plane-wave image,
in the data's own unit) are refused before any work, and negative values (an
over-subtracted dark reference) are clamped to zero with one warning that counts them
(:func:`warn_negative`).

Divergence (:class:`Divergence`): an engine stops with its last good state, as an
:class:`~napari_ptychotomo.engine.EngineError` whose ``partial`` is the engine's own result
type, when

- its loss is not finite, or exceeds :data:`LOSS_GROWTH_LIMIT` times its best so far
  (the best taken no lower than :data:`LOSS_FLOOR`: the losses are relative errors, and
  a jump from 1e-10 to 1e-8 of a start at the truth is rounding, not a blow-up);
- a learned geometric quantity leaves its physical range: a specimen tilt more than
  :data:`MAX_TILT_CHANGE_MRAD` from its start, a slice thickness ≤ 0 or more than
  :data:`MAX_THICKNESS_FACTOR` times its start, an Euler angle more than
  :data:`MAX_ANGLE_CHANGE_DEG` from its start, a shift beyond the field of view;
- torch overflows a number (``RuntimeError`` "... without overflow", from a step size
  so large that the update no longer fits in float32): :meth:`Divergence.run`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Generator, Sequence
from typing import Any

import numpy as np
import torch

from .engine import EngineError

__all__ = [
    "MIN_MEAN_COUNTS",
    "LOSS_GROWTH_LIMIT",
    "LOSS_FLOOR",
    "MAX_TILT_CHANGE_MRAD",
    "MAX_THICKNESS_FACTOR",
    "MAX_ANGLE_CHANGE_DEG",
    "checked_counts",
    "warn_negative",
    "Divergence",
    "tilt_problem",
    "thickness_problem",
    "angle_problem",
    "shift_problem",
    "is_overflow",
]

#: smallest mean sum of a diffraction pattern (or mean value of a plane-wave image pixel)
#: an engine accepts, in the data's unit (counts, or a fraction of the incident beam)
MIN_MEAN_COUNTS = 1e-3
#: an engine stops when its loss exceeds this factor times its best loss so far
LOSS_GROWTH_LIMIT = 100.0
#: the best loss is taken no lower than this relative error
LOSS_FLOOR = 1e-6
#: a learned specimen mistilt may move this far from its start (mrad)
MAX_TILT_CHANGE_MRAD = 50.0
#: a learned slice thickness must stay within (0, this factor × its start]
MAX_THICKNESS_FACTOR = 10.0
#: a learned Euler angle may move this far from its start (degrees)
MAX_ANGLE_CHANGE_DEG = 20.0


# ----------------------------------------------------------------------------- data
def checked_counts(
    values: torch.Tensor, what: str, per: str = "pattern", minimum: float = MIN_MEAN_COUNTS
) -> tuple[torch.Tensor, int]:
    """Check measured values ``(n, ky, kx)`` read into an engine and clamp them at zero.

    Raises ``ValueError`` naming ``what`` when a value is NaN or infinite, or when the
    mean sum of a ``per`` ("pattern": the sum of each; "image pixel": the mean of each)
    is below ``minimum``. Returns the values clamped at zero and the number of negative
    values that were clamped (for :func:`warn_negative`).
    """
    flat = values.reshape(len(values), -1)
    # NaN and ±inf survive the sum: one pass over the data and no temporary of its size
    # (isfinite or a float64 sum would allocate one); a pattern summing past 3.4e38 counts
    # as infinite
    sums = flat.sum(1)
    finite = torch.isfinite(sums)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ValueError(
            f"{what}: {per}(s) {bad} hold NaN or infinite values; repair or exclude them before reconstruction"
        )
    if per != "pattern":
        sums = sums / max(flat.shape[1], 1)
    mean = float(sums.double().mean()) if len(sums) else 0.0
    if not mean >= minimum:
        empty = int((sums <= 0).sum())
        raise ValueError(
            f"{what} hold no counts: the mean {'sum of a' if per == 'pattern' else 'value of an'} "
            f"{per} is {mean:.3g} ({empty} of {len(sums)} are zero or negative), below the "
            f"minimum of {minimum:g} (in the data's unit); check that these are the measured "
            "data (not an empty or dark-subtracted frame) and their scaling"
        )
    negative = int((flat < 0).sum()) if len(flat) and float(flat.amin()) < 0 else 0
    return (torch.clamp(values, min=0.0) if negative else values), negative


def warn_negative(negative: int, total: int, what: str) -> None:
    """One warning that ``negative`` of ``total`` values of ``what`` were clamped to 0."""
    if negative:
        warnings.warn(
            f"{what}: {negative} of {total} values are negative ({100 * negative / max(total, 1):.2g} %) "
            "and were set to 0; subtract the dark reference so that counts stay "
            "non-negative",
            stacklevel=3,
        )


# ---------------------------------------------------------------------- divergence
def _moved(value: Any, start: Any) -> float:
    """Largest |value − start|, infinite when a value is not finite."""
    change = np.abs(np.asarray(value, float) - np.asarray(start, float))
    return float(change.max(initial=0.0)) if np.all(np.isfinite(change)) else math.inf


def tilt_problem(tilt_mrad: Any, start_mrad: Any, name: str = "tilt_mrad") -> str | None:
    """Why a learned specimen tilt (mrad; (2,) or per position (n, 2)) moved more than
    :data:`MAX_TILT_CHANGE_MRAD` from its start, or ``None``."""
    moved = _moved(tilt_mrad, start_mrad)
    if moved > MAX_TILT_CHANGE_MRAD:
        return (
            f"{name} moved {moved:.4g} mrad from its start {np.round(start_mrad, 2).tolist()} mrad, "
            f"more than the {MAX_TILT_CHANGE_MRAD:g} mrad a specimen mistilt may take"
        )
    return None


def thickness_problem(thickness: float, start: float, name: str = "slice_thickness") -> str | None:
    """Why a learned slice thickness (Å) left (0, MAX_THICKNESS_FACTOR × start], or ``None``."""
    if not (0 < thickness <= MAX_THICKNESS_FACTOR * start):
        return f"{name} reached {thickness:.4g} Å, outside (0, {MAX_THICKNESS_FACTOR:g} × its start {start:.4g} Å]"
    return None


def angle_problem(euler_deg: Any, start_deg: Any, name: str = "euler_deg") -> str | None:
    """Why learned Euler angles (degrees) moved more than :data:`MAX_ANGLE_CHANGE_DEG`
    from their start, or ``None``."""
    moved = _moved(euler_deg, start_deg)
    if moved > MAX_ANGLE_CHANGE_DEG:
        return f"{name} moved {moved:.4g}° from its start, more than {MAX_ANGLE_CHANGE_DEG:g}°"
    return None


def shift_problem(shifts: Any, field: Sequence[float], unit: str, name: str = "shifts") -> str | None:
    """Why shifts ``(n, 2)`` (y, x) left the field of view ``field`` (y, x), or ``None``."""
    size = np.abs(np.asarray(shifts, float)) / np.asarray(field, float)
    if not np.all(np.isfinite(size)) or size.max(initial=0.0) > 1:
        worst = float(np.nanmax(np.abs(np.asarray(shifts, float)), initial=0.0))
        return (
            f"{name} reached {worst:.4g} {unit}, beyond the field of view "
            f"({' × '.join(f'{f:.4g}' for f in field)} {unit})"
        )
    return None


def is_overflow(exc: BaseException) -> bool:
    """Whether ``exc`` is torch's refusal of a number too large for its dtype."""
    return isinstance(exc, RuntimeError) and not isinstance(exc, EngineError) and "overflow" in str(exc)


class Divergence:
    """The stopping rule of one run of an engine (see the module's description).

    ``engine`` names it in messages, ``advice`` says what to change (e.g. "lower the
    step sizes in params.rates"). The engine sets :attr:`last_good`, a function that
    returns its last good state as its own result type, and calls :meth:`check` after
    each step with that step's loss and the range problems of what it learns.
    """

    def __init__(self, engine: str, advice: str):
        self.engine, self.advice = engine, advice
        self.best: dict[Any, float] = {}
        self.last_good: Callable[[], Any] = lambda: None

    def loss_problem(self, loss: float, key: Any = 0) -> str | None:
        """Why ``loss`` means a blow-up, or ``None``. ``key`` keeps separate bests (e.g.
        per tilt); a key without one compares with the best of all keys."""
        if not math.isfinite(loss):
            return f"the loss is {loss}"
        best = self.best.get(key, min(self.best.values(), default=math.inf))
        if loss > LOSS_GROWTH_LIMIT * max(best, LOSS_FLOOR):
            return f"the loss grew to {loss:.3g}, more than {LOSS_GROWTH_LIMIT:g} × its best {best:.3g}"
        return None

    def check(self, where: str, loss: float | None = None, key: Any = 0, problems: Sequence[str | None] = ()) -> None:
        """Raise :meth:`stop` when ``loss`` or one of ``problems`` says the run blew up;
        otherwise record ``loss`` as a candidate best."""
        loss_problem = None if loss is None else self.loss_problem(float(loss), key)
        found = [p for p in (loss_problem, *problems) if p]
        if found:
            raise self.stop(f"{'; '.join(found)} at {where}")
        if loss is not None:
            self.best[key] = min(self.best.get(key, math.inf), float(loss))

    def stop(self, reason: str) -> EngineError:
        """The error that ends the run, carrying :attr:`last_good` as ``partial``."""
        return EngineError(
            f"{self.engine} diverged: {reason}; stopped with the last good state (in .partial). {self.advice}",
            partial=self.last_good(),
        )

    def step(self, optimizer: Any) -> None:
        """``optimizer.step()``, a torch overflow turned into :meth:`stop`."""
        try:
            optimizer.step()
        except RuntimeError as exc:
            if not is_overflow(exc):
                raise
            raise self.stop(f"a number overflowed ({exc})") from exc

    def run(self, steps: Generator) -> Generator:
        """Relay the engine generator ``steps``, turning a torch overflow into :meth:`stop`."""
        try:
            return (yield from steps)
        except RuntimeError as exc:
            if not is_overflow(exc):
                raise
            raise self.stop(f"a number overflowed ({exc})") from exc
