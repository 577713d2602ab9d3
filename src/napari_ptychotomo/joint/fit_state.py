"""The state of one end-to-end fit (:mod:`.end_to_end`): what it fixes before its first
pass (:class:`_Setup`: constants, batch size, propagator, the measured amplitudes on the
host), the learned tensors with their optimisers (:class:`_Learned`), and the constraint
that keeps each tilt's probe windows inside the volume (:func:`keep_windows_inside`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..engine_guards import checked_counts, warn_negative
from ..physics import fresnel_propagator, interaction_constant, wavelength
from .distributed import world
from .memory import choose_batch_size, stem_bytes
from .params import JointParams
from .setup import half_indices

__all__ = ["keep_windows_inside"]

# Named constants of the fit (units in the comments)
#: voxels: a clamp that moves a shift or position less than this is rounding, not counted
_COUNTED = 1e-3
#: voxels: the window bounds lie this far inside, so that (bound + shift) − shift rounded in
#: float32 stays inside
_INSIDE_MARGIN = 1e-3
#: the most scan positions per minibatch when the batch size comes from memory (You et al.
#: use small minibatches of adjacent positions; larger ones update the volume less often)
_MOST_PER_BATCH = 64


# ---- setup: constants and data of one fit, the learned tensors and their optimisers


@dataclass
class _Setup:
    """What one fit fixes before its first pass (``clamped`` counts as it goes)."""

    params: JointParams
    device: torch.device
    rank: int  # this process among ``size`` (torchrun), 0 of 1 otherwise
    size: int
    voxel: float  # Å
    sigma: float  # interaction constant, rad / (V·Å)
    window: int  # probe window, px (the detector's)
    batch_size: int  # positions per minibatch
    propagator: torch.Tensor  # (window, window) slice-to-slice Fresnel propagator
    subsets: list[np.ndarray]  # the positions of each tilt this fit uses (all, or one half)
    amplitudes: list[torch.Tensor]  # per tilt (n, K, K) on the host, each tilt's mean pattern sum 1
    low: torch.Tensor  # (2,) extreme probe centres whose window fits, voxels
    high: torch.Tensor
    clamped: dict[str, int] = field(default_factory=lambda: {"shifts": 0, "positions": 0})

    @property
    def num_tilts(self) -> int:
        return len(self.subsets)


def _setup(series, state, params: JointParams, dev, half: int | None) -> _Setup:
    """Batch size (checked against memory before the data are read), propagator, data."""
    rank, size = world()
    scans = series.scans
    cal = scans[0].calibration
    voxel = state.voxel_size
    window = scans[0].detector_shape[0]
    num_modes = state.probes[0].shape[0]
    fixed, per_position = stem_bytes(state.shape, window, num_modes, params.num_slices)
    batch_size = choose_batch_size(
        "end-to-end ptycho-tomography", fixed, per_position, params.batch_size, dev, most=_MOST_PER_BATCH
    )
    slice_thickness = state.shape[0] / params.num_slices * voxel
    propagator = fresnel_propagator(
        (window, window), voxel, wavelength(cal.energy_eV), slice_thickness, device=dev, band_limit=params.band_limit
    )
    subsets, amplitudes = _host_amplitudes(scans, half)
    low, high = _window_bounds(state.shape[1:], window, dev)
    return _Setup(
        params=params,
        device=dev,
        rank=rank,
        size=size,
        voxel=voxel,
        sigma=float(interaction_constant(cal.energy_eV)),
        window=window,
        batch_size=batch_size,
        propagator=propagator,
        subsets=subsets,
        amplitudes=amplitudes,
        low=low,
        high=high,
    )


def _host_amplitudes(scans, half: int | None) -> tuple[list[np.ndarray], list[torch.Tensor]]:
    """The positions of each tilt this fit uses and the measured amplitudes, checked
    (finite, with counts; negatives set to 0 with one warning), kept on the host and
    normalised so that each tilt's mean pattern sum is 1."""
    subsets, amplitudes, negative = [], [], 0
    for k, scan in enumerate(scans):
        n = scan.num_positions
        subsets.append(np.arange(n) if half is None else half_indices(n, scan.scan_shape, half))
        patterns, clamped_k = checked_counts(
            torch.from_numpy(scan.patterns()), f"scan {k} (tilt {scan.tilt_deg:g}°): intensities"
        )
        negative += clamped_k
        scale = float(patterns.sum((-2, -1)).mean())
        amplitudes.append(torch.sqrt(patterns / scale))
    warn_negative(negative, sum(a.numel() for a in amplitudes), "intensities of the tilt series")
    return subsets, amplitudes


