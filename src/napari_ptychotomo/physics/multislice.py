"""Multislice forward model: transmission, propagation, far-field intensities.

The batched form used by ptychography and the 4D-STEM simulator works on a batch of probe
positions at once: object patches are cropped at the integer part of each position, the
sub-pixel remainder is applied to the probe as a Fourier phase ramp, then every probe mode
is transmitted through every slice and propagated to the next (transmit, then propagate,
as abTEM), and the far field is returned centred.
"""

from __future__ import annotations

import math

import torch

from .fused import multislice_intensities
from .grids import band_limit_mask

__all__ = [
    "transmission",
    "crop_patches",
    "shift_waves",
    "propagate",
    "exit_wave",
    "far_field",
    "forward_intensities",
]


def transmission(potential: torch.Tensor, sigma: float, sampling=None, band_limit: bool = True) -> torch.Tensor:
    """Transmission function exp(iσV) of projected potential slices ``V`` (V·Å).

    ``V`` may be complex (Im V = absorption: exp(iσV) = exp(iσ Re V − σ Im V)). With
    ``band_limit`` the result is limited to 2/3 of Nyquist (the ratio needs no sampling
    when pixels are square; pass ``sampling`` (dy, dx) otherwise).
    """
    potential = torch.as_tensor(potential)
    if potential.is_complex() and potential.requires_grad:
        t = _ComplexTransmission.apply(potential, float(sigma))
    elif potential.is_complex():  # exp(−σ Im V)·e^{iσ Re V}: a real exp and a sincos, 3× faster than complex exp
        t = torch.polar(torch.exp(-sigma * potential.imag), sigma * potential.real)
    else:
        t = torch.polar(torch.ones_like(potential), sigma * potential)
    if t.dtype != torch.complex128:
        t = t.to(torch.complex64)
    if band_limit:
        mask = band_limit_mask(t.shape[-2:], sampling if sampling is not None else 1.0, device=t.device)
        t = torch.fft.ifft2(torch.fft.fft2(t) * mask)
    return t


class _ComplexTransmission(torch.autograd.Function):
    """t = exp(iσV) of a complex potential, its backward one product with the saved t.

    exp is holomorphic, dt/dV = iσ t, so the gradient (PyTorch's conjugate convention) is
    ḡ_V = ḡ_t · conj(iσ t) = −iσ · conj(t) · ḡ_t. Autograd of the polar form in
    :func:`transmission` takes a sign, an absolute value and several products instead
    (4× the time of this backward on a plane-wave batch of slices).
    """

    @staticmethod
    def forward(ctx, potential: torch.Tensor, sigma: float) -> torch.Tensor:
        t = torch.polar(torch.exp(-sigma * potential.imag), sigma * potential.real)
        ctx.save_for_backward(t)
        ctx.sigma = sigma
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (t,) = ctx.saved_tensors
        return torch.conj_physical(t).mul_(grad).mul_(-1j * ctx.sigma), None


class _Crop(torch.autograd.Function):
    """Patches of the object at integer corners. On the CPU a stack of slices and a loop of
    slice additions are 4-6× faster than a gather / index_put (which compute an index per
    element); on an accelerator the gather stays (one kernel instead of B)."""

    @staticmethod
    def forward(ctx, obj, corners, n, m):
        ctx.corners, ctx.size, ctx.shape = corners, (n, m), obj.shape
        if obj.device.type == "cpu":
            return torch.stack([obj[:, r : r + n, c : c + m] for r, c in corners.tolist()])
        return obj[:, _rows(corners[:, 0], n)[:, :, None], _rows(corners[:, 1], m)[:, None, :]].transpose(0, 1)

    @staticmethod
    def backward(ctx, grad):
        (n, m), corners = ctx.size, ctx.corners
        out = grad.new_zeros(ctx.shape)
        if grad.device.type == "cpu":
            for b, (r, c) in enumerate(corners.tolist()):
                out[:, r : r + n, c : c + m] += grad[b]
        else:
            index = (
                torch.arange(ctx.shape[0], device=grad.device)[:, None, None, None],
                _rows(corners[:, 0], n)[None, :, :, None],
                _rows(corners[:, 1], m)[None, :, None, :],
            )
            out.index_put_(index, grad.transpose(0, 1), accumulate=True)
        return out, None, None, None


def _rows(start: torch.Tensor, length: int) -> torch.Tensor:
    return start[:, None] + torch.arange(length, device=start.device)


