"""Where a WRIM-Net training step spends the time its FLOPs do not explain, MIIM by MIIM (CPU or CUDA).

    python examples/benchmarks/bench_miim_parts.py --device cpu --size 288x144 --batch 16

For each MIIM of ``--model`` at its real placement (the feature-map size of ``--size``, a modality-sorted batch of
``--batch`` half visible and half infrared, training mode, as the trainer runs it), the median time of forward +
backward of

- the *gate* (SCC → GRI → SCR: the compression convolution, the attention block and the restore projection), and
- the whole block; the difference is the *tail* (the full-resolution re-weighting ``X ⊙ Up(G)``, the
  per-modality BatchNorm and the residual sum),

beside its *FLOP share*: the baseline's measured step time times the MIIM's FLOPs over the baseline's
(``wrim.models.summary``), i.e. what the block would cost at the baseline's own FLOP rate. A second table times
the gate's largest products as ``F.linear`` and as the equivalent 1×1 convolution (GFLOP/s, forward + backward),
which is why `wrim.layers.TokenLinear` exists.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms  # noqa: E402
from bench_step import NUM_CLASSES, train_step  # noqa: E402

import wrim  # noqa: E402
from wrim.layers import ModalityMIIM  # noqa: E402


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
    device = torch.device(args.device)
    model = wrim.create_model(args.model, num_classes=NUM_CLASSES, img_size=args.size).to(device).train()
    baseline_name = args.model.replace("wrimnet_", "baseline_")
    base_step = train_step(args, baseline_name, args.size, args.batch, "eager")
    base_ms = median_ms(base_step, device, args.iters, args.warmup)
    flops = wrim.models.summary(model, args.size)
    base_gflops = flops.backbone_total.gflops + next(r.gflops for r in flops.rows if r.name == "heads")
    modalities = torch.tensor([0] * (args.batch // 2) + [1] * (args.batch - args.batch // 2), device=device)
    rows = [
        f"baseline step ({baseline_name}, batch {args.batch}, {args.size[0]}x{args.size[1]}): {base_ms:.0f} ms for "
        f"{base_gflops:.2f} GFLOPs per image",
        "",
        "| MIIM | map (C, H, W) | GFLOPs / img | FLOP share ms | gate ms | tail ms | block ms | block / share |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    totals = [0.0, 0.0, 0.0, 0.0]
    for name, block in model.miims.items():
        index = int(name.removeprefix("stage"))
        height, width = model.backbone.map_size(index, args.size)
        channels = model.backbone.channels[index - 1]
        x = torch.randn(args.batch, channels, height, width, device=device, requires_grad=True)
        gate = median_ms(_fwd_bwd(block, x, modalities, True), device, args.iters, args.warmup)
        whole = median_ms(_fwd_bwd(block, x, modalities, False), device, args.iters, args.warmup)
        gflops = next(r.gflops for r in flops.rows if r.name == f"miim{index}")
        share = base_ms * gflops / base_gflops
        for i, value in enumerate((share, gate, whole - gate, whole)):
            totals[i] += value
        rows.append(
            f"| {name} | {channels}, {height}, {width} | {gflops:.3f} | {share:.0f} | {gate:.0f} | {whole - gate:.0f} "
            f"| {whole:.0f} | {whole / share:.2f}x |"
        )
    share, gate, tail, whole = totals
    rows.append(f"| all | | | {share:.0f} | {gate:.0f} | {tail:.0f} | {whole:.0f} | {whole / share:.2f}x |")
    return rows


def _gemm_rates(c_in: int, c_out: int, batch: int, args: argparse.Namespace) -> tuple[float, float]:
    """GFLOP/s of forward + backward of one (batch·162 tokens) x C_in -> C_out product: F.linear, 1x1 conv."""
    device = torch.device(args.device)
    tokens = batch * 162
    x = torch.randn(tokens, c_in, device=device, requires_grad=True)
    weight = torch.randn(c_out, c_in, device=device, requires_grad=True)
    upstream = torch.randn(tokens, c_out, device=device)
    grid = torch.randn(batch, c_in, 162, 1, device=device, requires_grad=True)
    upstream_grid = torch.randn(batch, c_out, 162, 1, device=device)

    def linear() -> None:
        F.linear(x, weight).backward(upstream)

    def conv() -> None:
        F.conv2d(grid, weight[:, :, None, None]).backward(upstream_grid)

    gflop = 3 * 2 * tokens * c_in * c_out / 1e9  # forward + the two backward products
    linear_rate, conv_rate = (gflop / median_ms(step, device, args.iters, args.warmup) * 1e3 for step in (linear, conv))
    return linear_rate, conv_rate


def gemm_table(args: argparse.Namespace) -> list[str]:
    """F.linear vs a 1x1 convolution of the same product, forward + backward, at the gate's shapes."""
    rows = [
        "| product (tokens x C_in -> C_out) | F.linear GFLOP/s | 1x1 conv GFLOP/s | conv / linear |",
        "|---|---:|---:|---:|",
    ]
    for c_in, c_out in ((128, 384), (256, 768), (256, 1024), (512, 1536), (512, 2048)):
        linear_rate, conv_rate = _gemm_rates(c_in, c_out, args.batch, args)
        rows.append(
            f"| {args.batch * 162} x {c_in} -> {c_out} | {linear_rate:.0f} | {conv_rate:.0f} "
            f"| {conv_rate / linear_rate:.2f}x |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--model", default="wrimnet_resnet50")
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(288, 144))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    if args.batch < 8 or args.batch % 8:
        parser.error(f"--batch must be a multiple of 8 (ids x (4 visible + 4 infrared)); got {args.batch}")
    args.profile = False  # bench_step.train_step's option: no profile of the baseline step
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}\n")
    print("\n".join(parts_table(args)) + "\n")
    print("\n".join(gemm_table(args)))


if __name__ == "__main__":
    main()
