"""A fused multislice pass with a hand-written backward (the hot loop of ptychography).

Autograd of the plain loop in :mod:`.multislice` stores and copies more than it needs.
This function stores exactly what the gradient needs (the wave entering each slice and,
when the propagator is learned, each slice's spectrum), works in place, and needs fewer
FFTs than the plain loop: the far field of the last propagated wave is the last slice's
spectrum times the propagator (fft2 ∘ ifft2 = 1), so a pass takes 2 FFTs per slice less 1,
both ways (11 instead of 13 for 6 slices).

Transforms are unnormalised both ways (``fft2`` and ``ifft2(norm="forward")``); the 1/N of
the inverse rides on the (small) propagator, so no transform spends a pass on scaling.
With ``checkerboard`` the waves come multiplied by (−1)^(y+x) (even n, m): F(c·x) is F(x)
shifted by N/2, so with the propagator fftshifted every spectrum comes out centred and the
intensities need no fftshift copy (the factor rides on the probe's Fourier shift for free).

Adjoints (PyTorch's convention: the gradient of a real loss L with respect to a complex z
is ∂L/∂Re z + i ∂L/∂Im z): for y = a·b, ā = ȳ·conj(b); for y = F x (unnormalised DFT),
x̄ = Fᴴ ȳ; for I = |Ψ|², Ψ̄ = 2·Ψ·Ī. The backward carries the *conjugates* of these
gradients: conj(ȳ·conj(b)) = conj(ȳ)·b and conj(Fᴴ ȳ) = F conj(ȳ), so no product needs a
conjugated copy of a saved tensor (PyTorch materialises conjugate views in products).
"""

from __future__ import annotations

import torch

__all__ = ["multislice_intensities", "pass_bytes_per_position"]

#: bytes of one complex64 value
_COMPLEX_BYTES = 8

# On a CPU the slice loop runs over chunks of ~1 MiB of waves, so that a chunk's wave, patch
# and spectrum stay in a core's cache from one slice operation to the next; measured (CPU
# time of forward + backward against 26 FFTs, 72 patterns, 6 slices): 1.6-1.7× at 64² px
# (1.8-2.0× unchunked), 1.9-2.1× at 128² px (2.9-3.1× when chunks were autograd nodes)
_CPU_CHUNK_BYTES = 1 << 20


def _power(wave: torch.Tensor) -> torch.Tensor:
    """|wave|² summed over modes: (B, M, n, m) complex → (B, n, m) real."""
    real = torch.view_as_real(wave)
    power = real[..., 0].square().addcmul_(real[..., 1], real[..., 1])
    return power[:, 0] if power.shape[1] == 1 else power.sum(1)


