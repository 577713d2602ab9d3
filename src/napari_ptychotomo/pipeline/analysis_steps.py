"""The analysis steps: the half-data FSC resolution (and, with a simulator's truth, the
comparison against it) and atom tracing. Re-exported by :mod:`.steps`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Volume
from .provenance import provenance, timed
from .step_context import StepContext, with_engine

__all__ = ["run_resolution", "run_atoms"]


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
