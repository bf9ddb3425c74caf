"""Where a WRIM-Net training step spends the time its FLOPs do not explain, MIIM by MIIM.

    wrim bench miim_parts --device cpu --size 288x144 --batch 16

For each MIIM of ``--model`` at its real placement (the feature-map size of ``--size``, a modality-sorted batch of
``--batch``, half visible and half infrared, training mode, as the trainer runs it), the median time of forward +
backward of

- the *gate* (SCC -> GRI -> SCR: the compression convolution, the attention block and the restore projection), and
- the whole block; the difference is the *tail* (the full-resolution re-weighting ``X * Up(G)``, the
  per-modality BatchNorm and the residual sum),

beside its *FLOP share*: the baseline's measured training step (the engine's, eager) times the MIIM's FLOPs over
the baseline's (``wrim.models.summary``), i.e. what the block would cost at the baseline's own FLOP rate; the
baseline's step and the blocks' calls alternate, so that a changing load affects them alike. A second
table times the gate's largest products as ``F.linear`` and as the equivalent 1x1 convolution (GFLOP/s, forward +
backward), with two small products around ``TokenLinear``'s threshold: why ``wrim.layers.TokenLinear`` exists and
where it switches.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from wrim.engine.benchmarks._cli import BenchParser, default_device
from wrim.engine.benchmarks._engine import bench_config, engine_model, training_call
from wrim.engine.benchmarks._timing import paired_ms, size_arg
from wrim.layers import ModalityMIIM
from wrim.models import summary

__all__ = ["QUICK", "build_parser", "run"]

QUICK = ("--device", "cpu", "--model", "wrimnet_resnet18", "--size", "64x32", "--batch", "8", "--iters", "1",
         "--warmup", "0")  # fmt: skip
TOKENS = 162  # the gate's tokens per image at 288x144 (18 x 9)


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("miim_parts", __doc__)
    parser.add_argument("--device", default=default_device())
    parser.add_argument("--model", default="wrimnet_resnet50")
    parser.add_argument("--size", type=size_arg, default=(288, 144), help="HxW")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    return parser


def _fwd_bwd(block: torch.nn.Module, x: torch.Tensor, modalities: torch.Tensor, gate_only: bool):
    """A closure: forward + backward of ``block`` (or of its gate only) on ``x`` with a fixed random upstream."""
    half = x.shape[0] // 2

    def forward() -> torch.Tensor:
        if isinstance(block, ModalityMIIM):
            if gate_only:
                return torch.cat([block.visible.gate(x[:half]), block.infrared.gate(x[half:])])
            return block(x, modalities, num_visible=half)
        return block.gate(x) if gate_only else block(x)

    upstream = torch.randn_like(forward())

    def step() -> None:
        forward().backward(upstream)
        x.grad = None
        block.zero_grad(set_to_none=True)

    return step


def parts_table(args: argparse.Namespace) -> list[str]:
    """The MIIMs' gate, tail and whole-block times beside their FLOP shares of the baseline's step, every call of
    one round (the baseline step, then each MIIM's gate and whole block) alternating."""
    device = torch.device(args.device)
    model = engine_model(bench_config(args.model, args.size, channels_last=False), device).train()
    baseline = args.model.replace("wrimnet_", "baseline_")
    flops = summary(model, args.size)
    base_gflops = flops.backbone_total.gflops + next(r.gflops for r in flops.rows if r.name == "heads")
    modalities = torch.tensor([0] * (args.batch // 2) + [1] * (args.batch - args.batch // 2), device=device)
    calls = [training_call(bench_config(baseline, args.size, channels_last=False), args.batch, device)]
    for name, block in model.miims.items():
        index = int(name.removeprefix("stage"))
        height, width = model.backbone.map_size(index, args.size)
        x = torch.randn(
            args.batch, model.backbone.channels[index - 1], height, width, device=device, requires_grad=True
        )
        calls += [_fwd_bwd(block, x, modalities, gate_only) for gate_only in (True, False)]
    base_ms, *block_ms = paired_ms(calls, device, args.iters, args.warmup)
    rows = [
        f"baseline step ({baseline}, batch {args.batch}, {args.size[0]}x{args.size[1]}): {base_ms:.0f} ms for "
        f"{base_gflops:.2f} GFLOPs per image",
        "",
        "| MIIM | map (C, H, W) | GFLOPs / img | FLOP share ms | gate ms | tail ms | block ms | block / share |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = [0.0, 0.0, 0.0, 0.0]
    for (name, _), gate, whole in zip(model.miims.items(), block_ms[::2], block_ms[1::2], strict=True):
        index = int(name.removeprefix("stage"))
        gflops = next(r.gflops for r in flops.rows if r.name == f"miim{index}")
        share = base_ms * gflops / base_gflops
        for i, value in enumerate((share, gate, whole - gate, whole)):
            totals[i] += value
        height, width = model.backbone.map_size(index, args.size)
        rows.append(
            f"| {name} | {model.backbone.channels[index - 1]}, {height}, {width} | {gflops:.3f} | {share:.0f} "
            f"| {gate:.0f} | {whole - gate:.0f} | {whole:.0f} | {whole / share:.2f}x |"
        )
    share, gate, tail, whole = totals
    rows.append(f"| all | | | {share:.0f} | {gate:.0f} | {tail:.0f} | {whole:.0f} | {whole / share:.2f}x |")
    return rows


def _gemm_rates(images: int, per_image: int, c_in: int, c_out: int, args: argparse.Namespace) -> tuple[float, float]:
    """GFLOP/s of forward + backward of one (images * per_image tokens) x C_in -> C_out product: F.linear, 1x1 conv
    (the tokens laid out channel-first, as ``TokenLinear`` does)."""
    device = torch.device(args.device)
    tokens = images * per_image
    x = torch.randn(tokens, c_in, device=device, requires_grad=True)
    weight = torch.randn(c_out, c_in, device=device, requires_grad=True)
    upstream = torch.randn(tokens, c_out, device=device)
    grid = torch.randn(images, c_in, per_image, 1, device=device, requires_grad=True)
    upstream_grid = torch.randn(images, c_out, per_image, 1, device=device)

    def linear() -> None:
        F.linear(x, weight).backward(upstream)

    def conv() -> None:
        F.conv2d(grid, weight[:, :, None, None]).backward(upstream_grid)

    gflop = 3 * 2 * tokens * c_in * c_out / 1e9  # forward + the two backward products
    linear_rate, conv_rate = (gflop / ms * 1e3 for ms in paired_ms([linear, conv], device, args.iters, args.warmup))
    return linear_rate, conv_rate


def gemm_table(args: argparse.Namespace) -> list[str]:
    """F.linear vs a 1x1 convolution of the same product, forward + backward: the gate's products at ``--batch``
    (162 tokens per image, 288x144) and two small ones around ``TokenLinear``'s threshold (stage 4 of a 64x32 batch
    of 64: 8 tokens per image)."""
    rows = [
        "| product (tokens x C_in -> C_out) | M multiply-adds | F.linear GFLOP/s | 1x1 conv GFLOP/s | conv / linear |",
        "|---|---:|---:|---:|---:|",
    ]
    small = [(64, 8, 64, 256), (64, 8, 128, 512)]
    gate = [(args.batch, TOKENS, c_in, c_out) for c_in, c_out in ((128, 384), (256, 768), (256, 1024), (512, 1536),
                                                                  (512, 2048))]  # fmt: skip
    for images, per_image, c_in, c_out in small + gate:
        linear_rate, conv_rate = _gemm_rates(images, per_image, c_in, c_out, args)
        macs = images * per_image * c_in * c_out / 1e6
        rows.append(
            f"| {images * per_image} x {c_in} -> {c_out} | {macs:.1f} | {linear_rate:.0f} | {conv_rate:.0f} "
            f"| {conv_rate / linear_rate:.2f}x |"
        )
    return rows


def run(args: argparse.Namespace) -> list[str]:
    """Prints both tables; returns them."""
    if args.batch < 8 or args.batch % 8:
        raise ValueError(f"--batch must be a multiple of 8 (ids x (4 visible + 4 infrared)); got {args.batch}")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}\n")
    tables = [*parts_table(args), "", *gemm_table(args)]
    print("\n".join(tables))
    return tables
