"""Tilt-axis direction and shifts along it from the common line of a single-axis series.

For a rotation about one axis, the integral of a projection across that axis (its profile
along the axis) is the same at every tilt: ∫∫ f dx dz does not depend on θ. When the axis
appears rotated by ψ in the images (R = R_z(ψ) R_y(θ)), rotating every image by −ψ restores
that invariance, and the remaining differences between the profiles are the shifts along
the axis. A grid search over ψ for the most consistent Fourier amplitudes of the profiles
(blind to the shifts), then cross-correlation of the profiles, gives both without a volume; it starts the joint alignment of
:mod:`.align`, whose alternating volume fit cannot by itself leave a wrong ψ (the volume
absorbs much of it).
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["estimate_tilt_axis"]


def _axis_spectra(stack: torch.Tensor, psi_rad, k_max: float = 0.5) -> torch.Tensor:
    """Fourier transform (T, n) of each image's profile along the axis at angle ψ.

    By the central-slice theorem this is the image's 2D spectrum on the line through the
    origin along the axis direction a = R_z(ψ) e_y = (−sin ψ, cos ψ); it is evaluated as a
    direct DFT at k = fftfreq(ny), exactly (no interpolation, which would blur the
    profiles differently at different sub-pixel offsets).
    """
    t, ny, nx = stack.shape
    dev, dt = stack.device, stack.dtype
    y = torch.arange(ny, dtype=dt, device=dev) - (ny - 1) / 2
    x = torch.arange(nx, dtype=dt, device=dev) - (nx - 1) / 2
    psi_rad = torch.as_tensor(psi_rad, dtype=dt, device=dev)
    along = -torch.sin(psi_rad) * x[None, :] + torch.cos(psi_rad) * y[:, None]  # (ny, nx)
    k = torch.fft.fftfreq(ny, dtype=dt, device=dev)
    k = k[k.abs() <= k_max]
    kernel = torch.exp(-2j * torch.pi * k[:, None, None] * along[None])  # (K, ny, nx)
    return torch.einsum("tyx,kyx->tk", stack.to(kernel.dtype), kernel)


def _register_profiles(profiles: torch.Tensor, n_rounds: int = 3) -> tuple[torch.Tensor, float]:
    """Shift (T, n) profiles onto their mean by FFT cross-correlation (sub-pixel parabola).

    Returns the shift of each profile in pixels and the remaining mean squared difference.
    """
    t, n = profiles.shape
    freq = torch.fft.fftfreq(n, device=profiles.device, dtype=profiles.dtype)
    spectra = torch.fft.fft(profiles)
    shifts = torch.zeros(t, dtype=profiles.dtype, device=profiles.device)
    for _ in range(n_rounds):
        aligned = spectra * torch.exp(2j * torch.pi * freq * shifts[:, None])
        reference = aligned.mean(0, keepdim=True)
        xcorr = torch.fft.ifft(spectra * reference.conj()).real  # peak at the profile's shift
        peak = xcorr.argmax(1)
        left = xcorr.gather(1, ((peak - 1) % n)[:, None])[:, 0]
        mid = xcorr.gather(1, peak[:, None])[:, 0]
        right = xcorr.gather(1, ((peak + 1) % n)[:, None])[:, 0]
        denom = left - 2 * mid + right
        frac = torch.where(denom.abs() > 0, 0.5 * (left - right) / denom, torch.zeros_like(denom))
        lag = torch.where(peak > n // 2, peak - n, peak).to(profiles.dtype) + frac
        shifts = lag - lag.mean()
    aligned = torch.fft.ifft(spectra * torch.exp(2j * torch.pi * freq * shifts[:, None])).real
    misfit = float((aligned - aligned.mean(0)).pow(2).mean() / aligned.pow(2).mean())
    return shifts, misfit


def estimate_tilt_axis(
    projections,
    search_deg: float = 10.0,
    step_deg: float = 0.5,
    fine_step_deg: float = 0.05,
    k_max: float = 0.25,
    denoise: str | None = None,
) -> tuple[float, np.ndarray]:
    """In-plane angle ψ of the tilt axis and the shifts along it, from profile consistency.

    Parameters
    ----------
    projections : (T, ny, nx) projections of a single-axis tilt series whose nominal axis
        is y.
    search_deg, step_deg : coarse grid ψ ∈ [−search, +search] in degrees.
    fine_step_deg : step of the fine grid around the coarse optimum.
    k_max : highest profile frequency used, in cycles per pixel; frequencies near
        Nyquist are aliased differently at different sub-pixel positions.
    denoise : ``None``, or a method of :func:`.denoise.denoise_projections` applied to a
        copy of the stack for this estimate only. The estimate's error on noisy data is
        a spread, not a bias: on the 40 px Gaussian-atom particle with 10 % noise (25
        tilts, ψ = 2°, −2°, 0°, 3 seeds each) it is 0.87° RMS on the raw stack, 0.33°
        after TV, 0.12° after NLM and 0.08° after BM3D; weighting the profile
        frequencies by their signal-to-noise ratio does not help (0.86°), since the
        deviations between the profiles come from the whole band.

    Returns
    -------
    psi_deg : ψ in degrees (R = R_z(ψ) R_y(θ): the axis appears rotated by ψ).
    shifts_along_axis : (T,) shift of each projection along the axis in pixels,
        zero-mean.
    """
    stack = torch.as_tensor(np.asarray(projections), dtype=torch.float64)
    if stack.ndim != 3:
        raise ValueError(f"projections has shape {tuple(stack.shape)}; expected (n_tilts, ny, nx)")
    if denoise is not None:
        from .denoise import denoise_projections

        stack = torch.as_tensor(denoise_projections(stack.numpy(), method=denoise), dtype=torch.float64)

    def misfit(psi_deg: float) -> float:
        # Fourier amplitudes of the profiles are blind to the shifts along the axis
        amp = _axis_spectra(stack, np.deg2rad(psi_deg), k_max).abs()
        return float((amp - amp.mean(0)).pow(2).mean() / amp.pow(2).mean())

    def search(grid):
        values = [misfit(p) for p in grid]
        best = int(np.argmin(values))
        return best, values

    coarse = np.arange(-search_deg, search_deg + step_deg / 2, step_deg)
    best, _ = search(coarse)
    fine = coarse[best] + np.arange(-step_deg, step_deg + fine_step_deg / 2, fine_step_deg)
    best, values = search(fine)
    psi = float(fine[best])
    if 0 < best < len(fine) - 1:  # parabola through the three points around the minimum
        a, b, c = values[best - 1], values[best], values[best + 1]
        denom = a - 2 * b + c
        if denom > 0:
            psi += 0.5 * fine_step_deg * (a - c) / denom
    profiles = torch.fft.ifft(_axis_spectra(stack, np.deg2rad(psi))).real  # (T, ny)
    shifts, _ = _register_profiles(profiles)
    psi_refined, shifts_refined = _refine(stack, psi, shifts, k_max)
    if abs(psi_refined - psi) > step_deg:
        # the phase-sensitive fit left the amplitude optimum by more than a grid step:
        # the profiles are not consistent enough to trust it (e.g. MSP phases whose low
        # frequencies differ from tilt to tilt); keep the grid estimate
        return psi, (shifts - shifts.mean()).numpy()
    return psi_refined, shifts_refined


def _refine(stack: torch.Tensor, psi_deg: float, shifts: torch.Tensor, k_max: float, n_iter: int = 100):
    """Least-squares consistency of the complex profile spectra over ψ and the shifts.

    Minimises Σ_t Σ_k |F_t(k; ψ) exp(2πik s_t) − mean_t|² (phases included, unlike the
    amplitude search) with L-BFGS, starting from the grid-search values.
    """
    k = torch.fft.fftfreq(stack.shape[1], dtype=stack.dtype)
    k = k[k.abs() <= k_max]
    psi = torch.tensor(psi_deg, dtype=stack.dtype, requires_grad=True)  # degrees: scaled like s
    s = shifts.clone().requires_grad_(True)
    with torch.no_grad():
        norm = float(_axis_spectra(stack, np.deg2rad(psi_deg), k_max).abs().pow(2).mean())
    opt = torch.optim.LBFGS(
        [psi, s],
        lr=1,
        max_iter=n_iter,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure():
        opt.zero_grad()
        spectra = _axis_spectra(stack, torch.deg2rad(psi), k_max)
        spectra = spectra * torch.exp(2j * torch.pi * k * s[:, None])
        loss = (spectra - spectra.mean(0)).abs().pow(2).mean() / norm
        loss.backward()
        return loss

    opt.step(closure)
    shifts = (s - s.mean()).detach()
    return float(psi.detach()), shifts.numpy()
