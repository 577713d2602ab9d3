"""The pipeline's steps. Each reads its inputs from the project and writes its outputs
into it (through :func:`napari_ptychotomo.io.append_result`, which never rewrites the raw
data), so any step can be re-run alone with new parameters.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..data import Project, Volume
from ..engine import Progress
from .provenance import provenance, settings_hash, timed

__all__ = ["StepContext", "msp_params"]

PROJECTIONS = "projections"
DENOISED = "projections (denoised)"


@dataclass
class StepContext:
    """What a step needs: the project (path and loaded view), its settings, the device,
    the seed, resume mode, this process's rank, and callbacks for messages and progress."""

    path: Path
    project: Project
    options: dict[str, Any]
    device: Any
    seed: int
    resume: bool = False
    rank: int = 0
    world: int = 1
    report: Callable[[str], None] = print
    progress: Callable[[str, Progress], None] = lambda label, p: None
    state: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # what shapes this step's results

    def save(self, obj: Any, name: Any = None) -> None:
        """Write ``obj`` into the project, its provenance stamped with the settings that
        shaped it (what ``--resume`` compares against)."""
        from ..io import append_result

        record = getattr(obj, "provenance", None)
        if self.settings and isinstance(record, dict):
            record["settings"] = json.dumps(self.settings, sort_keys=True)
            record["settings_hash"] = settings_hash(self.settings)
        if self.rank == 0:
            append_result(self.path, obj, name=name)

    def reload(self) -> None:
        from ..io import load

        self.project = load(self.path, as_project=True, validate="none")


def _series(ctx: StepContext):
    if ctx.project.series is None:
        raise ValueError(f"{ctx.path}: the project holds no tilt series to reconstruct")
    return ctx.project.series


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


def with_engine(engine: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """A step's provenance record on top of what the engine recorded of its result (e.g.
    the alignment's method and history, a plane-wave volume's tilt range, which the atom
    tracer reads): the step's keys win, engine values they replace are kept under
    ``"engine"``."""
    replaced = {key: value for key, value in engine.items() if key in record and record[key] != value}
    merged = {**engine, **record}
    if replaced:
        merged["engine"] = replaced
    return merged


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
    ctx.save(volume, name="aligned (low resolution)")
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


def run_resolution(ctx: StepContext) -> None:
    """FSC of the half-data volumes (one-bit, half-bit, 0.143) and its directional form,
    reported as a resolution only when the halves are independent; with a simulator's
    truth, also the FSC against it (0.5 crossing) and a band-limited Pearson r."""
    from ..analysis import resolution_of

    options = dict(ctx.options)
    name = options.pop("volume", "end-to-end")
    volume = ctx.project.volumes.get(name)
    if volume is None or volume.halves is None:
        ctx.report(
            f"resolution: volume {name!r} has no half-data reconstructions; skipped (set end_to_end.half_data = true)"
        )
        _report_truth(ctx, name, volume)
        return
    import warnings

    with timed() as seconds, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "resolution_of: the halves are not independent")  # said below
        result = resolution_of(volume, directions=("x", "y", "z"), **options)
    result.provenance = provenance("resolution", ctx.options, ctx.device, seconds[0], ctx.seed)
    shared = volume.provenance.get("halves_share")
    shared = ["(not recorded: made before this was checked)"] if shared is None else list(shared)
    result.provenance["halves_share"] = shared
    result.provenance["independent"] = not shared
    if shared:
        # the curve stays (to look at), the crossings go: they would read as a resolution
        result.crossings = {}
        result.directional = {}
        ctx.report(
            f"resolution: the half-data volumes of {name!r} are not independent (both "
            f"halves share {'; '.join(shared)}), so their FSC measures agreement, not "
            "resolution: no resolution reported"
        )
    else:
        nyquist = 1.0 / float(np.max(result.frequency))  # Å
        ctx.report(
            "resolution: "
            + ", ".join(
                f"{k} {v:.2f} Å" if np.isfinite(v) else f"{k} < {nyquist:.2f} Å (no crossing up to Nyquist)"
                for k, v in result.crossings.items()
            )
        )
    ctx.save(result, name=name)
    _report_truth(ctx, name, volume)


def _truth(ctx: StepContext) -> dict[str, Any] | None:
    series = ctx.project.series
    truth = getattr(series, "truth", None) or None
    return truth if truth and isinstance(truth.get("volume"), Volume) else None


def _report_truth(ctx: StepContext, name: str, volume: Volume | None) -> None:
    """FSC of ``volume`` against the simulator's truth (when the project has one)."""
    from ..analysis.truth import compare_with_truth

    truth = _truth(ctx)
    if truth is None or volume is None:
        return
    comparison = compare_with_truth(volume, truth["volume"])
    crossing = comparison.fsc.crossings["0.5"]
    nyquist = 1.0 / float(np.max(comparison.fsc.frequency))
    where = f"{crossing:.2f} Å" if np.isfinite(crossing) else f"< {nyquist:.2f} Å (Nyquist)"
    ctx.report(
        f"against the simulator's truth: FSC 0.5 at {where}, Pearson r "
        f"{comparison.pearson_r:.2f} (both band-limited by a {comparison.band_sigma:g} Å "
        f"Gaussian), after a shift of {np.round(comparison.offset_voxels, 2).tolist()} voxels"
    )
    comparison.fsc.provenance.update(provenance("resolution", ctx.options, "cpu", 0.0, ctx.seed))
    comparison.fsc.provenance["pearson_r"] = comparison.pearson_r
    ctx.save(comparison.fsc, name=f"{name} vs truth")


def run_atoms(ctx: StepContext) -> None:
    """Atom tracing of a volume, scored against true atoms when the project has them."""
    from ..analysis import trace_atoms

    options = dict(ctx.options)
    name = options.pop("volume", "end-to-end")
    radius = options.pop("score_radius", 0.5)
    volume = ctx.project.volumes.get(name)
    if volume is None:
        raise ValueError(
            f"atoms.volume = {name!r}: the project has no such volume (it has {sorted(ctx.project.volumes)})"
        )
    with timed() as seconds:
        atoms = trace_atoms(volume, device=ctx.device, **options)
    atoms.provenance = with_engine(atoms.provenance, provenance("atoms", ctx.options, ctx.device, seconds[0], ctx.seed))
    atoms.provenance["score_radius"] = radius
    truth = _truth(ctx)
    score = None
    if truth is not None and truth.get("atoms") is not None:
        from ..analysis.truth import compare_with_truth

        true_atoms = np.asarray(truth["atoms"]["positions"], dtype=float)
        score = compare_with_truth(
            volume, truth["volume"], atoms=atoms, true_atoms=true_atoms, score_radius=radius
        ).atoms
        atoms.provenance["score"] = {
            key: (float(v) if np.isscalar(v) else np.asarray(v, float).tolist())
            for key, v in score.items()
            if key != "matches"
        }
    ctx.save(atoms, name=name)
    ctx.report(f"atoms: {len(atoms)} traced in {name!r}")
    if score is not None:
        ctx.report(
            f"atoms against the simulator's {score['n_truth']} true atoms (within "
            f"{radius:g} Å): {score['n_matched']} found (recall {score['recall']:.2f}), "
            f"{score['false_positives']} false positives, position error RMS "
            f"{score['rms_error_3d']:.2f} Å"
        )
