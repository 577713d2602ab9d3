"""Multislice ptychography with the adaptive propagator (APP) as an engine generator.

The object is a stack of complex projected potentials V (V·Å, transmission exp(iσV));
the forward model is the physics core's batched multislice
(:func:`~napari_ptychotomo.physics.forward_intensities`) with the tilted Fresnel
propagator of Sha et al. (2022, eq. 3), whose tilt (θx, θy) and slice thickness Δz are
learned with the object, the mixed-state probe (Thibault & Menzel 2013) and the scan
positions, by minibatch gradient descent (Adam) on the amplitude loss
Σ (√I_model − √I_measured)² (You et al. 2025, Algorithm 1). With ``tilt_map`` a tilt
offset per scan position is learned as well (Sha et al. 2022, extended APP), from the
local drift of adjacent slices (:mod:`.local_drift`) and optionally by gradient with a
smoothness penalty between neighbouring positions. The probe is given at the entrance
surface and travels half a slice before the first slice, so each slice acts at its
centre (this removes a bias of the fitted thickness).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..data import MSPResult, ScanData
from ..engine import EngineError, Progress, resolve_device, run
from ..engine_guards import Divergence, checked_counts, thickness_problem, tilt_problem, warn_negative
from ..optics import phase_shift
from ..physics import (
    interaction_constant,
    wavelength,
)
from . import msp_update as update
from .batches import adjacent_batches, neighbour_pairs
from .bright_field import start_defocus
from .params import MSPParams
from .state import MSPGeometry, choose_batch_size, initial_probe, make_geometry

__all__ = ["msp_steps", "reconstruct_msp"]

# Named constants of the iteration (units in the names or the comments; those of one
# update are in :mod:`.msp_update`)
#: the per-slice preview is subsampled to at most this many pixels a side (px)
_PREVIEW_SIDE = 128
#: px kept between a learned probe window and the object's edge on each side: a spare pixel
#: against the rounding of the window's corner floor(p) − n//2
_POSITION_MARGIN_PX = 1.0
#: adjacent slices' drift is registered on the scanned area when it spans at least this many
#: px along each axis, else on the whole object (too few pixels to register on)
_MIN_REGISTRATION_PX = 8


def _result(
    values: dict[str, torch.Tensor],
    scan: ScanData,
    params: MSPParams,
    geometry,
    losses: list[float],
    provenance: dict[str, Any],
) -> MSPResult:
    tilt = values["tilt"].cpu().numpy().astype(np.float64)
    tilt_map = None
    if params.tilt_map:
        tilt_map = tilt[None, :] + values["tilt_map"].cpu().numpy().astype(np.float64)
    return MSPResult(
        object=values["object"].cpu().numpy().astype(np.complex64),
        probe=values["probe"].cpu().numpy().astype(np.complex64),
        positions=values["positions"].cpu().numpy().astype(np.float64) * geometry.pixel_size,
        tilt_mrad=tilt,
        slice_thickness=float(values["thickness"]),
        pixel_size=geometry.pixel_size,
        energy_eV=float(scan.calibration.energy_eV),
        tilt_map=tilt_map,
        loss_history=list(losses),
        tilt_deg=float(scan.tilt_deg),
        scan_shape=scan.scan_shape,
        provenance=dict(provenance),
    )


def _preview(state: update.State, sigma: float, losses: list[float]) -> dict[str, Any]:
    with torch.no_grad():
        phase_slices = phase_shift(state.object, sigma)
        stride = max(1, int(np.ceil(max(phase_slices.shape[-2:]) / _PREVIEW_SIDE)))
        return {
            "phase": phase_slices.sum(0).cpu().numpy(),
            "slices": phase_slices[:, ::stride, ::stride].cpu().numpy(),
            "probe_intensity": (torch.abs(state.probe) ** 2).cpu().numpy(),
            "loss_history": np.asarray(losses, dtype=np.float64),
            "tilt_mrad": state.tilt.detach().cpu().numpy().copy(),
            "slice_thickness": float(state.thickness),
        }


# Adam moves each value by about its step per update whatever the gradient, so the tilt and
# thickness jitter by their step until it decays with the object's
_DECAYING = ("object", "tilt", "thickness")


def _decay(iteration: int, iterations: int, final: float) -> float:
    """Cosine decay of a step from 1 at the first iteration to ``final`` at the last: large
    steps reach a thick heavy object quickly, small ones let Adam settle at the end."""
    if iterations < 2 or final >= 1:
        return 1.0
    return final + (1 - final) * 0.5 * (1 + np.cos(np.pi * iteration / (iterations - 1)))


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


def _optimizer(state: update.State, params: MSPParams, geometry, probe_scale: float):
    learned = {
        "object": True,
        "probe": params.learn_probe,
        "positions": params.learn_positions,
        "tilt": params.learn_tilt,
        "thickness": params.learn_thickness,
        "tilt_map": params.tilt_map,
    }
    scale = {"probe": probe_scale, "positions": 1.0 / geometry.pixel_size}
    groups = []
    for name in update.State.names:
        if learned[name] and params.rate(name).step > 0:
            tensor = state.tensors[name]
            tensor.requires_grad_(True)
            lr = params.rate(name).step * scale.get(name, 1.0)
            groups.append({"params": [tensor], "lr": lr, "base_lr": lr, "name": name, "start": params.rate(name).start})
    if params.optimizer == "adam":
        return torch.optim.Adam(groups)
    return torch.optim.SGD(groups)


def msp_steps(
    scan: ScanData, params: MSPParams | None = None, *, device: Any = "auto", seed: int = 0
) -> Generator[Progress, None, MSPResult]:
    """Multislice ptychography of one scan, one :class:`Progress` per iteration.

    Parameters
    ----------
    scan : 4D-STEM scan; patterns ``(n, K, K)`` centred, positions in Å.
    params : :class:`MSPParams`; ``None`` takes ``MSPParams.from_calibration``.
    device : ``"auto"``, ``"cpu"``, ``"cuda:0"``, ...
    seed : seeds the order of the minibatches (the only random choice).

    Yields ``Progress(step, total, loss, preview)`` with ``loss`` the relative amplitude
    error Σ(√I − √I_meas)² / Σ I_meas of the iteration and ``preview`` a dict: ``phase``
    (H, W) summed phase in rad, ``slices`` (S, h, w) per-slice phase (subsampled to at
    most 128 px), ``probe_intensity`` (M, K, K), ``loss_history``, ``tilt_mrad`` (2,),
    ``slice_thickness`` Å. Returns the :class:`~napari_ptychotomo.data.MSPResult`.
    Raises :class:`~napari_ptychotomo.engine.EngineError` (with ``.partial``, the last
    good :class:`~napari_ptychotomo.data.MSPResult`) when the reconstruction diverges
    (the rule of :mod:`napari_ptychotomo.engine_guards`), and ``ValueError`` before any
    work for data without counts or with non-finite values, and for a single pattern
    asked to learn what one pattern cannot constrain.
    """
    guard = Divergence("multislice ptychography", "Lower the step sizes in params.rates.")
    return (yield from guard.run(_msp_steps(scan, params, device, seed, guard)))


def _check_single_pattern(scan: ScanData, params: MSPParams) -> None:
    """One pattern has no overlap: the object absorbs a change of tilt, thickness or
    position, so learning them there only fits noise."""
    if scan.num_positions > 1:
        return
    asked = [name for name in ("learn_tilt", "learn_thickness", "learn_positions", "tilt_map") if getattr(params, name)]
    if asked:
        raise ValueError(
            f"the scan has a single pattern, which cannot constrain "
            f"{', '.join(asked)}; set {' and '.join(f'{n}=False' for n in asked)} "
            "(or scan more than one position)"
        )


def _msp_steps(
    scan: ScanData, params: MSPParams | None, device: Any, seed: int, guard: Divergence
) -> Generator[Progress, None, MSPResult]:
    scan.validate()
    params = (params or MSPParams.from_calibration(scan.calibration)).validate()
    _check_single_pattern(scan, params)
    run, state = _setup(scan, params, resolve_device(device), seed)
    optimizer = _optimizer(state, params, run.geometry, float(torch.abs(state.probe).max()))
    rng = np.random.default_rng(seed)
    history = _History()
    good = state.snapshot()

    def last_good() -> MSPResult:
        return _result(good, scan, params, run.geometry, history.losses, run.provenance)

    guard.last_good = last_good
    for iteration in range(params.iterations):
        _schedule_steps(optimizer, iteration, params)
        error_sum = 0.0
        for b in rng.permutation(len(run.batches)):
            index = torch.as_tensor(run.batches[b], device=run.device)
            data_error = update.data_error(run, state, index)
            loss = data_error / (len(index) * run.mean_counts)
            for penalty in update.penalties(run, state, index):
                loss = loss + penalty
            if not torch.isfinite(loss):
                raise EngineError(
                    _stopped(f"diverged (loss is {float(loss.detach())})", iteration), partial=last_good()
                )
            before = update.descend(optimizer, loss, state)
            with torch.no_grad():
                update.constrain(run, state, before)
                update.recentre_tilt_map(params, state)
            error_sum += float(data_error.detach())
        with torch.no_grad():
            update.orthogonalise_probe(params, state)
            update.move_slice_drift_into_tilts(run, state, iteration)
        if not state.finite():
            raise EngineError(_stopped("produced NaN or infinite values", iteration), partial=last_good())
        guard.check(f"iteration {iteration + 1}", error_sum / run.total_power, problems=_range_problems(params, state))
        history.record(error_sum / run.total_power, state)
        good = state.snapshot()
        done = _converged(params, history.losses, history.tilts, history.thicknesses)
        run.provenance["converged"] = done
        run.provenance["iterations_run"] = iteration + 1
        yield Progress(
            step=iteration + 1,
            total=params.iterations,
            loss=history.losses[-1],
            preview=_preview(state, run.sigma, history.losses),
            message=f"iteration {iteration + 1}/{params.iterations}: error {history.losses[-1]:.4g}"
            + (" (converged)" if done else ""),
        )
        if done:
            break
    return last_good()


# ---- setup: what a run fixes before its first iteration


def _setup(scan: ScanData, params: MSPParams, dev: torch.device, seed: int) -> tuple[update.Setup, update.State]:
    """Geometry, batch size (checked against memory before the data are read), measured
    amplitudes, start probe and state, and the constants of the iteration."""
    geometry = make_geometry(scan, params)
    n_pos = scan.num_positions
    batch_size = choose_batch_size(params, geometry, n_pos, dev)
    cal = scan.calibration
    amplitudes = _measured_amplitudes(scan, dev)
    total_power = float(torch.sum(amplitudes**2))
    mean_counts = total_power / n_pos
    defocus, defocus_source = start_defocus(scan, params)
    probe = initial_probe(scan, geometry, params, defocus, mean_counts, dev)
    state = _start_state(params, geometry, probe, n_pos, dev)
    window = torch.tensor(geometry.window, device=dev)
    position_lo = window // 2 + _POSITION_MARGIN_PX
    register_lo, register_hi = _registration_area(geometry)
    provenance = {
        "engine": "msp",
        "params": params.to_dict(),
        "seed": int(seed),
        "batch_size": batch_size,
        "defocus_start": defocus,
        "defocus_source": defocus_source,
        "object_origin": [float(v) for v in geometry.origin],
        "start_positions": (state.positions.detach().cpu().numpy() * geometry.pixel_size).tolist(),
        "converged": False,
    }
    run = update.Setup(
        params=params,
        geometry=geometry,
        device=dev,
        sigma=float(interaction_constant(cal.energy_eV)),
        wavelength=float(wavelength(cal.energy_eV)),
        amplitudes=amplitudes,
        total_power=total_power,
        mean_counts=mean_counts,
        # the 2/3 antialias only where it lies beyond the detector's edge: on the detector's own
        # grid it would cut every measured pixel past 2/3 of the edge (2.6-19 % of the counts)
        band_limit=geometry.oversampling >= 2,
        batches=adjacent_batches(geometry.positions_px, batch_size),
        pairs=torch.as_tensor(neighbour_pairs(geometry.positions_px), device=dev),
        window_px=window,
        object_px=torch.tensor(geometry.object_shape, device=dev),
        max_step_px=params.max_position_step / geometry.pixel_size,
        position_lo=position_lo,
        position_hi=torch.tensor(geometry.object_shape, device=dev) - position_lo - _POSITION_MARGIN_PX,
        register_lo=register_lo,
        register_hi=register_hi,
        provenance=provenance,
    )
    return run, state


def _measured_amplitudes(scan: ScanData, dev: torch.device) -> torch.Tensor:
    """√counts ``(n, K, K)`` of the patterns, checked (finite, with counts) and with negative
    counts set to 0 (one warning)."""
    patterns, negative = checked_counts(torch.as_tensor(scan.patterns(), device=dev), "intensities")
    warn_negative(negative, patterns.numel(), "intensities")
    return torch.sqrt(patterns)


def _start_state(params: MSPParams, geometry: MSPGeometry, probe: torch.Tensor, n_pos: int, dev) -> update.State:
    """Zero object (V·Å), the start probe, positions (px), tilt (mrad), thickness (Å), and a
    zero tilt map (mrad)."""
    S, (H, W) = params.num_slices, geometry.object_shape
    return update.State(
        object=torch.zeros((S, H, W), dtype=torch.complex64, device=dev),
        probe=probe,
        positions=torch.as_tensor(geometry.positions_px, dtype=torch.float32, device=dev).clone(),
        tilt=torch.as_tensor(params.tilt_mrad, dtype=torch.float32, device=dev).clone(),
        thickness=torch.tensor(float(params.slice_thickness), dtype=torch.float32, device=dev),
        tilt_map=torch.zeros((n_pos, 2), dtype=torch.float32, device=dev),
    )


def _registration_area(geometry: MSPGeometry) -> tuple[np.ndarray, np.ndarray]:
    """Pixel bounds (lo, hi) of the scanned area, on which the drift of adjacent slices is
    measured; the whole object when the scan spans fewer than ``_MIN_REGISTRATION_PX``."""
    lo = np.floor(geometry.positions_px.min(0)).astype(int)
    hi = np.ceil(geometry.positions_px.max(0)).astype(int) + 1
    if np.any(hi - lo < _MIN_REGISTRATION_PX):
        return np.zeros(2, int), np.array(geometry.object_shape)
    return lo, hi


def _schedule_steps(optimizer: torch.optim.Optimizer, iteration: int, params: MSPParams) -> None:
    """Which quantities learn in this iteration (their start) and the decayed steps."""
    for group in optimizer.param_groups:
        group["active"] = iteration >= group["start"]
        if group["name"] in _DECAYING:
            group["lr"] = group["base_lr"] * _decay(iteration, params.iterations, params.object_step_decay)


# ---- checks and the record of each iteration


def _stopped(what: str, iteration: int) -> str:
    return (
        f"reconstruction {what} in iteration {iteration + 1}; stopped with the state of iteration "
        f"{iteration}. Lower the step sizes in params.rates."
    )


def _range_problems(params: MSPParams, state: update.State) -> tuple[str | None, str | None]:
    """The learned tilt (with the tilt map, every position's) and thickness against their
    physical ranges (:mod:`napari_ptychotomo.engine_guards`)."""
    tilt_now = state.tilt.detach().cpu().numpy()
    if params.tilt_map:
        tilt_now = tilt_now[None, :] + state.tilt_map.detach().cpu().numpy()
    return (
        tilt_problem(tilt_now, params.tilt_mrad),
        thickness_problem(float(state.thickness.detach()), params.slice_thickness),
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


def reconstruct_msp(
    scan: ScanData,
    params: MSPParams | None = None,
    *,
    device: Any = "auto",
    seed: int = 0,
    callback: Callable[[Progress], None] | None = None,
) -> MSPResult:
    """Multislice ptychography of ``scan``: drains :func:`msp_steps` and returns the
    :class:`~napari_ptychotomo.data.MSPResult` (complex V·Å slices, probe modes,
    positions Å in the object frame, tilt mrad, slice thickness Å, tilt map, losses).
    ``callback`` receives every :class:`~napari_ptychotomo.engine.Progress`."""
    return run(msp_steps(scan, params, device=device, seed=seed), callback)
