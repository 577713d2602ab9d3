"""Atom tracing: positions, intensities and species of the atoms in a potential volume
(Ren, Chen, Waller, Ophus 2018, "Measurements of Atom Positions and Species").

1. candidates: local maxima of a difference of Gaussians above ``threshold_sigma`` times
   the DoG's own noise σ (white-noise σ of the volume × the filter's gain, voxel by voxel,
   so the reflected faces are not noisier than the threshold assumes). The band, σ 1 and 2
   voxels, is close to a matched filter for atoms about a voxel wide (a true potential at
   0.3 Å voxels blurred like a reconstruction): Ren et al.'s 0.5 / 1 voxel band keeps only
   a third of a weak atom's signal-to-noise ratio there;
2. refinement: batched 3D Gaussian least squares with the other atoms' fitted Gaussians
   subtracted from each window (:mod:`.gaussian_fit`), iterated;
3. residual search: after the first fits, local maxima of the residual volume's DoG far
   from every traced atom (and ``window`` voxels from the faces) become new candidates:
   atoms hidden next to bright neighbours;
4. criteria after each iteration: a fit that no longer sits on a significant DoG peak
   (``accept_fraction`` of the candidate threshold), too faint, too broad (in Å, or,
   where asked, against the median fitted width: where a reconstruction blurs every
   atom alike, a much broader fit is a merged blob or a streak's end), bridged to a
   clearly brighter site, or closer than ``min_distance`` to a brighter site → removed
   (a merge keeps the brighter site, whose refit absorbs the other's intensity).
   Bridged: few tilts for a particle's size leave streaks along its lattice rows; where
   one runs out of an atom it carries bumps the band-pass takes for atoms, joined to
   that atom by a ridge of about their own height, where a real neighbour stands apart
   (:func:`.peak_filters.bridge_fractions`);
5. species: a Gaussian mixture of the integrated intensities (:mod:`.species`), each
   fit's σ capped at the median σ for it.

The fits run on the volume blurred by ``fit_blur`` voxels: a true potential is a cusp
sharper than a voxel, which a Gaussian fitted to the raw voxels locks onto the voxel
grid; the blur makes the peak Gaussian-like, keeps the centre of a symmetric peak and
the integrated intensity, and is removed from the reported widths.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import numpy as np
import torch

from ..data import Atoms
from ..engine import Progress, resolve_device, run
from ..params_meta import describes, ui
from .gaussian_fit import refine_gaussians, render_model, window_offsets
from .peak_filters import (
    bridge_fractions,
    difference_of_gaussians,
    dog_noise_map,
    filter_gain,
    gaussian_blur,
    local_maxima,
    white_noise_sigma,
)
from .species import classify_species
from .volume_input import volume_array

__all__ = ["trace_atoms", "trace_atoms_steps"]

# noise σ of the smoothed volume, relative to an atom's height, that a bridge may exceed
# ``max_bridge`` by before it counts: lines through noise scatter by about that much
BRIDGE_NOISE_SIGMAS = 3.0

_DEFAULTS = dict(
    dog_sigmas=(1.0, 2.0),
    threshold_sigma=5.0,
    min_relative_peak=0.05,
    accept_fraction=0.5,
    fit_blur=0.7,
    window=2,
    iterations=10,
    residual_rounds=1,
    tolerance=0.005,
    min_distance=None,
    min_relative_intensity=0.1,
    max_width=1.5,
    max_relative_width="auto",
    min_neighbours=2,
    neighbour_radius=6.0,
    max_bridge=0.2,
    bridge_radius=3.0,
    bridge_contrast=1.5,
    n_species=2,
    names=None,
)


def _check_params(params: dict[str, Any], voxel_size: float) -> dict[str, Any]:
    unknown = set(params) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown trace_atoms parameter(s) {sorted(unknown)}; allowed: {sorted(_DEFAULTS)}")
    p = {**_DEFAULTS, **params}
    if p["min_distance"] is None:
        # Ren et al. merge within 2.25 voxels; at fine sampling a true potential's misfit
        # residue reaches ~1 Å, so never less than that
        p["min_distance"] = max(2.25 * voxel_size, 1.0)
    names = ("threshold_sigma", "min_distance", "max_width", "max_bridge", "bridge_radius", "bridge_contrast")
    for name in names + ("neighbour_radius",):
        if not (np.isfinite(p[name]) and p[name] > 0):
            raise ValueError(f"{name} = {p[name]!r}; expected a positive number")
    sigmas = np.asarray(p["dog_sigmas"], dtype=float)
    if sigmas.shape != (2,) or not (0 < sigmas[0] < sigmas[1]):
        raise ValueError(f"dog_sigmas = {p['dog_sigmas']!r}; expected (small, large) voxels with 0 < small < large")
    if isinstance(p["max_relative_width"], str):
        p["max_relative_width"] = parse_relative_width(p["max_relative_width"])
    width = p["max_relative_width"]
    if width not in (None, "auto") and not (np.isfinite(width) and width > 0):
        raise ValueError(
            f"max_relative_width = {width!r}; expected a positive multiple of the median fitted width, 'auto' or None"
        )
    if int(p["min_neighbours"]) != p["min_neighbours"] or p["min_neighbours"] < 0:
        raise ValueError(f"min_neighbours = {p['min_neighbours']!r}; expected a whole number ≥ 0 (0 switches it off)")
    if not (0 <= p["accept_fraction"] <= 1):
        raise ValueError(f"accept_fraction = {p['accept_fraction']!r}; expected a fraction from 0 to 1")
    if int(p["window"]) < 1 or int(p["iterations"]) < 1:
        raise ValueError("window and iterations must be at least 1 (voxels, iterations)")
    return p


# tilts spanning at least this many degrees leave no missing wedge: every atom is blurred alike
FULL_TILT_RANGE_DEG = 170.0
# a fit this many times broader than the median in such a volume is a merged blob or a streak end
EVEN_BLUR_MAX_RELATIVE_WIDTH = 1.5


def parse_relative_width(text: Any) -> float | str | None:
    """``max_relative_width`` from text: ``"auto"``, ``"off"`` / ``"none"`` (no limit) or a
    positive number (a multiple of the median fitted width)."""
    value = str(text).strip().lower()
    if value in ("auto", "off", "none", ""):
        return "auto" if value == "auto" else None
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not (np.isfinite(number) and number > 0):
        raise ValueError(
            f"max_relative_width (max width × median) = {text!r}; expected 'auto', 'off' or a positive "
            "multiple of the median fitted width"
        )
    return number


def relative_width_limit(volume: Any, requested: Any) -> float | None:
    """``max_relative_width`` for ``volume``: ``"auto"`` gives 1.5 where the volume's
    provenance says its tilts span at least 170° (``tilt_range_deg``: no missing wedge, so
    every atom is blurred alike), else no limit; a number or ``None`` is kept."""
    if not (isinstance(requested, str) and requested == "auto"):
        return requested
    provenance = getattr(volume, "provenance", None) or {}
    low, high = provenance.get("tilt_range_deg", (0.0, 0.0))
    return EVEN_BLUR_MAX_RELATIVE_WIDTH if high - low >= FULL_TILT_RANGE_DEG else None


def _merge_close(centres: np.ndarray, intensity: np.ndarray, min_distance_vox: float) -> np.ndarray:
    """Boolean keep-mask: a site closer than the distance to a brighter one goes."""
    from scipy.spatial import cKDTree

    pairs = cKDTree(centres).query_pairs(min_distance_vox, output_type="ndarray")
    keep = np.ones(len(centres), bool)
    if len(pairs):
        i, j = pairs[:, 0], pairs[:, 1]
        weaker = np.where(intensity[i] < intensity[j], i, j)
        keep[weaker] = False
    return keep


def _neighbour_counts(centres: np.ndarray, radius_vox: float) -> np.ndarray:
    """How many other sites lie within ``radius_vox`` of each site."""
    from scipy.spatial import cKDTree

    if len(centres) == 0:
        return np.zeros(0, int)
    tree = cKDTree(centres)
    return np.asarray(tree.query_ball_point(centres, radius_vox, return_length=True)) - 1


def _species_measure(heights: torch.Tensor, widths: torch.Tensor) -> np.ndarray:
    """What species are told apart by: the integrated intensity, with each fit's σ capped
    at the median σ. A blob broader than the typical atom (a merged pair, a streak's end)
    would otherwise outweigh every real atom and take a class of its own, leaving the real
    heavy and light atoms to share one. (The faintness criterion keeps the full integrated
    intensity: in unevenly blurred volumes the broad fits are real atoms.)"""
    if len(widths) == 0:
        return np.zeros(0)
    capped = torch.minimum(widths, widths.median())
    return (heights * capped**3).double().cpu().numpy()


@describes(
    docs="trace_atoms",
    n_species=ui("species", min=1, max=10, default=_DEFAULTS["n_species"]),
    threshold_sigma=ui("threshold (noise σ)", min=0.5, max=100.0, step=0.5, default=_DEFAULTS["threshold_sigma"]),
    iterations=ui("iterations", min=1, max=200, default=_DEFAULTS["iterations"]),
    max_relative_width=ui(
        "max width (× median)",
        default=_DEFAULTS["max_relative_width"],
        tooltip="drop fits broader than this multiple of the median fitted width (merged blobs, streak ends): "
        "'auto' (1.5 where the volume's tilts span 180°, as a plane-wave reconstruction over ±90°; "
        "else no limit), 'off', or a number such as 1.5",
    ),
)
def trace_atoms_steps(
    volume: Any, *, voxel_size: float | None = None, device: Any = "auto", **params: Any
) -> Generator[Progress, None, Atoms]:
    """Generator form of :func:`trace_atoms`: yields a :class:`Progress` per refinement
    iteration (``preview`` = current positions (n, 3) in Å) and returns the ``Atoms``."""
    array, size, origin = volume_array(volume, voxel_size)
    p = _check_params(params, size)
    p["max_relative_width"] = relative_width_limit(volume, p["max_relative_width"])
    dev = resolve_device(device)
    raw = torch.as_tensor(np.real(array).astype(np.float32), device=dev)
    smooth = gaussian_blur(raw, p["fit_blur"])
    dog = difference_of_gaussians(raw, *p["dog_sigmas"])
    # noise levels from the volume's white-noise σ (robust to the atoms' own tails)
    noise = white_noise_sigma(raw)
    smooth_noise = noise * filter_gain(lambda v: gaussian_blur(v, p["fit_blur"]), dev)
    # the DoG of white noise, voxel by voxel (its σ grows near the reflected faces)
    dog_noise = noise * torch.as_tensor(dog_noise_map(raw.shape, *p["dog_sigmas"]), device=dev)
    dog_threshold = torch.clamp(p["threshold_sigma"] * dog_noise, min=p["min_relative_peak"] * float(dog.max()))
    start_width = float(np.hypot(p["fit_blur"], 0.5))
    offsets = window_offsets(int(p["window"]), dev)
    min_distance_vox = p["min_distance"] / size
    extent = torch.as_tensor(raw.shape, device=dev, dtype=torch.float32) - 0.5

    def new_sites(index: torch.Tensor):
        centres = index.to(torch.float32)
        heights = smooth[index[:, 0], index[:, 1], index[:, 2]].clamp_min(1e-6)
        n = len(index)
        return centres, heights, torch.full((n,), start_width, device=dev), torch.zeros(n, device=dev)

    state = new_sites(local_maxima(dog, dog_threshold))
    rounds_left = int(p["residual_rounds"])
    total = int(p["iterations"])
    for iteration in range(total):
        before = state[0].clone()
        state = refine_gaussians(smooth, *state, radius=int(p["window"]))
        centres, heights, widths, background = state
        intensity = heights * (2 * np.pi) ** 1.5 * widths**3
        # criteria: faint, broad, or too close to a brighter site
        # the fit must still sit on a significant band-pass peak
        at = torch.round(centres).long().clamp_min(0)
        at = torch.minimum(at, torch.as_tensor(smooth.shape, device=dev) - 1)
        keep = dog[at[:, 0], at[:, 1], at[:, 2]] > p["accept_fraction"] * dog_threshold[at[:, 0], at[:, 1], at[:, 2]]
        if len(intensity):
            keep &= intensity > p["min_relative_intensity"] * torch.quantile(intensity, 0.99)
        atom_width = torch.sqrt(torch.clamp(widths**2 - p["fit_blur"] ** 2, min=0)) * size
        keep &= atom_width <= p["max_width"]
        if len(atom_width) and p["max_relative_width"] is not None:
            # where the reconstruction blurs every atom alike, a fit much broader than the
            # typical atom's is a merged blob or a streak end, not an atom
            keep &= atom_width <= p["max_relative_width"] * atom_width.median()
        # a ghost on a streak out of a brighter atom is no atom of its own; the allowance
        # keeps a faint real atom whose line noise alone lifts the bridge
        bridge = bridge_fractions(
            smooth, centres, heights, widths, p["bridge_radius"] / size, min_contrast=p["bridge_contrast"]
        )
        keep &= bridge <= p["max_bridge"] + BRIDGE_NOISE_SIGMAS * smooth_noise / heights.clamp_min(1e-12)
        # a centre beyond the outer voxels' edges is an extrapolation, not a measurement
        keep &= ((centres >= -0.5) & (centres <= extent)).all(-1)
        keep_np = keep.cpu().numpy()
        merge = _merge_close(centres.cpu().numpy()[keep_np], intensity.cpu().numpy()[keep_np], min_distance_vox)
        keep_np[np.flatnonzero(keep_np)[~merge]] = False
        keep = torch.as_tensor(keep_np, device=dev)
        removed = int((~keep).sum())
        state = tuple(t[keep] for t in state)
        moved = (state[0] - before[keep]).norm(dim=-1)
        rms_change = float(moved.pow(2).mean().sqrt()) if len(moved) else 0.0
        added = 0
        if rounds_left > 0 and iteration >= 1:
            rounds_left -= 1
            model = render_model(smooth.shape, state[0], state[1], state[2], offsets).view(smooth.shape)
            residual = smooth - model
            # the same band-pass test as the first candidates: smooth misfit residues of
            # non-Gaussian (cusp-and-tail) atoms do not pass it, hidden atoms do
            residual_dog = difference_of_gaussians(residual, *p["dog_sigmas"])
            floor = dog_threshold
            # not next to the faces, where fits of atoms cut by the face leave residue
            index = local_maxima(residual_dog, floor, border=int(p["window"]))
            if len(index) and len(state[0]):
                from scipy.spatial import cKDTree

                gap, _ = cKDTree(state[0].cpu().numpy()).query(index.cpu().numpy().astype(float))
                index = index[torch.as_tensor(gap >= min_distance_vox, device=dev)]
            if len(index):
                extra = new_sites(index)
                extra = (extra[0], residual[index[:, 0], index[:, 1], index[:, 2]].clamp_min(1e-6), *extra[2:])
                state = tuple(torch.cat([a, b]) for a, b in zip(state, extra))
                added = len(index)
        positions = origin + state[0].double().cpu().numpy() * size
        yield Progress(
            step=iteration + 1,
            total=total,
            loss=rms_change * size,
            preview=positions,
            message=f"{len(positions)} atoms, {removed} removed, {added} added, RMS shift {rms_change * size:.4f} Å",
        )
        if added == 0 and removed == 0 and rms_change < p["tolerance"] and rounds_left == 0:
            break
    if p["min_neighbours"] > 0 and len(state[0]):
        # an atom of a solid, or on its surface, has neighbours within a few Å (bonds are
        # 1-3 Å); a peak alone in the vacuum is a ghost (the aliasing of too few tilts).
        # Tested once all atoms are found: a hidden neighbour comes with the residual search
        counts = _neighbour_counts(state[0].cpu().numpy(), p["neighbour_radius"] / size)
        alone = torch.as_tensor(counts < p["min_neighbours"], device=dev)
        state = tuple(t[~alone] for t in state)
        if bool(alone.any()):  # the last line a user reads gives the count returned
            yield Progress(
                step=total,
                total=total,
                loss=rms_change * size,
                preview=origin + state[0].double().cpu().numpy() * size,
                message=f"{len(state[0])} atoms; {int(alone.sum())} removed with fewer than "
                f"{p['min_neighbours']} neighbours within {p['neighbour_radius']:g} Å",
            )
    centres, heights, widths, _ = state
    intensity = (heights * (2 * np.pi) ** 1.5 * widths**3).double().cpu().numpy() * size**3
    labels, *_ = classify_species(_species_measure(heights, widths), p["n_species"])
    atom_width = torch.sqrt(torch.clamp(widths**2 - p["fit_blur"] ** 2, min=0)).double().cpu().numpy() * size
    return Atoms(
        positions=origin + centres.double().cpu().numpy() * size,
        species=labels.astype(int),
        intensities=intensity,
        widths=atom_width,
        names=list(p["names"]) if p["names"] is not None else None,
        provenance={
            "step": "atom tracing",
            "max_relative_width": p["max_relative_width"],
            "min_neighbours": int(p["min_neighbours"]),
            "neighbour_radius_A": float(p["neighbour_radius"]),
        },
    ).validate()


def trace_atoms(volume: Any, *, voxel_size: float | None = None, device: Any = "auto", **params: Any) -> Atoms:
    """Trace the atoms of a potential volume (Ren et al. 2018).

    Parameters
    ----------
    volume : Volume, or array (nz, ny, nx) (real; of a complex volume the real part).
    voxel_size : voxel edge in Å (from a ``Volume`` when not given).
    device : ``"auto"``, ``"cpu"``, ``"cuda"``, ...
    **params : the settings below (defaults in brackets).

    Other Parameters
    ----------------
    dog_sigmas : the two Gaussian σ in voxels of the difference-of-Gaussians filter
        ([1.0, 2.0]); raise both for blurrier volumes, the first near an atom's σ.
    threshold_sigma : candidate threshold in noise σ of the DoG (5).
    min_relative_peak : candidate threshold as a fraction of the strongest DoG peak,
        for noise-free volumes (0.05).
    accept_fraction : fraction of the candidate threshold the DoG must keep at a fitted
        centre (0.5).
    fit_blur : σ in voxels of the blur the Gaussian fit assumes (0.7).
    window : half-width in voxels of the fit windows (2: windows of 5³ voxels).
    iterations : Gaussian-fit iterations (10).
    residual_rounds : searches of the fit residual for atoms hidden next to bright
        neighbours, e.g. an O 1.3 Å from a Pt after a 0.3 Å blur (1); fitted centres
        beyond the volume's faces are dropped, so a heavy atom cut by a face leaves no
        false site.
    tolerance : RMS change of the centres in voxels at which the fit stops (0.005).
    min_distance : the closest two atoms may be, in Å (not set: 2.25 voxels but at least 1 Å).
    min_relative_intensity : weakest atom kept, as a fraction of the 99th-percentile
        intensity (0.1: O beside Pt or Au measures 0.12–0.3 of the heavy atoms in the
        tests' volumes and reconstructions, streak remnants and noise peaks less).
    max_width : largest fitted σ in Å of an atom (1.5).
    max_relative_width : largest fitted σ as a multiple of the median fitted σ, or ``None``
        for no such limit ("auto": 1.5 for a ``Volume`` whose provenance says its tilts
        span at least 170°, as :func:`~napari_ptychotomo.joint.reconstruct_plane_wave`
        records, else none). For volumes that blur every atom alike, such as a plane-wave
        reconstruction from tilts over ±90°, 1.5 drops merged blobs and streak ends; in a
        volume with a missing wedge or blurred unevenly (the demo's linear tomography)
        real atoms are that broad too.
    min_neighbours, neighbour_radius : fewest other traced sites within
        ``neighbour_radius`` Å an atom must have (2 within 6 Å; 0 switches the test off).
        In a solid or on its surface every atom has neighbours that close (bonds are
        1–3 Å; measured within 6 Å: an Au atom 20 or more, a light atom on an Au facet 9
        or more, one of a random packing at 0.03 atoms/Å³ at least 8), while the ghosts
        that too few tilts leave in the vacuum around a particle, up to an Au atom's
        intensity and width, have at most one. Set 0 for a few isolated atoms in a box;
        in a sparse random packing (0.018 atoms/Å³) about 2 atoms in 10⁴, at the box's
        faces, have fewer and go too.
    max_bridge : largest bridge to a brighter site, as a fraction of the site's own height,
        above the noise allowance of 3 σ of the smoothed volume (0.2; see
        :func:`~napari_ptychotomo.analysis.peak_filters.bridge_fractions`).
    bridge_radius : distance in Å within which brighter sites are checked for bridges (3).
    bridge_contrast : how many times brighter (fitted height) a neighbour must be for the
        bridge test (1.5): a streak's bump is weaker than the atom it comes from, while
        two equal atoms on a ridge are two atoms.
    n_species : number of species classes (2).
    names : element of each class, lightest first (not set: class numbers).

    Returns
    -------
    Atoms
        ``positions`` (n, 3) Å as (z, y, x) in the volume frame (origin = centre of voxel
        (0, 0, 0) plus the Volume's origin), ``species`` classes by increasing intensity
        (each fit's σ capped at the median σ for the classes, so no broad blob makes a
        class of its own),
        ``intensities`` integrated Gaussian intensity (volume unit × Å³), ``widths`` fitted
        σ in Å with the fit blur removed.
    """
    return run(trace_atoms_steps(volume, voxel_size=voxel_size, device=device, **params))