def crop_patches(obj: torch.Tensor, corners: torch.Tensor, size) -> torch.Tensor:
    """Patches ``(B, S, n, m)`` of ``obj (S, H, W)`` with top-left ``corners (B, 2)`` (int).

    Differentiable; gradients of overlapping patches add.
    """
    n, m = (size, size) if isinstance(size, int) else size
    _check_inside(obj, corners, n, m)
    if not corners.numel():
        return obj.new_zeros((0, obj.shape[0], n, m))
    return _Crop.apply(obj, corners, n, m)


def _check_inside(obj: torch.Tensor, corners: torch.Tensor, n: int, m: int) -> None:
    """Refuse windows of n × m px at ``corners`` that leave ``obj (S, H, W)``."""
    height, width = obj.shape[-2:]
    if corners.numel() and (
        int(corners[:, 0].min()) < 0
        or int(corners[:, 1].min()) < 0
        or int(corners[:, 0].max()) + n > height
        or int(corners[:, 1].max()) + m > width
    ):
        raise ValueError(
            f"probe window of {n}×{m} px at the given positions leaves the object "
            f"({height}×{width} px); pad the object or move the positions inside it"
        )


def shift_waves(waves: torch.Tensor, shifts_px: torch.Tensor) -> torch.Tensor:
    """Shift waves by ``shifts_px (B, 2)`` pixels (y, x) with a Fourier phase ramp
    (periodic, sub-pixel exact).

    ``waves`` is ``(n, m)`` → ``(B, n, m)``, ``(M, n, m)`` → ``(B, M, n, m)`` (one set of
    modes for every position) or already batched ``(B, M, n, m)`` → ``(B, M, n, m)``.
    """
    return _shift_waves(waves, shifts_px, checkerboard=False)


def _shift_waves(waves: torch.Tensor, shifts_px: torch.Tensor, checkerboard: bool) -> torch.Tensor:
    """:func:`shift_waves`; with ``checkerboard`` (even n, m) the result is multiplied by
    (−1)^(y+x) at no cost: that is the spectrum shifted by N/2, so the spectrum and the ramp
    are taken in centred order."""
    n, m = waves.shape[-2:]
    device = waves.device
    real = torch.float64 if waves.dtype == torch.complex128 else torch.float32
    fy = torch.fft.fftfreq(n, device=device, dtype=real)[:, None]
    fx = torch.fft.fftfreq(m, device=device, dtype=real)[None, :]
    spectrum = torch.fft.fft2(waves)
    if checkerboard:
        fy, fx = torch.fft.fftshift(fy), torch.fft.fftshift(fx)
        spectrum = torch.fft.fftshift(spectrum, dim=(-2, -1))
    if waves.ndim == 3:
        return _SubpixelShift.apply(spectrum, shifts_px.to(real), fy[:, 0], fx[0])
    shape = (-1, 1, 1) if waves.ndim == 2 else (-1, 1, 1, 1)
    sy = shifts_px[:, 0].reshape(shape).to(real)
    sx = shifts_px[:, 1].reshape(shape).to(real)
    ramp = torch.polar(torch.ones((), device=device, dtype=real), -2.0 * math.pi * (fy * sy + fx * sx))
    return torch.fft.ifft2(spectrum * ramp)


