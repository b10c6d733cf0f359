"""Differentiable collectives for batch statistics and contrastive negatives across processes.

Both are no-ops in a single process. Their backward passes sum the incoming gradients over
ranks, so that, when every rank back-propagates its own loss, each rank's parameter gradient
is its share of the gradient of the sum of all ranks' losses: averaging the parameter
gradients over ranks (as the training loop does) then gives the gradient of the mean loss over
the global batch. Written here rather than taken from torch.distributed.nn.functional, whose
functions warn on every call (deprecated) and route all_gather's backward through scatter on gloo.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total


class _AllGather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.contiguous()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor)
        ctx.rows = len(tensor)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        total = grad.contiguous()
        dist.all_reduce(total)
        start = dist.get_rank() * ctx.rows
        return total[start : start + ctx.rows]


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of `tensor` over processes, differentiable."""
    return _AllReduceSum.apply(tensor) if world_size() > 1 else tensor


def gather_batch(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(global batch, offset of this rank's rows in it): the concatenation over processes in rank
    order, differentiable; every process must pass the same shape."""
    if world_size() == 1:
        return tensor, 0
    return _AllGather.apply(tensor), rank() * len(tensor)
