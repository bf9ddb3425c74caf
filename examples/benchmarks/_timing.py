"""Timing helpers shared by the benchmark scripts: CUDA events after warm-up on GPU, perf_counter on CPU."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

__all__ = ["median_ms", "peak_memory_mb"]


def median_ms(step: Callable[[], object], device: torch.device, iters: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``step()`` in milliseconds (CUDA events on GPU, after ``warmup`` calls)."""
    for _ in range(warmup):
        step()
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        for _ in range(iters):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            torch.cuda.synchronize(device)
            times.append(start.elapsed_time(end))
    else:
        for _ in range(iters):
            begin = time.perf_counter()
            step()
            times.append((time.perf_counter() - begin) * 1e3)
    return statistics.median(times)


def peak_memory_mb(step: Callable[[], object], device: torch.device) -> float:
    """Memory one call of ``step()`` needs: peak CUDA allocation above the baseline on GPU; on CPU the bytes
    autograd saves for backward (activation memory), counted through saved-tensor hooks."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        step()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - baseline) / 2**20
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(saved.values()) / 2**20
