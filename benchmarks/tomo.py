"""Benchmark of the tomography engine (issue 5): writes benchmarks/results/tomo.json.

For 64³ and 128³ volumes with 31 tilts over ±60°:
- the projector (forward + backward) against a plain ``affine_grid`` + trilinear
  ``grid_sample`` + sum over z implementation, as a speed ratio, and their agreement;
- the time of one alignment outer iteration (default inner/alignment step counts) and of
  one linear-tomography iteration.

Usage: ``python benchmarks/tomo.py [--sizes 64 128] [--device auto] [--repeats 3]``; cases
of other sizes already in the JSON are kept (each case records its device and threads).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from napari_ptychotomo.engine import resolve_device
from napari_ptychotomo.tomo import AlignStage, align_tilt_series_steps, project, rotation_matrix
from napari_ptychotomo.tomo.reconstruct import fit_volume


def project_affine_grid(volume, euler_rad, shifts_px):
    """Reference: rotate the whole volume with affine_grid + grid_sample, sum over z,
    shift the projections by a second 2D resampling (what the projector replaces)."""
    t = euler_rad.shape[0]
    nz, ny, nx = volume.shape
    rot = rotation_matrix(euler_rad)  # acts on (x, y, z); grid wants output -> input
    theta = torch.zeros(t, 3, 4, dtype=volume.dtype, device=volume.device)
    scale = torch.tensor([(nx - 1) / 2, (ny - 1) / 2, (nz - 1) / 2], dtype=volume.dtype, device=volume.device)
    theta[:, :, :3] = rot.transpose(1, 2) * scale[None, None, :] / scale[None, :, None]
    grid = F.affine_grid(theta, (t, 1, nz, ny, nx), align_corners=True)
    rotated = F.grid_sample(volume[None, None].expand(t, 1, nz, ny, nx), grid, align_corners=True)
    proj = rotated.sum(2)  # (T, 1, ny, nx)
    theta2 = torch.zeros(t, 2, 3, dtype=volume.dtype, device=volume.device)
    theta2[:, 0, 0] = theta2[:, 1, 1] = 1
    theta2[:, 0, 2] = -shifts_px[:, 1] / ((nx - 1) / 2)
    theta2[:, 1, 2] = -shifts_px[:, 0] / ((ny - 1) / 2)
    grid2 = F.affine_grid(theta2, (t, 1, ny, nx), align_corners=True)
    return F.grid_sample(proj, grid2, align_corners=True)[:, 0]


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device, repeats, warm_up=True):
    if warm_up:
        fn()
        sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def blob_volume(n, device):
    g = torch.Generator().manual_seed(0)
    centres = (torch.rand(60, 3, generator=g) - 0.5) * n * 0.5
    axis = torch.arange(n, dtype=torch.float32) - (n - 1) / 2
    gauss = [torch.exp(-((axis[None] - centres[:, k : k + 1]) ** 2) / 2) for k in range(3)]
    return torch.einsum("az,ay,ax->zyx", gauss[2], gauss[1], gauss[0]).to(device)


def bench_size(n, n_tilts, device, repeats):
    volume = blob_volume(n, device)
    euler = torch.zeros(n_tilts, 3, device=device)
    euler[:, 1] = torch.deg2rad(torch.linspace(-60, 60, n_tilts, device=device))
    euler[:, 2] = np.deg2rad(1.0)
    shifts = torch.rand(n_tilts, 2, generator=torch.Generator().manual_seed(1)).to(device) * 4 - 2
    weights = torch.rand(n_tilts, n, n, generator=torch.Generator().manual_seed(2)).to(device)

    def run(fn):
        def go():
            v = volume.clone().requires_grad_(True)
            (fn(v, euler, shifts) * weights).sum().backward()
        return go

    fast = timed(run(lambda v, e, s: project(v, e, s)), device, repeats)
    ref = timed(run(lambda v, e, s: project_affine_grid(v, e, s)), device, repeats)
    with torch.no_grad():
        a, b = project(volume, euler, shifts), project_affine_grid(volume, euler, shifts)
    agreement = float((a - b).norm() / b.norm())

    target = project(volume, euler, shifts).detach()
    def recon_iteration():
        gen = fit_volume(target, euler, shifts, (n, n, n), n_iter=1)
        for _ in gen:
            pass
    recon = timed(recon_iteration, device, repeats)

    stage = AlignStage(scale=1.0, refine=("shifts",), n_outer=2, min_size=n)
    def align_two_outer():
        gen = align_tilt_series_steps(target.cpu().numpy(), np.linspace(-60, 60, n_tilts), 1.0,
                                      stages=[stage], estimate_axis=False, final_n_iter=0, device=device)
        for _ in range(2):
            next(gen)
    align = timed(align_two_outer, device, 1, warm_up=False) / 2  # minutes at 128³ on a CPU
    return {
        "volume": [n, n, n], "n_tilts": n_tilts,
        "projector_fwd_bwd_s": fast, "affine_grid_fwd_bwd_s": ref, "speedup": ref / fast,
        "relative_difference_to_affine_grid": agreement,
        "reconstruction_iteration_s": recon,
        "alignment_outer_iteration_s": align,
        "alignment_outer_iteration_steps": {"n_inner": stage.n_inner, "n_align": stage.n_align},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--tilts", type=int, default=31)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tomo.json"))
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = Path(args.out)
    cases = [bench_size(n, args.tilts, device, args.repeats) for n in args.sizes]
    for case in cases:
        case.update(device=str(device), threads=torch.get_num_threads())
    if out.exists():  # keep the other sizes measured before (on this device)
        previous = json.loads(out.read_text())
        done = {(tuple(c["volume"]), c["n_tilts"]) for c in cases}
        for case in previous.get("cases", []):
            case.setdefault("device", previous.get("device"))
            case.setdefault("threads", previous.get("threads"))
            if (tuple(case["volume"]), case["n_tilts"]) not in done:
                cases.append(case)
    cases.sort(key=lambda c: (c["device"], c["volume"][0], c["n_tilts"]))
    results = {
        "benchmark": "tomo", "torch": torch.__version__, "machine": platform.machine(),
        "cases": cases,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
