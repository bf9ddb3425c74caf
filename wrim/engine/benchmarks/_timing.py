"""How every benchmark times: CUDA events after warm-up on a GPU, ``time.perf_counter`` on the CPU, medians."""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

import torch

__all__ = ["median_ms", "paired_ms", "peak_memory_mb", "size_arg"]


def size_arg(text: str) -> tuple[int, int]:
    """``"288x144"`` -> ``(288, 144)`` (an argparse type).

    Raises:
        argparse.ArgumentTypeError: not two positive integers joined by ``x`` (argparse reports its message).
    """
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"an image size is HxW, e.g. 288x144; got {text!r}")
    return int(parts[0]), int(parts[1])


def _call_ms(step: Callable[[], object], device: torch.device) -> float:
    """Wall time of one call of ``step()`` in milliseconds (CUDA events on a GPU)."""
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        torch.cuda.synchronize(device)
        return start.elapsed_time(end)
    begin = time.perf_counter()
    step()
    return (time.perf_counter() - begin) * 1e3


def median_ms(step: Callable[[], object], device: torch.device, iters: int = 20, warmup: int = 3) -> float:
    """Median wall time of ``step()`` in milliseconds over ``iters`` calls, after ``warmup`` untimed calls."""
    return paired_ms([step], device, iters, warmup)[0]


def paired_ms(steps: Sequence[Callable[[], object]], device: torch.device, iters: int, warmup: int) -> list[float]:
    """Median ms of each step, the steps alternating call by call, so that a changing machine load (a shared
    machine) affects them alike; ratios of the results are the numbers to read."""
    for _ in range(warmup):
        for step in steps:
            step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(iters):
        for step, measured in zip(steps, times, strict=True):
            measured.append(_call_ms(step, device))
    return [statistics.median(measured) for measured in times]


def peak_memory_mb(step: Callable[[], object], device: torch.device) -> float:
    """Memory one call of ``step()`` needs: the peak CUDA allocation above the baseline on a GPU; on the CPU the
    bytes autograd saves for backward (activation memory), counted through saved-tensor hooks."""
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
