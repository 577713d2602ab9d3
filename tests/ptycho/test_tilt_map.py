"""Tilt map of the extended adaptive propagator.

Scaled to seconds: a two-grain SrTiO3-like slab (``msp_data.make_scan(grain_tilts=...)``,
40 atomic planes, 78 Å) whose left and right halves are mistilted by +3 and −3 mrad
about y, scanned 16×24 at 0.8 Å with a 32×32 detector at 3.2 mrad/px, 80 Å underfocus
(so the probe discs overlap at this step), 1e5 e/Å²; 4 slices, 40 iterations, thickness
given. The local drift estimator is also checked on its own against a known drift field.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from msp_data import make_scan

from napari_ptychotomo.ptycho import MSPParams, reconstruct_msp
from napari_ptychotomo.ptycho.local_drift import local_slice_drift, sample_field, warp_slices


def _lattice_image(shift_x: torch.Tensor, size: int = 96, period: int = 20) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size).float(), torch.arange(size).float(), indexing="ij")
    out = torch.zeros(size, size)
    for cy in range(-period, size + period, period):
        for cx in range(-period, size + period, period):
            for oy, ox, a in ((0, 0, 1.0), (10, 10, 0.7), (10, 0, 0.3), (0, 10, 0.3)):
                out += a * torch.exp(-((yy - cy - oy) ** 2 + (xx - cx - ox - shift_x) ** 2) / (2 * 1.8**2))
    return out


def test_local_drift_field_finds_opposite_drifts_of_two_halves_and_warp_removes_them():
    xx = torch.arange(96).float()[None, :].expand(96, 96)
    drift = torch.where(xx < 48, 0.3, -0.3)  # px per slice along x
    slices = torch.stack([_lattice_image(s * drift) for s in range(4)])
    field = local_slice_drift(slices, window_px=8.0)
    at = sample_field(field, torch.tensor([[48.0, 25.0], [48.0, 70.0]]))
    # measured: +0.290, −0.289 px (first-order estimate of a 0.3 px shift)
    assert at[0, 1] == pytest.approx(0.3, abs=0.03) and at[1, 1] == pytest.approx(-0.3, abs=0.03)
    assert torch.all(torch.abs(at[:, 0]) < 0.01)  # no drift along y
    residual = local_slice_drift(warp_slices(slices.to(torch.complex64), field).real, window_px=8.0)
    assert float(residual[1, :, 15:35].mean()) < 0.06 and float(residual[1, :, 60:80].mean()) > -0.06


def test_tilt_map_median_in_each_grain_within_1_mrad():
    # measured: left 2.97, right −2.88 mrad (object step 2 V × Δz with cosine decay; with
    # 10 V·Å constant 2.98 / −2.68). The simulator's Lobato SrTiO3 is test_msp_simulator.py.
    scan = make_scan(scan_shape=(16, 24), step=0.8, planes=40, grain_tilts=(3.0, -3.0), defocus=80.0, seed=0)
    params = MSPParams.from_calibration(
        scan.calibration,
        thickness=scan.truth["thickness"],
        num_slices=4,
        iterations=40,
        tilt_map=True,
        learn_thickness=False,
    )
    result = reconstruct_msp(scan, params, device="cpu").validate()
    assert result.tilt_map.shape == (scan.num_positions, 2)
    left = scan.truth["positions"][:, 1] < scan.truth["grain_split_x"]
    assert np.median(result.tilt_map[left, 0]) == pytest.approx(3.0, abs=1.0)
    assert np.median(result.tilt_map[~left, 0]) == pytest.approx(-3.0, abs=1.0)
    assert np.all(np.abs(np.median(result.tilt_map[:, 1])) < 1.0)  # no tilt about x
    # the global tilt is the map's mean
    assert np.allclose(result.tilt_map.mean(0), result.tilt_mrad, atol=1e-3)


def test_tilt_map_window_must_be_positive():
    with pytest.raises(ValueError, match="tilt_map_window"):
        MSPParams(tilt_map_window=0.0).validate()
