"""Fused vs reference GRI and MIIM at the paper's four placements: time (forward + backward) and memory.

    python examples/benchmarks/bench_layers.py                      # CPU, batch 64, both input sizes
    python examples/benchmarks/bench_layers.py --device cuda --dtype bfloat16 --kv-pool 1 2

``--modules gri`` times GRI alone on the compressed map (B, C/r, H/s, W/s), where the attention is all the work;
``miim`` times the whole block on the stage's feature map (B, C, H, W).

Prints a markdown table. CUDA timings use CUDA events after warm-up (median of --iters); on CPU, perf_counter.
Memory is the peak CUDA allocation of one step on GPU, and the activation memory autograd saves on CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms, peak_memory_mb  # noqa: E402

from wrim import GRI, MIIM  # noqa: E402

# (stage, channels, reduction, stride) of paper.md §1; feature maps are the input size / (4, 8, 16, 16).
PLACEMENTS = [(1, 256, 2, 4), (2, 512, 2, 2), (3, 1024, 4, 1), (4, 2048, 4, 1)]
MAP_DIVISOR = {1: 4, 2: 8, 3: 16, 4: 16}


def run(args: argparse.Namespace) -> list[str]:
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    rows = [
        "| module | input | stage | C, r, s | tokens | kv_pool | fused ms | reference ms | speed-up | fused MB "
        "| reference MB | memory ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for height, width in args.sizes:
        for stage, channels, reduction, stride in PLACEMENTS:
            if args.stages and stage not in args.stages:
                continue
            map_h, map_w = height // MAP_DIVISOR[stage], width // MAP_DIVISOR[stage]
            for kind, kv_pool in [(kind, kv_pool) for kind in args.modules for kv_pool in args.kv_pool]:
                if kind == "gri":
                    dim = channels // reduction
                    module = GRI(dim, kv_pool=kv_pool).to(device)
                    shape = (args.batch, dim, -(-map_h // stride), -(-map_w // stride))
                else:
                    module = MIIM(channels, reduction=reduction, stride=stride, kv_pool=kv_pool).to(device)
                    module = module.to(memory_format=torch.channels_last)
                    shape = (args.batch, channels, map_h, map_w)
                x = torch.randn(*shape, device=device).to(memory_format=torch.channels_last).requires_grad_(True)

                def step(module: torch.nn.Module = module, x: torch.Tensor = x) -> None:
                    with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                        out = module(x)
                    out.float().mean().backward()

                result = {}
                for fused in (True, False):
                    module.fused_attn = fused
                    result[fused] = (median_ms(step, device, args.iters, args.warmup), peak_memory_mb(step, device))
                tokens = -(-map_h // stride) * -(-map_w // stride)
                (fast_ms, fast_mb), (ref_ms, ref_mb) = result[True], result[False]
                rows.append(
                    f"| {kind} | {height}x{width} | {stage} | {channels}, {reduction}, {stride} | {tokens} | {kv_pool} "
                    f"| {fast_ms:.2f} | {ref_ms:.2f} | {ref_ms / fast_ms:.2f}x | {fast_mb:.1f} | {ref_mb:.1f} "
                    f"| {ref_mb / fast_mb:.2f}x |"
                )
                print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--kv-pool", type=int, nargs="+", default=[1])
    parser.add_argument("--modules", nargs="+", default=["gri", "miim"], choices=["gri", "miim"])
    parser.add_argument("--stages", type=int, nargs="*", default=[])
    parser.add_argument(
        "--sizes", type=lambda s: tuple(int(v) for v in s.split("x")), nargs="+", default=[(288, 144), (384, 128)]
    )
    args = parser.parse_args()
    print(
        f"device={args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'cpu'}), "
        f"dtype={args.dtype}, batch={args.batch}, torch {torch.__version__}\n"
    )
    rows = run(args)
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
