"""End-to-end against sequential ptycho-tomography in a ±45° wedge.

One simulated case, shared by ``test_achievements.py`` (small) and ``benchmarks/joint.py``
(``--missing-wedge``, larger):

* specimen: a Pt cuboctahedron (13 atoms, ``"pt13"``; 147 atoms, ~2 nm, ``"pt147"``) or a
  Pt₁₃ core in an O shell (``"pt_o"``), Lobato potentials, from :mod:`napari_ptychotomo.simulate`;
* data: :func:`~napari_ptychotomo.simulate.simulate_tilt_series`, tilts over ±45° only,
  small 4D-STEM raster scans, 300 keV, the detector sampled so that the reconstruction
  pixel is ``voxel`` Å, no alignment errors (shifts 0, nominal angles);
* sequential: :func:`~napari_ptychotomo.reconstruct_msp` per tilt (run to convergence: the
  comparison is only fair against a converged MSP; with 30 iterations the sequential NRMSE
  was nearly twice as large) → summed phase,
  resampled so that the scan centre (the specimen centre) is the projection centre →
  :func:`~napari_ptychotomo.tomo.reconstruct_linear` (non-negative, nominal alignment) → V,
  run for each of ``linear_iterations`` and the one nearest the truth kept: more iterations
  fit the MSP's errors, and where that starts varies (Pt13: 0.227 / 0.210 / 0.218 after
  100 / 400 / 1000 iterations; Pt147: 0.260 after 100, 0.295 after 400);
* sequential with TV (:func:`tv_tomography`): the same projections, FISTA with the same
  proximal TV and non-negativity the end-to-end step uses, from the sequential volume: the
  strongest sequential baseline tried (a TV term in ``reconstruct_linear``'s loss, 10⁻⁵ to
  10⁻², and TV-denoising the sequential volume afterwards, 0.01 to 1 V, left the NRMSE at
  0.210 or above);
* end-to-end: :func:`~napari_ptychotomo.reconstruct_joint` started from the MSP probes and
  positions and the nominal alignment, refining the volume and the probes (``learn_probe``; the
  simulator clips the 15 mrad probe at the 13.1 mrad band limit of its grid, which the
  calibration probe does not, so a fixed probe leaves a loss floor), with proximal TV
  (``tv_weight``) after every tilt, from a zero volume (You et al. 2025, section 2.3;
  ``start="zero"``) or the non-negative part of the sequential volume (``"sequential"``).

The volumes are in V on the same grid (voxel = reconstruction pixel, the specimen centre at
the volume centre) and are compared, without rescaling, with the ground-truth potential
evaluated on that grid (:func:`~napari_ptychotomo.simulate.potential_volume`), all
band-limited by a sharp spherical cut at 2/3 of the Nyquist frequency (the band limit of the
transmission functions in both models; what lies beyond it no data determine): NRMSE =
‖bl(Re V) − V_true,bl‖ / ‖V_true,bl‖ over the whole volume. The heavy atom is the Pt atom nearest the centre; its peak widths are the σ of a 3D
Gaussian (one σ per axis) fitted to the 7³ voxels around it (:func:`peak_widths`); σ_z is
the width along the missing-wedge direction (tilt axis y, beam z). The reconstructed peaks
are not Gaussian (flat-topped, cut to zero by the non-negativity ~1.5 Å out), so the fitted σ
comes out below the truth's even along y, where no wedge is missing (sequential σ_y 0.34 Å
against 0.475 Å), and moves with the fit window (sequential σ_z 0.45 / 0.42 / 0.37 Å for
5³ / 7³ / 9³ voxels); the elongation σ_z / σ_x within one volume (``elongation_zx``) cancels
most of that shape bias and is the fairer missing-wedge measure. A measure free of peak
shapes is the error in k-space split into the missing wedge and the measured rest
(:func:`wedge_errors`).
"""

from __future__ import annotations

import time

import numpy as np
import torch
from scipy import ndimage
from scipy.optimize import least_squares

