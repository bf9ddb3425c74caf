"""Per-op profile of one WRIMNet training step and one embedding batch against the plain baseline's.

    wrim bench profile --size 288x144 --batch 16 --infer-batch 16 --threads 1 --rounds 2

One training step is the engine's (``wrim bench step``'s, eager); one inference batch is the evaluation's
``EvalModel.embed`` of a mixed batch without flip. Both models run the same batch after one warm-up call;
``torch.profiler`` records ``--rounds`` calls of each, the two models alternating, and the tables list the ops
whose self time differs most between the two models (milliseconds of self time per call, on the CPU or, with
``--device cuda``, on the GPU: each op's minimum over the rounds, which on a shared machine is its least disturbed
measurement). Op call counts do not depend on the load.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch.profiler import ProfilerActivity, profile

from wrim.engine.benchmarks._cli import BenchParser
from wrim.engine.benchmarks._engine import bench_config, inference_call, training_call
from wrim.engine.benchmarks._timing import size_arg

__all__ = ["QUICK", "build_parser", "run"]

QUICK = ("--models", "wrimnet_resnet18", "baseline_resnet18", "--size", "64x32", "--batch", "8", "--infer-batch",
         "8", "--rounds", "1", "--rows", "5")  # fmt: skip

OpTimes = dict[str, tuple[float, int]]  # op name -> (self ms per call, calls)


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("profile", __doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs=2, default=["wrimnet_resnet50", "baseline_resnet50"])
    parser.add_argument("--size", type=size_arg, default=(288, 144), help="HxW")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--rows", type=int, default=18)
    parser.add_argument("--rounds", type=int, default=3, help="profiled calls per model (per-op minimum)")
    parser.add_argument("--threads", type=int, default=None)
    return parser


def _op_times(call: Callable[[], object], device: torch.device) -> OpTimes:
    """Self ms and call count per op name of one profiled call."""
    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as prof:
        call()
        if cuda:
            torch.cuda.synchronize(device)
    return {
        e.key: ((e.self_device_time_total if cuda else e.self_cpu_time_total) / 1e3, e.count)
        for e in prof.key_averages()
    }


def _interleaved(calls: list[Callable[[], object]], rounds: int, device: torch.device) -> list[OpTimes]:
    """Per-op minimum over ``rounds`` profiled calls of each, the calls alternating (after a warm-up call each)."""
    for call in calls:
        call()
    runs: list[list[OpTimes]] = [[] for _ in calls]
    for _ in range(rounds):
        for call, measured in zip(calls, runs, strict=True):
            measured.append(_op_times(call, device))
    return [
        {
            key: (min(run.get(key, (0.0, 0))[0] for run in model_runs), model_runs[0].get(key, (0.0, 0))[1])
            for key in set().union(*model_runs)
        }
        for model_runs in runs
    ]


def _table(title: str, ours: OpTimes, base: OpTimes, rows: int) -> list[str]:
    names = sorted(set(ours) | set(base), key=lambda k: -abs(ours.get(k, (0, 0))[0] - base.get(k, (0, 0))[0]))
    total_o, total_b = sum(v[0] for v in ours.values()), sum(v[0] for v in base.values())
    lines = [
        f"{title}: self time total {total_o:.0f} ms vs {total_b:.0f} ms ({total_o / total_b:.2f}x)",
        "",
        "| op | WRIMNet ms (calls) | baseline ms (calls) | extra ms |",
        "|---|---:|---:|---:|",
    ]
    for key in names[:rows]:
        (o, oc), (b, bc) = ours.get(key, (0.0, 0)), base.get(key, (0.0, 0))
        lines.append(f"| `{key}` | {o:.1f} ({oc}) | {b:.1f} ({bc}) | {o - b:+.1f} |")
    return lines


def run(args: argparse.Namespace) -> list[str]:
    """Prints the training-step and inference tables; returns them."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.models[0]} vs {args.models[1]}\n")
    configs = [bench_config(name, args.size, channels_last=False) for name in args.models]
    tables = []
    for title, batch, build in (
        (f"training step, batch {args.batch}", args.batch, training_call),
        (f"inference batch {args.infer_batch}", args.infer_batch, inference_call),
    ):
        ours, base = _interleaved([build(config, batch, device) for config in configs], args.rounds, device)
        table = _table(title, ours, base, args.rows)
        print("\n".join(table) + "\n", flush=True)
        tables += [*table, ""]
    return tables
