"""The vectorised CMKICLoss at several batch sizes, beside the tests' loop reference when it is at hand.

    wrim bench losses --batch-sizes 64 128 256 --threads 1

Batches are sampler-shaped: ``B / (2 * num_instances)`` identities, each with ``num_instances`` visible and
``num_instances`` infrared embeddings. The loop reference is the plain Python / numpy implementation the tests
compare against (``tests/losses/losses_loop_reference.py`` of a source checkout, or ``--reference PATH``); without
it (an installed wheel) only the vectorised loss is timed. The reference always runs on the CPU, so a CUDA
speed-up compares a GPU forward with the CPU loop.
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

import wrim
from wrim.engine.benchmarks._cli import BenchParser
from wrim.engine.benchmarks._timing import median_ms
from wrim.losses import CMKICLoss

__all__ = ["QUICK", "build_parser", "run"]

CHECKOUT_REFERENCE = Path(wrim.__file__).resolve().parents[1] / "tests" / "losses" / "losses_loop_reference.py"
QUICK = ("--batch-sizes", "16", "32", "--dim", "8", "--repeats", "1", "--loop-repeats", "1", "--devices", "cpu")


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("losses", __doc__)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--dim", type=int, default=128, help="embedding size (WRIMNet's projection is 128)")
    parser.add_argument("--num-instances", type=int, default=4, help="samples per identity and modality")
    parser.add_argument("--k", type=int, default=2)
    parser.add_argument("--temperature", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=20, help="timed runs of the vectorised loss")
    parser.add_argument("--loop-repeats", type=int, default=3, help="timed runs of the loop reference")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--devices", nargs="+", default=["cpu", "cuda"], help="cuda is skipped when unavailable")
    parser.add_argument("--reference", type=Path, default=CHECKOUT_REFERENCE, help="the loop reference's file")
    return parser


def _load_reference(path: Path) -> Callable[..., float] | None:
    if not path.is_file():
        return None
    spec = importlib.util.spec_from_file_location("losses_loop_reference", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cmkic_reference


def _batch(batch: int, dim: int, num_instances: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if batch % (2 * num_instances):
        raise ValueError(f"batch {batch} must be a multiple of 2 * num_instances = {2 * num_instances}")
    g = torch.Generator().manual_seed(0)
    num_ids = batch // (2 * num_instances)
    labels = torch.arange(num_ids).repeat_interleave(2 * num_instances)
    modalities = torch.tensor(([0] * num_instances + [1] * num_instances) * num_ids)
    emb = torch.randn(num_ids, dim, generator=g)[labels] + torch.randn(batch, dim, generator=g)
    return emb, labels, modalities


def _forward(loss_fn: CMKICLoss, emb: torch.Tensor, labels: torch.Tensor, mods: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return loss_fn(emb, labels, modalities=mods)


def _forward_backward(loss_fn: CMKICLoss, emb: torch.Tensor, labels: torch.Tensor, mods: torch.Tensor) -> None:
    loss_fn(emb.detach().requires_grad_(True), labels, modalities=mods).backward()


def run(args: argparse.Namespace) -> list[str]:
    """Prints one Markdown row per (batch, device); returns the table."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    reference = _load_reference(args.reference)
    loss_fn = CMKICLoss(k=args.k, temperature=args.temperature)
    devices = [d for d in args.devices if d != "cuda" or torch.cuda.is_available()]
    found = args.reference if reference is not None else "not found"
    print(f"CMKICLoss(k={args.k}, temperature={args.temperature}), dim {args.dim}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; loop reference: {found}\n")  # fmt: skip
    rows = [
        "| device | batch | loop reference, CPU (ms) | vectorised forward (ms) | vectorised fwd+bwd (ms) "
        "| speed-up (forward) | abs. difference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(rows), flush=True)
    for batch in args.batch_sizes:
        emb_cpu, labels_cpu, mods_cpu = _batch(batch, args.dim, args.num_instances)
        if reference is not None:
            run_reference = partial(reference, emb_cpu, labels_cpu, mods_cpu, args.k, args.temperature)
            expected = run_reference()
            loop_ms = median_ms(run_reference, torch.device("cpu"), args.loop_repeats, warmup=0)
        for name in devices:
            device = torch.device(name)
            emb, labels, mods = (t.to(device) for t in (emb_cpu, labels_cpu, mods_cpu))
            fwd_ms = median_ms(partial(_forward, loss_fn, emb, labels, mods), device, args.repeats)
            fwd_bwd_ms = median_ms(partial(_forward_backward, loss_fn, emb, labels, mods), device, args.repeats)
            if reference is None:
                loop, speed, diff = "–", "–", "–"
            else:
                diff = f"{abs(_forward(loss_fn, emb, labels, mods).item() - expected):.1e}"
                loop, speed = f"{loop_ms:.1f}", f"{loop_ms / fwd_ms:.0f}x"
            rows.append(f"| {name} | {batch} | {loop} | {fwd_ms:.3f} | {fwd_bwd_ms:.3f} | {speed} | {diff} |")
            print(rows[-1], flush=True)
    return rows
