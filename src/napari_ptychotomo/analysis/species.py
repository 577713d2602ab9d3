"""Species classes from atom intensities: a k-component 1D Gaussian mixture fitted by
expectation-maximisation (Ren et al. 2018 fit a two-Gaussian histogram and cut at the
intersection; the maximum-posterior class of a fitted mixture is that cut)."""

from __future__ import annotations

import numpy as np

__all__ = ["classify_species"]


def classify_species(intensities, n_species: int = 2, iterations: int = 200, tol: float = 1e-8):
    """Class label per atom, ordered by increasing mean intensity (0 = weakest scatterer).

    Parameters
    ----------
    intensities : (n,) integrated intensities (any unit).
    n_species : number of mixture components.

    Returns
    -------
    labels : (n,) int; means, stds, weights : (n_species,) of the fitted mixture.
    """
    x = np.asarray(intensities, dtype=np.float64).ravel()
    if n_species < 1:
        raise ValueError(f"n_species = {n_species!r}; expected a positive number of classes")
    if len(x) == 0:
        return np.zeros(0, int), np.zeros(n_species), np.zeros(n_species), np.zeros(n_species)
    k = min(int(n_species), len(np.unique(x)))
    # start from means spread evenly over the bulk of the range (robust to unequal classes)
    low, high = np.quantile(x, [0.02, 0.98])
    means = np.linspace(low, high, k) if k > 1 else np.array([np.mean(x)])
    spread = max(np.std(x), 1e-12 * max(np.abs(x).max(), 1.0))
    stds = np.full(k, spread / k)
    weights = np.full(k, 1.0 / k)
    previous = -np.inf
    for _ in range(iterations):
        z = (x[:, None] - means) / stds
        log_p = np.log(weights) - np.log(stds) - 0.5 * z**2
        peak = log_p.max(axis=1, keepdims=True)
        total = peak[:, 0] + np.log(np.exp(log_p - peak).sum(axis=1))
        resp = np.exp(log_p - total[:, None])
        mass = resp.sum(axis=0) + 1e-12
        weights = mass / len(x)
        means = (resp * x[:, None]).sum(axis=0) / mass
        stds = np.sqrt((resp * (x[:, None] - means) ** 2).sum(axis=0) / mass)
        stds = np.maximum(stds, 1e-6 * spread)
        likelihood = total.mean()
        if likelihood - previous < tol:
            break
        previous = likelihood
    order = np.argsort(means)
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    z = (x[:, None] - means) / stds
    labels = rank[np.argmax(np.log(weights) - np.log(stds) - 0.5 * z**2, axis=1)]
    pad = n_species - k
    means, stds, weights = (np.concatenate([v[order], np.full(pad, np.nan)]) for v in (means, stds, weights))
    return labels, means, stds, weights
