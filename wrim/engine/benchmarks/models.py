"""WRIMNet vs the plain baseline: parameters and FLOPs per image, the floor of the speed goals' time ratios.

    wrim bench models                                         # resnet50 pair at 288x144 and 384x128
    wrim bench models --models wrimnet_resnet18 baseline_resnet18 --sizes 64x32 --tables

``wrim.models.summary`` counts an eval-mode forward of one visible and one infrared image, 2 FLOPs per
multiply-add, each sample routed through its own ModalityMIIM copy (as the trainer and ``embed`` run it). The ratio
to the last model is the floor a time ratio can reach at equal FLOP rates: a training step cannot be faster than
it, inference throughput not higher than its inverse. The times are ``wrim bench step``'s. ``--tables`` also prints
each model's per-stage / per-MIIM table.
"""

from __future__ import annotations

import argparse

import torch

from wrim.engine.benchmarks._cli import BenchParser
from wrim.engine.benchmarks._engine import bench_config, engine_model
from wrim.engine.benchmarks._timing import size_arg
from wrim.models import summary

__all__ = ["QUICK", "build_parser", "run"]

QUICK = ("--models", "wrimnet_resnet18", "baseline_resnet18", "--sizes", "64x32")


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("models", __doc__)
    parser.add_argument("--models", nargs="+", default=["wrimnet_resnet50", "baseline_resnet50"], help="last = ref.")
    parser.add_argument("--sizes", type=size_arg, nargs="+", default=[(288, 144), (384, 128)], help="HxW")
    parser.add_argument("--tables", action="store_true", help="print each model's per-stage summary table")
    return parser


def run(args: argparse.Namespace) -> list[str]:
    """Prints one Markdown row per (size, model); returns the table."""
    print(f"torch {torch.__version__}; GFLOPs per image, eval forward, ModalityMIIM routed by modality\n")
    rows = [
        "| model | input | params (M) | GFLOPs/img | of which MIIM | GFLOP ratio |",
        "|---|---|---:|---:|---:|---:|",
    ]
    print("\n".join(rows), flush=True)
    for size in args.sizes:
        counted = {}
        for name in args.models:
            counted[name] = summary(engine_model(bench_config(name, size), torch.device("cpu")), size)
            if args.tables:
                print(f"\n{name} at {size[0]}x{size[1]}:\n{counted[name]}\n")
        reference = counted[args.models[-1]].total.gflops
        for name, result in counted.items():
            rows.append(
                f"| {name} | {size[0]}x{size[1]} | {result.total.params / 1e6:.2f} | {result.total.gflops:.2f} "
                f"| {result.miim_total.gflops:.2f} | {result.total.gflops / reference:.3f} |"
            )
            print(rows[-1], flush=True)
    return rows