from napari_ptychotomo.data import Alignment, Volume
from napari_ptychotomo.joint import JointParams, reconstruct_joint
from napari_ptychotomo.joint.params import LearningRate
from napari_ptychotomo.joint.regularizers import tv_prox
from napari_ptychotomo.physics import interaction_constant, wavelength
from napari_ptychotomo.ptycho import MSPParams, reconstruct_msp
from napari_ptychotomo.simulate import (
    core_shell_particle,
    fcc_nanoparticle,
    potential_volume,
    simulate_tilt_series,
)
from napari_ptychotomo.tomo import reconstruct_linear
from napari_ptychotomo.tomo.projector import project

ENERGY = 300e3
SEQUENTIAL_TV = 0.03  # V per FISTA step; of 0.01 / 0.03 / 0.1 the best for the Pt13 case (0.211 / 0.205 / 0.214)

SMALL = dict(
    specimen="pt13",
    voxel=0.5,
    window=16,
    semiangle=15.0,
    defocus=30.0,
    scan=10,
    step=1.0,
    tilts=7,
    slices=4,
    dose=None,
    msp_slices=2,
    msp_iterations=200,
    linear_iterations=(100, 200, 400),
    fista_iterations=200,
    iterations=100,
    volume_step=1.0,
    oversampling="auto",
    band_limit=False,
    tv_weight=0.01,
    batch_size=50,
    start="zero",
    learn_probe=True,
)


def specimen(name: str):
    if name == "pt13":
        return fcc_nanoparticle("Pt", size=8.0, shape="cuboctahedron", vacuum=2.0)
    if name == "pt147":  # a ~2 nm particle: run_case(specimen="pt147", scan=22, msp_slices=4, slices=6)
        return fcc_nanoparticle("Pt", size=20.0, shape="cuboctahedron", vacuum=2.0)
    if name == "pt_o":
        return core_shell_particle(
            "Pt", core_radius=2.8, shell_thickness=2.5, shell_elements=("O",), shell_density=0.05, seed=0, vacuum=2.0
        )
    raise ValueError(f"specimen = {name!r}; expected 'pt13', 'pt147' or 'pt_o'")


def band_limit(volume, voxel):
    """``volume`` cut sharply at 2/3 of the Nyquist frequency (a sphere in k-space)."""
    k = [np.fft.fftfreq(n, voxel) for n in volume.shape]
    k2 = k[0][:, None, None] ** 2 + k[1][None, :, None] ** 2 + k[2][None, None, :] ** 2
    keep = k2 <= (2 / 3 * 0.5 / voxel) ** 2
    return np.real(np.fft.ifftn(np.fft.fftn(np.real(volume)) * keep))


def band_limited_truth(spec, shape, voxel):
    """Ground-truth potential (V) on the reconstruction grid, spherical cut at 2/3 Nyquist."""
    middle = (np.array(shape) - 1) / 2 * voxel
    atoms = spec.positions - spec.centre + middle
    return band_limit(potential_volume(atoms, spec.numbers, shape, voxel), voxel), atoms


def nrmse(volume, truth, voxel):
    """‖band_limit(Re V) − V_true,bl‖ / ‖V_true,bl‖: both at the band limit of the models'
    transmission functions (what lies beyond it is not determined by any data)."""
    return float(np.linalg.norm(band_limit(volume, voxel) - truth) / np.linalg.norm(truth))


def wedge_mask(shape, voxel, max_tilt_deg=45.0):
    """(band, wedge) masks on the FFT grid of ``shape``: inside 2/3 Nyquist, and of that the
    missing wedge |k_z| > |k_x| tan θ_max (tilt axis y, beam z at 0°). Its edge, measured
    by the last tilt, is outside (tan 45° rounds below 1 in floating point)."""
    k = np.meshgrid(*(np.fft.fftfreq(n, voxel) for n in shape), indexing="ij")
    band = k[0] ** 2 + k[1] ** 2 + k[2] ** 2 <= (2 / 3 * 0.5 / voxel) ** 2
    edge = np.abs(k[2]) * np.tan(np.deg2rad(max_tilt_deg)) * (1 + 1e-9)
    return band, band & (np.abs(k[0]) > edge)


