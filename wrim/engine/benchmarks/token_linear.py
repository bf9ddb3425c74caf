"""TokenLinear's 1x1-convolution path against plain ``F.linear``, in the engine's training step and embedding.

    wrim bench token_linear --model wrimnet_resnet50 --size 288x144 --batch 16 --infer-batch 16

On the CPU, ``wrim.layers.TokenLinear`` (and GRI's pooled-key projections) run a product of at least
``wrim.layers.token_linear.CONV_MIN_MACS`` multiply-adds as a 1x1 convolution. This benchmark times the baseline
and ``--model`` with that threshold as shipped (``TokenLinear``) and raised above every product (``F.linear``: the
layers' own ``F.linear`` branch), the three calls alternating so that a changing machine load affects them alike.
It prints the medians and the ratios to the baseline (time ratios: above 1 is slower). CPU only: other devices
always take ``F.linear``.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable, Iterator

import torch

import wrim.layers.token_linear as token_linear_module
from wrim.engine.benchmarks._cli import BenchParser
from wrim.engine.benchmarks._engine import bench_config, inference_call, training_call
from wrim.engine.benchmarks._timing import paired_ms, size_arg

__all__ = ["QUICK", "build_parser", "linear_path", "run"]

QUICK = ("--model", "wrimnet_resnet18", "--size", "64x32", "--batch", "8", "--infer-batch", "8", "--iters", "1",
         "--warmup", "0")  # fmt: skip
NEVER = 2**62  # more multiply-adds than any product: every TokenLinear takes F.linear


@contextlib.contextmanager
def linear_path(convolution: bool) -> Iterator[None]:
    """Within the block, products reach the 1x1-convolution path at the shipped threshold (``convolution``) or
    never; the shipped ``CONV_MIN_MACS`` is restored on exit."""
    shipped = token_linear_module.CONV_MIN_MACS
    token_linear_module.CONV_MIN_MACS = shipped if convolution else NEVER
    try:
        yield
    finally:
        token_linear_module.CONV_MIN_MACS = shipped


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("token_linear", __doc__)
    parser.add_argument("--model", default="wrimnet_resnet50")
    parser.add_argument("--size", type=size_arg, default=(288, 144), help="HxW")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    return parser


def _with_path(call: Callable[[], object], convolution: bool) -> Callable[[], None]:
    def run_call() -> None:
        with linear_path(convolution):
            call()

    return run_call


def run(args: argparse.Namespace) -> list[str]:
    """Prints one line for the training step and one for the embedding; returns them."""
    cpu = torch.device("cpu")
    baseline = args.model.replace("wrimnet_", "baseline_")
    configs = [bench_config(name, args.size, channels_last=False) for name in (baseline, args.model)]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CONV_MIN_MACS "
          f"{token_linear_module.CONV_MIN_MACS}\n")  # fmt: skip
    lines = []
    for kind, batch, build in (("train", args.batch, training_call), ("infer", args.infer_batch, inference_call)):
        base_call, model_call = (build(config, batch, cpu) for config in configs)
        calls = [base_call, _with_path(model_call, False), _with_path(model_call, True)]
        base_ms, linear_ms, conv_ms = paired_ms(calls, cpu, args.iters, args.warmup)
        lines.append(
            f"{args.model} {args.size[0]}x{args.size[1]} {kind} batch {batch}: baseline {base_ms:.0f} ms | "
            f"F.linear {linear_ms:.0f} ms ({linear_ms / base_ms:.3f}x) | "
            f"TokenLinear {conv_ms:.0f} ms ({conv_ms / base_ms:.3f}x)"
        )
        print(lines[-1], flush=True)
    return lines
