"""MSP's defaults on a thick crystal it did not simulate: abTEM's SrTiO3 at 117 Å.

The forward-model issue was found on abTEM SrTiO3 data of this kind, where MSP with learned
tilt and thickness from 80 % of the thickness stopped 13.7 % short. These data
(``tests/data/abtem_srtio3_reference.h5``, made by abTEM on a grid fine enough to have
converged) are noise-free; the test gives them Poisson noise of 1e5 e/Å².
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo.data import Calibration, ScanData
from napari_ptychotomo.ptycho import reconstruct_msp
from napari_ptychotomo.ptycho.params import MSPParams

DOSE = 1e5  # e/Å²


@pytest.mark.slow
def test_defaults_find_the_thickness_of_abtem_srtio3_within_5_percent(abtem_srtio3_reference):
    """Measured (one thread, ~25 s): converged after 231 iterations, thickness 116.9 Å for
    117.15 Å (−0.2 %); noise-free −1.1 % (300 iterations, not converged by the rule).

    The tilt is not within the 0.3 mrad that the same defaults reach on our simulator's
    SrTiO3: (3.41, −0.33) mrad for (4, 0); noise-free (3.60, −0.33). A free multislice
    object can carry part of a tilt as a drift of its slices (see the Au tilt test in
    test_msp_au_tilt.py); the bound here is 1 mrad. With the slices tied
    (``slice_period=1``) the tilt comes to (3.65, −0.15) but the thickness to −3.5 %; with
    15 slices of two cells (3.76, −0.07) and +4.7 % (README)."""
    ref = abtem_srtio3_reference
    a = ref.attrs
    step = float(a["scan_step_A"])
    clean = ref["intensities"][()]
    counts = np.random.default_rng(0).poisson(clean * DOSE * step**2).astype(np.float32)
    calibration = Calibration(
        energy_eV=float(a["energy_eV"]),
        semiangle_mrad=float(a["semiangle_mrad"]),
        detector_sampling_mrad=float(a["detector_sampling_mrad"]),
        defocus=float(a["defocus_A"]),
        scan_step=step,
    )
    scan = ScanData(
        intensities=counts, calibration=calibration, positions=ref["positions_yx_A"][()], scan_shape=(12, 12)
    )
    thickness = float(a["thickness_A"])
    torch.set_num_threads(1)
    params = MSPParams.from_calibration(calibration, thickness=0.8 * thickness, num_slices=6)
    result = reconstruct_msp(scan, params, device="cpu", seed=0)
    assert result.converged
    assert abs(result.slice_thickness * 6 / thickness - 1) < 0.05
    assert np.all(np.abs(result.tilt_mrad - a["mistilt_mrad"]) < 1.0), result.tilt_mrad