def wedge_errors(volume, truth, voxel, max_tilt_deg=45.0):
    """Relative error of Re ``volume`` against ``truth`` (band-limited, V) in two parts of
    k-space inside the band limit: the missing wedge (tilt axis y, beam z at 0°: the
    frequencies with |k_z| > |k_x| tan θ_max, which no tilt's projection measures) and the
    rest. Linear tomography can fill the wedge only through its priors; a gain there is
    missing-wedge information recovered."""
    band, wedge = wedge_mask(truth.shape, voxel, max_tilt_deg)
    reference = np.fft.fftn(truth)
    difference = np.fft.fftn(np.real(volume)) - reference
    return {
        name: float(np.linalg.norm(difference[part]) / np.linalg.norm(reference[part]))
        for name, part in (("wedge", wedge), ("measured", band & ~wedge))
    }


def multislice_reach(shape, voxel, semiangle_mrad, energy=ENERGY, max_tilt_deg=45.0, tilts=901):
    """Frequencies (a boolean mask on the FFT grid of ``shape``, (z, y, x), tilt axis y) that
    convergent-beam data from tilts over ±``max_tilt_deg`` reach by single scattering.

    A probe tilt k_in (|k_in| ≤ α/λ) scattered to k_out = k_in + q samples the potential at
    the 3D frequency (q, k_z) with k_z = λ(k_in·q) + λ|q|²/2 (Ewald sphere, small angles), so
    each tilt's data reach |k_z'| ≤ α|q| + λ|q|²/2 in that tilt's frame: a thin double cone
    around its projection plane, α + λ|q|/2 ≈ 1.2° wide at 15 mrad and 0.67 Å⁻¹. The missing
    wedge gains only that sliver from multislice data; the rest of what any reconstruction
    puts there comes from its priors.
    """
    lam, alpha = float(wavelength(energy)), semiangle_mrad * 1e-3
    kz, ky, kx = np.meshgrid(*(np.fft.fftfreq(n, voxel) for n in shape), indexing="ij")
    reach = np.zeros(shape, bool)
    for theta in np.deg2rad(np.linspace(-max_tilt_deg, max_tilt_deg, tilts)):
        kz_tilt = kz * np.cos(theta) - kx * np.sin(theta)
        q = np.hypot(kx * np.cos(theta) + kz * np.sin(theta), ky)
        reach |= np.abs(kz_tilt) <= alpha * q + lam * q * q / 2
    return reach


def peak_widths(volume, site, voxel, half=3):
    """Fitted Gaussian σ (Å) along z, y, x and the amplitude (V) of the peak nearest ``site``.

    A 3D Gaussian with independent σ per axis plus a constant is fitted by least squares to
    the (2·half + 1)³ voxels around the voxel nearest ``site`` (Å, (z, y, x)); the σ along z
    measures the missing-wedge elongation, robustly against single-voxel noise.
    """
    real = np.real(volume).astype(float)
    c = np.round(site / voxel).astype(int)
    box = real[c[0] - half : c[0] + half + 1, c[1] - half : c[1] + half + 1, c[2] - half : c[2] + half + 1]
    grid = np.stack(np.meshgrid(*(np.arange(-half, half + 1.0),) * 3, indexing="ij")) * voxel

    def model(p):
        amplitude, z, y, x, sz, sy, sx, background = p
        arg = ((grid[0] - z) / sz) ** 2 + ((grid[1] - y) / sy) ** 2 + ((grid[2] - x) / sx) ** 2
        return amplitude * np.exp(-arg / 2) + background

    start = [box.max(), 0.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.0]
    lower = [0.0, -half * voxel, -half * voxel, -half * voxel, 0.25, 0.25, 0.25, -np.inf]
    upper = [np.inf, half * voxel, half * voxel, half * voxel, 3.0, 3.0, 3.0, np.inf]
    fit = least_squares(lambda p: (model(p) - box).ravel(), start, bounds=(lower, upper))
    amplitude, _, _, _, sz, sy, sx, _ = fit.x
    return float(sz), float(sy), float(sx), float(amplitude)


