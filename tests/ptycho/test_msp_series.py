"""The one loop over tilts (widget, pipeline and sequential tomography run MSP through it)."""

from __future__ import annotations

import numpy as np
from msp_data import make_scan

from napari_ptychotomo.engine import run
from napari_ptychotomo.ptycho import MSPParams, msp_series_steps, reconstruct_msp


def test_series_counts_over_all_tilts_reports_each_result_and_seeds_tilt_k_with_seed_plus_k():
    scans = [make_scan(scan_shape=(6, 6), planes=4, dose=None, mistilt=(t, 0.0)) for t in (0.0, 2.0)]
    params = MSPParams.from_calibration(
        scans[0].calibration, thickness=8.0, num_slices=2, iterations=3, num_modes=2
    )  # modes: random start
    seen = []
    results = run(msp_series_steps([(4, scans[0], params), (7, scans[1], params)], device="cpu", seed=10), seen.append)

    steps = [p.step for p in seen]
    assert steps == sorted(steps) and all(p.total == 6 for p in seen)
    finished = [p.preview for p in seen if "result" in (p.preview or {})]
    assert [f["tilt_index"] for f in finished] == [4, 7] and all(f["seconds"] > 0 for f in finished)
    assert all(p.message.startswith(("tilt 4", "tilt 7")) for p in seen)
    assert sorted(results) == [4, 7] and finished[1]["result"] is results[7]
    # tilt 7 alone with seed 17 gives the same numbers: its result does not depend on the others
    alone = reconstruct_msp(scans[1], params, device="cpu", seed=17)
    np.testing.assert_allclose(alone.loss_history, results[7].loss_history, rtol=1e-5)
