"""Fourier shell correlation: against an independent implementation, the published
thresholds, and the resolution expected for a known signal and noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from napari_ptychotomo import Volume, fsc
from napari_ptychotomo.analysis import resolution_of, threshold_curve


def blurred_signal(shape, voxel_size, sigma, rng):
    """White noise (variance 1) blurred in Fourier space by exp(-2π²σ²k²) (σ in Å)."""
    k2 = sum(np.meshgrid(*[np.fft.fftfreq(n, d=voxel_size) ** 2 for n in shape], indexing="ij"))
    transfer = np.exp(-2 * np.pi**2 * sigma**2 * k2)
    return np.fft.ifftn(np.fft.fftn(rng.standard_normal(shape)) * transfer).real, transfer


def noisy_pair(rng, shape=(32, 32, 32), noise=0.05):
    signal, _ = blurred_signal(shape, 1.0, 2.0, rng)
    signal /= signal.std()
    return signal + noise * rng.standard_normal(shape), signal + noise * rng.standard_normal(shape)


@pytest.mark.parametrize("shape", [(32, 32, 32), (33, 33, 33), (32, 40, 48)])
def test_fsc_matches_torch_fourier_shell_correlation_within_1e_3(rng, shape):
    from torch_fourier_shell_correlation import fourier_correlation

    a, b = noisy_pair(rng, shape)
    ours = fsc(a, b, voxel_size=1.0).fsc
    # the independent implementation on the full (not half-space) transforms, which is
    # the FSC of real and complex volumes alike
    reference = fourier_correlation(
        torch.fft.fftn(torch.as_tensor(a)), torch.fft.fftn(torch.as_tensor(b)), shape, rfft=False
    ).numpy()
    assert ours.shape == reference.shape
    assert np.max(np.abs(ours[1:] - reference[1:])) < 1e-3


def test_fsc_of_real_volumes_agrees_with_half_space_reference_within_sampling_noise(rng):
    from torch_fourier_shell_correlation import fsc as reference_fsc

    a, b = noisy_pair(rng, (40, 40, 40), noise=0.02)
    ours = fsc(a, b, 1.0).fsc
    reference = reference_fsc(torch.as_tensor(a), torch.as_tensor(b)).numpy()
    # the reference sums over rfft's half space without Friedel weights; where the FSC is
    # high both must agree closely
    high = reference > 0.9
    assert high.sum() >= 4
    assert np.max(np.abs(ours[high] - reference[high])) < 2e-3


def test_fsc_of_complex_volumes_matches_reference(rng):
    from torch_fourier_shell_correlation import fourier_correlation

    shape = (24, 24, 24)
    re_a, re_b = noisy_pair(rng, shape)
    im_a, im_b = noisy_pair(rng, shape)
    a, b = (re_a + 1j * im_a).astype(np.complex64), (re_b + 1j * im_b).astype(np.complex64)
    ours = fsc(Volume(a, voxel_size=0.5), Volume(b, voxel_size=0.5))
    reference = fourier_correlation(
        torch.fft.fftn(torch.as_tensor(a)), torch.fft.fftn(torch.as_tensor(b)), shape, rfft=False
    ).numpy()
    assert np.max(np.abs(ours.fsc[1:] - reference[1:])) < 1e-3
    assert ours.frequency[-1] == pytest.approx(1.0, rel=1e-9)  # Nyquist of 0.5 Å voxels


@pytest.mark.parametrize("n", [100, 1000])
def test_thresholds_match_van_heel_schatz_2005_published_formulas(n):
    # van Heel & Schatz (2005), the numeric forms as printed there
    one_bit = (0.5 + 2.4142 / np.sqrt(n)) / (1.5 + 1.4142 / np.sqrt(n))
    half_bit = (0.2071 + 1.9102 / np.sqrt(n)) / (1.2071 + 0.9102 / np.sqrt(n))
    assert threshold_curve([n], 0.5)[0] == pytest.approx(one_bit, abs=1e-4)
    assert threshold_curve([n], (np.sqrt(2) - 1) / 2)[0] == pytest.approx(half_bit, abs=1e-4)
    # and the values those formulas give (one-bit 0.4517 / 0.3731, half-bit 0.3067 / 0.2165)
    expected = {100: (0.4517, 0.3067), 1000: (0.3731, 0.2165)}[n]
    assert (one_bit, half_bit) == pytest.approx(expected, abs=1e-4)


def test_fsc_thresholds_use_the_voxel_count_of_each_shell(rng):
    a, b = noisy_pair(rng, (32, 32, 32))
    result = fsc(a, b, 1.0)
    shell = 8  # |k| = 8/32: about 4π r² Fourier voxels
    assert result.shell_counts[shell] == pytest.approx(4 * np.pi * shell**2, rel=0.05)
    assert result.thresholds["one_bit"][shell] == pytest.approx(
        float(threshold_curve([result.shell_counts[shell]], 0.5)[0])
    )
    assert np.all(result.thresholds["0.143"] == 0.143)


def test_identical_volumes_correlate_perfectly_and_never_cross(rng):
    a, _ = noisy_pair(rng, (24, 24, 24))
    result = fsc(a, a, 1.0)
    assert np.allclose(result.fsc, 1.0, atol=1e-5)
    assert all(np.isnan(v) for v in result.crossings.values())


def test_independent_noise_has_fsc_near_zero(rng):
    shape = (32, 32, 32)
    result = fsc(rng.standard_normal(shape), rng.standard_normal(shape), 1.0)
    spread = 4 / np.sqrt(result.shell_counts[2:])
    assert np.all(np.abs(result.fsc[2:]) < spread)


def test_fsc_crossing_within_5_percent_of_expected_resolution(rng):
    """Two independently noised copies of a blurred random volume: the expected FSC is
    G²/(G² + σₙ²) per shell (signal power G(k)² = exp(−4π²σ²k²), white noise σₙ²)."""
    shape, voxel, sigma, noise = (64, 64, 64), 0.5, 0.6, 0.1
    signal, _ = blurred_signal(shape, voxel, sigma, rng)
    # the signal has unit-variance white noise under the blur, so its power per Fourier
    # voxel is N·G² and the noise's N·σₙ²
    a = signal + noise * rng.standard_normal(shape)
    b = signal + noise * rng.standard_normal(shape)
    result = fsc(a, b, voxel)
    k = np.linspace(0.02, 1.0, 20000)
    gain = np.exp(-4 * np.pi**2 * sigma**2 * k**2)
    expected_fsc = gain / (gain + noise**2)
    counts = np.interp(k, result.frequency, result.shell_counts)
    for name, snr in (("one_bit", 0.5), ("half_bit", (np.sqrt(2) - 1) / 2)):
        threshold = (snr + (2 * np.sqrt(snr) + 1) / np.sqrt(counts)) / (1 + snr + 2 * np.sqrt(snr) / np.sqrt(counts))
        expected = 1 / k[np.argmax(expected_fsc < threshold)]
        assert result.crossings[name] == pytest.approx(expected, rel=0.05), name
    expected_0143 = 1 / k[np.argmax(expected_fsc < 0.143)]
    assert result.crossings["0.143"] == pytest.approx(expected_0143, rel=0.05)
    assert 1.0 < result.crossings["one_bit"] < 3.0  # mid-band, not at an edge


def test_resolution_of_a_volume_with_halves(rng):
    a, b = noisy_pair(rng, (24, 24, 24))
    volume = Volume((a + b) / 2, voxel_size=0.4, halves=(a, b))
    direct = fsc(a, b, 0.4)
    result = resolution_of(volume, directions=("x", "z"))
    assert np.allclose(result.fsc, direct.fsc)
    assert result.crossings == direct.crossings
    assert set(result.directional) == {"x", "z", "anisotropy"}


def test_fsc_errors_name_the_problem(rng):
    a = rng.standard_normal((16, 16, 16))
    with pytest.raises(ValueError, match="voxel_size"):
        fsc(a, a)
    with pytest.raises(ValueError, match="volume2 has shape"):
        fsc(a, a[:8], 1.0)
    with pytest.raises(ValueError, match="mask has shape"):
        fsc(a, a, 1.0, mask=np.ones((4, 4, 4)))
    with pytest.raises(ValueError, match="halves"):
        resolution_of(Volume(a, voxel_size=1.0))
    with pytest.raises(ValueError, match="expected a volume"):
        fsc(a[0], a[0], 1.0)
