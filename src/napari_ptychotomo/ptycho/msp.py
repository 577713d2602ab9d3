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
from typing import Any

import numpy as np
import torch

from ..data import MSPResult, ScanData
from ..data.checks import check_type
from ..engine import EngineError, Progress, resolve_device, run
from ..engine_guards import Divergence, thickness_problem, tilt_problem
from ..optics import phase_shift
from . import msp_update as update
from .convergence import _THICKNESS_SETTLED as _THICKNESS_SETTLED
from .convergence import _TILT_SETTLED_MRAD as _TILT_SETTLED_MRAD
from .convergence import _converged, _History
from .msp_setup import _MIN_REGISTRATION_PX as _MIN_REGISTRATION_PX
from .msp_setup import _POSITION_MARGIN_PX as _POSITION_MARGIN_PX
from .msp_setup import _measured_amplitudes as _measured_amplitudes
from .msp_setup import _registration_area as _registration_area
from .msp_setup import _setup
from .msp_setup import _start_state as _start_state
from .params import MSPParams

__all__ = ["msp_steps", "reconstruct_msp"]

# Named constants of the iteration (units in the names or the comments; those of one
# update are in :mod:`.msp_update`)
#: the per-slice preview is subsampled to at most this many pixels a side (px)
_PREVIEW_SIDE = 128
#: learned only while the slices are tied (MSPParams.slice_period), then held
_HELD = ("tilt", "thickness")


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
    check_type("scan", scan, ScanData, "wrap the patterns as ScanData(intensities, Calibration(...))")
    check_type(
        "params", params, (MSPParams, type(None)), "MSPParams.from_calibration(scan.calibration, **settings) builds one"
    )
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
    tied = params.slice_period > 0
    held: tuple[str, ...] = ()  # what the tied stage learned, once the slices are released
    stage_start = 0  # the iteration where the convergence rule's history begins
    for iteration in range(params.iterations):
        _schedule_steps(optimizer, iteration, params, held)
        error_sum = 0.0
        for b in rng.permutation(len(run.batches)):
            index = torch.as_tensor(run.batches[b], device=run.device)
            data_error = update.data_error(run, state, index)
            loss = data_error / (len(index) * run.mean_counts)
            for penalty in update.penalties(run, state, index, tied):
                loss = loss + penalty
            if not torch.isfinite(loss):
                raise EngineError(
                    _stopped(f"diverged (loss is {float(loss.detach())})", iteration), partial=last_good()
                )
            before = update.descend(optimizer, loss, state)
            with torch.no_grad():
                update.constrain(run, state, before)
                if tied:
                    update.tie_slices(state.object, params.slice_period)
                update.recentre_tilt_map(params, state)
            error_sum += float(data_error.detach())
        with torch.no_grad():
            update.orthogonalise_probe(params, state)
            if not params.slice_period:  # tied slices do not drift; released ones hold the tilt
                update.move_slice_drift_into_tilts(run, state, iteration)
        if not state.finite():
            raise EngineError(_stopped("produced NaN or infinite values", iteration), partial=last_good())
        guard.check(f"iteration {iteration + 1}", error_sum / run.total_power, problems=_range_problems(params, state))
        history.record(error_sum / run.total_power, state)
        good = state.snapshot()
        done = _converged(
            params, history.losses[stage_start:], history.tilts[stage_start:], history.thicknesses[stage_start:]
        )
        stage = " (slices tied)" if tied else ""
        if tied:
            run.provenance["tied_stage"] = {"iterations": iteration + 1, "released": False}
        if done and tied:
            tied, done, held, stage_start = False, False, _HELD, iteration + 1
            _release_slices(run, state, history, params.convergence_window)
            stage = " (tied slices converged: tilt and thickness held, slices released)"
        run.provenance["converged"] = done
        run.provenance["iterations_run"] = iteration + 1
        yield Progress(
            step=iteration + 1,
            total=params.iterations,
            loss=history.losses[-1],
            preview=_preview(state, run.sigma, history.losses),
            message=f"iteration {iteration + 1}/{params.iterations}: error {history.losses[-1]:.4g}"
            + (" (converged)" if done else stage),
        )
        if done:
            break
    return last_good()


def _schedule_steps(optimizer: torch.optim.Optimizer, iteration: int, params: MSPParams, held=()) -> None:
    """Which quantities learn in this iteration (their start, unless ``held``) and the
    decayed steps."""
    for group in optimizer.param_groups:
        group["active"] = iteration >= group["start"] and group["name"] not in held
        if group["name"] in _DECAYING:
            group["lr"] = group["base_lr"] * _decay(iteration, params.iterations, params.object_step_decay)


def _release_slices(run, state: update.State, history: _History, window: int) -> None:
    """End of the tied stage (MSPParams.slice_period): the tilt and thickness are held at
    their means over the last window (Adam jitters them by about a step), the slices
    learn freely from here; the provenance records the stage."""
    with torch.no_grad():
        state.tilt.copy_(torch.as_tensor(np.mean(history.tilts[-window:], axis=0), dtype=state.tilt.dtype))
        state.thickness.fill_(float(np.mean(history.thicknesses[-window:])))
    run.provenance["tied_stage"] = {
        "iterations": len(history.losses),
        "released": True,
        "data_error": float(history.losses[-1]),
        "tilt_mrad": [float(v) for v in state.tilt.detach().cpu()],
        "slice_thickness": float(state.thickness.detach()),
    }


# ---- checks of each iteration


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
