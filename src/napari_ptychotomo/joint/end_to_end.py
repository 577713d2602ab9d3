"""End-to-end ptycho-tomography from a 4D-STEM tilt series (You et al. 2025, Algorithm 3).

One complex potential volume is fitted directly to the diffraction patterns of all tilts:
for every pass and every tilt in turn, minibatches of adjacent scan positions (batch order
reshuffled) update the volume with the amplitude loss ‖√I_m − √I‖² of the forward model of
eq. 14-15 (:mod:`.forward`) by gradient descent (the step is given in V: the largest
voxel change of an update, the gradient being divided by the largest gradient so far);
after a start iteration the tilt's probe modes, its probe positions and, as our step beyond
the paper, its Euler angles and shift are refined too. Regularisers (:mod:`.regularizers`)
follow each minibatch (L1 shrinkage of Im V, non-negativity) or each tilt (k_z kernel on
the tilt's update, Butterworth, TV; a Butterworth that stops after the first passes makes
the shift refinement coarse to fine).
Gradients come from autograd (eq. 18-19 are what it computes); each learned per-tilt
quantity has its own Adam optimiser per tilt. Learned shifts and positions are kept where
the probe window stays inside the volume's lateral extent (:func:`keep_windows_inside`);
how often that clamped them is in the result's provenance and a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ..data import Alignment, TiltSeries, Volume
from ..engine import Progress, resolve_device, run
from ..engine_guards import Divergence, angle_problem, checked_counts, warn_negative
from ..physics import fresnel_propagator, interaction_constant, wavelength
from ..physics.loss import amplitude_residual
from ..tomo.rotation import rotation_matrix
from . import regularizers as reg
from .distributed import all_reduce_grads, init_from_environment, rank_device, world
from .memory import choose_batch_size, stem_bytes
from .params import JointParams
from .result import JointResult, orthogonal_slices, partial_volume
from .setup import half_indices, start_state

__all__ = ["joint_steps", "reconstruct_joint", "keep_windows_inside"]

#: intensity floor of the amplitude residual, in units of the mean pattern sum
_FLOOR = 1e-10
_COUNTED = 1e-3  # voxels: smaller clamps are rounding, not counted


def _check_series(series: Any) -> TiltSeries:
    if not isinstance(series, TiltSeries):
        raise ValueError(f"series is a {type(series).__name__}; expected a TiltSeries of ScanData")
    from ..data import DefocusSeries

    if any(isinstance(s, DefocusSeries) for s in series.scans):
        raise ValueError("series holds DefocusSeries (plane-wave data); use reconstruct_plane_wave")
    return series.validate()


def _check_learnable(series: TiltSeries, params: JointParams) -> None:
    """A tilt scanned at a single position cannot place its probe: refuse learning it."""
    single = [k for k, scan in enumerate(series.scans) if scan.num_positions == 1]
    if single and "positions" in params.learn:
        raise ValueError(
            f"scan(s) {single} have a single probe position, which cannot constrain "
            "the learned positions; remove 'positions' from params.learn"
        )


def _guarded_fit(series, state, params: JointParams, dev, seed: int, half: int | None):
    """:func:`_fit` under the stopping rule of :mod:`napari_ptychotomo.engine_guards`."""
    guard = Divergence(
        "end-to-end ptycho-tomography", "Lower rates['volume'].step (V) or the rates of what is learned."
    )
    return guard.run(_fit(series, state, params, dev, seed, half, guard))


def joint_steps(
    series: TiltSeries,
    init: Any = None,
    params: JointParams | None = None,
    *,
    device: Any = "auto",
    seed: int = 0,
) -> Generator[Progress, None, JointResult]:
    """Generator form of :func:`reconstruct_joint`: yields one Progress per tilt and returns
    the JointResult. Every preview holds ``"volume"``, the volume after that tilt as a
    partial :class:`~napari_ptychotomo.data.Volume` (what Stop keeps); every
    ``preview_every`` tilts also the orthogonal slices of Re V (``"yx"``, ``"zx"``,
    ``"zy"``) and ``"loss_per_tilt"`` of the current pass."""
    params = (params or JointParams()).validate()
    series = _check_series(series)
    _check_learnable(series, params)
    dev = resolve_device(device)
    init_from_environment(dev)
    dev = rank_device(dev)
    state = start_state(series, init, params.num_modes, params.num_slices, params.volume_shape, device=dev)
    if not params.half_data:
        result = yield from _guarded_fit(series, state, params, dev, seed, None)
        return result
    first = yield from _guarded_fit(series, state, params, dev, seed, 0)
    second = yield from _guarded_fit(series, state, params, dev, seed + 1, 1)
    a, b = first.volume.data, second.volume.data
    first.volume.data = ((a + b) / 2).astype(np.complex64)
    first.volume.halves = (a, b)
    first.volume.provenance["half_data"] = True
    for k, pos in enumerate(first.positions):
        n = len(pos)
        odd = half_indices(n, series.scans[k].scan_shape, 1)
        pos[odd] = second.positions[k][odd]
    first.loss_history = first.loss_history + second.loss_history
    first.provenance["clamped"] = {
        name: first.provenance["clamped"][name] + second.provenance["clamped"][name]
        for name in first.provenance["clamped"]
    }
    return first


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
    1e-3 voxel inwards so that ``(bound + shift) − shift`` rounded in float32 stays inside.
    """
    margin = 1e-3
    low = torch.full((2,), window // 2 + margin, device=device)
    high = torch.tensor([size - window + window // 2 + 1 - margin for size in lateral], device=device)
    return low, high


def _fit(series, state, params: JointParams, dev, seed: int, half: int | None, guard: Divergence):
    rank, size = world()
    scans = series.scans
    n_tilts = len(scans)
    cal = scans[0].calibration
    voxel = state.voxel_size
    sigma = float(interaction_constant(cal.energy_eV))
    window = scans[0].detector_shape[0]
    num_modes = state.probes[0].shape[0]
    fixed, per_position = stem_bytes(state.shape, window, num_modes, params.num_slices)
    batch_size = choose_batch_size("end-to-end ptycho-tomography", fixed, per_position, params.batch_size, dev, most=64)
    slice_thickness = state.shape[0] / params.num_slices * voxel
    propagator = fresnel_propagator(
        (window, window), voxel, wavelength(cal.energy_eV), slice_thickness, device=dev, band_limit=params.band_limit
    )

    # data stay on the host, normalised so that each tilt's mean pattern sum is 1
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

    volume = torch.tensor(state.volume, device=dev).requires_grad_(True)
    probes = [torch.tensor(p, device=dev).requires_grad_(True) for p in state.probes]
    positions = [torch.tensor(p, dtype=torch.float32, device=dev).requires_grad_(True) for p in state.positions_px]
    euler = [
        torch.tensor(np.deg2rad(e), dtype=torch.float32, device=dev).requires_grad_(True)
        for e in state.alignment.euler_deg
    ]
    shifts = [
        torch.tensor(s / voxel, dtype=torch.float32, device=dev).requires_grad_(True) for s in state.alignment.shifts
    ]
    rates = params.rates
    low, high = _window_bounds(state.shape[1:], window, dev)
    clamped = {"shifts": 0, "positions": 0}

    def keep_inside(k: int) -> None:
        n_shift, n_positions = keep_windows_inside(positions[k], shifts[k], low, high)
        clamped["shifts"] += n_shift
        clamped["positions"] += n_positions

    for k in range(n_tilts):
        keep_inside(k)
    # gradient scale: max |∂L/∂V| of a minibatch at V = 0 (then the largest seen), so that
    # no voxel moves more than rates['volume'].step V in one update and a converged start stays put
    probe_batch = subsets[0][:batch_size]
    zero = torch.zeros_like(volume, requires_grad=True)
    local0 = torch.as_tensor(probe_batch[rank::size], dtype=torch.long)
    if len(local0):
        model = _intensities(
            zero,
            euler[0].detach(),
            shifts[0].detach(),
            probes[0].detach(),
            positions[0].detach()[local0.to(dev)],
            propagator,
            params.num_slices,
            voxel,
            sigma,
            params.band_limit,
        )
        torch.sum(amplitude_residual(model, amplitudes[0][local0].to(dev), _FLOOR) ** 2).div(
            len(probe_batch)
        ).backward()
    all_reduce_grads([zero])
    volume_scale = float(zero.grad.abs().max()) if zero.grad is not None else 0.0
    del zero
    velocity = torch.zeros_like(volume)
    opt_probe = [torch.optim.Adam([p], lr=rates["probe"].step * float(p.detach().abs().max())) for p in probes]
    opt_pos = [torch.optim.Adam([p], lr=rates["positions"].step / voxel) for p in positions]
    opt_euler = [torch.optim.Adam([e], lr=np.deg2rad(rates["euler"].step)) for e in euler]
    opt_shift = [torch.optim.Adam([s], lr=rates["shifts"].step / voxel) for s in shifts]

    rng = np.random.default_rng(seed)
    losses = np.full((params.iterations, n_tilts), np.nan)
    total = params.iterations * n_tilts
    provenance = {"step": "end-to-end ptycho-tomography", "params": params.as_dict(), "half": half}
    last_good = partial_volume(volume, voxel, {**provenance, "pass": 0, "tilt": 0})
    saved: dict[str, Any] = {}  # what the current tilt learns, as it was before this tilt

    def good_state() -> JointResult:
        own = {
            name: list(values)
            for name, values in (("probes", probes), ("positions", positions), ("euler", euler), ("shifts", shifts))
        }
        for name, value in saved.get("values", {}).items():
            own[name][saved["k"]] = value
        return _result(
            torch.from_numpy(last_good.data),
            own["probes"],
            own["positions"],
            own["euler"],
            own["shifts"],
            state,
            losses,
            params,
            half,
            clamped,
        )

    guard.last_good = good_state
    start_euler = np.asarray(state.alignment.euler_deg, float)
    for it in range(params.iterations):
        learn = {name: params.learns(name, it) for name in ("probe", "positions", "euler", "shifts")}
        for k in range(n_tilts):
            before = volume.detach().clone()
            saved.update(
                k=k,
                values={
                    name: values[k].detach().clone()
                    for name, values in (
                        ("probes", probes),
                        ("positions", positions),
                        ("euler", euler),
                        ("shifts", shifts),
                    )
                },
            )
            index = subsets[k]
            batches = [index[i : i + batch_size] for i in range(0, len(index), batch_size)]
            tilt_loss = 0.0
            for b in rng.permutation(len(batches)):
                batch = batches[b]
                local = torch.as_tensor(batch[rank::size], dtype=torch.long)
                loss = torch.zeros((), device=dev)
                if len(local):
                    model = _intensities(
                        volume,
                        euler[k],
                        shifts[k],
                        probes[k],
                        positions[k][local.to(dev)],
                        propagator,
                        params.num_slices,
                        voxel,
                        sigma,
                        params.band_limit,
                    )
                    target = amplitudes[k][local].to(dev)
                    loss = torch.sum(amplitude_residual(model, target, _FLOOR) ** 2) / len(batch)
                tensors = [volume, probes[k], positions[k], euler[k], shifts[k]]
                for t in tensors:
                    t.grad = None
                loss.backward()
                all_reduce_grads(tensors)
                with torch.no_grad():
                    volume_scale = max(volume_scale, float(volume.grad.abs().max())) or 1.0
                    velocity.mul_(params.momentum).add_(volume.grad, alpha=rates["volume"].step / volume_scale)
                    volume -= velocity
                for name, opts in (
                    ("probe", opt_probe),
                    ("positions", opt_pos),
                    ("euler", opt_euler),
                    ("shifts", opt_shift),
                ):
                    if learn[name]:
                        opts[k].step()
                if learn["shifts"] or learn["positions"]:
                    keep_inside(k)
                with torch.no_grad():
                    if params.l1_imag and it >= params.l1_start:
                        volume.copy_(reg.shrink_imag(volume, params.l1_imag))
                    if params.nonnegative and it >= params.nonnegative_start:
                        volume.copy_(reg.clip_negative(volume))
                tilt_loss += float(_sum_ranks(loss.detach()))
            with torch.no_grad():
                if params.kz_beta and it >= params.kz_start:
                    beam = rotation_matrix(euler[k].detach())[2]  # beam direction in the volume frame
                    volume.copy_(before + reg.kz_filter(volume - before, beam, params.kz_beta))
                if params.low_passes(it):
                    volume.copy_(
                        reg.butterworth_lowpass(volume, params.butterworth_cutoff, params.butterworth_order, voxel)
                    )
                if params.tv_weight and it >= params.tv_start:
                    volume.copy_(reg.tv_prox(volume, params.tv_weight))
            tilt_loss /= max(len(batches), 1)
            finite = bool(torch.isfinite(volume.detach()).all())
            guard.check(
                f"pass {it + 1}, tilt {k + 1}",
                tilt_loss,
                key=k,
                problems=(
                    None if finite else "the volume holds NaN or infinite values",
                    angle_problem(np.rad2deg(euler[k].detach().cpu().numpy()), start_euler[k], f"euler_deg[{k}]"),
                ),
            )
            last_good = partial_volume(volume, voxel, {**provenance, "pass": it + 1, "tilt": k + 1})
            losses[it, k] = tilt_loss
            step = it * n_tilts + k + 1
            preview = {"volume": last_good}
            if step % params.preview_every == 0 or step == total:
                preview.update(orthogonal_slices(last_good.data), loss_per_tilt=losses[it].copy())
            yield Progress(step, total, tilt_loss, preview=preview, message=f"pass {it + 1}, tilt {k + 1}/{n_tilts}")
    if clamped["shifts"] or clamped["positions"]:
        warnings.warn(
            f"end-to-end: {clamped['shifts']} shift and {clamped['positions']} position updates were "
            f"clamped to keep the {window}-px probe window inside the {state.shape[1]}×{state.shape[2]}-voxel "
            "volume; lower rates['shifts'] / rates['positions'] (Å) or enlarge volume_shape",
            stacklevel=2,
        )
    return _result(volume.detach(), probes, positions, euler, shifts, state, losses, params, half, clamped)


def _intensities(volume, euler, shift, probes, positions, propagator, num_slices, voxel, sigma, band_limit):
    from .forward import stem_intensities

    return stem_intensities(volume, euler, shift, probes, positions, propagator, num_slices, voxel, sigma, band_limit)


def _sum_ranks(value: torch.Tensor) -> torch.Tensor:
    from .distributed import all_reduce_sum

    return all_reduce_sum(value.clone())


def _result(volume, probes, positions, euler, shifts, state, losses, params, half, clamped) -> JointResult:
    voxel = state.voxel_size
    middle = np.array([(state.shape[1] - 1) / 2, (state.shape[2] - 1) / 2])
    pos_angstrom = [
        (p.detach().cpu().numpy().astype(float) - middle) * voxel + c for p, c in zip(positions, state.centres)
    ]
    alignment = Alignment(
        euler_deg=np.rad2deg(np.stack([e.detach().cpu().numpy() for e in euler]).astype(float)),
        shifts=np.stack([s.detach().cpu().numpy() for s in shifts]).astype(float) * voxel,
    )
    finished = losses[~np.isnan(losses).any(1)] if losses.size else losses
    vol = Volume(
        data=volume.cpu().numpy().astype(np.complex64),
        voxel_size=voxel,
        units="V",
        provenance={"step": "end-to-end ptycho-tomography", "params": params.as_dict(), "half": half},
    )
    return JointResult(
        volume=vol,
        probes=np.stack([p.detach().cpu().numpy() for p in probes]),
        positions=pos_angstrom,
        alignment=alignment,
        loss_history=[float(v) for v in finished.mean(1)],
        loss_per_tilt=losses,
        provenance={"num_slices": params.num_slices, "world_size": world()[1], "clamped": dict(clamped)},
    )


def reconstruct_joint(
    series: TiltSeries, init: Any = None, params: JointParams | None = None, *, device: Any = "auto", seed: int = 0
) -> JointResult:
    """End-to-end ptycho-tomography of a 4D-STEM tilt series (You et al. 2025, Algorithm 3).

    Parameters
    ----------
    series : :class:`~napari_ptychotomo.data.TiltSeries` of ScanData (centred patterns,
        positions in Å), one per tilt.
    init : MSP results (dict tilt -> MSPResult, or a list), an Alignment, a starting
        Volume, or a list of those; missing parts start from the calibration probe, the
        nominal tilts with zero shifts and a zero volume. The start volume has the
        reconstruction voxel size and is a potential in V or a phase per Å (the linear
        tomography of MSP phases, divided by σ(E)); another shape is centred on the grid
        (:func:`~napari_ptychotomo.joint.setup.start_potential`).
    params : :class:`JointParams`; device : ``"auto"``, ``"cpu"``, ``"cuda"``; seed : batch order.

    Returns
    -------
    JointResult with the volume (complex potential in V, voxel size in Å), refined probes,
    positions and alignment, and the loss history. Under ``torchrun`` each minibatch's
    positions are shared among the ranks and the gradients summed.
    """
    return run(joint_steps(series, init, params, device=device, seed=seed))
