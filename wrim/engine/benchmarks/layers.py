"""Fused vs reference GRI and MIIM at the paper's four placements: time (forward + backward) and memory.

    wrim bench layers                                         # both input sizes, batch 64, GRI and MIIM
    wrim bench layers --device cuda --dtype bfloat16 --kv-pool 1 2

``--modules gri`` times GRI alone on the compressed map (B, C/r, H/s, W/s), where the attention is all the work;
``miim`` times the whole block on the stage's feature map (B, C, H, W). The two paths' calls alternate. Memory is
the peak CUDA allocation of one call on a GPU and the activation memory autograd saves on the CPU. Ratios are
reference / fused (above 1 the fused path is better).
"""

from __future__ import annotations

import argparse

import torch

from wrim.engine.benchmarks._cli import BenchParser, default_device
from wrim.engine.benchmarks._timing import paired_ms, peak_memory_mb, size_arg
from wrim.engine.precision import autocast
from wrim.layers import GRI, MIIM

__all__ = ["QUICK", "build_parser", "run"]

# (stage, channels, reduction, stride) of the paper's placements; feature maps are the input size / (4, 8, 16, 16)
PLACEMENTS = [(1, 256, 2, 4), (2, 512, 2, 2), (3, 1024, 4, 1), (4, 2048, 4, 1)]
MAP_DIVISOR = {1: 4, 2: 8, 3: 16, 4: 16}
QUICK = ("--device", "cpu", "--batch", "4", "--iters", "1", "--warmup", "1", "--sizes", "64x32", "--stages", "1")


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("layers", __doc__)
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--kv-pool", type=int, nargs="+", default=[1])
    parser.add_argument("--modules", nargs="+", default=["gri", "miim"], choices=["gri", "miim"])
    parser.add_argument("--stages", type=int, nargs="*", default=[], help="only these placements (1-4)")
    parser.add_argument("--sizes", type=size_arg, nargs="+", default=[(288, 144), (384, 128)], help="HxW")
    return parser


def _case(kind: str, stage: int, kv_pool: int, size: tuple[int, int], args: argparse.Namespace):
    """The module and input of one row: GRI on the compressed map, or the whole MIIM on the stage's map."""
    _, channels, reduction, stride = PLACEMENTS[stage - 1]
    map_h, map_w = size[0] // MAP_DIVISOR[stage], size[1] // MAP_DIVISOR[stage]
    device = torch.device(args.device)
    if kind == "gri":
        dim = channels // reduction
        module = GRI(dim, kv_pool=kv_pool).to(device)
        shape = (args.batch, dim, -(-map_h // stride), -(-map_w // stride))
    else:
        module = MIIM(channels, reduction=reduction, stride=stride, kv_pool=kv_pool).to(device)
        module = module.to(memory_format=torch.channels_last)
        shape = (args.batch, channels, map_h, map_w)
    x = torch.randn(*shape, device=device).to(memory_format=torch.channels_last).requires_grad_(True)
    return module, x, -(-map_h // stride) * -(-map_w // stride)


def _row(kind: str, stage: int, kv_pool: int, size: tuple[int, int], args: argparse.Namespace) -> str:
    """One table row: the fused and the reference path of one module, their calls alternating."""
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    module, x, tokens = _case(kind, stage, kv_pool, size, args)

    def path(fused: bool):
        def step() -> None:
            module.fused_attn = fused
            with autocast(device.type, None if dtype == torch.float32 else dtype):
                out = module(x)
            out.float().mean().backward()

        return step

    fast_ms, ref_ms = paired_ms([path(True), path(False)], device, args.iters, args.warmup)
    fast_mb, ref_mb = (peak_memory_mb(path(fused), device) for fused in (True, False))
    return (
        f"| {kind} | {size[0]}x{size[1]} | {stage} | {tokens} | {kv_pool} | {fast_ms:.2f} | {ref_ms:.2f} "
        f"| {ref_ms / fast_ms:.2f}x | {fast_mb:.1f} | {ref_mb:.1f} | {ref_mb / fast_mb:.2f}x |"
    )


def run(args: argparse.Namespace) -> list[str]:
    """Prints one Markdown row per (module, size, placement, kv_pool) as it is measured; returns the table."""
    print(f"device {args.device}, dtype {args.dtype}, batch {args.batch}, torch {torch.__version__}\n", flush=True)
    rows = [
        "| module | input | stage | tokens | kv_pool | fused ms | reference ms | speed-up | fused MB | reference MB "
        "| memory ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    print("\n".join(rows), flush=True)
    for size in args.sizes:
        for stage in args.stages or [p[0] for p in PLACEMENTS]:
            for kind, kv_pool in [(kind, kv_pool) for kind in args.modules for kv_pool in args.kv_pool]:
                rows.append(_row(kind, stage, kv_pool, size, args))
                print(rows[-1], flush=True)
    return rows
