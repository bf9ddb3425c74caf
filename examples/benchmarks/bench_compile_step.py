"""The training step eager vs compiled, WRIMNet vs the plain baseline, side by side in one run (CPU or CUDA).

    python examples/benchmarks/bench_compile_step.py            # resnet18 pair, 128x64, batch 16, CPU

A step is ``Trainer.train_step``'s work: forward in train mode on a sampler-like batch (ids x (k visible + k
infrared)), the ID loss on every head + AICL (``wrim.engine.trainer.build_loss``), backward; then an SGD step
outside. Modes:

- ``eager``: plain PyTorch (channels_last);
- ``compiled_model``: ``torch.compile(model)`` only (what ``model.compile`` did before the whole step compiled);
- ``compiled_step``: ``torch.compile(step, fullgraph=True)`` with the backward traced in (what ``model.compile``
  does now).

WRIMNet runs both ModalityMIIM formulations: ``any-order`` (both copies' gates on the whole batch) and
``num_visible`` (each copy on its own samples; the trainer's default). Each time is the median of ``--iters``
steps after ``--warmup`` steps; "compile s" is the wall time of the first compiled call. ``--count-copies``
also counts the copy ops of one eager step (forward, losses, backward) with the profiler (``aten::copy_``,
``_to_copy``, ``clone``, ``contiguous``: the layout and dtype copies the step makes).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch._dynamo

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms  # noqa: E402

import wrim  # noqa: E402
from wrim.engine.config import LossConfig  # noqa: E402
from wrim.engine.trainer import build_loss  # noqa: E402

NUM_CLASSES = 395  # SYSU-MM01's training identities
COPY_OPS = ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous")


def make_batch(batch: int, size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(B, 3, H, W) channels_last images, (B,) labels and (B,) modalities laid out as ids x (k vis + k ir)."""
    instances = 2
    ids = batch // (2 * instances)
    labels = torch.arange(ids).repeat_interleave(2 * instances)
    modalities = torch.tensor(([wrim.VISIBLE] * instances + [wrim.INFRARED] * instances) * ids)
    images = torch.randn(ids * 2 * instances, 3, *size).contiguous(memory_format=torch.channels_last)
    return images.to(device), labels.to(device), modalities.to(device)


def time_step(args: argparse.Namespace, name: str, mode: str, split: bool) -> tuple[float, float]:
    """(median step ms, seconds of the first call) of one model / mode / formulation."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = wrim.create_model(name, num_classes=NUM_CLASSES, img_size=args.size).to(device)
    model = model.to(memory_format=torch.channels_last).train()
    forward = torch.compile(model) if mode == "compiled_model" else model
    loss_fn = build_loss(LossConfig())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    images, labels, modalities = make_batch(args.batch, args.size, device)
    kwargs = {"num_visible": int((modalities == wrim.VISIBLE).sum())} if split else {}
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def train_step(images: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        with amp:
            out = forward(images, modalities, **kwargs)
        total = loss_fn(out, labels, modalities=modalities)
        total.backward()
        return total.detach()

    compiled = torch.compile(train_step, fullgraph=True) if mode == "compiled_step" else train_step

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            compiled(images, labels, modalities)
        optimizer.step()

    begin = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    first = time.perf_counter() - begin
    if args.count_copies and mode == "eager":
        optimizer.zero_grad(set_to_none=True)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            train_step(images, labels, modalities)  # forward, losses, backward: no optimiser step
        calls = {event.key: event.count for event in prof.key_averages()}
        routing = "" if name == args.models[1] else (" num_visible" if split else " any-order")
        print(f"{name}{routing} eager copies per step: " + ", ".join(f"{op} {calls.get(op, 0)}" for op in COPY_OPS))
    return median_ms(step, device, args.iters, args.warmup), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs=2, default=["wrimnet_resnet18", "baseline_resnet18"])
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(128, 64))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["eager", "compiled_model", "compiled_step"],
        choices=["eager", "compiled_model", "compiled_step"],
    )
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--count-copies", action="store_true", help="profile the copy ops of one eager step")
    args = parser.parse_args()
    model_name, base_name = args.models
    size = f"{args.size[0]}x{args.size[1]}"
    print(f"device={args.device}, torch {torch.__version__}, threads {torch.get_num_threads()}, {size}, "
          f"batch {args.batch}, median of {args.iters} after {args.warmup}\n")  # fmt: skip
    runs = [(model_name, False), (model_name, True), (base_name, False)]
    times: dict[tuple[str, bool, str], tuple[float, float]] = {}
    rows = ["| model | ModalityMIIM | mode | step ms | compile s | vs eager | vs baseline (same mode) |"]
    rows.append("|---|---|---|---:|---:|---:|---:|")
    for mode in args.modes:
        for name, split in runs:
            times[name, split, mode] = time_step(args, name, mode, split)
            print(f"{name} {'num_visible' if split else 'any-order'} {mode}: {times[name, split, mode][0]:.1f} ms",
                  flush=True)  # fmt: skip
    for mode in args.modes:
        for name, split in runs:
            ms, first = times[name, split, mode]
            eager = times[name, split, "eager"][0] if "eager" in args.modes else float("nan")
            base = times[base_name, False, mode][0]
            routing = "–" if name == base_name else ("num_visible" if split else "any-order")
            compile_s = f"{first:.0f}" if mode != "eager" else "–"
            rows.append(
                f"| {name} | {routing} | {mode} | {ms:.1f} | {compile_s} | {ms / eager:.2f}x | {ms / base:.2f}x |"
            )
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
