"""The plane-wave objective lens (aperture, aberrations, partial-coherence envelopes) against
a plain numpy implementation written here from the formulas, and the aperture against the
soft-aperture convention of the abTEM reference (tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from napari_ptychotomo.data import DefocusSeries
from napari_ptychotomo.joint.forward import defocus_transfer, series_transfer
from napari_ptychotomo.physics import wavelength

REFERENCE = Path(__file__).parents[1] / "data" / "abtem_reference.h5"
ENERGY = 300e3
LAM = float(wavelength(ENERGY))


def numpy_transfer(
    n, pixel, lam, defocus, aperture_mrad=None, cs=0.0, c12=0.0, phi12=0.0, focal_spread=0.0, beta_mrad=0.0
):
    """T(k) = A·E_t·E_s·exp(−iχ), written out for a round lens with two-fold astigmatism:
    χ = πλk²(C12 cos 2(φ−φ12) − Δf) + (π/2)Cs λ³k⁴; E_t = exp[−½(πλΔk²)²];
    E_s = exp[−(β/2λ)²|∇χ|²]; A = clip((α_c − α)/(λΔk) + ½, 0, 1) (abTEM's soft edge)."""
    k1 = np.fft.fftfreq(n, pixel)
    ky, kx = np.meshgrid(k1, k1, indexing="ij")
    k2 = kx**2 + ky**2
    c2, s2 = np.cos(2 * phi12), np.sin(2 * phi12)
    astig = (kx**2 - ky**2) * c2 + 2 * kx * ky * s2  # k² cos 2(φ − φ12)
    chi = np.pi * lam * (c12 * astig - defocus * k2) + 0.5 * np.pi * cs * lam**3 * k2**2
    gx = np.pi * lam * (c12 * (2 * kx * c2 + 2 * ky * s2) - 2 * defocus * kx) + 2 * np.pi * cs * lam**3 * k2 * kx
    gy = np.pi * lam * (c12 * (-2 * ky * c2 + 2 * kx * s2) - 2 * defocus * ky) + 2 * np.pi * cs * lam**3 * k2 * ky
    amplitude = np.exp(-0.5 * (np.pi * lam * focal_spread * k2) ** 2)
    amplitude *= np.exp(-((beta_mrad * 1e-3 / (2 * lam)) ** 2) * (gx**2 + gy**2))
    if aperture_mrad is not None:
        edge = lam * (k1[1] - k1[0])
        amplitude *= np.clip((aperture_mrad * 1e-3 - lam * np.sqrt(k2)) / edge + 0.5, 0, 1)
    return amplitude * np.exp(-1j * chi)


@pytest.mark.parametrize("defocus", [0.0, 120.0, -250.0])
def test_transfer_matches_numpy_formulas_with_aperture_aberrations_and_envelopes(defocus):
    n, pixel = 64, 0.25
    optics = dict(
        aperture_mrad=22.0,
        aberrations={"C30": 2e5, "C12": 30.0, "phi12": 0.4},
        focal_spread=40.0,
        illumination_semiangle_mrad=0.6,
    )
    ours = defocus_transfer((n, n), pixel, LAM, [defocus], **optics)[0].numpy()
    expected = numpy_transfer(
        n, pixel, LAM, defocus, 22.0, cs=2e5, c12=30.0, phi12=0.4, focal_spread=40.0, beta_mrad=0.6
    )
    assert 0.05 < np.abs(expected).mean() < 0.9  # the envelopes and the aperture all bite
    assert np.abs(ours - expected).max() < 2e-4


def test_each_envelope_alone_matches_its_formula():
    n, pixel = 48, 0.3
    cases = [
        (dict(focal_spread=60.0), dict(focal_spread=60.0)),
        (dict(illumination_semiangle_mrad=1.0, aberrations={"C30": 1e5}), dict(beta_mrad=1.0, cs=1e5)),
    ]
    for ours_kw, numpy_kw in cases:
        ours = defocus_transfer((n, n), pixel, LAM, [80.0], **ours_kw)[0].numpy()
        assert np.abs(ours - numpy_transfer(n, pixel, LAM, 80.0, **numpy_kw)).max() < 2e-4


def test_aperture_on_abtem_reference_exit_wave_follows_the_documented_soft_edge():
    """Images of abTEM's exit wave: without an aperture they reproduce abTEM's images; with
    one, they match the CTF-with-aperture convention of the reference (soft edge one
    reciprocal pixel wide, clip((α_c − α)/Δα + ½, 0, 1)) computed in numpy."""
    with h5py.File(REFERENCE) as fh:
        wave = fh["hrtem/exit_wave"][()].astype(np.complex128)
        abtem_image = fh["hrtem/image_defocus_50"][()]
        pixel, lam = float(fh.attrs["sampling_A"]), float(fh.attrs["wavelength_A"])
    n = wave.shape[0]
    spectrum = np.fft.fft2(wave)
    open_lens = defocus_transfer((n, n), pixel, lam, [50.0])[0].numpy()
    ours_open = np.abs(np.fft.ifft2(spectrum * open_lens)) ** 2
    assert np.abs(ours_open - abtem_image).max() / abtem_image.max() < 1e-4
    aperture = 15.0  # inside the reference's 2/3 band limit (≈ 33 mrad), so it cuts
    ours = np.abs(np.fft.ifft2(spectrum * defocus_transfer((n, n), pixel, lam, [50.0], aperture)[0].numpy())) ** 2
    expected = np.abs(np.fft.ifft2(spectrum * numpy_transfer(n, pixel, lam, 50.0, aperture))) ** 2
    assert np.abs(ours - expected).max() / expected.max() < 1e-4
    assert np.abs(ours - ours_open).max() / ours_open.max() > 0.05  # the aperture matters here


def _weak_and_strong_waves(n=64, pixel=0.25):
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:n, :n] * pixel
    phase = np.zeros((n, n))
    for cy, cx in rng.uniform(2, n * pixel - 2, size=(12, 2)):
        phase += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * 0.35**2))
    return {"weak": np.exp(0.05j * phase), "strong": np.exp(1.5j * phase)}


