"""Benchmark of the tomography engine (issue 5): writes benchmarks/results/tomo.json.

For 64³ and 128³ volumes with 31 tilts over ±60°:
- the projector (forward + backward) against a plain ``affine_grid`` + trilinear
  ``grid_sample`` + sum over z implementation, as a speed ratio, and their agreement;
- the time of one alignment outer iteration (default inner/alignment step counts) and of
  one linear-tomography iteration.

Alignment (``--alignment``): the Pt-sphere tilt series of
``tests/tomo/pt_series.py`` (369 atoms, 144 px of 0.22 Å, 11 tilts over ±60°, shifts up to
±2 Å, 10 % noise) aligned by :func:`align_tilt_series` from the nominal tilts, per seed:
shift errors (gauge removed) along / across the axis, the axis angle, rounds, and the time
split by stage (the coarse stage, the axis scan, the matching rounds, the joint fits of
peaks and geometry) and by task (volume refits: SIRT and peak finding, ψ scan included;
registrations; joint fits); once with ψ = 0 and exact tilts, once with ψ = 2° and ±1°
tilt errors. Run it with ``OMP_NUM_THREADS`` set to the cores it should use. The final full-resolution
reconstruction is timed per iteration.

Usage: ``python benchmarks/tomo.py [--sizes 64 128] [--device auto] [--repeats 3]
[--alignment --seeds 0 1 2 3 4]``; cases of other sizes already in the JSON are kept (each
case records its device and threads).
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

    stage = AlignStage(scale=1.0, learn_shifts=True, n_outer=2, min_size=n)

    def align_two_outer():
        gen = align_tilt_series_steps(
            target.cpu().numpy(),
            np.linspace(-60, 60, n_tilts),
            1.0,
            stages=[stage],
            estimate_axis=False,
            final_n_iter=0,
            device=device,
        )
        for _ in range(2):
            next(gen)

    align = timed(align_two_outer, device, 1, warm_up=False) / 2  # minutes at 128³ on a CPU
    return {
        "volume": [n, n, n],
        "n_tilts": n_tilts,
        "projector_fwd_bwd_s": fast,
        "affine_grid_fwd_bwd_s": ref,
        "speedup": ref / fast,
        "relative_difference_to_affine_grid": agreement,
        "reconstruction_iteration_s": recon,
        "alignment_outer_iteration_s": align,
        "alignment_outer_iteration_steps": {"n_inner": stage.n_inner, "n_align": stage.n_align},
    }


def bench_alignment(seeds, device, psi_deg, angle_error_deg):
    """The Pt-particle alignment case per seed: errors and the time of each stage of the alignment."""
    import importlib.util

    from napari_ptychotomo.tomo.projection_matching import remove_translation

    spec = importlib.util.spec_from_file_location(
        "pt_series", Path(__file__).parents[1] / "tests" / "tomo" / "pt_series.py"
    )
    pt_series = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pt_series)
    angles, pixel = np.linspace(-60, 60, 11), 0.22
    runs = []
    for seed in seeds:
        proj, shifts, euler = pt_series.pt_tilt_series(
            144, pixel, angles, psi_deg=psi_deg, angle_error_deg=angle_error_deg, seed=seed
        )
        stages = {"coarse": 0.0, "axis scan": 0.0, "matching rounds": 0.0, "joint fits": 0.0}
        t0, last = time.perf_counter(), None
        gen = align_tilt_series_steps(proj, angles, pixel, final_n_iter=0, device=device)
        while True:
            try:
                progress = next(gen)
            except StopIteration:
                break
            now = time.perf_counter()
            key = (
                "coarse"
                if progress.message.startswith("coarse")
                else "axis scan"
                if progress.message.startswith("axis scan")
                else "joint fits"
                if progress.message.startswith("joint fit")
                else "matching rounds"
            )
            if not progress.message.startswith("final"):
                stages[key] += now - t0
            t0 = now
            last = progress
        alignment = last.result[0]
        error = remove_translation(
            torch.as_tensor(alignment.shifts / pixel - shifts / pixel), torch.deg2rad(torch.as_tensor(euler))
        )
        rms = lambda a: float(a.pow(2).mean().sqrt())  # noqa: E731
        runs.append(
            {
                "seed": seed,
                "shift_error_rms_px": rms(error),
                "along_axis_px": rms(error[:, 0]),
                "across_axis_px": rms(error[:, 1]),
                "psi_deg": float(alignment.euler_deg[0, 2]),
                "rounds": alignment.provenance["rounds"],
                "converged": alignment.provenance["converged"],
                "seconds": {k: round(v, 2) for k, v in stages.items()},
                "seconds_by_task": alignment.provenance["seconds"],
                "total_s": round(sum(stages.values()), 2),
            }
        )
        print(json.dumps(runs[-1]), flush=True)
    return {
        "case": "Pt sphere 369 atoms, 144 px × 0.22 Å, 11 tilts ±60°, shifts ±2 Å, noise 10 % of max",
        "psi_true_deg": psi_deg,
        "tilt_error_deg": angle_error_deg,
        "runs": runs,
    }


def final_reconstruction_iteration(device, repeats=2):
    """Seconds per iteration of the full-resolution linear tomography at 144³, 11 tilts."""
    target = torch.rand(11, 144, 144, device=device)
    euler = torch.zeros(11, 3, device=device)
    euler[:, 1] = torch.deg2rad(torch.linspace(-60, 60, 11, device=device))

    def one():
        for _ in fit_volume(
            target, euler, torch.zeros(11, 2, device=device), (144, 144, 144), n_iter=1, blur_sigma_px=0.5
        ):
            pass

    return timed(one, device, repeats, warm_up=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--tilts", type=int, default=31)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tomo.json"))
    parser.add_argument("--alignment", action="store_true", help="only the issue-19 alignment case")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()
    device = resolve_device(args.device)
    out = Path(args.out)
    if args.alignment:
        previous = json.loads(out.read_text()) if out.exists() else {"benchmark": "tomo", "cases": []}
        previous["alignment"] = {
            "device": str(device),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "exact_axis": bench_alignment(args.seeds, device, 0.0, 0.0),
            "axis_2deg_tilts_1deg": bench_alignment(args.seeds, device, 2.0, 1.0),
            "final_reconstruction_iteration_s_144": final_reconstruction_iteration(device),
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(previous, indent=2))
        print(json.dumps(previous["alignment"], indent=2))
        return
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
        "benchmark": "tomo",
        "torch": torch.__version__,
        "machine": platform.machine(),
        "cases": cases,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
