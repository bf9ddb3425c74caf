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

import torch

from wrim.engine.benchmarks import evaluation, layers, losses, miim_parts, models, profile, step, token_linear

__all__ = ["BENCHMARKS", "needs_missing_cuda", "parse"]

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