def _projection(result, n):
    """Summed phase (rad) of one MSP result on an n × n grid whose centre (n − 1) / 2 is the
    scan centre (cubic spline resampling; zero outside the object)."""
    phase = result.phase()
    centre = result.positions.mean(0) / result.pixel_size
    offset = np.arange(n) - (n - 1) / 2
    yy, xx = np.meshgrid(offset + centre[0], offset + centre[1], indexing="ij")
    return ndimage.map_coordinates(phase, [yy, xx], order=3, cval=0.0)


def tv_tomography(projections, angles, voxel, start, weight, iterations):
    """Sequential tomography with the end-to-end step's prior: FISTA on ½‖P V − b‖² with the
    proximal TV of :func:`~napari_ptychotomo.joint.regularizers.tv_prox` (``weight`` V per
    step) and non-negativity, from ``start`` (V). ``projections`` in V·Å; the step is 1/L with
    L = ‖P‖² from 15 power iterations. The strongest sequential baseline tried: the same
    prior the end-to-end volume gets, applied where the sequential pipeline can apply it.
    """
    euler = torch.tensor(np.deg2rad(Alignment.from_angles(angles).euler_deg), dtype=torch.float32)
    target = torch.as_tensor(projections, dtype=torch.float32)
    shape = start.shape

    def forward(v):
        return project(v, euler, voxel_size=voxel)

    def adjoint(r):
        v = torch.zeros(shape, requires_grad=True)
        (forward(v) * r).sum().backward()
        return v.grad

    x = torch.ones(shape)
    for _ in range(15):
        x = adjoint(forward(x))
        lipschitz = float(x.norm())
        x = x / lipschitz
    v = torch.as_tensor(start, dtype=torch.float32).clamp(min=0)
    y, t = v.clone(), 1.0
    for _ in range(iterations):
        step = y - adjoint(forward(y) - target) / lipschitz
        new = tv_prox(step, weight).clamp(min=0)
        t_new = (1 + (1 + 4 * t * t) ** 0.5) / 2
        y = new + (t - 1) / t_new * (new - v)
        v, t = new, t_new
    return v.numpy()


