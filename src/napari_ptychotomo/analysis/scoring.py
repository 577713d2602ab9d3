"""Score traced atoms against ground truth: the columns of Ren et al. 2018, Table I
(position error, atoms found, false positives, correct species)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..data import Atoms

__all__ = ["score_atoms", "match_atoms"]


def _positions_and_species(atoms: Any, name: str):
    if isinstance(atoms, Atoms):
        return np.asarray(atoms.positions, dtype=np.float64), np.asarray(atoms.species)
    if isinstance(atoms, tuple) and len(atoms) == 2:
        return np.asarray(atoms[0], dtype=np.float64), np.asarray(atoms[1])
    pos = np.asarray(atoms, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[1] != 3:
        raise ValueError(f"{name} has shape {pos.shape}; expected Atoms, (positions, species) or (n, 3) in Å")
    return pos, None


def match_atoms(traced: np.ndarray, truth: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Minimum-total-distance one-to-one matching of two point sets within ``radius``.

    The Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) runs on each
    connected group of the within-radius graph; isolated pairs are matched directly.
    Returns index arrays (traced_idx, truth_idx) of the matched pairs.
    """
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if len(traced) == 0 or len(truth) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    pairs = cKDTree(traced).sparse_distance_matrix(cKDTree(truth), radius, output_type="ndarray")
    if len(pairs) == 0:
        return np.zeros(0, int), np.zeros(0, int)
    i, j, d = pairs["i"], pairs["j"], pairs["v"]
    n = len(traced)
    graph = coo_matrix((np.ones(len(i)), (i, n + j)), shape=(n + len(truth),) * 2)
    _, label = connected_components(graph, directed=False)
    group = label[i]
    sizes = np.bincount(group)
    simple = sizes[group] == 1  # a group with one edge: one traced, one true atom
    out_i, out_j = [i[simple]], [j[simple]]
    order = np.argsort(group[~simple], kind="stable")
    gi, gj, gd, gg = i[~simple][order], j[~simple][order], d[~simple][order], group[~simple][order]
    bounds = np.flatnonzero(np.diff(gg)) + 1
    for si, sj, sd in zip(np.split(gi, bounds), np.split(gj, bounds), np.split(gd, bounds)):
        if len(si) == 0:
            continue
        ui, ri = np.unique(si, return_inverse=True)
        uj, rj = np.unique(sj, return_inverse=True)
        cost = np.full((len(ui), len(uj)), 1e6 * (radius + 1.0))
        cost[ri, rj] = sd
        a, b = linear_sum_assignment(cost)
        ok = cost[a, b] <= radius
        out_i.append(ui[a[ok]])
        out_j.append(uj[b[ok]])
    return np.concatenate(out_i).astype(int), np.concatenate(out_j).astype(int)


def score_atoms(traced: Any, truth: Any, radius: float) -> dict[str, Any]:
    """Compare traced atoms with the true ones.

    Parameters
    ----------
    traced, truth : Atoms, ``(positions (n, 3) Å, species (n,))`` or positions (n, 3) Å
        as (z, y, x) in the same frame; species are class labels ordered by scattering
        strength (or anything comparable with ``==``).
    radius : largest distance in Å at which a traced atom can stand for a true one.

    Returns
    -------
    dict
        ``n_traced``, ``n_truth``, ``n_matched``; ``recall`` (matched / true),
        ``false_positives`` (unmatched traced atoms), ``false_positive_rate`` (false
        positives / true atoms, as in Ren et al. Table I), ``missing`` (unmatched true
        atoms); ``rms_error_zyx`` (3,) and ``rms_error_3d`` in Å, ``mean_error_3d`` Å;
        ``species_accuracy`` (matched atoms with the right species; ``nan`` without
        species); ``matches`` (traced_idx, truth_idx).
    """
    if not (np.isfinite(radius) and radius > 0):
        raise ValueError(f"radius = {radius!r}; expected a positive matching distance in Å")
    pos_t, species_t = _positions_and_species(traced, "traced")
    pos_g, species_g = _positions_and_species(truth, "truth")
    ti, gi = match_atoms(pos_t, pos_g, radius)
    error = pos_t[ti] - pos_g[gi]
    n_truth, n_traced, n_matched = len(pos_g), len(pos_t), len(ti)
    nan = float("nan")
    accuracy = nan
    if species_t is not None and species_g is not None and n_matched:
        accuracy = float(np.mean(np.asarray(species_t)[ti] == np.asarray(species_g)[gi]))
    return {
        "n_traced": n_traced,
        "n_truth": n_truth,
        "n_matched": n_matched,
        "recall": n_matched / n_truth if n_truth else nan,
        "false_positives": n_traced - n_matched,
        "false_positive_rate": (n_traced - n_matched) / n_truth if n_truth else nan,
        "missing": n_truth - n_matched,
        "rms_error_zyx": np.sqrt(np.mean(error**2, axis=0)) if n_matched else np.full(3, nan),
        "rms_error_3d": float(np.sqrt(np.mean(np.sum(error**2, axis=1)))) if n_matched else nan,
        "mean_error_3d": float(np.mean(np.linalg.norm(error, axis=1))) if n_matched else nan,
        "species_accuracy": accuracy,
        "matches": (ti, gi),
    }
