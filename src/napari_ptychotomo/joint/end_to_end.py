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
from dataclasses import dataclass, field
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

# Named constants of the fit (units in the comments)
#: intensity floor of the amplitude residual, in units of the mean pattern sum
_FLOOR = 1e-10
#: voxels: a clamp that moves a shift or position less than this is rounding, not counted
_COUNTED = 1e-3
#: voxels: the window bounds lie this far inside, so that (bound + shift) − shift rounded in
#: float32 stays inside
_INSIDE_MARGIN = 1e-3
#: the most scan positions per minibatch when the batch size comes from memory (You et al.
#: use small minibatches of adjacent positions; larger ones update the volume less often)
_MOST_PER_BATCH = 64


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
    if single and params.learn_positions:
        raise ValueError(
            f"scan(s) {single} have a single probe position, which cannot constrain "
            "the learned positions; set params.learn_positions = False"
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
    ``_INSIDE_MARGIN`` (1e-3 voxel) inwards so that ``(bound + shift) − shift`` rounded in
    float32 stays inside.
    """
    low = torch.full((2,), window // 2 + _INSIDE_MARGIN, device=device)
    high = torch.tensor([size - window + window // 2 + 1 - _INSIDE_MARGIN for size in lateral], device=device)
    return low, high


def _fit(series, state, params: JointParams, dev, seed: int, half: int | None, guard: Divergence):
    run = _setup(series, state, params, dev, half)
    fit = _Learned.start(state, params, dev)
    for k in range(run.num_tilts):
        _keep_inside(run, fit, k)
    fit.volume_scale = _gradient_scale(run, fit)
    rng = np.random.default_rng(seed)
    losses = np.full((params.iterations, run.num_tilts), np.nan)
    total = params.iterations * run.num_tilts
    provenance = {"step": "end-to-end ptycho-tomography", "params": params.as_dict(), "half": half}
    last_good = partial_volume(fit.volume, run.voxel, {**provenance, "pass": 0, "tilt": 0})
    saved: dict[str, Any] = {}  # what the current tilt learns, as it was before this tilt

    def good_state() -> JointResult:
        own = fit.per_tilt_lists()
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
            run.clamped,
        )

    guard.last_good = good_state
    start_euler = np.asarray(state.alignment.euler_deg, float)
    for it in range(params.iterations):
        learn = {name: params.learns(name, it) for name in _Learned.per_tilt_names}
        for k in range(run.num_tilts):
            before = fit.volume.detach().clone()
            saved.update(k=k, values=fit.values_of_tilt(k))
            batches = _minibatches(run.subsets[k], run.batch_size)
            tilt_loss = 0.0
            for b in rng.permutation(len(batches)):
                loss = _batch_loss(run, fit, k, batches[b])
                _descend(run, fit, k, loss, learn)
                if learn["shifts"] or learn["positions"]:
                    _keep_inside(run, fit, k)
                with torch.no_grad():
                    _after_minibatch(fit.volume, params, it)
                tilt_loss += float(_sum_ranks(loss.detach()))
            with torch.no_grad():
                _after_tilt(fit.volume, before, fit.euler[k], params, it, run.voxel)
            tilt_loss /= max(len(batches), 1)
            guard.check(
                f"pass {it + 1}, tilt {k + 1}", tilt_loss, key=k, problems=_tilt_problems(fit, k, start_euler[k])
            )
            last_good = partial_volume(fit.volume, run.voxel, {**provenance, "pass": it + 1, "tilt": k + 1})
            losses[it, k] = tilt_loss
            step = it * run.num_tilts + k + 1
            preview = {"volume": last_good}
            if step % params.preview_every == 0 or step == total:
                preview.update(orthogonal_slices(last_good.data), loss_per_tilt=losses[it].copy())
            yield Progress(
                step, total, tilt_loss, preview=preview, message=f"pass {it + 1}, tilt {k + 1}/{run.num_tilts}"
            )
    _warn_clamped(run, state)
    return _result(
        fit.volume.detach(),
        fit.probes,
        fit.positions,
        fit.euler,
        fit.shifts,
        state,
        losses,
        params,
        half,
        run.clamped,
    )


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


def _gradient_scale(run: _Setup, fit: _Learned) -> float:
    """max |∂L/∂V| of the first minibatch at V = 0 (then the largest seen), so that no voxel
    moves more than ``rates['volume'].step`` V in one update and a converged start stays put."""
    first = run.subsets[0][: run.batch_size]
    zero = torch.zeros_like(fit.volume, requires_grad=True)
    local = _local(run, first)
    if len(local):
        _data_loss(
            run,
            zero,
            fit.euler[0].detach(),
            fit.shifts[0].detach(),
            fit.probes[0].detach(),
            fit.positions[0].detach(),
            0,
            local,
            len(first),
        ).backward()
    all_reduce_grads([zero])
    return float(zero.grad.abs().max()) if zero.grad is not None else 0.0


# ---- the loss of one minibatch and the update


def _minibatches(index: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Adjacent positions in runs of ``batch_size`` (the order of the runs is shuffled)."""
    return [index[i : i + batch_size] for i in range(0, len(index), batch_size)]


def _local(run: _Setup, batch: np.ndarray) -> torch.Tensor:
    """This process's share of a minibatch's positions."""
    return torch.as_tensor(batch[run.rank :: run.size], dtype=torch.long)


def _data_loss(run: _Setup, volume, euler, shift, probes, positions, k: int, local, batch_len: int) -> torch.Tensor:
    """‖√I_model − √I‖² of this process's positions ``local`` of a minibatch of
    ``batch_len`` positions of tilt ``k``, per position (the amplitude loss, eq. 14-15)."""
    model = _intensities(
        volume,
        euler,
        shift,
        probes,
        positions[local.to(run.device)],
        run.propagator,
        run.params.num_slices,
        run.voxel,
        run.sigma,
        run.params.band_limit,
    )
    target = run.amplitudes[k][local].to(run.device)
    return torch.sum(amplitude_residual(model, target, _FLOOR) ** 2) / batch_len


def _batch_loss(run: _Setup, fit: _Learned, k: int, batch: np.ndarray) -> torch.Tensor:
    """The data loss of one minibatch of tilt ``k`` (0 where this process holds none of it)."""
    local = _local(run, batch)
    if not len(local):
        return torch.zeros((), device=run.device)
    return _data_loss(
        run, fit.volume, fit.euler[k], fit.shifts[k], fit.probes[k], fit.positions[k], k, local, len(batch)
    )


def _descend(run: _Setup, fit: _Learned, k: int, loss: torch.Tensor, learn: dict[str, bool]) -> None:
    """Gradients (summed over the processes), a heavy-ball step of the volume scaled so that
    no voxel moves more than ``rates['volume'].step`` V, and an Adam step of each per-tilt
    quantity learned in this pass."""
    tensors = fit.tensors_of_tilt(k)
    for t in tensors:
        t.grad = None
    loss.backward()
    all_reduce_grads(tensors)
    params = run.params
    with torch.no_grad():
        fit.volume_scale = max(fit.volume_scale, float(fit.volume.grad.abs().max())) or 1.0
        fit.velocity.mul_(params.momentum).add_(fit.volume.grad, alpha=params.rates["volume"].step / fit.volume_scale)
        fit.volume.sub_(fit.velocity)
    for name in _Learned.per_tilt_names:
        if learn[name]:
            fit.optimisers[name][k].step()


# ---- constraints and regularisers (in place)


def _keep_inside(run: _Setup, fit: _Learned, k: int) -> None:
    """Constraint: tilt ``k``'s probe windows stay inside the volume (counted in ``run.clamped``)."""
    n_shift, n_positions = keep_windows_inside(fit.positions[k], fit.shifts[k], run.low, run.high)
    run.clamped["shifts"] += n_shift
    run.clamped["positions"] += n_positions


def _after_minibatch(volume: torch.Tensor, params: JointParams, it: int) -> None:
    """After each minibatch: L1 shrinkage of Im V (You et al. eq. 17) and non-negativity."""
    if params.l1_imag and it >= params.l1_start:
        volume.copy_(reg.shrink_imag(volume, params.l1_imag))
    if params.nonnegative and it >= params.nonnegative_start:
        volume.copy_(reg.clip_negative(volume))


def _after_tilt(volume: torch.Tensor, before: torch.Tensor, euler: torch.Tensor, params: JointParams, it: int, voxel):
    """After each tilt: the k_z kernel on the tilt's update (along its beam), the Butterworth
    low-pass and the proximal total variation."""
    if params.kz_beta and it >= params.kz_start:
        beam = rotation_matrix(euler.detach())[2]  # beam direction in the volume frame
        volume.copy_(before + reg.kz_filter(volume - before, beam, params.kz_beta))
    if params.low_passes(it):
        volume.copy_(reg.butterworth_lowpass(volume, params.butterworth_cutoff, params.butterworth_order, voxel))
    if params.tv_weight and it >= params.tv_start:
        volume.copy_(reg.tv_prox(volume, params.tv_weight))


# ---- checks


def _tilt_problems(fit: _Learned, k: int, start_euler_deg: np.ndarray) -> tuple[str | None, str | None]:
    """The volume's values and tilt ``k``'s Euler angles against their ranges
    (:mod:`napari_ptychotomo.engine_guards`)."""
    finite = bool(torch.isfinite(fit.volume.detach()).all())
    return (
        None if finite else "the volume holds NaN or infinite values",
        angle_problem(np.rad2deg(fit.euler[k].detach().cpu().numpy()), start_euler_deg, f"euler_deg[{k}]"),
    )


def _warn_clamped(run: _Setup, state) -> None:
    clamped = run.clamped
    if clamped["shifts"] or clamped["positions"]:
        warnings.warn(
            f"end-to-end: {clamped['shifts']} shift and {clamped['positions']} position updates were "
            f"clamped to keep the {run.window}-px probe window inside the {state.shape[1]}×{state.shape[2]}-voxel "
            "volume; lower rates['shifts'] / rates['positions'] (Å) or enlarge volume_shape",
            stacklevel=3,
        )


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