@pytest.mark.parametrize("strength, low, high", [("weak", 0.0, 0.01), ("strong", 0.05, 0.2)])
def test_temporal_envelope_against_an_incoherent_sum_over_defocus(strength, low, high):
    """The envelope is exact for the linear (weak-object) image and an approximation for a
    strong phase object. Relative error of the envelope image against the incoherent
    Gauss–Hermite sum (61 defoci; 5e-5 / 3e-3 from 101) over a focal spread of 50 Å at
    300 keV, 0.25 Å pixels, Δf = 100 Å, twelve Gaussian 'atoms': measured 0.0039 for a
    0.05 rad object (its quadratic term) and 0.109 for a 1.5 rad one."""
    n, pixel, spread, defocus = 64, 0.25, 50.0, 100.0
    spectrum = np.fft.fft2(_weak_and_strong_waves(n, pixel)[strength])
    nodes, weights = np.polynomial.hermite.hermgauss(61)
    incoherent = sum(
        w
        / np.sqrt(np.pi)
        * np.abs(np.fft.ifft2(spectrum * numpy_transfer(n, pixel, LAM, defocus + np.sqrt(2) * spread * x))) ** 2
        for x, w in zip(nodes, weights)
    )
    envelope = defocus_transfer((n, n), pixel, LAM, [defocus], focal_spread=spread)[0].numpy()
    image = np.abs(np.fft.ifft2(spectrum * envelope)) ** 2
    contrast = incoherent - incoherent.mean()
    error = np.linalg.norm(image - incoherent) / np.linalg.norm(contrast)
    assert low <= error < high


def test_series_transfer_moves_centre_defocus_to_the_box_exit():
    stack = DefocusSeries(
        np.zeros((2, 32, 32), np.float32), np.array([0.0, 40.0]), 0.5, ENERGY, defocus_reference="centre"
    )
    np.testing.assert_allclose(stack.exit_defocus(8.0), [8.0, 48.0])
    ours = series_transfer(stack, (32, 32), 0.5, 16.0)  # box 16 Å deep: exit 8 Å past the centre
    np.testing.assert_allclose(ours.numpy(), defocus_transfer((32, 32), 0.5, LAM, [8.0, 48.0]).numpy(), atol=1e-6)
    exit_ref = DefocusSeries(stack.images, stack.defocus, 0.5, ENERGY, defocus_reference="exit")
    np.testing.assert_allclose(exit_ref.exit_defocus(8.0), [0.0, 40.0])


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("aperture_mrad", -3.0, "aperture_mrad = -3.0; expected"),
        ("aperture_mrad", "19", "expected a number in mrad"),
        ("focal_spread", -1.0, "focal_spread = -1.0"),
        ("illumination_semiangle_mrad", 25.0, "beam divergence"),
        ("defocus_reference", "middle", "'centre', 'exit'"),
        ("aberrations", {"Cs": 1e5}, "unknown key"),
        ("aberrations", {"C10": 50.0}, "defocus of each image is its own field"),
        ("aberrations", {"C30": float("nan")}, "finite"),
    ],
)
def test_bad_optics_are_refused_naming_the_field(field, value, words):
    stack = DefocusSeries(np.ones((1, 8, 8), np.float32), np.zeros(1), 0.5, ENERGY, **{field: value})
    with pytest.raises(ValueError, match=words.replace("(", r"\(").replace("[", r"\[")):
        stack.validate()


def test_optics_enter_the_engine_model():
    """The engine's transfer of a tilt is the series' optics, not a bare CTF."""
    stack = DefocusSeries(
        np.ones((1, 32, 32), np.float32),
        np.array([30.0]),
        0.5,
        ENERGY,
        aperture_mrad=20.0,
        aberrations={"C30": 1e5},
        focal_spread=30.0,
        defocus_reference="exit",
    )
    ours = series_transfer(stack, (32, 32), 0.5, 16.0)[0].numpy()
    expected = numpy_transfer(32, 0.5, LAM, 30.0, 20.0, cs=1e5, focal_spread=30.0)
    assert np.abs(ours - expected).max() < 2e-4
    assert torch.is_tensor(series_transfer(stack, (32, 32), 0.5, 16.0))