class _Multislice(torch.autograd.Function):
    """The slice loop over chunks of the batch, inside one autograd node: gradients of the
    chunks are written into preallocated tensors (chunking by slicing the inputs outside
    the node made autograd add a zero-filled full-size gradient per chunk). Object patches
    are cut slice by slice, for one chunk at a time, and their gradients added straight to
    the object's (:class:`_Windows`): no (B, S, n, m) stack of patches or of their gradients
    is made (on the CPU both were written and read in main memory)."""

    @staticmethod
    def forward(ctx, waves, obj, corners, propagator, checkerboard, chunk):
        # waves (B, M, n, m); obj (S, H, W); corners (B, 2); propagator (n, m) or (B, 1, n, m)
        learn_propagator = ctx.needs_input_grad[3]
        if checkerboard:
            propagator = torch.fft.fftshift(propagator, dim=(-2, -1))
        keep = any(ctx.needs_input_grad)
        pixels = propagator.shape[-1] * propagator.shape[-2]
        step = propagator / pixels  # carries the 1/N of the unnormalised inverse FFT
        # far field (unitary) = spectrum · propagator / √N; its intensity weight |P|²/N
        weight = torch.view_as_real(propagator).square().sum(-1) / pixels
        batch = waves.shape[0]
        intensities = waves.new_empty(waves.shape[:1] + waves.shape[2:], dtype=weight.dtype)
        patch = obj.new_empty((min(chunk, batch), 1, *waves.shape[-2:]))  # one slice's, reused
        saved = []
        for lo in range(0, batch, chunk):
            hi = min(lo + chunk, batch)
            windows = _Windows(obj, corners[lo:hi], waves.shape[-2:], patch)
            entering, spectra, last = _slices_forward(
                waves[lo:hi], windows, _rows_of(step, lo, hi), keep, learn_propagator
            )
            power = _power(last)
            torch.mul(power, _rows_of(weight, lo, hi, squeeze=True), out=intensities[lo:hi])
            if keep:
                saved += [last, power, *entering[1:], *spectra]
        if keep:
            ctx.save_for_backward(waves, obj, corners, step, propagator, weight, *saved)
        ctx.num_slices, ctx.checkerboard, ctx.chunk = obj.shape[0], checkerboard, chunk
        ctx.learn_propagator = learn_propagator
        return intensities if checkerboard else torch.fft.fftshift(intensities, dim=(-2, -1))

    @staticmethod
    def backward(ctx, grad_intensities):
        waves, obj, corners, step, propagator, weight, *saved = ctx.saved_tensors
        num, chunk = ctx.num_slices, ctx.chunk
        need_waves, need_obj, _, need_prop = ctx.needs_input_grad[:4]
        pixels = propagator.shape[-1] * propagator.shape[-2]
        grad_i = grad_intensities  # (B, n, m) real
        if not ctx.checkerboard:
            grad_i = torch.fft.ifftshift(grad_i, dim=(-2, -1))
        per_position = propagator.ndim == 4
        batch = waves.shape[0]
        grad_waves = torch.empty_like(waves) if need_waves else None
        grad_obj = torch.zeros_like(obj) if need_obj else None  # conj of ∂L/∂obj
        grad_step = torch.zeros_like(step) if need_prop else None  # conj of ∂L/∂step
        d_weight = torch.zeros_like(weight) if need_prop else None  # ∂L/∂(|P|²/N)
        patch = obj.new_empty((min(chunk, batch), 1, *waves.shape[-2:]))  # reused by every chunk
        per_chunk = 2 + (num - 1) * (2 if ctx.learn_propagator else 1)
        for index, lo in enumerate(range(0, batch, chunk)):
            hi = min(lo + chunk, batch)
            last, power, *rest = saved[index * per_chunk : (index + 1) * per_chunk]
            entering = [waves[lo:hi], *rest[: num - 1]]
            spectra = rest[num - 1 :]
            g_i = grad_i[lo:hi]
            if d_weight is not None:
                term = power * g_i
                if per_position:
                    d_weight[lo:hi, 0] = term
                else:
                    d_weight += term.sum(0)
            # conj of the gradient of the last spectrum: 2·conj(X)·Ī·|P|²/N
            scale = 2.0 * g_i * _rows_of(weight, lo, hi, squeeze=True)
            g_spectrum = torch.conj_physical(last).mul_(scale[:, None])
            g_psi = _slices_backward(
                g_spectrum,
                entering,
                spectra,
                _Windows(obj, corners[lo:hi], waves.shape[-2:], patch),
                _rows_of(step, lo, hi),
                grad_obj,
                None if grad_step is None else _rows_of(grad_step, lo, hi),
                per_position,
            )
            if grad_waves is not None:
                torch.conj_physical(g_psi, out=grad_waves[lo:hi])
        grad_prop = None
        if need_prop:
            # through |P|²/N: 2·P·∂L/∂w/N; through ``step`` = P/N: conj(grad_step)/N
            grad_prop = grad_step.conj_physical_().add_(propagator * (2.0 * d_weight)).div_(pixels)
            if ctx.checkerboard:
                grad_prop = torch.fft.ifftshift(grad_prop, dim=(-2, -1))
        if grad_obj is not None:
            grad_obj = grad_obj.conj_physical_()
        return grad_waves, grad_obj, None, grad_prop, None, None


class _Windows:
    """The windows of one chunk of positions in each slice of the object (S, H, W)
    (contiguous): :meth:`cut` copies a slice's patches into a reused (B, 1, n, m) tensor
    with one ``index_select`` of rows of m px, :meth:`add` adds their gradients into an
    object-sized tensor with one ``index_add_`` (overlapping windows add). One op per slice
    on any device, and the patches stay in cache: a stack of B patch views and a loop of B
    slice additions spent µs of Python per position, and the (B, S, n, m) stacks they
    made were written and read in main memory."""

    def __init__(self, obj: torch.Tensor, corners: torch.Tensor, size, patch: torch.Tensor):
        n, m = size
        height, width = obj.shape[-2:]
        self.size, self.positions = (n, m), len(corners)
        self.patch = patch[: self.positions]
        rows = corners[:, :1] + torch.arange(n, device=obj.device)  # (B, n) object rows
        self.row_starts = (rows * width + corners[:, 1:]).reshape(-1)  # flat px of each window row
        # every run of m px of a slice, in reading order (runs overlap; only read)
        self.runs = [plane.as_strided((height * width - m + 1, m), (1, 1)) for plane in obj]
        self._pixels = None

    def cut(self, s: int) -> torch.Tensor:
        """Patches (B, 1, n, m) of slice ``s`` (valid until the next cut)."""
        _, m = self.size
        torch.index_select(self.runs[s], 0, self.row_starts, out=self.patch.view(-1, m))
        return self.patch

    def add(self, target: torch.Tensor, s: int, patches: torch.Tensor) -> None:
        """Add ``patches (B, n, m)`` to slice ``s`` of ``target (S, H, W)`` (contiguous) in
        their windows."""
        if self._pixels is None:  # flat px of every window pixel
            self._pixels = (self.row_starts[:, None] + torch.arange(self.size[1], device=target.device)).reshape(-1)
        target[s].view(-1).index_add_(0, self._pixels, patches.reshape(-1))


