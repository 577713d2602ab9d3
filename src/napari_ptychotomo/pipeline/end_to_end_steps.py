"""The end-to-end step: joint ptycho-tomography of 4D-STEM scans (You et al. 2025), or
plane-wave tomography of HRTEM defocus stacks (Ren et al. 2018), with what their
half-data reconstructions share. Re-exported by :mod:`.steps`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..data import Volume
from .provenance import provenance, timed
from .step_context import StepContext, _series, with_engine

__all__ = ["run_end_to_end", "run_plane_wave", "with_optics"]


def run_end_to_end(ctx: StepContext) -> None:
    """End-to-end ptycho-tomography from all 4D-STEM data (You et al. 2025, Algorithm 3),
    or plane-wave tomography when the series holds HRTEM defocus stacks (Ren et al. 2018)."""
    from ..data import DefocusSeries
    from ..engine import run
    from ..joint import JointParams, LearningRate
    from ..joint.end_to_end import joint_steps
    from ..joint.params import volume_step

    if any(isinstance(s, DefocusSeries) for s in _series(ctx).scans):
        return run_plane_wave(ctx)
    options = dict(ctx.options)
    if options.pop("optics", None) or options.pop("focal_spread_samples", 0):
        raise ValueError(
            "end_to_end.optics and end_to_end.focal_spread_samples describe a plane-wave "
            "(HRTEM) objective lens; this project holds 4D-STEM scans, whose optics are "
            "their calibration"
        )
    given = options.pop("rates", {})
    # start from the sequential volume (You et al. 2025); not for half-data runs, whose two
    # halves must stay independent for an honest FSC
    from_linear = "linear" in ctx.project.volumes and not options.get("half_data", False)
    rates = JointParams().rates
    rates["volume"] = LearningRate(volume_step(from_start_volume=from_linear), 0)
    for name, value in given.items():
        if name not in rates:
            raise ValueError(f"end_to_end.rates.{name}: expected one of {', '.join(rates)}")
        rates[name] = LearningRate(*value)  # [step, start iteration] as in the TOML file
    params = JointParams(rates=rates, **options).validate()
    init: list[Any] = []
    if ctx.project.msp and sorted(ctx.project.msp) == list(range(len(_series(ctx)))):
        init.append([ctx.project.msp[k] for k in sorted(ctx.project.msp)])
    if ctx.project.alignment is not None:
        init.append(ctx.project.alignment)
    if from_linear:
        init.append(_start_volume(ctx))
    with timed() as seconds:
        result = run(
            joint_steps(_series(ctx), init or None, params, device=ctx.device, seed=ctx.seed),
            lambda p: ctx.progress("end-to-end", p),
        )
    volume = result.volume
    volume.provenance = with_engine(
        volume.provenance, provenance("end_to_end", params, ctx.device, seconds[0], ctx.seed)
    )
    if params.half_data:
        volume.provenance["halves_share"] = _halves_share(ctx, from_linear)
    ctx.save(volume, name="end-to-end")


def with_optics(series, optics: dict[str, Any]):
    """The tilt series with each defocus stack's optics replaced by the keys of ``optics``
    (the project's own series is left as it is)."""
    from ..data import TiltSeries

    if not optics:
        return series
    scans = [s.with_optics(**optics) for s in series.scans]
    return TiltSeries(scans, series.angles_deg, truth=series.truth)


def run_plane_wave(ctx: StepContext) -> None:
    """Plane-wave multislice tomography of an HRTEM tilt × defocus series (Ren et al. 2018),
    through the objective lens the series states, or ``end_to_end.optics`` where given."""
    from ..engine import run
    from ..joint import JointParams, LearningRate
    from ..joint.plane_wave import plane_wave_steps

    options = dict(ctx.options)
    optics = options.pop("optics", {})
    samples = options.pop("focal_spread_samples", 0)
    rates = JointParams().rates
    for name, value in options.pop("rates", {}).items():
        if name not in rates:
            raise ValueError(f"end_to_end.rates.{name}: expected one of {', '.join(rates)}")
        rates[name] = LearningRate(*value)
    params = JointParams(rates=rates, **options).validate()
    series = with_optics(_series(ctx), optics)
    init = ctx.project.alignment
    with timed() as seconds:
        result = run(
            plane_wave_steps(series, init, params, device=ctx.device, seed=ctx.seed, focal_spread_samples=samples),
            lambda p: ctx.progress("plane-wave", p),
        )
    volume = result.volume
    volume.provenance = with_engine(
        volume.provenance, provenance("end_to_end", params, ctx.device, seconds[0], ctx.seed)
    )
    first = series.scans[0]
    volume.provenance.update(
        mode="plane-wave",
        optics=first.optics(),
        defocus_reference=first.defocus_reference,
        focal_spread_samples=samples,
    )
    if params.half_data:
        volume.provenance["halves_share"] = ["one start volume (zero)"] + (
            ["the alignment (fitted on all the data)"] if init is not None else []
        )
    ctx.save(volume, name="end-to-end")


def _halves_share(ctx: StepContext, from_linear: bool) -> list[str]:
    """What the two half-data reconstructions have in common besides the specimen: each
    makes their errors correlated, so their FSC is no measure of resolution. The engine
    starts both halves from one state (:func:`~napari_ptychotomo.joint.setup.start_state`):
    the same start volume, and whatever was fitted before on all the data."""
    shared = [
        "one start volume"
        + (" (the linear volume, fitted on all the data)" if from_linear else " (zero, not a random start per half)")
    ]
    if ctx.project.msp and sorted(ctx.project.msp) == list(range(len(_series(ctx)))):  # the start used
        shared.append("MSP probes and positions (fitted on all the data)")
    if ctx.project.alignment is not None:
        shared.append("the alignment (fitted on all the data)")
    return shared


def _start_volume(ctx: StepContext) -> Volume:
    """The linear volume (phase per Å), its negative part clipped: the engine divides it by
    σ(E) and centres it on its own grid (:func:`~napari_ptychotomo.joint.setup.start_potential`)."""
    linear = ctx.project.volumes["linear"]
    return dataclasses.replace(linear, data=np.clip(np.real(np.asarray(linear.data)), 0, None))
