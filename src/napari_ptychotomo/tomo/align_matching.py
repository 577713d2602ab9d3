"""The projection-matching method of the alignment (:func:`.align.align_tilt_series_steps`
with ``method="matching"``): when it is the default (:func:`default_method`) and its run,
coarse shifts without a start (:mod:`.coarse_alignment`), then matching every projection
to a re-projection of a sparse model of the volume (:mod:`.projection_matching`), then the
final reconstruction (:mod:`.align_result`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..data import Alignment
from ..engine import EngineError, Progress
from ..engine_guards import Divergence, angle_problem, shift_problem
from .align_result import _finish, _partial_result
from .projection_matching import (
    centre_of_mass_shifts,
    is_isolated,
    match_projections_steps,
    neighbour_shifts,
)

_MATCHING_MIN_PX = 64  # smallest image side for which method=None picks the matching


def default_method(projections) -> str:
    """The method ``align_tilt_series`` takes for ``projections`` (T, ny, nx) when none is
    given: ``"matching"`` for an object in vacuum at least 64 px across, else
    ``"gradient"``."""
    # the sparse model of the matching needs an object in vacuum sampled finely enough
    # to show its features (measured: fails on 28 px binned MSP phases and finds ψ
    # 1° off on 40 px); elsewhere the gradient stages
    proj = np.asarray(projections)
    if min(proj.shape[1:]) < _MATCHING_MIN_PX:
        return "gradient"
    return "matching" if is_isolated(torch.as_tensor(proj, dtype=torch.float32)) else "gradient"


def _align_by_matching(
    proj_np,
    euler0,
    pixel_size,
    coarse,
    estimate_axis,
    initial,
    options,
    nonnegative,
    tv_weight,
    edge_weight,
    final_n_iter,
    blur_sigma_px,
    dev,
):
    """Coarse shifts (centre of mass or neighbouring tilts), then projection matching at
    the projections' pixel size (:func:`.projection_matching.match_projections_steps`),
    then the final full-resolution reconstruction."""
    full = torch.as_tensor(proj_np, dtype=torch.float32, device=dev)
    euler = torch.as_tensor(np.deg2rad(euler0), dtype=torch.float32, device=dev)
    options = dict(options)
    options.setdefault("refine_axis", bool(estimate_axis))
    n_rounds = int(options.setdefault("n_rounds", 4))
    total = n_rounds + int(options.setdefault("n_fit_cycles", 4)) + 2
    if initial is not None:
        initial.validate()
        euler = torch.as_tensor(np.deg2rad(initial.euler_deg), dtype=torch.float32, device=dev)
        shifts = torch.as_tensor(np.asarray(initial.shifts) / pixel_size, dtype=torch.float32, device=dev)
        how = "initial alignment"
    else:
        how = coarse
        if coarse == "auto":
            how = "com" if is_isolated(full) else "neighbours"
        if how == "com":
            shifts = centre_of_mass_shifts(full, euler)
        elif how == "neighbours":
            shifts = neighbour_shifts(full, euler)
        else:
            shifts = torch.zeros(len(full), 2, dtype=torch.float32, device=dev)
    names = {
        "com": "centre of mass",
        "neighbours": "cross-correlation of neighbouring tilts",
        "none": "zero shifts",
        "initial alignment": "initial alignment",
    }
    yield Progress(
        1,
        total,
        preview={"shifts": shifts.cpu().numpy() * pixel_size, "euler_deg": np.rad2deg(euler.cpu().numpy())},
        message=f"coarse shifts: {names[how]}",
    )
    guard = Divergence("alignment", "Start from other coarse shifts (coarse=...) or use method='gradient'.")
    good = {"euler_deg": np.rad2deg(euler.cpu().numpy()), "shifts_px": shifts.cpu().numpy(), "volume": None}
    guard.last_good = lambda: _partial_result(good, pixel_size, full.shape[1], "projection matching")
    matcher = match_projections_steps(full, euler, shifts, **options)
    while True:
        try:
            progress = next(matcher)
        except StopIteration as stop:
            match = stop.value
            break
        except EngineError as exc:  # its own errors carry no alignment
            raise EngineError(
                f"alignment stopped: {exc}; the last good alignment is in .partial", partial=guard.last_good()
            ) from exc
        preview = progress.preview
        if preview is not None:
            guard.check(
                f"matching round {progress.step}",
                problems=(
                    shift_problem(preview["shifts_px"], full.shape[1:], "px"),
                    angle_problem(preview["euler_deg"], np.rad2deg(euler.cpu().numpy())),
                ),
            )
            good.update(euler_deg=preview["euler_deg"], shifts_px=preview["shifts_px"])
            preview = {
                "volume_slice": preview["volume_slice"],
                "shifts": preview["shifts_px"] * pixel_size,
                "euler_deg": preview["euler_deg"],
            }
        yield Progress(1 + progress.step, total, progress.loss, preview=preview, message=progress.message)
    alignment = Alignment(
        euler_deg=np.rad2deg(match.euler_rad.cpu().numpy().astype(np.float64)),
        shifts=match.shifts_px.cpu().numpy().astype(np.float64) * pixel_size,
        provenance={
            "method": "projection matching",
            "coarse": names[how],
            "rounds": match.rounds,
            "converged": match.converged,
            "history": match.history,
            "seconds": match.seconds,
        },
    )
    # without a final reconstruction, the last round's SIRT volume, binned (voxel = pixel × bin)
    final = (proj_np, pixel_size, final_n_iter, nonnegative, tv_weight, edge_weight, blur_sigma_px, dev)
    result = yield from _finish(
        alignment, final, match.volume, pixel_size * match.volume_bin, "projection matching", total
    )
    return alignment, result