def run_case(**overrides) -> dict:
    """Simulate, reconstruct both ways and measure; returns a dict of numbers and timings."""
    cfg = dict(SMALL, **overrides)
    voxel, window = cfg["voxel"], cfg["window"]
    lam, sigma = float(wavelength(ENERGY)), float(interaction_constant(ENERGY))
    # atoms moved by half a voxel so that the central atom sits on a voxel centre (the
    # rotation centre, the cell centre, is (n - 1) / 2 voxels with n even)
    spec = specimen(cfg["specimen"]).translate(np.full(3, voxel / 2))
    angles = np.linspace(-45.0, 45.0, cfg["tilts"])
    clock = {"start": time.perf_counter()}
    series = simulate_tilt_series(
        spec,
        angles,
        scan_shape=(cfg["scan"],) * 2,
        scan_step=cfg["step"],
        detector_shape=(window, window),
        detector_sampling_mrad=lam / (window * voxel) * 1e3,
        semiangle_mrad=cfg["semiangle"],
        defocus=cfg["defocus"],
        num_slices=cfg["slices"],
        dose=cfg["dose"],
        seed=0,
        oversampling=cfg["oversampling"],
    )
    depth = series.scans[0].truth["thickness"]
    clock["simulate"] = time.perf_counter()
    msp = {}
    for k, scan in enumerate(series.scans):
        params = MSPParams(
            num_slices=cfg["msp_slices"],
            slice_thickness=depth / cfg["msp_slices"],
            iterations=cfg["msp_iterations"],
            learn_tilt=False,
            learn_thickness=False,
            defocus=None,
            batch_size=cfg["batch_size"],
            convergence_tolerance=0.0,
        )
        msp[k] = reconstruct_msp(scan, params, device="cpu", seed=k)
    clock["msp"] = time.perf_counter()
    n = int(np.ceil((cfg["scan"] - 1) * cfg["step"] / voxel + window + 2))
    n += (-n) % cfg["slices"]
    shape = (n, n, n)
    projections = np.stack([_projection(msp[k], n) for k in range(len(angles))])
    truth, atoms = band_limited_truth(spec, shape, voxel)
    # the sequential volume for each linear-tomography length; the best against the truth is
    # kept (an oracle stop: more iterations fit the MSP's errors, and where that starts
    # differs from case to case)
    candidates = {}
    for iterations in cfg["linear_iterations"]:
        linear = reconstruct_linear(
            projections,
            Alignment.from_angles(angles),
            voxel,
            shape=shape,
            n_iter=iterations,
            device="cpu",
            blur_sigma_px=0.0,
        )
        candidates[iterations] = np.real(linear.data) / sigma  # rad/Å → V
    by_iterations = {it: nrmse(volume, truth, voxel) for it, volume in candidates.items()}
    sequential = candidates[min(by_iterations, key=by_iterations.get)]
    clock["sequential"] = time.perf_counter()
    sequential_tv = None
    if cfg["fista_iterations"]:
        sequential_tv = tv_tomography(
            projections / sigma, angles, voxel, sequential, SEQUENTIAL_TV, cfg["fista_iterations"]
        )
    clock["sequential_tv"] = time.perf_counter()
    params = JointParams(
        iterations=cfg["iterations"],
        num_slices=cfg["slices"],
        batch_size=cfg["batch_size"],
        volume_shape=shape,
        learn_probe=cfg["learn_probe"],
        tv_weight=cfg["tv_weight"],
        band_limit=cfg["band_limit"],
    )
    params.rates["volume"] = LearningRate(cfg["volume_step"], 0)
    init = [msp, Alignment.from_angles(angles)]
    if cfg["start"] == "sequential":
        init.append(Volume(np.clip(sequential, 0, None).astype(np.complex64), voxel))
    joint = reconstruct_joint(series, init=init, params=params, device="cpu")
    end_to_end = np.real(joint.volume.data)
    clock["end_to_end"] = time.perf_counter()

    heavy = atoms[np.argmin(np.linalg.norm(atoms - (np.array(shape) - 1) / 2 * voxel, axis=1))]
    out = {"config": cfg, "volume_shape": list(shape), "sequential_nrmse_by_linear_iterations": by_iterations}
    volumes = {"truth": truth, "sequential": sequential, "sequential_tv": sequential_tv, "end_to_end": end_to_end}
    volumes = {name: volume for name, volume in volumes.items() if volume is not None}
    for name, volume in volumes.items():
        sz, sy, sx, amplitude = peak_widths(volume, heavy, voxel)
        out[name] = {
            "sigma_z": sz,
            "sigma_y": sy,
            "sigma_x": sx,
            "amplitude_V": amplitude,
            "elongation_zx": sz / sx,
            "peak_integral_VA3": amplitude * (2 * np.pi) ** 1.5 * sz * sy * sx,
        }
        if name != "truth":
            out[name]["nrmse"] = nrmse(volume, truth, voxel)
            errors = wedge_errors(volume, truth, voxel)
            out[name]["error_wedge"], out[name]["error_measured"] = errors["wedge"], errors["measured"]
    out["msp_final_loss"] = [float(m.loss_history[-1]) for m in msp.values()]
    out["end_to_end_loss"] = [float(joint.loss_history[0]), float(joint.loss_history[-1])]
    steps = ["start", "simulate", "msp", "sequential", "sequential_tv", "end_to_end"]
    out["seconds"] = {b: clock[b] - clock[a] for a, b in zip(steps, steps[1:])}
    out["volumes"] = volumes
    return out