class _SubpixelShift(torch.autograd.Function):
    """Waves ``ifft2(Ŝ·R)`` ``(B, M, n, m)`` of one set of mode spectra ``Ŝ (M, n, m)``
    with the shift ramp R = exp(−2πi(f_y s_y + f_x s_x)) of each position ``(B, 2)`` px.

    R is the outer product of its row and column factors (B·(n + m) sines instead of
    B·n·m); only those factors are kept for the backward, and the 1/N of the inverse FFT
    rides on the row factor. The backward is written out: with Y = Ŝ·R and Ȳ the gradient
    of Y, Ŝ̄ = Σ_B Ȳ·conj(R) and ∂L/∂φ = Im(Σ_M Ȳ·conj(Y)) for the phase φ of R, so
    ∂L/∂s = −2π Im(Σ_{M,k} (Ȳ·conj(R))_k · conj(Ŝ_k)·f_k): one matrix product of the
    gradients with the two weights conj(Ŝ)·f_y and conj(Ŝ)·f_x.
    """

    @staticmethod
    def forward(ctx, spectrum, shifts, fy, fx):
        n, m = spectrum.shape[-2:]
        rows = torch.polar(fy.new_full((), 1.0 / (n * m)), -2.0 * math.pi * shifts[:, :1] * fy)  # (B, n)
        columns = torch.polar(torch.ones_like(fx[0]), -2.0 * math.pi * shifts[:, 1:] * fx)  # (B, m)
        ramp = rows[:, :, None] * columns[:, None, :]  # (B, n, m), times 1/N
        ctx.save_for_backward(spectrum, rows, columns, fy, fx)
        return torch.fft.ifft2(spectrum * ramp[:, None], norm="forward")

    @staticmethod
    def backward(ctx, grad_waves):
        spectrum, rows, columns, fy, fx = ctx.saved_tensors
        need_spectrum, need_shifts = ctx.needs_input_grad[:2]
        # the adjoint of the unnormalised inverse FFT is fft2 / N; the 1/N is on ``rows``
        conj_ramp = torch.conj_physical(rows)[:, :, None] * torch.conj_physical(columns)[:, None, :]
        grad_product = torch.fft.fft2(grad_waves).mul_(conj_ramp[:, None])  # Ȳ·conj(R), (B, M, n, m)
        grad_spectrum = grad_product.sum(0) if need_spectrum else None
        grad_shifts = None
        if need_shifts:
            # Im(g·w) = Re g·Im w + Im g·Re w, as a real (2, 2·M·n·m) @ (2·M·n·m, B) product
            # (BLAS's fast shape; the complex (B, K) @ (K, 2) one ran 6× slower)
            conj_spectrum = torch.conj_physical(spectrum)
            weights = torch.stack([conj_spectrum * fy[:, None], conj_spectrum * fx[None, :]])  # (2, M, n, m)
            weights = torch.stack([weights.imag, weights.real], dim=-1).reshape(2, -1)
            flat = torch.view_as_real(grad_product).reshape(grad_product.shape[0], -1)
            grad_shifts = -2.0 * math.pi * (weights @ flat.T).T
        return grad_spectrum, grad_shifts, None, None


def propagate(wave: torch.Tensor, propagator: torch.Tensor) -> torch.Tensor:
    """Apply a Fresnel propagator (fftfreq order, broadcastable) to ``wave``."""
    return torch.fft.ifft2(torch.fft.fft2(wave) * propagator)


def exit_wave(transmission_slices: torch.Tensor, wave: torch.Tensor, propagator: torch.Tensor) -> torch.Tensor:
    """Full-field multislice: transmit ``wave (..., H, W)`` through each slice of
    ``transmission_slices (S, H, W)`` and propagate after each (plane-wave / HRTEM use)."""
    for t in transmission_slices:
        wave = propagate(wave * t, propagator)
    return wave


def far_field(wave: torch.Tensor) -> torch.Tensor:
    """Far-field (diffraction-plane) wave, centred (zero frequency at N//2), unitary."""
    return torch.fft.fftshift(torch.fft.fft2(wave, norm="ortho"), dim=(-2, -1))


def forward_intensities(
    transmission_slices: torch.Tensor,
    probes: torch.Tensor,
    positions_px: torch.Tensor,
    propagator: torch.Tensor,
    return_exit_waves: bool = False,
):
    """Far-field intensities ``(B, n, n)`` of a batch of probe positions, summed over modes.

    Parameters
    ----------
    transmission_slices : (S, H, W) complex transmission of each slice.
    probes : (M, n, n) probe modes, centred at pixel (n//2, n//2); or (B, M, n, n).
    positions_px : (B, 2) probe centres (y, x) in object pixels (float, differentiable).
    propagator : (n, n) or (B, n, n) slice-to-slice propagator (fftfreq order).

    The probe centre lands at object pixel ``positions_px``: the patch corner is
    ``floor(p) − n//2`` and the remainder ``p − floor(p)`` shifts the probe. The slices are
    passed by :func:`.fused.multislice_intensities` (a hand-written backward);
    ``return_exit_waves`` takes the plain autograd loop and also returns the exit waves.
    """
    n, m = probes.shape[-2:]
    whole = torch.floor(positions_px.detach())
    corners = whole.long() - torch.tensor([n // 2, m // 2], device=positions_px.device)
    fraction = positions_px - whole
    if not return_exit_waves:
        _check_inside(transmission_slices, corners, n, m)
        # an even window takes the waves times (−1)^(y+x): the far field comes out centred
        checkerboard = n % 2 == 0 and m % 2 == 0
        waves = _shift_waves(probes, fraction, checkerboard)  # (B, M, n, m)
        return multislice_intensities(waves, transmission_slices, corners, propagator, checkerboard)
    patches = crop_patches(transmission_slices, corners, (n, m))  # (B, S, n, m)
    waves = shift_waves(probes, fraction)  # (B, M, n, m)
    prop = propagator if propagator.ndim == 2 else propagator[:, None]
    for patch in patches.unbind(1):
        waves = propagate(waves * patch[:, None], prop)
    return torch.sum(torch.abs(far_field(waves)) ** 2, dim=1), waves
