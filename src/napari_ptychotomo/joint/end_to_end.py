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

This module holds the public driver (:func:`joint_steps`, :func:`reconstruct_joint`) and
the loop over passes and tilts with its checks and result; the per-run setup, the learned
tensors and the window constraint are in :mod:`.fit_state`, one minibatch's loss, update
and regularisers in :mod:`.fit_step`.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ..data import Alignment, TiltSeries, Volume
from ..data.checks import check_disc_on_detector, check_type
from ..engine import Progress, resolve_device, run
from ..engine_guards import Divergence, angle_problem
from .distributed import init_from_environment, rank_device, world
from .fit_state import _keep_inside, _Learned, _Setup, _setup, keep_windows_inside
from .fit_step import _after_minibatch, _after_tilt, _batch_loss, _descend, _gradient_scale, _minibatches, _sum_ranks
from .params import JointParams
from .result import JointResult, orthogonal_slices, partial_volume
from .setup import half_indices, halves_share, start_state

__all__ = ["joint_steps", "reconstruct_joint", "keep_windows_inside"]


def _check_series(series: Any) -> TiltSeries:
    if not isinstance(series, TiltSeries):
        raise ValueError(f"series is a {type(series).__name__}; expected a TiltSeries of ScanData")
    from ..data import DefocusSeries

    if any(isinstance(s, DefocusSeries) for s in series.scans):
        raise ValueError("series holds DefocusSeries (plane-wave data); use reconstruct_plane_wave")
    series = series.validate()
    for k, scan in enumerate(series.scans):
        try:
            check_disc_on_detector(scan.calibration, scan.detector_shape)
        except ValueError as exc:
            raise ValueError(f"scan {k} (tilt {series.angles_deg[k]:g}°): {exc}") from None
    return series


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
    check_type("params", params, (JointParams, type(None)), "JointParams(**settings) builds one")
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
    first.volume.provenance["halves_share"] = halves_share(init)
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
