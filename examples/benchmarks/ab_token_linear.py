"""TokenLinear against plain F.linear in one process: the same models, the two paths alternating call by call.

    python examples/benchmarks/ab_token_linear.py --model wrimnet_resnet50 --size 288x144 --batch 16 --infer-batch 16

Times ``bench_step.py``'s training step and ``embed`` batch of the baseline and of ``--model`` with the 1x1
convolution path and with it switched off (``TokenLinear.forward`` replaced by ``nn.Linear.forward`` and GRI's
``token_linear`` by ``F.linear``), interleaved so that a changing machine load affects all three alike; prints the
medians and the ratios to the baseline (time ratios: above 1 is slower).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import inference_step, train_step  # noqa: E402

import wrim.layers.gri as gri_module  # noqa: E402
from wrim.layers.token_linear import TokenLinear  # noqa: E402

_CONV_FORWARD, _CONV_FUNCTION = TokenLinear.forward, gri_module.token_linear


def use_convolution(enable: bool) -> None:
    """Switch every TokenLinear (and GRI's pooled-keys projections) between the 1x1 convolution path and F.linear."""
    TokenLinear.forward = _CONV_FORWARD if enable else nn.Linear.forward
    gri_module.token_linear = (
        _CONV_FUNCTION if enable else (lambda tokens, weight, bias: F.linear(tokens, weight, bias))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="wrimnet_resnet50")
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(288, 144))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    bench = argparse.Namespace(device="cpu", profile=False, infer_batch=args.infer_batch)
    baseline = args.model.replace("wrimnet_", "baseline_")
    for kind in ("train", "infer"):
        if kind == "train":
            steps = [train_step(bench, name, args.size, args.batch, "eager") for name in (baseline, args.model)]
        else:
            steps = [inference_step(bench, name, args.size, "eager") for name in (baseline, args.model)]
        times: dict[str, list[float]] = {"baseline": [], "F.linear": [], "TokenLinear": []}
        for index in range(args.warmup + args.iters):
            for label, step, convolution in (
                ("baseline", steps[0], True),
                ("F.linear", steps[1], False),
                ("TokenLinear", steps[1], True),
            ):
                use_convolution(convolution)
                begin = time.perf_counter()
                step()
                if index >= args.warmup:
                    times[label].append((time.perf_counter() - begin) * 1e3)
        use_convolution(True)
        median = {label: statistics.median(values) for label, values in times.items()}
        batch = args.batch if kind == "train" else args.infer_batch
        print(
            f"{args.model} {args.size[0]}x{args.size[1]} {kind} batch {batch}: baseline {median['baseline']:.0f} ms | "
            + " | ".join(
                f"{label} {median[label]:.0f} ms ({median[label] / median['baseline']:.3f}x)"
                for label in ("F.linear", "TokenLinear")
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