def _tilted_transfer(n, pixel, lam, defocus, cs, qy, qx):
    """exp(−iχ(k + q)): the lens seen by a beam tilted by q = θ/λ (Å⁻¹), round lens."""
    k1 = np.fft.fftfreq(n, pixel)
    ky, kx = np.meshgrid(k1, k1, indexing="ij")
    k2 = (ky + qy) ** 2 + (kx + qx) ** 2
    return np.exp(-1j * (-np.pi * lam * defocus * k2 + 0.5 * np.pi * cs * lam**3 * k2**2))


@pytest.mark.parametrize("strength, tolerance", [("weak", 0.01), ("strong", 0.03)])
def test_spatial_envelope_against_an_incoherent_sum_over_incidence_angles(strength, tolerance):
    """A thin object lit at angle θ images as |F⁻¹[Ψ(k)·T(k + θ/λ)]|²; the incoherent sum
    over p(θ) ∝ exp(−|θ|²/β²) (15 × 15 Gauss–Hermite tilts; 1e-13 from 25 × 25) against the
    envelope image, for β = 1 mrad, Cs = 1e5 Å, Δf = 150 Å. Measured relative error 0.0031
    (weak, 0.05 rad) and 0.016 (strong, 1.5 rad); with β read as a standard deviation
    (envelope β/√2) or as √2·β the weak error is 0.024 or 0.046, so the test pins β."""
    n, pixel, beta, defocus, cs = 64, 0.25, 1e-3, 150.0, 1e5
    spectrum = np.fft.fft2(_weak_and_strong_waves(n, pixel)[strength])
    nodes, weights = np.polynomial.hermite.hermgauss(15)
    incoherent = np.zeros((n, n))
    for ty, wy in zip(nodes, weights):
        for tx, wx in zip(nodes, weights):
            qy, qx = beta * ty / LAM, beta * tx / LAM  # θ = β·x_j: the weight exp(−x²) is p(θ)
            transfer = _tilted_transfer(n, pixel, LAM, defocus, cs, qy, qx)
            incoherent += wy * wx / np.pi * np.abs(np.fft.ifft2(spectrum * transfer)) ** 2
    contrast = incoherent - incoherent.mean()

    def error(semiangle_mrad):
        envelope = defocus_transfer(
            (n, n), pixel, LAM, [defocus], aberrations={"C30": cs}, illumination_semiangle_mrad=semiangle_mrad
        )[0].numpy()
        image = np.abs(np.fft.ifft2(spectrum * envelope)) ** 2
        return np.linalg.norm(image - incoherent) / np.linalg.norm(contrast)

    assert error(beta * 1e3) < tolerance
    if strength == "weak":
        assert min(error(beta * 1e3 / np.sqrt(2)), error(beta * 1e3 * np.sqrt(2))) > 2 * tolerance


def test_focal_spread_samples_give_the_incoherent_sum_of_the_images():
    """The engine's exact focal-spread model: M defoci per image summed as intensities
    with Gauss–Hermite weights, against the same sum written out here."""
    from napari_ptychotomo.joint.forward import focal_spread_weights, plane_wave_images
    from napari_ptychotomo.physics import fresnel_propagator, interaction_constant

    n, pixel, samples = 24, 0.4, 9
    stack = DefocusSeries(
        np.zeros((2, n, n), np.float32),
        np.array([0.0, 60.0]),
        pixel,
        ENERGY,
        aperture_mrad=20.0,
        focal_spread=40.0,
        defocus_reference="exit",
    )
    rng = np.random.default_rng(8)
    volume = torch.tensor(rng.random((8, n, n)) * 40, dtype=torch.complex64)
    prop = fresnel_propagator((n, n), pixel, LAM, 2 * pixel)
    sigma = float(interaction_constant(ENERGY))
    transfer = series_transfer(stack, (n, n), pixel, 8 * pixel, focal_spread_samples=samples)
    assert transfer.shape == (2 * samples, n, n)
    euler, shift = torch.tensor([0.0, 0.3, 0.0]), torch.zeros(2)
    summed = plane_wave_images(
        volume, euler, shift, transfer, prop, 4, pixel, sigma, sample_weights=focal_spread_weights(samples)
    )
    each = plane_wave_images(volume, euler, shift, transfer, prop, 4, pixel, sigma)
    nodes, weights = np.polynomial.hermite.hermgauss(samples)
    for d, defocus in enumerate([0.0, 60.0]):
        expected = sum(w / np.sqrt(np.pi) * each[d * samples + j] for j, w in enumerate(weights))
        assert torch.allclose(summed[d], expected, atol=1e-6)
        lens = defocus_transfer((n, n), pixel, LAM, [defocus + np.sqrt(2) * 40.0 * nodes[3]], 20.0)[0]
        assert torch.allclose(transfer[d * samples + 3], lens, atol=1e-5)
    assert float(focal_spread_weights(samples).sum()) == pytest.approx(1.0)