@dataclass
class _Learned:
    """The learned tensors: the volume (V) with its heavy-ball velocity and gradient scale,
    and per tilt the probe modes, positions (voxels), Euler angles (rad) and shift (voxels),
    each with its own Adam optimiser."""

    # the per-tilt quantities in the order their optimisers step
    per_tilt_names = ("probe", "positions", "euler", "shifts")

    volume: torch.Tensor
    velocity: torch.Tensor
    probes: list[torch.Tensor]
    positions: list[torch.Tensor]
    euler: list[torch.Tensor]
    shifts: list[torch.Tensor]
    optimisers: dict[str, list[torch.optim.Optimizer]]
    volume_scale: float = 0.0

    @classmethod
    def start(cls, state, params: JointParams, dev) -> _Learned:
        voxel = state.voxel_size
        volume = torch.tensor(state.volume, device=dev).requires_grad_(True)
        probes = [torch.tensor(p, device=dev).requires_grad_(True) for p in state.probes]
        positions = [torch.tensor(p, dtype=torch.float32, device=dev).requires_grad_(True) for p in state.positions_px]
        euler = [
            torch.tensor(np.deg2rad(e), dtype=torch.float32, device=dev).requires_grad_(True)
            for e in state.alignment.euler_deg
        ]
        shifts = [
            torch.tensor(s / voxel, dtype=torch.float32, device=dev).requires_grad_(True)
            for s in state.alignment.shifts
        ]
        rates = params.rates
        optimisers = {
            "probe": [torch.optim.Adam([p], lr=rates["probe"].step * float(p.detach().abs().max())) for p in probes],
            "positions": [torch.optim.Adam([p], lr=rates["positions"].step / voxel) for p in positions],
            "euler": [torch.optim.Adam([e], lr=np.deg2rad(rates["euler"].step)) for e in euler],
            "shifts": [torch.optim.Adam([s], lr=rates["shifts"].step / voxel) for s in shifts],
        }
        return cls(volume, torch.zeros_like(volume), probes, positions, euler, shifts, optimisers)

    def tensors_of_tilt(self, k: int) -> list[torch.Tensor]:
        return [self.volume, self.probes[k], self.positions[k], self.euler[k], self.shifts[k]]

    def per_tilt_lists(self) -> dict[str, list[torch.Tensor]]:
        return {
            "probes": list(self.probes),
            "positions": list(self.positions),
            "euler": list(self.euler),
            "shifts": list(self.shifts),
        }

    def values_of_tilt(self, k: int) -> dict[str, torch.Tensor]:
        """Copies of what tilt ``k`` learns, as they are now."""
        return {name: values[k].detach().clone() for name, values in self.per_tilt_lists().items()}


# ---- constraint: the probe windows stay inside the volume (in place)


def keep_windows_inside(
    positions: torch.Tensor, shift: torch.Tensor, low: torch.Tensor, high: torch.Tensor
) -> tuple[int, int]:
    """Clamp one tilt's probe positions and alignment shift in place so that every probe
    window stays inside the volume: ``low <= positions - shift <= high`` per axis.

    ``positions`` (K, 2) and ``shift`` (2,) are in voxels (y, x); ``low``, ``high`` (2,) are
    the extreme probe centres whose window still fits (see :func:`_window_bounds`). The
    shift is clamped first (a learned shift moves the whole scan), into the range where
    the whole scan fits when there is one; then single positions. Returns the number of
    shift axes and of positions that were moved (by more than 1e-3 voxel: a start given in
    Å may sit a rounding error outside).
    """
    with torch.no_grad():
        fits_low = positions.max(0).values - high  # smallest shift that keeps the scan inside
        fits_high = positions.min(0).values - low
        target = torch.where(fits_low <= fits_high, torch.minimum(torch.maximum(shift, fits_low), fits_high), shift)
        shift_clamped = int(((target - shift).abs() > _COUNTED).sum())
        shift.copy_(target)
        inside = torch.minimum(torch.maximum(positions, low + shift), high + shift)
        positions_clamped = int(((inside - positions).abs() > _COUNTED).any(1).sum())
        positions.copy_(inside)
    return shift_clamped, positions_clamped


def _window_bounds(lateral: tuple[int, int], window: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Extreme probe centres (voxels) whose ``window`` fits in a ``lateral`` (ny, nx) grid.

    :func:`~napari_ptychotomo.physics.forward_intensities` crops from ``floor(p) − n//2``
    to ``floor(p) − n//2 + n``, so ``n//2 <= p < size − n + n//2 + 1``; both bounds move
    ``_INSIDE_MARGIN`` (1e-3 voxel) inwards so that ``(bound + shift) − shift`` rounded in
    float32 stays inside.
    """
    low = torch.full((2,), window // 2 + _INSIDE_MARGIN, device=device)
    high = torch.tensor([size - window + window // 2 + 1 - _INSIDE_MARGIN for size in lateral], device=device)
    return low, high


def _keep_inside(run: _Setup, fit: _Learned, k: int) -> None:
    """Constraint: tilt ``k``'s probe windows stay inside the volume (counted in ``run.clamped``)."""
    n_shift, n_positions = keep_windows_inside(fit.positions[k], fit.shifts[k], run.low, run.high)
    run.clamped["shifts"] += n_shift
    run.clamped["positions"] += n_positions
