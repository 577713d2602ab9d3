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
from ..engine import EngineError, Progress, resolve_device, run
from ..engine_guards import Divergence, checked_counts, thickness_problem, tilt_problem, warn_negative
from ..optics import phase_shift
from ..physics import (
    forward_intensities,
    fresnel_propagator,
    interaction_constant,
    orthogonalize_modes,
    propagate,
    transmission,
    wavelength,
)
from ..physics.loss import amplitude_residual
from .batches import adjacent_batches, neighbour_pairs
from .bright_field import start_defocus
from .params import MSPParams
from .slice_alignment import move_drift_into_tilt, move_local_drift_into_tilt_map
from .state import choose_batch_size, initial_probe, make_geometry

__all__ = ["msp_steps", "reconstruct_msp"]

_PREVIEW_SIDE = 128


class _State:
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


def _preview(state: _State, sigma: float, losses: list[float]) -> dict[str, Any]:
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
# make single iterations jitter by ~0.1 mrad and ~0.1 %)
_TILT_SETTLED_MRAD = 0.05
#: intensity floor of the amplitude residual, detector counts (far below one count)
_FLOOR_COUNTS = 1e-8
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


def _optimizer(state: _State, params: MSPParams, geometry, probe_scale: float):
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
    for name in _State.names:
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
    dev = resolve_device(device)
    geometry = make_geometry(scan, params)
    n_pos = scan.num_positions
    batch_size = choose_batch_size(params, geometry, n_pos, dev)

    cal = scan.calibration
    sigma = float(interaction_constant(cal.energy_eV))
    lam = float(wavelength(cal.energy_eV))
    patterns, negative = checked_counts(torch.as_tensor(scan.patterns(), device=dev), "intensities")
    warn_negative(negative, patterns.numel(), "intensities")
    amplitudes = torch.sqrt(patterns)
    del patterns
    total_power = float(torch.sum(amplitudes**2))
    mean_counts = total_power / n_pos
    defocus, defocus_source = start_defocus(scan, params)
    probe = initial_probe(scan, geometry, params, defocus, mean_counts, dev)
    probe_scale = float(torch.abs(probe).max())

    S, (H, W) = params.num_slices, geometry.object_shape
    state = _State(
        object=torch.zeros((S, H, W), dtype=torch.complex64, device=dev),
        probe=probe,
        positions=torch.as_tensor(geometry.positions_px, dtype=torch.float32, device=dev).clone(),
        tilt=torch.as_tensor(params.tilt_mrad, dtype=torch.float32, device=dev).clone(),
        thickness=torch.tensor(float(params.slice_thickness), dtype=torch.float32, device=dev),
        tilt_map=torch.zeros((n_pos, 2), dtype=torch.float32, device=dev),
    )
    start_positions = state.positions.detach().clone()
    optimizer = _optimizer(state, params, geometry, probe_scale)
    batches = adjacent_batches(geometry.positions_px, batch_size)
    pairs = torch.as_tensor(neighbour_pairs(geometry.positions_px), device=dev)
    rng = np.random.default_rng(seed)
    max_step_px = params.max_position_step / geometry.pixel_size
    limit_lo = torch.tensor(geometry.window, device=dev) // 2 + 1.0
    limit_hi = torch.tensor(geometry.object_shape, device=dev) - limit_lo - 1.0
    window = torch.tensor(geometry.window, device=dev)
    # the 2/3 antialias only where it lies beyond the detector's edge: on the detector's own
    # grid it would cut every measured pixel past 2/3 of the edge (2.6-19 % of the counts)
    band_limit = geometry.oversampling >= 2
    object_size = torch.tensor(geometry.object_shape, device=dev)
    provenance = {
        "engine": "msp",
        "params": params.to_dict(),
        "seed": int(seed),
        "batch_size": batch_size,
        "defocus_start": defocus,
        "defocus_source": defocus_source,
        "object_origin": [float(v) for v in geometry.origin],
        "start_positions": (start_positions.cpu().numpy() * geometry.pixel_size).tolist(),
    }
    losses: list[float] = []
    tilts: list[np.ndarray] = []
    thicknesses: list[float] = []
    provenance["converged"] = False
    good = state.snapshot()
    align_slices = params.learn_tilt and S > 1
    map_slices = params.tilt_map and S > 1
    scan_lo = np.floor(geometry.positions_px.min(0)).astype(int)
    scan_hi = np.ceil(geometry.positions_px.max(0)).astype(int) + 1
    if np.any(scan_hi - scan_lo < 8):  # too small an area to register slices on
        scan_lo = np.zeros(2, int)
        scan_hi = np.array(geometry.object_shape)

    def fail(message: str):
        partial = _result(good, scan, params, geometry, losses, provenance)
        return EngineError(message, partial=partial)

    guard.last_good = lambda: _result(good, scan, params, geometry, losses, provenance)

    for iteration in range(params.iterations):
        error_sum = 0.0
        for group in optimizer.param_groups:
            group["active"] = iteration >= group["start"]
            if group["name"] in _DECAYING:
                group["lr"] = group["base_lr"] * _decay(iteration, params.iterations, params.object_step_decay)
        for b in rng.permutation(len(batches)):
            index = torch.as_tensor(batches[b], device=dev)
            tilt = state.tilt
            if params.tilt_map:
                tilt = tilt[None, :] + state.tilt_map[index]
            propagator = fresnel_propagator(
                geometry.window, geometry.pixel_size, lam, state.thickness, tilt, device=dev, band_limit=band_limit
            )
            # the transmission only of the region this batch touches (1 px spare for rounding)
            positions = state.positions[index]
            corner = torch.floor(positions.detach()).long() - window // 2
            lo = torch.clamp(corner.amin(0) - 1, min=0)
            hi = torch.minimum(corner.amax(0) + window + 1, object_size)
            (r0, c0), (r1, c1) = lo.tolist(), hi.tolist()
            t = transmission(state.object[:, r0:r1, c0:c1], sigma, band_limit=False)
            # each slice acts at its middle: the probe (given at the entrance surface)
            # first travels half a slice, so the thickness is not biased by where the
            # first slice sits (a thick slice's phase grating belongs at its centre)
            half = fresnel_propagator(
                geometry.window,
                geometry.pixel_size,
                lam,
                0.5 * state.thickness,
                state.tilt,
                device=dev,
                band_limit=band_limit,
            )
            probe = propagate(state.probe, half)
            model = geometry.measured(forward_intensities(t, probe, positions - lo.to(positions.dtype), propagator))
            residual = amplitude_residual(model, amplitudes[index], _FLOOR_COUNTS)
            data_error = torch.sum(residual**2)
            loss = data_error / (len(index) * mean_counts)
            if params.z_smoothness > 0 and S > 1:
                obj = state.object
                # |z|² as re² + im² (abs and its gradient sgn are slow for complex tensors)
                jump = torch.sum(torch.view_as_real(obj[1:] - obj[:-1]) ** 2)
                loss = loss + params.z_smoothness * jump / (torch.sum(torch.view_as_real(obj.detach()) ** 2) + 1e-6)
            if params.tilt_map and len(pairs) and params.tilt_map_smoothness > 0:
                diff = state.tilt_map[pairs[:, 0]] - state.tilt_map[pairs[:, 1]]
                loss = loss + params.tilt_map_smoothness * len(index) / n_pos * torch.sum(diff**2)
            if not torch.isfinite(loss):
                raise fail(
                    f"reconstruction diverged (loss is {float(loss.detach())}) in iteration "
                    f"{iteration + 1}; stopped with the state of iteration {iteration}. "
                    "Lower the step sizes in params.rates."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for group in optimizer.param_groups:
                if not group["active"]:
                    for p in group["params"]:
                        p.grad = None
            before = state.positions.detach().clone()
            optimizer.step()
            with torch.no_grad():
                if params.learn_positions:
                    step = torch.clamp(state.positions - before, -max_step_px, max_step_px)
                    state.positions.copy_(torch.maximum(torch.minimum(before + step, limit_hi), limit_lo))
                state.object.imag.clamp_(min=0.0)  # absorption is non-negative
                state.thickness.clamp_(min=0.05 * params.slice_thickness)
                if params.tilt_map:
                    mean = state.tilt_map.mean(0)
                    state.tilt_map.sub_(mean)
                    state.tilt.add_(mean)
            error_sum += float(data_error.detach())
        with torch.no_grad():
            if params.num_modes > 1 and params.learn_probe:
                state.probe.copy_(orthogonalize_modes(state.probe))
            if align_slices and iteration >= params.rate("tilt").start:
                move_drift_into_tilt(state.object, state.tilt, state.thickness, geometry.pixel_size, scan_lo, scan_hi)
            if map_slices and iteration >= params.rate("tilt_map").start:
                move_local_drift_into_tilt_map(
                    state.object,
                    state.tilt,
                    state.tilt_map,
                    state.positions,
                    state.thickness,
                    geometry.pixel_size,
                    params.tilt_map_window / geometry.pixel_size,
                    scan_lo,
                    scan_hi,
                )
        if not state.finite():
            raise fail(
                f"reconstruction produced NaN or infinite values in iteration "
                f"{iteration + 1}; stopped with the state of iteration {iteration}. "
                "Lower the step sizes in params.rates."
            )
        tilt_now = state.tilt.detach().cpu().numpy()
        if params.tilt_map:
            tilt_now = tilt_now[None, :] + state.tilt_map.detach().cpu().numpy()
        guard.check(
            f"iteration {iteration + 1}",
            error_sum / total_power,
            problems=(
                tilt_problem(tilt_now, params.tilt_mrad),
                thickness_problem(float(state.thickness.detach()), params.slice_thickness),
            ),
        )
        losses.append(error_sum / total_power)
        tilts.append(state.tilt.detach().cpu().numpy().astype(np.float64))
        thicknesses.append(float(state.thickness.detach()))
        good = state.snapshot()
        done = _converged(params, losses, tilts, thicknesses)
        provenance["converged"] = done
        provenance["iterations_run"] = iteration + 1
        yield Progress(
            step=iteration + 1,
            total=params.iterations,
            loss=losses[-1],
            preview=_preview(state, sigma, losses),
            message=f"iteration {iteration + 1}/{params.iterations}: error {losses[-1]:.4g}"
            + (" (converged)" if done else ""),
        )
        if done:
            break
    return _result(good, scan, params, geometry, losses, provenance)


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
