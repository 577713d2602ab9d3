"""The state of an MSP run (:class:`State`, :class:`Setup`) and one update of it, as
:mod:`.msp`'s loop runs it for each batch and each iteration: the model intensities of a
batch (the tilted propagator of Sha et al. 2022 on the physics core's multislice), its
data error and penalties, the descent step, the physical constraints, and the gauge
moves (tilt-map mean, probe modes, slice drift) that keep the learned quantities
defined."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..physics import forward_intensities, fresnel_propagator, orthogonalize_modes, propagate, transmission
from ..physics.loss import amplitude_error
from .params import MSPParams
from .slice_alignment import move_drift_into_tilt, move_local_drift_into_tilt_map
from .state import MSPGeometry


class State:
    """The learned tensors of one reconstruction (object V, probe, positions, tilt,
    thickness, tilt-map offsets)."""

    names = ("object", "probe", "positions", "tilt", "thickness", "tilt_map")

    def __init__(self, **tensors: torch.Tensor):
        self.tensors = tensors

    def __getattr__(self, name):
        try:
            return self.__dict__["tensors"][name]
        except KeyError:
            raise AttributeError(name) from None

    def snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.tensors.items()}

    def finite(self) -> bool:
        return all(
            bool(torch.isfinite(torch.view_as_real(v) if v.is_complex() else v).all()) for v in self.tensors.values()
        )


@dataclass
class Setup:
    """What one run fixes before its first iteration; the loop only reads it (except the
    provenance's ``converged`` and ``iterations_run``)."""

    params: MSPParams
    geometry: MSPGeometry
    device: torch.device
    sigma: float  # interaction constant, rad / (V·Å)
    wavelength: float  # Å
    amplitudes: torch.Tensor  # (n, K, K) √counts of the measured patterns
    total_power: float  # counts in all patterns
    mean_counts: float  # counts of one pattern, on average
    band_limit: bool  # the 2/3 antialias of the model's grid
    batches: list[np.ndarray]  # adjacent positions per batch
    pairs: torch.Tensor  # (P, 2) indices of neighbouring positions (tilt-map smoothness)
    window_px: torch.Tensor  # (2,) model window, px
    object_px: torch.Tensor  # (2,) object grid, px
    max_step_px: float  # largest position change per update, px
    position_lo: torch.Tensor  # (2,) lowest probe centre, px
    position_hi: torch.Tensor  # (2,) highest probe centre, px
    register_lo: np.ndarray  # (2,) the area adjacent slices are registered on, px
    register_hi: np.ndarray
    provenance: dict[str, Any]

    @property
    def num_positions(self) -> int:
        return int(self.amplitudes.shape[0])


#: intensity floor of the amplitude residual, detector counts (far below one count)
FLOOR_COUNTS = 1e-8
#: added to Σ|V|² in the denominator of the z-smoothness penalty, (V·Å)²: keeps the penalty
#: finite at the all-zero start object and is negligible once the object holds any potential
Z_SMOOTHNESS_FLOOR = 1e-6
#: the slice thickness is kept at or above this fraction of its start value (a thickness
#: driven to 0 leaves no propagation to fit; the stopping rule still refuses ≤ 0 and > 10×)
MIN_THICKNESS_FRACTION = 0.05
#: spare px around the object region a batch touches, for the rounding of the patch corners
REGION_SPARE_PX = 1


# ---- the loss of one batch: the data term and the penalties


def batch_intensities(run: Setup, state: State, index: torch.Tensor) -> torch.Tensor:
    """Model intensities ``(B, K, K)`` at the detector for the positions ``index``: the
    multislice of the object region the batch touches with the tilted propagator (Sha et al.
    2022, eq. 3; one tilt per position with a tilt map)."""
    geometry = run.geometry
    tilt = state.tilt
    if run.params.tilt_map:
        tilt = tilt[None, :] + state.tilt_map[index]
    propagator = fresnel_propagator(
        geometry.window,
        geometry.pixel_size,
        run.wavelength,
        state.thickness,
        tilt,
        device=run.device,
        band_limit=run.band_limit,
    )
    positions = state.positions[index]
    lo, hi = batch_region(run, positions)
    (r0, c0), (r1, c1) = lo.tolist(), hi.tolist()
    t = transmission(state.object[:, r0:r1, c0:c1], run.sigma, band_limit=False)
    # each slice acts at its middle: the probe (given at the entrance surface) first travels
    # half a slice, so the thickness is not biased by where the first slice sits (a thick
    # slice's phase grating belongs at its centre)
    half = fresnel_propagator(
        geometry.window,
        geometry.pixel_size,
        run.wavelength,
        0.5 * state.thickness,
        state.tilt,
        device=run.device,
        band_limit=run.band_limit,
    )
    probe = propagate(state.probe, half)
    return geometry.measured(forward_intensities(t, probe, positions - lo.to(positions.dtype), propagator))


def batch_region(run: Setup, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel bounds (lo, hi) of the object region the windows at ``positions`` touch, with
    ``REGION_SPARE_PX`` to spare, inside the object: the transmission is computed there only."""
    corner = torch.floor(positions.detach()).long() - run.window_px // 2
    lo = torch.clamp(corner.amin(0) - REGION_SPARE_PX, min=0)
    hi = torch.minimum(corner.amax(0) + run.window_px + REGION_SPARE_PX, run.object_px)
    return lo, hi


def data_error(run: Setup, state: State, index: torch.Tensor) -> torch.Tensor:
    """Σ (√I_model − √I_measured)² of one batch, in counts (You et al. 2025, Algorithm 1)."""
    model = batch_intensities(run, state, index)
    return amplitude_error(model, run.amplitudes[index], FLOOR_COUNTS)


def penalties(run: Setup, state: State, index: torch.Tensor, tied: bool = False):
    """The regularisers' terms of one batch's loss, in the order they are added (none
    between slices while they are ``tied``: the tie is the stronger prior, and with a
    period above 1 the neighbours differ by right)."""
    params = run.params
    if params.z_smoothness > 0 and params.num_slices > 1 and not tied:
        yield z_smoothness(state.object, params.z_smoothness)
    if params.tilt_map and len(run.pairs) and params.tilt_map_smoothness > 0:
        # the whole map's penalty, shared among the batches in proportion to their size
        weight = params.tilt_map_smoothness * len(index) / run.num_positions
        yield tilt_map_smoothness(state.tilt_map, run.pairs, weight)


def z_smoothness(obj: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight`` · Σ|V_{s+1} − V_s|² / Σ|V_s|² (the denominator held fixed): a simple k_z
    prior that couples the slices, so a tilt is not mimicked by sliding them (MSPParams)."""
    # |z|² as re² + im² (abs and its gradient sgn are slow for complex tensors)
    jump = torch.sum(torch.view_as_real(obj[1:] - obj[:-1]) ** 2)
    return weight * jump / (torch.sum(torch.view_as_real(obj.detach()) ** 2) + Z_SMOOTHNESS_FLOOR)


def tilt_map_smoothness(tilt_map: torch.Tensor, pairs: torch.Tensor, weight: float) -> torch.Tensor:
    """``weight`` · Σ (θ_i − θ_j)² over neighbouring positions (i, j), mrad²."""
    diff = tilt_map[pairs[:, 0]] - tilt_map[pairs[:, 1]]
    return weight * torch.sum(diff**2)


def descend(optimizer: torch.optim.Optimizer, loss: torch.Tensor, state: State) -> torch.Tensor:
    """One optimiser step on ``loss``; quantities whose start iteration lies ahead keep their
    values. Returns the positions before the step (px)."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for group in optimizer.param_groups:
        if not group["active"]:
            for p in group["params"]:
                p.grad = None
    before = state.positions.detach().clone()
    optimizer.step()
    return before


# ---- constraints and gauge moves (in place, under no_grad)


def constrain(run: Setup, state: State, before: torch.Tensor) -> None:
    """Physical constraints after each update: a position moves at most
    ``max_position_step`` and keeps its window inside the object; absorption Im V ≥ 0; the
    slice thickness stays ≥ ``MIN_THICKNESS_FRACTION`` of its start."""
    params = run.params
    if params.learn_positions:
        step = torch.clamp(state.positions - before, -run.max_step_px, run.max_step_px)
        state.positions.copy_(torch.maximum(torch.minimum(before + step, run.position_hi), run.position_lo))
    state.object.imag.clamp_(min=0.0)
    state.thickness.clamp_(min=MIN_THICKNESS_FRACTION * params.slice_thickness)


def tie_slices(obj: torch.Tensor, period: int) -> None:
    """Prior of a crystal on a zone axis (MSPParams.slice_period): every slice becomes the
    mean of the slices ``period`` apart from it, so the stack repeats with that period."""
    cells = obj.view(obj.shape[0] // period, period, *obj.shape[1:])  # a view: writes reach obj
    cells.copy_(cells.mean(0, keepdim=True).expand_as(cells))


def recentre_tilt_map(params: MSPParams, state: State) -> None:
    """Gauge: a common offset of the tilt map is a global tilt; move the map's mean there."""
    if params.tilt_map:
        mean = state.tilt_map.mean(0)
        state.tilt_map.sub_(mean)
        state.tilt.add_(mean)


def orthogonalise_probe(params: MSPParams, state: State) -> None:
    """Gauge of the mixed state: the modes are defined up to a unitary mix; keep them
    orthogonal (Thibault & Menzel 2013)."""
    if params.num_modes > 1 and params.learn_probe:
        state.probe.copy_(orthogonalize_modes(state.probe))


def move_slice_drift_into_tilts(run: Setup, state: State, iteration: int) -> None:
    """Gauge: a lateral drift of adjacent slices is what a tilt does (the tilted propagator
    is the untilted one times a shift); move the global drift into the tilt and, with a tilt
    map, the local drift into the map (:mod:`.slice_alignment`)."""
    params, geometry = run.params, run.geometry
    if params.num_slices < 2:
        return
    if params.learn_tilt and iteration >= params.rate("tilt").start:
        move_drift_into_tilt(
            state.object, state.tilt, state.thickness, geometry.pixel_size, run.register_lo, run.register_hi
        )
    if params.tilt_map and iteration >= params.rate("tilt_map").start:
        move_local_drift_into_tilt_map(
            state.object,
            state.tilt,
            state.tilt_map,
            state.positions,
            state.thickness,
            geometry.pixel_size,
            params.tilt_map_window / geometry.pixel_size,
            run.register_lo,
            run.register_hi,
        )
