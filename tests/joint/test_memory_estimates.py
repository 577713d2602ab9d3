"""Each engine's memory estimate against the peak memory of a real run (CPU, a fresh
process per engine: see ``memory_probe.py``). The estimate decides the batch size and
refuses work that would not fit, so it must neither undercount (a run that "fits" is
killed) nor overcount by much (a run that fits is refused)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = Path(__file__).with_name("memory_probe.py")
#: the estimate may be this much below or above the measured peak
LOW, HIGH = 0.8, 2.0


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux /proc only")
@pytest.mark.parametrize(
    "engine, size",
    [
        ("end_to_end", 80),  # 80³ voxels, 3 tilts of 36 positions, 32-px window, batch 16
        ("plane_wave", 80),  # 80³ voxels, 3 tilts × 3 defoci
        ("msp", 64),  # 12 × 12 scan, 64-px window, 8 slices, 2 modes, batch 64
    ],
)
def test_memory_estimate_is_within_a_factor_of_the_measured_peak(engine, size):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(PROBE), engine, str(size)], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    numbers = json.loads(done.stdout.strip().splitlines()[-1])
    measured = numbers["measured"]
    assert measured > 20 << 20, f"{engine}: peak {measured / 2**20:.0f} MiB is too small to compare"
    # "estimate" is the engine's; MSP also reports the fused pass's shared model alone
    for name in [key for key in numbers if key.startswith("estimate")]:
        estimate = numbers[name]
        ratio = estimate / measured
        assert LOW <= ratio <= HIGH, (
            f"{engine} ({name}): estimate {estimate / 2**20:.0f} MiB, measured peak "
            f"{measured / 2**20:.0f} MiB (ratio {ratio:.2f})"
        )
