"""Micro-benchmark: vectorised CMKICLoss vs the loop reference of the tests, at several batch sizes.

The loop reference is the plain Python / numpy implementation in ``tests/losses/losses_loop_reference.py`` (run
from a repository checkout). Batches are sampler-shaped: ``B / (2 * num_instances)`` identities, each with
``num_instances`` visible and ``num_instances`` infrared samples. CPU times are medians of wall-clock
``time.perf_counter`` runs; CUDA times are medians of CUDA-event timings after a warm-up (the loop reference always
runs on the CPU, so the CUDA speed-up compares a GPU forward with the CPU loop). Prints a markdown table.

Example:
    python examples/benchmarks/bench_losses.py --batch-sizes 64 128 256 --threads 1
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from wrim.losses import CMKICLoss

__all__ = ["main"]

REFERENCE = Path(__file__).resolve().parents[2] / "tests" / "losses" / "losses_loop_reference.py"


def _load_reference() -> Callable[..., float]:
    if not REFERENCE.is_file():
        sys.exit(f"the loop reference {REFERENCE} was not found; run this script from a wrim repository checkout")
    spec = importlib.util.spec_from_file_location("losses_loop_reference", REFERENCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cmkic_reference


def _batch(batch: int, dim: int, num_instances: int, device: torch.device, seed: int = 0):
    if batch % (2 * num_instances):
        raise ValueError(f"batch {batch} must be a multiple of 2 * num_instances = {2 * num_instances}")
    g = torch.Generator().manual_seed(seed)
    num_ids = batch // (2 * num_instances)
    labels = torch.arange(num_ids).repeat_interleave(2 * num_instances)
    modalities = torch.tensor(([0] * num_instances + [1] * num_instances) * num_ids)
    emb = torch.randn(num_ids, dim, generator=g)[labels] + torch.randn(batch, dim, generator=g)
    return emb.to(device), labels.to(device), modalities.to(device)


def _time_cpu(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def _time_cuda(fn: Callable[[], object], repeats: int) -> float:
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _forward(loss_fn: CMKICLoss, emb: torch.Tensor, labels: torch.Tensor, mods: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loss_fn(emb, labels, modalities=mods)


def _forward_backward(loss_fn: CMKICLoss, emb: torch.Tensor, labels: torch.Tensor, mods: torch.Tensor) -> None:
    loss_fn(emb.detach().requires_grad_(True), labels, modalities=mods).backward()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--dim", type=int, default=128, help="embedding size (WRIMNet's projection is 128)")
    parser.add_argument("--num-instances", type=int, default=4, help="samples per identity and modality")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of the vectorised loss")
    parser.add_argument("--loop-repeats", type=int, default=3, help="timed runs of the loop reference")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="cuda is skipped when unavailable")
    args = parser.parse_args(argv)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    reference = _load_reference()
    loss_fn = CMKICLoss(k=args.k, temperature=args.temperature)
    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    print(
        f"CMKICLoss(k={args.k}, temperature={args.temperature}), dim={args.dim}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads"
    )
    print()
    print(
        "| device | batch | loop reference, CPU (ms) | vectorised forward (ms) | vectorised fwd+bwd (ms) "
        "| speed-up (forward) | abs. difference |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for batch in args.batch_sizes:
        emb_cpu, labels_cpu, mods_cpu = _batch(batch, args.dim, args.num_instances, torch.device("cpu"))
        run_reference = partial(reference, emb_cpu, labels_cpu, mods_cpu, args.k, args.temperature)
        expected = run_reference()
        loop_ms = _time_cpu(run_reference, args.loop_repeats)
        for name in devices:
            device = torch.device(name)
            emb, labels, mods = (t.to(device) for t in (emb_cpu, labels_cpu, mods_cpu))
            timer = _time_cuda if device.type == "cuda" else _time_cpu
            fwd_ms = timer(partial(_forward, loss_fn, emb, labels, mods), args.repeats)
            fwd_bwd_ms = timer(partial(_forward_backward, loss_fn, emb, labels, mods), args.repeats)
            diff = abs(_forward(loss_fn, emb, labels, mods).item() - expected)
            print(
                f"| {name} | {batch} | {loop_ms:.1f} | {fwd_ms:.3f} | {fwd_bwd_ms:.3f} | "
                f"{loop_ms / fwd_ms:.0f}x | {diff:.1e} |"
            )


if __name__ == "__main__":
    main()