def _rows_of(tensor: torch.Tensor, lo: int, hi: int, squeeze: bool = False) -> torch.Tensor:
    """Rows ``lo:hi`` of a per-position tensor (B, 1, n, m); a shared (n, m) one as is."""
    if tensor.ndim == 2:
        return tensor
    return tensor[lo:hi, 0] if squeeze else tensor[lo:hi]


def _slices_forward(psi, windows, step, keep: bool, learn_propagator: bool):
    """Transmit and propagate one chunk through every slice of its ``windows``; returns the
    waves entering each slice (if ``keep``), the spectra before each propagation (if the
    propagator is learned) and the last slice's spectrum."""
    num = len(windows.runs)
    entering, spectra = [], []
    transmitted = torch.empty_like(psi)  # reused: fresh memory per slice costs page faults
    for s in range(num):
        if keep:
            entering.append(psi)
        spectrum = torch.fft.fft2(torch.mul(psi, windows.cut(s), out=transmitted))
        if s == num - 1:
            return entering, spectra, spectrum
        if learn_propagator:
            spectra.append(spectrum)
            spectrum = spectrum * step
        else:
            spectrum = spectrum.mul_(step)
        psi = torch.fft.ifft2(spectrum, norm="forward")
    raise ValueError("no slices")


def _slices_backward(g_spectrum, entering, spectra, windows, step, grad_obj, grad_step, per_position):
    """The slice loop backwards for one chunk (conjugate gradients, see the module's
    docstring); adds to ``grad_obj`` and ``grad_step``; returns the conjugate gradient of
    the waves entering slice 0."""
    num = len(windows.runs)
    g_psi = None
    product = torch.empty_like(g_spectrum)  # reused: fresh memory per slice costs page faults
    for s in reversed(range(num)):
        g_x = torch.fft.fft2(g_spectrum)  # conj(x̄) = F conj(X̄)
        if grad_obj is not None:
            torch.mul(g_x, entering[s], out=product)
            windows.add(grad_obj, s, product if product.shape[1] == 1 else product.sum(1))
        g_psi = g_x.mul_(windows.cut(s))
        if s == 0:
            break
        g_y = torch.fft.ifft2(g_psi, norm="forward")  # conj of the gradient of the propagated wave
        if grad_step is not None:
            term = torch.mul(g_y, spectra[s - 1], out=product)
            grad_step += term.sum(dim=1, keepdim=True) if per_position else term.sum(dim=(0, 1))
        g_spectrum = g_y.mul_(step)
    return g_psi


def multislice_intensities(
    waves: torch.Tensor,
    obj: torch.Tensor,
    corners: torch.Tensor,
    propagator: torch.Tensor,
    checkerboard: bool = False,
) -> torch.Tensor:
    """Centred far-field intensities ``(B, n, m)`` summed over modes.

    ``waves (B, M, n, m)`` enter slice 0 of the windows of the object ``obj (S, H, W)``
    (each slice's transmission) with top-left ``corners (B, 2)`` (int, checked by the
    caller to lie inside ``obj``); after each slice the wave is propagated by
    ``propagator`` ((n, m), or (B, n, m) for one per position). Equals
    ``Σ_modes |far_field(exit wave)|²`` of :mod:`.multislice`'s plain loop on the patches
    :func:`.multislice.crop_patches` cuts. With ``checkerboard`` (even n, m only) ``waves`` are given
    multiplied by (−1)^(y+x) and the result is the same.
    """
    if checkerboard and (waves.shape[-1] % 2 or waves.shape[-2] % 2):
        raise ValueError(f"checkerboard needs an even window; waves are {tuple(waves.shape[-2:])} px")
    prop = propagator if propagator.ndim == 2 else propagator[:, None]
    batch, modes = waves.shape[:2]
    chunk = batch
    if waves.device.type == "cpu":
        most = max(1, min(batch, _CPU_CHUNK_BYTES // (modes * waves[0, 0].nbytes)))
        chunk = -(-batch // -(-batch // most))  # near-equal chunks: 72 as 3 × 24, not 32 + 32 + 8
    return _Multislice.apply(waves, obj.contiguous(), corners, prop, checkerboard, chunk)


def pass_bytes_per_position(pixels: int, num_modes: int, num_slices: int) -> int:
    """Bytes one scan position adds to a forward + backward pass of
    :func:`multislice_intensities` (with the probe's Fourier shift before it) on a window
    of ``pixels`` px: per slice and mode three waves, per mode four waves more, and three
    more for one slice's patches, their gradient and the index of their pixels (the
    patches are cut slice by slice; complex64, the index int64). The one memory model of
    this pass: MSP and the end-to-end step add to it what they hold besides
    (``ptycho/state.py``, ``joint/memory.py``); ``tests/joint/test_memory_estimates.py``
    checks it against the measured peak of both.
    """
    return pixels * _COMPLEX_BYTES * (3 * num_slices * num_modes + 4 * num_modes + 3)
