"""The results of an alignment (:mod:`.align`), for both methods: the aligned linear
volume at its end (a final reconstruction at the projections' sampling, or the last
coarse volume) and, for a run that diverges or stops, the last good state as a partial
result.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Alignment, Volume
from ..engine import Progress
from .reconstruct import reconstruct_linear_steps


def _finish(alignment: Alignment, final: tuple, volume, coarse_voxel: float, how: str, total: int):
    """The aligned linear volume: a final reconstruction at the projections' sampling when
    ``final_n_iter`` (``final[2]``) > 0, else ``volume`` at ``coarse_voxel`` Å; yields the
    last Progress and returns the Volume."""
    proj_np, pixel_size, final_n_iter, nonnegative, tv_weight, edge_weight, blur_sigma_px, dev = final
    if final_n_iter > 0:
        result = _final_volume(
            proj_np, alignment, pixel_size, final_n_iter, nonnegative, tv_weight, edge_weight, blur_sigma_px, dev
        )
    else:
        result = Volume(
            data=(volume / coarse_voxel).cpu().numpy().astype(np.float32),
            voxel_size=coarse_voxel,
            units="projection unit per Å",
            provenance={"step": "alignment volume"},
        )
    result.provenance.update(step=f"aligned linear tomography ({how})")
    yield Progress(
        total,
        total,
        preview={
            "volume_slice": result.data[result.shape[0] // 2],
            "shifts": alignment.shifts,
            "euler_deg": alignment.euler_deg,
        },
        message="final reconstruction",
        result=(alignment, result),
    )
    return result


def _final_volume(
    projections, alignment, pixel_size, n_iter, nonnegative, tv_weight, edge_weight, blur_sigma_px, device
):
    """Linear tomography at full resolution with the found alignment."""
    result = None
    for progress in reconstruct_linear_steps(
        projections,
        alignment,
        pixel_size,
        n_iter=n_iter,
        lr=0.2,
        nonnegative=nonnegative,
        tv_weight=tv_weight,
        edge_weight=edge_weight,
        blur_sigma_px=blur_sigma_px,
        device=device,
    ):
        result = progress.result or result
    return result


def _partial_result(good: dict[str, Any], pixel_size: float, ny: int, method: str) -> tuple[Alignment, Volume | None]:
    """The last good state of an alignment that stopped, as its result type: the Alignment
    and the coarse volume of the stage that made it (voxel = pixel × ny / its side), or
    ``None`` where no stage had made one yet."""
    alignment = Alignment(
        euler_deg=np.asarray(good["euler_deg"], np.float64),
        shifts=np.asarray(good["shifts_px"], np.float64) * pixel_size,
        provenance={"method": method, "partial": True},
    )
    volume = good["volume"]
    if volume is None:
        return alignment, None
    voxel = pixel_size * ny / volume.shape[1]
    return alignment, Volume(
        data=(volume / voxel).cpu().numpy().astype(np.float32),
        voxel_size=voxel,
        units="projection unit per Å",
        provenance={"step": "alignment volume", "partial": True},
    )
