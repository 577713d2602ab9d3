"""Scale-out over ``torch.distributed`` (gloo on CPU, NCCL on GPU), started by ``torchrun``.

Every rank holds the whole volume and runs the same updates; the work of a step (the
positions of a 4D-STEM minibatch, or the tilts of a plane-wave gradient) is shared among
the ranks and the gradients are summed with ``all_reduce``, so every rank takes the same
step and 2 processes give the result of 1 within floating-point tolerance.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

__all__ = ["world", "init_from_environment", "all_reduce_grads", "all_reduce_sum", "rank_device"]


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) without an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def init_from_environment(device: torch.device) -> None:
    """Join the process group that ``torchrun`` describes (``WORLD_SIZE`` > 1), once."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not dist.is_available() or dist.is_initialized():
        return
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")


def rank_device(device: torch.device) -> torch.device:
    """With several ranks on CUDA, each rank uses the GPU of its ``LOCAL_RANK``."""
    if device.type == "cuda" and world()[1] > 1 and device.index is None:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks in place (complex tensors as real pairs)."""
    if world()[1] > 1:
        view = torch.view_as_real(tensor) if tensor.is_complex() else tensor
        dist.all_reduce(view, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_grads(tensors) -> None:
    """Sum the ``.grad`` of each tensor over the ranks (missing grads count as zero)."""
    if world()[1] <= 1:
        return
    for t in tensors:
        if t.grad is None:
            t.grad = torch.zeros_like(t)
        all_reduce_sum(t.grad)
