"""The pipeline's steps. Each reads its inputs from the project and writes its outputs
into it (through :func:`napari_ptychotomo.io.append_result`, which never rewrites the raw
data), so any step can be re-run alone with new parameters.

This module holds the steps up to linear tomography (bright field, MSP, denoise, align,
linear) and is where every step is looked up: the end-to-end step lives in
:mod:`.end_to_end_steps`, the analysis steps in :mod:`.analysis_steps`, the
:class:`StepContext` they all take in :mod:`.step_context`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Volume
from .analysis_steps import run_atoms as run_atoms
from .analysis_steps import run_resolution as run_resolution
from .end_to_end_steps import run_end_to_end as run_end_to_end
from .end_to_end_steps import run_plane_wave as run_plane_wave
from .end_to_end_steps import with_optics as with_optics
from .provenance import provenance, timed
from .step_context import StepContext, _series, with_engine

__all__ = ["StepContext", "msp_params"]

PROJECTIONS = "projections"
DENOISED = "projections (denoised)"
ALIGNED = "aligned (low resolution)"


def _angles(ctx: StepContext) -> np.ndarray:
    return np.asarray(_series(ctx).angles_deg, dtype=float)


def _tilts(ctx: StepContext, option: Any) -> list[int]:
    count = len(_series(ctx))
    if option in (None, "all"):
        return list(range(count))
    tilts = [int(k) for k in option]
    bad = [k for k in tilts if not 0 <= k < count]
    if bad:
        raise ValueError(f"msp.tilts: {bad} out of range; the series has tilts 0..{count - 1}")
    return tilts


def run_bright_field(ctx: StepContext) -> None:
    """Bright-field (parallax) defocus estimate of every tilt; MSP starts from it."""
    from ..ptycho import estimate_defocus

    estimates = {}
    for k, scan in enumerate(_series(ctx).scans):
        estimate = estimate_defocus(scan)
        estimates[k] = {
            key: (bool(v) if isinstance(v, (bool, np.bool_)) else float(v))
            for key, v in estimate.items()
            if np.isscalar(v)
        }
        note = "" if estimates[k].get("reliable", True) else " (not reliable: MSP keeps its own start)"
        ctx.report(f"tilt {k}: bright-field defocus {estimates[k].get('defocus', float('nan')):.1f} Å{note}")
    if ctx.options.get("use_for_msp", True):
        ctx.state["bright_field"] = estimates


def msp_params(calibration, options: dict[str, Any], bright_field: dict | None = None):
    """The :class:`~napari_ptychotomo.ptycho.MSPParams` of a config's ``[msp]`` table.

    ``rates`` come as ``name = [step, start]``; a reliable bright-field estimate of this
    tilt is the start defocus unless the table names one.
    """
    from ..ptycho import MSPParams
    from ..ptycho.params import LearningRate

    extra = {k: v for k, v in options.items() if k != "tilts"}
    rates = {k: LearningRate(*v) for k, v in extra.pop("rates", {}).items()}
    if bright_field and bright_field.get("reliable", True) and "defocus" not in extra:
        extra["defocus"] = bright_field["defocus"]
    return MSPParams.from_calibration(calibration, rates=rates or None, **extra)


def run_msp(ctx: StepContext) -> None:
    """Multislice ptychography of each tilt; a checkpoint after every tilt."""
    import torch.distributed as dist

    from ..engine import run
    from ..ptycho import msp_series_steps

    tilts = _tilts(ctx, ctx.options.get("tilts", "all"))
    todo = [k for k in tilts if not (ctx.resume and k in ctx.project.msp)]
    kept = [k for k in tilts if k not in todo]
    if kept:
        ctx.report(f"msp: tilt(s) {', '.join(map(str, kept))} done already (resume); {len(todo)} to do")
    bright_field = ctx.state.get("bright_field", {})
    jobs = [
        (k, _series(ctx).scans[k], msp_params(_series(ctx).scans[k].calibration, ctx.options, bright_field.get(k)))
        for k in todo[ctx.rank :: ctx.world]
    ]  # every tilt's settings checked before the first runs
    params_of = {k: params for k, _, params in jobs}
    done = []

    def finished(k: int, result, seconds: float) -> None:
        result.provenance = provenance("msp", params_of[k], ctx.device, seconds, ctx.seed + k)
        if ctx.world == 1:
            ctx.save(result, name=k)  # checkpoint: a killed run resumes after this tilt
        else:
            done.append((k, result))
        ctx.report(
            f"tilt {k}: tilt ({result.tilt_mrad[0]:.2f}, {result.tilt_mrad[1]:.2f}) mrad, "
            f"slice {result.slice_thickness:.2f} Å, loss {result.loss_history[-1]:.4g}, "
            f"{seconds:.1f} s"
        )

    def on_progress(progress) -> None:
        preview = progress.preview or {}
        if "result" in preview:
            finished(preview["tilt_index"], preview["result"], preview["seconds"])
        else:
            ctx.progress("MSP", progress)

    run(msp_series_steps(jobs, device=ctx.device, seed=ctx.seed), on_progress)
    if ctx.world > 1:  # rank 0 writes what every rank computed
        gathered = [None] * ctx.world if ctx.rank == 0 else None
        dist.gather_object(done, gathered, dst=0)
        if ctx.rank == 0:
            for k, result in sorted(item for part in gathered for item in part):
                ctx.save(result, name=k)
        dist.barrier()


def _msp_projections(ctx: StepContext) -> tuple[np.ndarray, float]:
    from ..tomo import projections_from_msp

    count = len(_series(ctx))
    missing = [k for k in range(count) if k not in ctx.project.msp]
    if missing:
        raise ValueError(f"{ctx.path}: MSP results missing for tilt(s) {missing}; run the msp step first")
    results = [ctx.project.msp[k] for k in range(count)]
    stack, _angles, pixel_size = projections_from_msp(results)
    return np.asarray(stack, dtype=np.float32), float(pixel_size)


def _projection_volume(stack: np.ndarray, pixel_size: float, prov: dict) -> Volume:
    return Volume(
        data=stack.astype(np.float32),
        voxel_size=pixel_size,
        units="rad",
        provenance={**prov, "axes": "tilt, y, x (a projection stack, not a volume)"},
    )


def run_denoise(ctx: StepContext) -> None:
    """Summed MSP phase per tilt, denoised (BM3D / NLM / TV + Fourier sparsity)."""
    from ..tomo import denoise_projections

    stack, pixel_size = _msp_projections(ctx)
    with timed() as seconds:
        denoised = denoise_projections(stack, **ctx.options)
    prov = provenance("denoise", ctx.options, "cpu", seconds[0], ctx.seed)
    ctx.save(_projection_volume(stack, pixel_size, prov), name=PROJECTIONS)
    ctx.save(_projection_volume(np.asarray(denoised), pixel_size, prov), name=DENOISED)


def _projections(ctx: StepContext) -> tuple[np.ndarray, float]:
    for name in (DENOISED, PROJECTIONS):
        if name in ctx.project.volumes:
            vol = ctx.project.volumes[name]
            return np.asarray(vol.data, dtype=np.float32), float(vol.voxel_size)
    return _msp_projections(ctx)


def run_align(ctx: StepContext) -> None:
    """Joint rigid alignment and low-resolution tomography (You et al. 2025, Algorithm 2)."""
    from ..engine import run
    from ..tomo import align_tilt_series_steps

    stack, pixel_size = _projections(ctx)
    with timed() as seconds:
        alignment, volume = run(
            align_tilt_series_steps(stack, _angles(ctx), pixel_size, **ctx.options), lambda p: ctx.progress("align", p)
        )
    alignment.provenance = with_engine(
        alignment.provenance, provenance("align", ctx.options, ctx.device, seconds[0], ctx.seed)
    )
    volume.provenance = with_engine(volume.provenance, alignment.provenance)
    ctx.save(alignment)
    ctx.save(volume, name=ALIGNED)
    ctx.report(f"alignment: shifts RMS {np.sqrt(np.mean(alignment.shifts**2)):.2f} Å, {seconds[0]:.1f} s")


def run_linear(ctx: StepContext) -> None:
    """Full-resolution linear tomography with the alignment fixed."""
    from ..data import Alignment
    from ..engine import run
    from ..tomo import reconstruct_linear_steps

    stack, pixel_size = _projections(ctx)
    alignment = ctx.project.alignment or Alignment.from_angles(_angles(ctx))
    with timed() as seconds:
        volume = run(
            reconstruct_linear_steps(stack, alignment, pixel_size, **ctx.options), lambda p: ctx.progress("linear", p)
        )
    volume.provenance = with_engine(
        volume.provenance, provenance("linear", ctx.options, ctx.device, seconds[0], ctx.seed)
    )
    ctx.save(volume, name="linear")
