"""Plane-wave (HRTEM) multislice tomography from a tilt × defocus series (Ren et al. 2018).

The same complex potential volume, rotation, slice binning and multislice as the 4D-STEM
mode (:mod:`.forward`), illuminated by a unit plane wave and imaged through the quasi-coherent
transfer function of the series' objective lens (aperture, aberrations, partial-coherence
envelopes) at each defocus. The amplitude cost Σ‖√I_model − √I‖² over all tilts
and defoci is minimised by proximal gradient descent: a gradient step (autograd gives the
back-propagated gradient of Ren et al.), then the proximal operators of TV, the L1 norm of
Im V and positivity, with Nesterov (FISTA) acceleration (Beck & Teboulle 2009). Each
gradient covers every tilt; under ``torchrun`` the tilts are shared among the ranks and
the volume gradients summed.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ..data import Alignment, DefocusSeries, TiltSeries, Volume
from ..data.checks import check_type
from ..engine import Progress, resolve_device, run
from ..engine_guards import Divergence, angle_problem, checked_counts, shift_problem, warn_negative
from ..params_meta import describes, ui
from ..physics import fresnel_propagator, interaction_constant, wavelength
from ..physics.loss import amplitude_residual
from . import regularizers as reg
from .distributed import all_reduce_grads, all_reduce_sum, init_from_environment, rank_device, world
from .forward import focal_spread_weights, plane_wave_images, series_transfer
from .memory import choose_batch_size, plane_wave_bytes
from .params import JointParams
from .result import JointResult, orthogonal_slices, partial_volume
from .setup import check_start_memory, halves_share, split_init, start_potential

__all__ = ["plane_wave_steps", "reconstruct_plane_wave"]

#: intensity floor of the amplitude residual, in units of the incident beam per pixel
_FLOOR = 1e-10


def _check(series: Any) -> tuple[int, int, float, float]:
    if not isinstance(series, TiltSeries) or not all(isinstance(s, DefocusSeries) for s in series.scans):
        raise ValueError("series must be a TiltSeries of DefocusSeries (one defocus stack per tilt)")
    series.validate()
    first = series.scans[0]
    shape = tuple(first.images.shape[-2:])
    for k, s in enumerate(series.scans):
        if (
            tuple(s.images.shape[-2:]) != shape
            or not math.isclose(s.pixel_size, first.pixel_size, rel_tol=1e-6)
            or s.energy_eV != first.energy_eV
        ):
            raise ValueError(
                f"tilt {k} has images {tuple(s.images.shape[-2:])} of {s.pixel_size} Å at {s.energy_eV} eV; "
                f"expected {shape} of {first.pixel_size} Å at {first.energy_eV} eV like tilt 0"
            )
    negative = 0
    for k, s in enumerate(series.scans):
        images = torch.as_tensor(np.asarray(s.images, dtype=np.float32))
        negative += checked_counts(images, f"tilt {k} ({s.tilt_deg:g}°): images", per="image pixel")[1]
    warn_negative(negative, sum(int(np.size(s.images)) for s in series.scans), "images of the tilt series")
    return shape[0], shape[1], float(first.pixel_size), float(first.energy_eV)


@describes(
    docs="reconstruct_plane_wave",
    focal_spread_samples=ui("focal-spread samples (0 = envelope)", min=0, max=200),
)
def plane_wave_steps(
    series: TiltSeries,
    init: Any = None,
    params: JointParams | None = None,
    *,
    device: Any = "auto",
    seed: int = 0,
    focal_spread_samples: int = 0,
) -> Generator[Progress, None, JointResult]:
    """Generator form of :func:`reconstruct_plane_wave`; one Progress per iteration, whose
    preview holds ``"volume"`` (the volume after that iteration as a partial
    :class:`~napari_ptychotomo.data.Volume`, what Stop keeps) and, every
    ``preview_every`` iterations, the orthogonal slices and ``"loss_per_tilt"``."""
    check_type("params", params, (JointParams, type(None)), "JointParams(**settings) builds one")
    params = (params or JointParams(tv_weight=1.0)).validate()
    samples = _samples(focal_spread_samples)
    ny, nx, voxel, energy = _check(series)
    dev = resolve_device(device)
    init_from_environment(dev)
    dev = rank_device(dev)
    _msp, alignment, start = split_init(init)
    shape = tuple(params.volume_shape) if params.volume_shape else (nx + (-nx) % params.num_slices, ny, nx)
    if shape[1:] != (ny, nx):
        raise ValueError(f"volume_shape {shape} must have the images' lateral shape ({ny}, {nx})")
    alignment = alignment or Alignment.from_angles(series.angles_deg)
    alignment.validate()
    if len(alignment.euler_deg) != len(series):
        raise ValueError(f"init alignment has {len(alignment.euler_deg)} tilts; the series has {len(series)}")
    # memory first: a volume that cannot fit is refused before it is allocated
    check_start_memory(shape, 0, 1, params.num_slices, start is not None, step="plane-wave", change="volume_shape")
    fixed, per_tilt = plane_wave_bytes(shape, params.num_slices, max(len(s.defocus) for s in series.scans))
    choose_batch_size("plane-wave tomography", fixed, per_tilt, 1, dev, most=1)
    data = np.zeros(shape, np.complex64) if start is None else start_potential(start, energy, shape, voxel)
    halves = [None] if not params.half_data else [0, 1]
    results = []
    for h in halves:
        guard = Divergence("plane-wave tomography", "Lower plane_wave_step or the rates of what is learned.")
        result = yield from guard.run(
            _fit(series, data, alignment, params, shape, voxel, energy, dev, h, guard, samples)
        )
        results.append(result)
    if len(results) == 1:
        return results[0]
    a, b = results[0].volume.data, results[1].volume.data
    out = results[0]
    out.volume.data = ((a + b) / 2).astype(np.complex64)
    out.volume.halves = (a, b)
    out.volume.provenance["halves_share"] = halves_share(init, uses_msp=False)
    out.loss_history = out.loss_history + results[1].loss_history
    return out


def _subset(series: TiltSeries, half):
    """Per tilt the indices of the defocus images used (alternate images in half-data mode;
    alternate tilts when a tilt has a single image)."""
    out = []
    for k, s in enumerate(series.scans):
        n = len(s.defocus)
        idx = np.arange(n)
        if half is not None:
            idx = idx[idx % 2 == half] if n > 1 else (idx if k % 2 == half else idx[:0])
        out.append(idx)
    return out


def _samples(focal_spread_samples: Any) -> int:
    if (
        isinstance(focal_spread_samples, bool)
        or not isinstance(focal_spread_samples, (int, np.integer))
        or not 0 <= focal_spread_samples <= 200
    ):
        raise ValueError(
            f"focal_spread_samples = {focal_spread_samples!r}; expected 0 (the focal spread as an "
            "envelope) or the number of defoci to sum over, e.g. 15 (at most 200)"
        )
    return int(focal_spread_samples)


def _tilt_batch_size(shape, params: JointParams, subsets, mine, dev, samples: int = 0) -> int:
    """How many tilts one forward / backward pass takes: as many as fit in memory."""
    most = max([len(subsets[k]) for k in mine] or [1]) * max(samples, 1)
    fixed, per_tilt = plane_wave_bytes(shape, params.num_slices, most)
    return choose_batch_size("plane-wave tomography", fixed, per_tilt, None, dev, most=max(1, len(mine)))


def _tilt_batches(mine: list[int], subsets, size: int) -> list[list[int]]:
    """The tilts in batches of at most ``size`` with the same number of images (so their
    defocus stacks stack)."""
    by_count: dict[int, list[int]] = {}
    for k in mine:
        by_count.setdefault(len(subsets[k]), []).append(k)
    return [same[i : i + size] for same in by_count.values() for i in range(0, len(same), size)]


def _fit(series, data, alignment, params: JointParams, shape, voxel, energy, dev, half, guard, samples=0):
    rank, size = world()
    n_tilts = len(series)
    lam, sigma = float(wavelength(energy)), float(interaction_constant(energy))
    propagator = fresnel_propagator(shape[1:], voxel, lam, shape[0] / params.num_slices * voxel, device=dev)
    subsets = _subset(series, half)
    mine = [k for k in range(n_tilts) if k % size == rank and len(subsets[k])]
    groups = _tilt_batches(mine, subsets, _tilt_batch_size(shape, params, subsets, mine, dev, samples))
    weights = focal_spread_weights(samples, device=dev) if samples else None
    targets = [
        torch.stack(
            [
                torch.sqrt(
                    torch.as_tensor(np.asarray(series.scans[k].images)[subsets[k]], dtype=torch.float32).clamp(min=0)
                )
                for k in g
            ]
        ).to(dev)
        for g in groups
    ]
    # the exit wave leaves the box's exit surface, shape[0]·voxel Å below its entrance; the
    # transfer functions are made once, not per iteration
    transfers = [
        torch.stack(
            [
                series_transfer(
                    series.scans[k],
                    shape[1:],
                    voxel,
                    shape[0] * voxel,
                    subsets[k],
                    device=dev,
                    focal_spread_samples=samples,
                )
                for k in g
            ]
        )
        for g in groups
    ]
    n_images = sum(len(s) for s in subsets)
    x = torch.tensor(data, device=dev)
    y = x.clone().requires_grad_(True)
    euler = [
        torch.tensor(np.deg2rad(e), dtype=torch.float32, device=dev).requires_grad_(True) for e in alignment.euler_deg
    ]
    shifts = [torch.tensor(s / voxel, dtype=torch.float32, device=dev).requires_grad_(True) for s in alignment.shifts]
    opt_euler = [torch.optim.Adam([e], lr=np.deg2rad(params.rates["euler"].step)) for e in euler]
    opt_shift = [torch.optim.Adam([s], lr=params.rates["shifts"].step / voxel) for s in shifts]
    t_momentum, scale, previous = 1.0, 0.0, math.inf
    losses = np.full((params.iterations, n_tilts), np.nan)
    good = {"euler": [e.detach().clone() for e in euler], "shifts": [s.detach().clone() for s in shifts]}
    guard.last_good = lambda: _result(x, good["euler"], good["shifts"], voxel, losses, params, half)
    for it in range(params.iterations):
        for t in [y, *euler, *shifts]:
            t.grad = None
        per_tilt = torch.zeros(n_tilts, device=dev)
        fit_euler, fit_shifts = params.learns("euler", it), params.learns("shifts", it)
        for group, target, transfer in zip(groups, targets, transfers):
            # fixed angles need no gradient; about the tilt axis alone they take the cached sparse rotation
            angles = torch.stack([euler[k] if fit_euler else euler[k].detach() for k in group])
            moves = torch.stack([shifts[k] if fit_shifts else shifts[k].detach() for k in group])
            model = plane_wave_images(
                y, angles, moves, transfer, propagator, params.num_slices, voxel, sigma, sample_weights=weights
            )
            loss = torch.sum(amplitude_residual(model, target, _FLOOR) ** 2, dim=(1, 2, 3)) / (
                n_images * shape[1] * shape[2]
            )
            loss.sum().backward()
            per_tilt[group] = loss.detach()
        all_reduce_grads([y, *euler, *shifts])
        all_reduce_sum(per_tilt)
        total = float(per_tilt.sum())
        guard.check(
            f"iteration {it + 1}",
            total,
            problems=(
                angle_problem(np.rad2deg(torch.stack(euler).detach().cpu().numpy()), alignment.euler_deg),
                shift_problem(
                    torch.stack(shifts).detach().cpu().numpy() * voxel, (shape[1] * voxel, shape[2] * voxel), "Å"
                ),
            ),
        )
        good.update(euler=[e.detach().clone() for e in euler], shifts=[s.detach().clone() for s in shifts])
        losses[it] = per_tilt.cpu().numpy() * n_tilts
        with torch.no_grad():
            scale = max(scale, float(y.grad.abs().max())) or 1.0
            new = y - (params.plane_wave_step / scale) * y.grad
            new = _prox(new, params, it, voxel)
            if total > previous:  # adaptive restart (O'Donoghue & Candès 2015)
                t_momentum = 1.0
            previous = total
            if params.fista:
                t_next = (1 + math.sqrt(1 + 4 * t_momentum**2)) / 2
                momentum = (t_momentum - 1) / t_next
                t_momentum = t_next
            else:
                momentum = 0.0
            y.copy_(new + momentum * (new - x))
            x = new
            for name, opts in (("euler", opt_euler), ("shifts", opt_shift)):
                if params.learns(name, it):
                    for k in range(n_tilts):
                        opts[k].step()
        current = partial_volume(
            x, voxel, {"step": "plane-wave tomography", "params": params.as_dict(), "half": half, "iteration": it + 1}
        )
        preview = {"volume": current}
        if (it + 1) % params.preview_every == 0 or it + 1 == params.iterations:
            preview.update(orthogonal_slices(current.data), loss_per_tilt=losses[it].copy())
        yield Progress(it + 1, params.iterations, total, preview=preview, message=f"iteration {it + 1}")
    return _result(x, euler, shifts, voxel, losses, params, half)


def _prox(volume, params: JointParams, it: int, voxel: float):
    """Proximal / projection steps after a gradient step (Ren et al. 2018)."""
    if params.tv_weight and it >= params.tv_start:
        volume = reg.tv_prox(volume, params.tv_weight)
    if params.l1_imag and it >= params.l1_start:
        volume = reg.shrink_imag(volume, params.l1_imag)
    if params.low_passes(it):
        volume = reg.butterworth_lowpass(volume, params.butterworth_cutoff, params.butterworth_order, voxel)
    if params.nonnegative and it >= params.nonnegative_start:
        volume = reg.clip_negative(volume)
    return volume


def _result(x, euler, shifts, voxel, losses, params, half) -> JointResult:
    alignment = Alignment(
        euler_deg=np.rad2deg(np.stack([e.detach().cpu().numpy() for e in euler]).astype(float)),
        shifts=np.stack([s.detach().cpu().numpy() for s in shifts]).astype(float) * voxel,
    )
    done = losses[~np.isnan(losses).any(1)]
    tilts = alignment.euler_deg[:, 1]
    volume = Volume(
        data=x.detach().cpu().numpy().astype(np.complex64),
        voxel_size=voxel,
        units="V",
        provenance={
            "step": "plane-wave tomography",
            "params": params.as_dict(),
            "half": half,
            # what the atom tracer reads: tilts over ±90° blur every atom alike
            "tilt_range_deg": [float(tilts.min()), float(tilts.max())],
        },
    )
    return JointResult(
        volume=volume,
        probes=None,
        positions=None,
        alignment=alignment,
        loss_history=[float(v) for v in done.mean(1)],
        loss_per_tilt=losses,
        provenance={"num_slices": params.num_slices, "world_size": world()[1]},
    )


def reconstruct_plane_wave(
    series: TiltSeries,
    init: Any = None,
    params: JointParams | None = None,
    *,
    device: Any = "auto",
    seed: int = 0,
    focal_spread_samples: int = 0,
) -> JointResult:
    """Plane-wave multislice tomography of an HRTEM tilt × defocus series (Ren et al. 2018).

    Parameters
    ----------
    series : TiltSeries of :class:`~napari_ptychotomo.data.DefocusSeries` (images
        normalised to a unit incident beam, defocus in Å from the rotation centre or the
        box's exit surface as each series' ``defocus_reference`` says, pixel size in Å =
        voxel size, the objective's aperture, aberrations and coherence envelopes), one
        per tilt.
    init : an Alignment and/or a starting Volume (a potential in V or a phase per Å, see
        :func:`~napari_ptychotomo.joint.setup.start_potential`).
    params : :class:`JointParams` (``iterations``, ``num_slices`` = N_B, ``plane_wave_step``,
        ``fista``, ``tv_weight``, ``l1_imag``, ``nonnegative``, ``learn_euler``,
        ``learn_shifts``); default TV 1 V.
    device : ``"auto"``, ``"cpu"``, ``"cuda"``; seed : unused (the method is deterministic).
    focal_spread_samples : 0 models the focal spread by its envelope; M > 0 by the exact
        incoherent sum of each image over M defoci (Gauss–Hermite; M times the imaging
        FFTs, the multislice unchanged). The envelope departs from the sum for strongly
        scattering objects (:mod:`~napari_ptychotomo.physics.transfer`); 15 samples suit
        apertures up to ~20 mrad and spreads up to ~50 Å at 300 keV.

    Returns
    -------
    JointResult with the volume (complex potential in V) and the alignment.
    """
    return run(
        plane_wave_steps(series, init, params, device=device, seed=seed, focal_spread_samples=focal_spread_samples)
    )
