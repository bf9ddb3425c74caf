r"""Distributed training's one home: the process group and the collectives that make N processes compute what one
process computes on the whole batch (docs: Training).

- **process group**: ``torchrun --nproc_per_node=N -m wrim train ...`` sets ``RANK``, ``WORLD_SIZE``,
  ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; `init_distributed()` reads them and starts the process group
  with NCCL on CUDA and gloo on the CPU (a single-process `DistInfo` without them).
- **collectives**: `all_gather_with_grad()`, `all_reduce_with_grad()`, `gather_shards()`, `shard_range()`, used by
  the losses, the layers (``wrim.layers.CrossRankBatchNorm``, ``ModalityMIIM``) and the evaluation. Each is a
  no-op without an initialised process group (a single process), so losses and layers stay usable anywhere.

`is_distributed()` is the one answer to "is this a multi-process run?".

[D] Gradient bookkeeping under DDP (docs: Training, section Multi-GPU and multi-node). Rank ``r`` holds
the shard ``x_r`` of the global batch and DDP averages the parameter gradients of the per-rank losses. With
`all_gather_with_grad()` every rank computes the same global metric loss ``M`` of all shards; its backward sums the
incoming gradients over ranks, so rank ``r`` receives ``N`` times the gradient of ``M`` with respect to ``x_r``:

$$
\frac{1}{N} \sum_{r} \sum_{q} \frac{\partial M}{\partial x_r} \frac{\partial x_r}{\partial \theta}
= \sum_r \frac{\partial M}{\partial x_r} \frac{\partial x_r}{\partial \theta}
= \frac{\partial M}{\partial \theta}
$$

so the DDP average is exactly the single-process gradient and no loss scaling is needed (pytorch-metric-learning's
``DistributedLossWrapper`` instead keeps gradient on the local rows only and multiplies the loss by N). The same
argument holds for the all-reduced batch-norm sums of ``wrim.layers.CrossRankBatchNorm`` and ``ModalityMIIM``. A
per-sample mean computed per rank (the ID cross-entropy) averages to the global mean when every rank holds the same
number of samples, which `wrim.data.IdentityModalitySampler` guarantees.

Shape legend: ``n`` rows on this rank, ``N`` ranks, ``D`` feature size, ``C`` channels.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = [
    "DistInfo",
    "all_gather_with_grad",
    "all_reduce_with_grad",
    "barrier",
    "gather_shards",
    "init_distributed",
    "is_distributed",
    "resolve_device",
    "shard_range",
    "shutdown_distributed",
]


def is_distributed() -> bool:
    """Whether a process group with more than one rank is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's (n, ...) tensor in rank order; backward sums the gradients over ranks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # (n, ...) -> (N * n, ...)
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # (N * n, ...) -> (n, ...)
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss may depend on this rank's rows
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows in rank order, with gradient flowing back to the rows' owner. (n, ...) -> (N * n, ...).

    Every rank must pass the same shape (equal shards; gloo and NCCL require it). Integer tensors (labels,
    modalities) are gathered without gradient. A single process returns ``x`` itself.
    """
    if not is_distributed():
        return x
    if not x.is_floating_point():
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)
    return _AllGatherWithGrad.apply(x)


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over ranks; the backward sums the incoming gradients over ranks (every rank's loss reads the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # (...) -> (...)
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # (...) -> (...)
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over ranks; backward sums the gradients over ranks. Identity in a single process."""
    if not is_distributed():
        return x
    return _AllReduceWithGrad.apply(x)


def shard_range(total: int, rank: int | None = None, world_size: int | None = None) -> range:
    """The contiguous block of ``range(total)`` that ``rank`` handles (the first ``total % N`` ranks get one more).

    Defaults to this process's rank and world size (0 and 1 without a process group).
    """
    if world_size is None:
        world_size = dist.get_world_size() if is_distributed() else 1
    if rank is None:
        rank = dist.get_rank() if is_distributed() else 0
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def gather_shards(x: torch.Tensor, total: int) -> torch.Tensor:
    """Reassemble the `shard_range()` blocks of every rank in order, on every rank. (n_r, D) -> (total, D).

    Unequal blocks are padded to the largest for the all_gather (gloo and NCCL need equal shapes) and trimmed after.
    No gradient. A single process returns ``x``.
    """
    if not is_distributed():
        return x
    world = dist.get_world_size()
    sizes = [len(shard_range(total, r, world)) for r in range(world)]
    if x.shape[0] != sizes[dist.get_rank()]:
        raise ValueError(f"this rank holds {x.shape[0]} rows; shard_range({total}) gives it {sizes[dist.get_rank()]}")
    padded = x.new_zeros((max(sizes), *x.shape[1:]))  # (max n_r, D)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])  # (total, D)


# ---------------------------------------------------------------------------------------------- process group


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job.

    Args:
        rank: global rank (0 writes files and evaluates).
        world_size: number of processes.
        local_rank: rank on this node (selects the CUDA device).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        """Whether more than one process takes part: `is_distributed()`, the one test."""
        return is_distributed()

    @property
    def is_main(self) -> bool:
        """Whether this is rank 0."""
        return self.rank == 0


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` becomes ``cuda:<local_rank>`` when CUDA is available, else ``cpu``; others pass through.

    Raises:
        ValueError: CUDA requested on a machine without it.
    """
    if device == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available; use device=cpu or device=auto")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device(f"cuda:{local_rank}")
    return dev


def init_distributed(device: torch.device) -> DistInfo:
    """Starts the process group when ``WORLD_SIZE > 1`` (set by torchrun), else returns a single-process info.

    Args:
        device: this process's device; CUDA selects NCCL (and ``torch.cuda.set_device``), CPU selects gloo.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend, rank=rank, world_size=world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def barrier(info: DistInfo) -> None:
    """Waits for every process (no-op in a single process)."""
    if info.distributed:
        dist.barrier()


def shutdown_distributed(info: DistInfo) -> None:
    """Destroys the process group started by `init_distributed()`."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()
