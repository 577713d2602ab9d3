"""Scale-out: ``torchrun --nproc_per_node=2`` on CPU (gloo) gives the volume of one process.

The 4D-STEM minibatches are shared among the ranks (positions), the plane-wave gradient
among the tilts; gradients are summed with all_reduce, so only the order of float sums
differs. Tiny case (24³ voxels, 2-3 tilts, 2-3 iterations) to stay well under a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).parent
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.mark.skipif(not TORCHRUN.exists(), reason="torchrun not installed next to python")
def test_two_ranks_give_the_volume_of_one_process(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    outputs = {}
    for n in (1, 2):
        out = tmp_path / f"ranks{n}.npz"
        command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={n}", str(HERE / "torchrun_case.py"), str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outputs[n] = np.load(out)
    one, two = outputs[1], outputs[2]
    assert int(two["world"]) == 2 and int(one["world"]) == 1
    for key in ("stem", "plane_wave"):
        scale = np.abs(one[key]).max()
        assert scale > 1.0  # something was reconstructed
        assert np.abs(one[key] - two[key]).max() < 1e-3 * scale, key
    for key in ("positions", "probes", "shifts"):
        assert np.allclose(one[key], two[key], atol=1e-4, rtol=1e-3), key
