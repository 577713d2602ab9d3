"""A tiny joint reconstruction run under ``torchrun`` by test_distributed.py.

Usage: torchrun --nproc_per_node=N torchrun_case.py OUT.npz  (also runs as a plain script).
Rank 0 writes the 4D-STEM and plane-wave volumes to OUT.npz.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))

from conftest import gaussian_atoms, hrtem_series, particle_atoms, stem_series  # noqa: E402

from napari_ptychotomo.joint import JointParams, reconstruct_joint, reconstruct_plane_wave  # noqa: E402
from napari_ptychotomo.joint.distributed import world  # noqa: E402

VOXEL, SHAPE = 0.5, (24, 24, 24)


def case():
    rng = np.random.default_rng(7)
    centre = (np.array(SHAPE) - 1) / 2 * VOXEL
    volume = gaussian_atoms(SHAPE, VOXEL, particle_atoms(rng, 3, 2.0, centre), 250.0)
    # the band-limited model: the sharing of positions among ranks does not depend on it,
    # and without it Adam's first steps on probe, positions and shifts (whose gradients are
    # near zero) turn float-order differences into 2.5e-3 of the volume instead of < 1e-3
    stem = stem_series(volume, VOXEL, [-20.0, 20.0], window=16, scan=(3, 3), step=1.0, band_limit=True)
    hrtem = hrtem_series(volume, VOXEL, [-40.0, 0.0, 40.0], [0.0, 60.0])
    stem_params = JointParams(
        iterations=2,
        num_slices=4,
        batch_size=5,
        volume_shape=SHAPE,
        learn_probe=True,
        learn_positions=True,
        learn_shifts=True,
        band_limit=True,
    )
    for name in ("probe", "positions", "shifts"):
        stem_params.rates[name].start = 1
    pw_params = JointParams(iterations=3, num_slices=4, tv_weight=0.1, plane_wave_step=3.0)
    a = reconstruct_joint(stem, params=stem_params, device="cpu")
    b = reconstruct_plane_wave(hrtem, params=pw_params, device="cpu")
    return a, b


if __name__ == "__main__":
    torch.set_num_threads(1)
    a, b = case()
    if world()[0] == 0:
        np.savez(
            sys.argv[1],
            stem=a.volume.data,
            positions=a.positions[0],
            probes=a.probes,
            shifts=a.alignment.shifts,
            plane_wave=b.volume.data,
            world=world()[1],
        )
    if torch.distributed.is_initialized():
        # a clean shutdown: gloo's threads abort the process ("terminate called without an
        # active exception") when the interpreter exits with the group still alive
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
        # Even so, about 1 run in 8 of the plane-wave part aborts the same way during the
        # interpreter's teardown on a loaded machine (after every result is written; no
        # Python frame left). What this test checks is the ranks' numbers, so the process
        # ends here without the teardown; the abort is a known open defect.
        sys.stdout.flush()
        os._exit(0)
