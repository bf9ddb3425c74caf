"""The benchmarks behind docs: Performance, one module per benchmark, run by ``wrim bench`` from the installed package.

| name | what it measures |
|---|---|
| ``layers`` | fused vs reference GRI / MIIM at the paper's placements: time and memory |
| ``losses`` | the vectorised CMKICLoss (against the tests' loop reference in a source checkout) |
| ``evaluation`` | ``wrim.evaluation.evaluate`` against a loop port of the field's reference code |
| ``models`` | parameters and FLOPs of WRIMNet and the baseline: the FLOP floor of the speed goals |
| ``step`` | the engine's training step and evaluation embedding, WRIMNet vs the baseline (CUDA by default) |
| ``miim_parts`` | each MIIM's gate and tail beside its FLOP share of the baseline's step |
| ``token_linear`` | TokenLinear's 1x1-convolution path against ``F.linear`` in the engine's step (CPU) |
| ``profile`` | per-op profile of the engine's step and embedding, WRIMNet vs the baseline |

Each module has ``build_parser()`` (its ``wrim bench NAME`` arguments), ``run(args)`` (prints Markdown tables as it
measures and returns them) and ``QUICK``, the arguments of its smallest run (``wrim bench --quick`` and the smoke
tests). Timing is ``wrim.engine.benchmarks._timing``'s: CUDA events after warm-up on a GPU, ``perf_counter`` on
the CPU, medians, the compared calls alternating.
"""

from __future__ import annotations

import argparse
from types import ModuleType
from typing import Any

import torch

from wrim.engine.benchmarks import evaluation, layers, losses, miim_parts, models, profile, step, token_linear

__all__ = ["BENCHMARKS", "add_bench_parser", "needs_missing_cuda", "parse", "run_bench"]

BENCHMARKS: dict[str, ModuleType] = {
    module.__name__.rsplit(".", 1)[1]: module
    for module in (layers, losses, evaluation, models, step, miim_parts, token_linear, profile)
}


def parse(name: str, argv: list[str]) -> argparse.Namespace:
    """The arguments of ``wrim bench NAME argv...``.

    Raises:
        ValueError: an unknown benchmark (the available ones listed) or a bad argument (one line).
    """
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    return BENCHMARKS[name].build_parser().parse_args(argv)


def needs_missing_cuda(args: argparse.Namespace) -> bool:
    """Whether parsed arguments ask for CUDA (``--device cuda``) on a machine without it."""
    return getattr(args, "device", "cpu").startswith("cuda") and not torch.cuda.is_available()


def add_bench_parser(sub: Any) -> None:
    """The ``wrim bench`` sub-command on the ``wrim`` parser's sub-parsers."""
    bench = sub.add_parser(
        "bench",
        help="run the package's benchmarks (wrim.engine.benchmarks) that apply to this machine",
        description="Runs the benchmarks of wrim.engine.benchmarks (docs: Performance); one with --device cuda is "
        "skipped without CUDA. After one NAME come its own arguments (wrim bench NAME --help).",
    )
    bench.add_argument("--quick", action="store_true", help="each benchmark at its smallest size (a smoke run)")
    bench.add_argument("--list", action="store_true", help="list the benchmarks and stop")
    bench.add_argument("names", nargs="*", metavar="NAME", help="only these benchmarks (default: every one)")
    bench.add_argument("options", nargs=argparse.REMAINDER, help="after one NAME: that benchmark's arguments")


def run_bench(args: argparse.Namespace) -> int:
    """The ``wrim bench`` handler: the named benchmarks (default every one), each skipped when it needs CUDA that
    this machine lacks.

    Raises:
        ValueError: arguments after more than one NAME, or with ``--quick``; an unknown benchmark or argument.
    """
    if args.list:
        for name, module in BENCHMARKS.items():
            print(f"{name:14s}{module.__doc__.splitlines()[0]}")
        return 0
    if args.options and (len(args.names) != 1 or args.quick):
        raise ValueError(f"arguments {args.options} apply to one benchmark without --quick: wrim bench NAME --flag ...")
    names = args.names or list(BENCHMARKS)
    parsed = {name: parse(name, list(BENCHMARKS[name].QUICK) if args.quick else args.options) for name in names}
    for name, options in parsed.items():
        if needs_missing_cuda(options):
            print(f"== {name}: skipped, needs CUDA (--device cpu runs it on the CPU)", flush=True)
            continue
        print(f"== {name}", flush=True)
        BENCHMARKS[name].run(options)
    return 0
