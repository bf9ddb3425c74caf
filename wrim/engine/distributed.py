"""Multi-process training through ``torchrun``: process-group setup from environment variables.

``torchrun --nproc_per_node=N -m wrim train ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; `init_distributed()` reads them and starts the process group with NCCL on CUDA and gloo on
the CPU. Without them (a plain ``wrim train``) it returns a single-process `DistInfo` and starts nothing. The
collectives that make N processes train like one (gathered metric losses, cross-rank BatchNorm, sharded evaluation)
are in `wrim.distributed`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

__all__ = ["DistInfo", "barrier", "init_distributed", "resolve_device", "shutdown_distributed"]


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
        """Whether more than one process takes part."""
        return self.world_size > 1

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
