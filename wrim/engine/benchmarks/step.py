"""The engine's training step and evaluation embedding, WRIMNet vs the plain baseline, side by side in one run.

    wrim bench step                                           # CUDA: resnet50 pair, 288x144 and 384x128
    wrim bench step --device cpu --batch 16 --sizes 288x144 --iters 3 --modes eager --infer-batch 16

A training step is the engine's own (``wrim.engine.build.build_step`` on the models, loss and optimiser that
``wrim.engine.build`` makes from ``--config``): forward with the batch's host-counted visible count, the ID loss on
every head + AICL, backward, optimiser update; bf16 autocast on CUDA, fp32 on the CPU (the config's ``amp: auto``).
Batches are sampler-shaped (ids x (4 visible + 4 infrared)). Modes set the config's keys: ``eager``
(``model.channels_last=false``), ``channels_last``, ``compiled`` (channels_last + ``model.compile=true``: the whole
step as one graph; "first s" is the first call, compilation included). Inference is the evaluation's call,
``EvalModel.embed`` without flip, embeddings/s at ``--infer-batch`` (compiled: ``model.compile()``, as ``wrim eval
--compile``). The two models' calls alternate, so that a changing machine load affects them alike; each time is the
median of ``--iters`` after ``--warmup``. On the CPU the eager rows also give the activation memory of one step
(bytes autograd saves for backward).
"""

from __future__ import annotations

import argparse
import time

import torch

from wrim.engine.benchmarks._cli import BenchParser
from wrim.engine.benchmarks._engine import bench_config, inference_call, training_call
from wrim.engine.benchmarks._timing import paired_ms, peak_memory_mb, size_arg
from wrim.engine.config import Config

__all__ = ["QUICK", "build_parser", "run"]

MODES = {"eager": (False, False), "channels_last": (True, False), "compiled": (True, True)}
QUICK = (
    "--device", "cpu", "--models", "wrimnet_resnet18", "baseline_resnet18", "--sizes", "64x32", "--batch", "8",
    "--modes", "eager", "--infer-batch", "8", "--iters", "1", "--warmup", "1",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("step", __doc__)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--config", default="sysu", help="the shipped config whose loss, optimiser and amp to use")
    parser.add_argument(
        "--models", nargs=2, default=["wrimnet_resnet50", "baseline_resnet50"], metavar=("MODEL", "BASE")
    )
    parser.add_argument("--sizes", type=size_arg, nargs="+", default=[(288, 144), (384, 128)], help="HxW")
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    parser.add_argument("--compile-batch", type=int, nargs="*", default=[64], help="batches timed in compiled mode")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    return parser


def _configs(args: argparse.Namespace, size: tuple[int, int], mode: str) -> list[Config]:
    """The two models' configs: ``--config`` with the model, the size and the mode's keys."""
    channels_last, compile = MODES[mode]
    return [
        bench_config(n, size, config=args.config, channels_last=channels_last, compile=compile) for n in args.models
    ]


def _first_call_s(call, device: torch.device) -> float:
    begin = time.perf_counter()
    call()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - begin


def _training_row(
    args: argparse.Namespace, size: tuple[int, int], mode: str, batch: int, device: torch.device
) -> tuple[str, str | None]:
    """One training-table row, and on the CPU in eager mode one memory-table row."""
    calls = [training_call(config, batch, device) for config in _configs(args, size, mode)]
    first = _first_call_s(calls[0], device)
    ours, theirs = paired_ms(calls, device, args.iters, args.warmup)
    where = f"| {size[0]}x{size[1]} | {batch} |"
    rate = batch / ours * 1e3
    row = f"{where} {mode} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.3f}x | {rate:.2f} | {first:.1f} |"
    if mode != "eager" or device.type != "cpu":
        return row, None
    ours_mb, theirs_mb = (peak_memory_mb(call, device) for call in calls)
    return row, f"{where} {ours_mb:.0f} | {theirs_mb:.0f} | {ours_mb / theirs_mb:.3f}x |"


def _training_rows(args: argparse.Namespace, device: torch.device) -> tuple[list[str], list[str]]:
    model, base = args.models
    rows = [f"| input | batch | mode | {model} ms | {base} ms | step ratio | {model} img/s | first s |",
            "|---|---:|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    memory = [f"| input | batch | {model} saved MB | {base} saved MB | memory ratio |", "|---|---:|---:|---:|---:|"]
    print("\n".join(rows), flush=True)
    for size in args.sizes:
        for mode in args.modes:
            for batch in [b for b in args.batch if mode != "compiled" or b in args.compile_batch]:
                row, memory_row = _training_row(args, size, mode, batch, device)
                rows.append(row)
                memory += [memory_row] if memory_row else []
                print(row, flush=True)
    return rows, memory if len(memory) > 2 else []


def _inference_rows(args: argparse.Namespace, device: torch.device) -> list[str]:
    model, base = args.models
    rows = [f"| input | mode | {model} emb/s | {base} emb/s | throughput ratio |", "|---|---|---:|---:|---:|"]
    print("\n" + "\n".join(rows), flush=True)
    for size in args.sizes:
        for mode in args.modes:
            calls = [inference_call(config, args.infer_batch, device) for config in _configs(args, size, mode)]
            ours, theirs = (args.infer_batch / ms * 1e3 for ms in paired_ms(calls, device, args.iters, args.warmup))
            rows.append(f"| {size[0]}x{size[1]} | {mode} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.3f}x |")
            print(rows[-1], flush=True)
    return rows


def run(args: argparse.Namespace) -> list[str]:
    """Prints the training, inference and (CPU) memory tables as they are measured; returns them."""
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, {torch.get_num_threads()} threads, torch {torch.__version__}, config {args.config}, "
          f"{args.models[0]} vs {args.models[1]}\n", flush=True)  # fmt: skip
    training, memory = _training_rows(args, device)
    inference = _inference_rows(args, device)
    tables = [*training, "", *inference, *([""] + memory if memory else [])]
    print("\n" + "\n".join(tables))
    return tables
