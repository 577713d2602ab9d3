"""One step of the end-to-end fit (:mod:`.end_to_end`): the amplitude loss of a minibatch
of one tilt (the forward model of :mod:`.forward`), the update it drives (a heavy-ball
step of the volume scaled by :func:`_gradient_scale`, an Adam step of each learned
per-tilt quantity), and the regularisers that follow each minibatch or each tilt
(:mod:`.regularizers`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..physics.loss import amplitude_error
from ..tomo.rotation import rotation_matrix
from . import regularizers as reg
from .distributed import all_reduce_grads
from .fit_state import _Learned, _Setup
from .params import JointParams

# Named constants of the fit (units in the comments)
#: intensity floor of the amplitude residual, in units of the mean pattern sum
_FLOOR = 1e-10


def _gradient_scale(run: _Setup, fit: _Learned) -> float:
    """max |∂L/∂V| of the first minibatch at V = 0 (then the largest seen), so that no voxel
    moves more than ``rates['volume'].step`` V in one update and a converged start stays put."""
    first = run.subsets[0][: run.batch_size]
    zero = torch.zeros_like(fit.volume, requires_grad=True)
    local = _local(run, first)
    if len(local):
        _data_loss(
            run,
            zero,
            fit.euler[0].detach(),
            fit.shifts[0].detach(),
            fit.probes[0].detach(),
            fit.positions[0].detach(),
            0,
            local,
            len(first),
        ).backward()
    all_reduce_grads([zero])
    return float(zero.grad.abs().max()) if zero.grad is not None else 0.0


# ---- the loss of one minibatch and the update


def _minibatches(index: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Adjacent positions in runs of ``batch_size`` (the order of the runs is shuffled)."""
    return [index[i : i + batch_size] for i in range(0, len(index), batch_size)]


def _local(run: _Setup, batch: np.ndarray) -> torch.Tensor:
    """This process's share of a minibatch's positions."""
    return torch.as_tensor(batch[run.rank :: run.size], dtype=torch.long)


def _data_loss(run: _Setup, volume, euler, shift, probes, positions, k: int, local, batch_len: int) -> torch.Tensor:
    """‖√I_model − √I‖² of this process's positions ``local`` of a minibatch of
    ``batch_len`` positions of tilt ``k``, per position (the amplitude loss, eq. 14-15)."""
    model = _intensities(
        volume,
        euler,
        shift,
        probes,
        positions[local.to(run.device)],
        run.propagator,
        run.params.num_slices,
        run.voxel,
        run.sigma,
        run.params.band_limit,
    )
    target = run.amplitudes[k][local].to(run.device)
    return amplitude_error(model, target, _FLOOR) / batch_len


def _batch_loss(run: _Setup, fit: _Learned, k: int, batch: np.ndarray) -> torch.Tensor:
    """The data loss of one minibatch of tilt ``k`` (0 where this process holds none of it)."""
    local = _local(run, batch)
    if not len(local):
        return torch.zeros((), device=run.device)
    return _data_loss(
        run, fit.volume, fit.euler[k], fit.shifts[k], fit.probes[k], fit.positions[k], k, local, len(batch)
    )


def _descend(run: _Setup, fit: _Learned, k: int, loss: torch.Tensor, learn: dict[str, bool]) -> None:
    """Gradients (summed over the processes), a heavy-ball step of the volume scaled so that
    no voxel moves more than ``rates['volume'].step`` V, and an Adam step of each per-tilt
    quantity learned in this pass."""
    tensors = fit.tensors_of_tilt(k)
    for t in tensors:
        t.grad = None
    loss.backward()
    all_reduce_grads(tensors)
    params = run.params
    with torch.no_grad():
        fit.volume_scale = max(fit.volume_scale, float(fit.volume.grad.abs().max())) or 1.0
        fit.velocity.mul_(params.momentum).add_(fit.volume.grad, alpha=params.rates["volume"].step / fit.volume_scale)
        fit.volume.sub_(fit.velocity)
    for name in _Learned.per_tilt_names:
        if learn[name]:
            fit.optimisers[name][k].step()


# ---- regularisers (in place)


def _after_minibatch(volume: torch.Tensor, params: JointParams, it: int) -> None:
    """After each minibatch: L1 shrinkage of Im V (You et al. eq. 17) and non-negativity."""
    if params.l1_imag and it >= params.l1_start:
        volume.copy_(reg.shrink_imag(volume, params.l1_imag))
    if params.nonnegative and it >= params.nonnegative_start:
        volume.copy_(reg.clip_negative(volume))


def _after_tilt(volume: torch.Tensor, before: torch.Tensor, euler: torch.Tensor, params: JointParams, it: int, voxel):
    """After each tilt: the k_z kernel on the tilt's update (along its beam), the Butterworth
    low-pass and the proximal total variation."""
    if params.kz_beta and it >= params.kz_start:
        beam = rotation_matrix(euler.detach())[2]  # beam direction in the volume frame
        volume.copy_(before + reg.kz_filter(volume - before, beam, params.kz_beta))
    if params.low_passes(it):
        volume.copy_(reg.butterworth_lowpass(volume, params.butterworth_cutoff, params.butterworth_order, voxel))
    if params.tv_weight and it >= params.tv_start:
        volume.copy_(reg.tv_prox(volume, params.tv_weight))


def _intensities(volume, euler, shift, probes, positions, propagator, num_slices, voxel, sigma, band_limit):
    from .forward import stem_intensities

    return stem_intensities(volume, euler, shift, probes, positions, propagator, num_slices, voxel, sigma, band_limit)


def _sum_ranks(value: torch.Tensor) -> torch.Tensor:
    from .distributed import all_reduce_sum

    return all_reduce_sum(value.clone())
