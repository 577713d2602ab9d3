"""Denoising of projection stacks (Romanov et al. 2025): every method raises the PSNR."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from napari_ptychotomo.tomo import denoise_projections, estimate_noise, fourier_sparsity_filter


def psnr(img, truth):
    return 10 * np.log10(np.ptp(truth) ** 2 / np.mean((img - truth) ** 2))


@pytest.fixture(scope="module")
def clean_and_noisy(particle, make_tilt_series):
    clean = make_tilt_series(particle.shape[-1], [-40.0, 0.0, 35.0])
    rng = np.random.default_rng(1)
    sigma = 0.1 * clean.max()
    return clean, clean + sigma * rng.normal(size=clean.shape), sigma


def test_noise_estimate_is_within_20_percent(clean_and_noisy):
    _clean, noisy, sigma = clean_and_noisy
    np.testing.assert_allclose(estimate_noise(noisy), sigma, rtol=0.2)


@pytest.mark.parametrize("method", ["bm3d", "nlm", "tv"])
def test_each_method_raises_psnr_by_3_db(clean_and_noisy, method):
    clean, noisy, _sigma = clean_and_noisy
    out = denoise_projections(noisy, method=method)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0


def test_fourier_sparsity_cleans_a_crystal_projection():
    # a lattice image: a handful of Bragg reflections under white noise
    y, x = np.mgrid[:64, :64]
    clean = np.cos(2 * np.pi * 8 * x / 64) + np.cos(2 * np.pi * (5 * x + 6 * y) / 64)
    noisy = clean + 0.5 * np.random.default_rng(2).normal(size=clean.shape)
    out = fourier_sparsity_filter(noisy[None], 0.01)[0]
    assert psnr(out, clean) > psnr(noisy, clean) + 10.0
    with pytest.raises(ValueError, match="fourier_sparsity"):
        fourier_sparsity_filter(noisy, 1.5)


def test_missing_bm3d_warns_and_falls_back_to_nlm(clean_and_noisy, monkeypatch):
    clean, noisy, _sigma = clean_and_noisy
    monkeypatch.setitem(sys.modules, "bm3d", None)  # makes `import bm3d` fail
    with pytest.warns(RuntimeWarning, match="bm3d.*not installed.*nlm"):
        out = denoise_projections(noisy, method="bm3d")
    np.testing.assert_allclose(out, denoise_projections(noisy, method="nlm"))
    assert psnr(out, clean) > psnr(noisy, clean) + 3.0


def test_bad_method_and_shape_are_named():
    with pytest.raises(ValueError, match="method"):
        denoise_projections(np.zeros((2, 8, 8)), method="median")
    with pytest.raises(ValueError, match="stack"):
        denoise_projections(np.zeros((2, 2, 8, 8)))
