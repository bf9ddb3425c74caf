"""WRIMNet vs the plain baseline: full training step and inference throughput, side by side in one run.

    python examples/benchmarks/bench_step.py                              # CUDA: the issue-7 grid
    python examples/benchmarks/bench_step.py --device cpu --batch 16 --sizes 128x64 --iters 3 \\
        --models wrimnet_resnet18 baseline_resnet18 --modes eager         # a quick CPU check

A training step is what the engine does: forward, cross-entropy on every head + AICL (CMKIC on P5 and P4),
backward, SGD step; bf16 autocast on CUDA (fp32 on CPU). Batches follow the sampler: ids x (k visible + k
infrared), and WRIMNet gets the batch's ``num_visible`` as from the trainer. Modes: ``eager`` (NCHW),
``channels_last``, ``compiled`` (channels_last + torch.compile of the model; the whole compiled step, as
``model.compile`` now builds it, is ``bench_compile_step.py``).
Inference: eval-mode ``model.embed(images, modalities, flip=False)`` embeddings/s at --infer-batch (compiled mode:
``model.compile()``, as ``wrim eval --compile``). CUDA timings use CUDA events after warm-up (median of
--iters); the two models' steps alternate call by call, so that a changing machine load affects them alike. On the
CPU the eager rows also give the activation memory of one training step (bytes autograd saves for backward).
``--profile`` prints the top CUDA kernels of one WRIMNet step (torch.profiler).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms, peak_memory_mb  # noqa: E402

import wrim  # noqa: E402
from wrim.losses import AICLLoss  # noqa: E402

NUM_CLASSES = 395  # SYSU-MM01's training identities
REQUIRES_CUDA = True  # `wrim bench` skips this script without a GPU (its default grid is sized for one)


def make_batch(batch: int, size: tuple[int, int], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(B, 3, H, W) images, (B,) labels and (B,) modalities laid out as ids x (k visible + k infrared)."""
    instances = 4
    ids = batch // (2 * instances)
    labels = torch.arange(ids).repeat_interleave(2 * instances)
    modalities = torch.tensor(([wrim.VISIBLE] * instances + [wrim.INFRARED] * instances) * ids)
    images = torch.randn(ids * 2 * instances, 3, *size)
    return images.to(device), labels.to(device), modalities.to(device)


def build(name: str, size: tuple[int, int], mode: str, device: torch.device) -> torch.nn.Module:
    model = wrim.create_model(name, num_classes=NUM_CLASSES, img_size=size).to(device)
    if mode in ("channels_last", "compiled"):
        model = model.to(memory_format=torch.channels_last)
    return model


def train_step(args: argparse.Namespace, name: str, size: tuple[int, int], batch: int, mode: str) -> Callable:
    """One engine training step of a freshly built model, as a closure."""
    device = torch.device(args.device)
    model = build(name, size, mode, device).train()
    forward = torch.compile(model) if mode == "compiled" else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    id_loss, metric_loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1), AICLLoss()
    images, labels, modalities = make_batch(batch, size, device)
    if mode != "eager":
        images = images.to(memory_format=torch.channels_last)
    use_amp = device.type == "cuda"
    # as the trainer: the host-counted visible count lets each ModalityMIIM copy run on its own samples only
    split = {"num_visible": batch // 2} if isinstance(model, wrim.models.WRIMNet) else {}

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            out = forward(images, modalities, **split)
            loss = sum(id_loss(logits, labels) for logits in out.logits.values())
            loss = loss + metric_loss(out.p5_projection, out.p4_projection, labels, modalities=modalities)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if args.profile and name.startswith("wrimnet") and device.type == "cuda":
        step()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
            step()
            torch.cuda.synchronize()
        print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=25))
    return step


def inference_step(args: argparse.Namespace, name: str, size: tuple[int, int], mode: str) -> Callable:
    """One eval-mode ``embed`` batch of ``--infer-batch`` images (ids x (k visible + k infrared)), as a closure;
    ``compiled``: ``model.compile()`` (channels_last)."""
    device = torch.device(args.device)
    model = build(name, size, mode, device).eval()
    if mode == "compiled":
        model.compile()  # what `wrim eval --compile` does; embed() calls the compiled forward with the visible count
    images, _, modalities = make_batch(args.infer_batch, size, device)
    if mode != "eager":
        images = images.to(memory_format=torch.channels_last)

    def step() -> None:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            model.embed(images, modalities, flip=False)  # what evaluation calls

    return step


def paired_ms(steps: list[Callable], device: torch.device, iters: int, warmup: int) -> list[float]:
    """Median ms of each step, the steps alternating call by call (so a changing machine load affects them alike)."""
    for _ in range(warmup):
        for step in steps:
            step()
    times: list[list[float]] = [[] for _ in steps]
    for _ in range(iters):
        for step, measured in zip(steps, times, strict=True):
            measured.append(median_ms(step, device, iters=1, warmup=0))
    return [statistics.median(measured) for measured in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--models", nargs=2, default=["wrimnet_resnet50", "baseline_resnet50"], metavar=("MODEL", "BASE")
    )
    parser.add_argument(
        "--sizes", type=lambda s: tuple(int(v) for v in s.split("x")), nargs="+", default=[(288, 144), (384, 128)]
    )
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 128])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["eager", "channels_last", "compiled"],
        choices=["eager", "channels_last", "compiled"],
    )
    parser.add_argument("--compile-batch", type=int, nargs="*", default=[64], help="batches timed in compiled mode")
    parser.add_argument("--infer-batch", type=int, default=256)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    model_name, base_name = args.models
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"device={device_name}, torch {torch.__version__}, {model_name} vs {base_name}\n")
    rows = [
        f"| input | batch | mode | {model_name} ms | {base_name} ms | step ratio | img/s ({model_name}) |",
        "|---|---|---|---|---|---|---|",
    ]
    memory = [
        f"| input | batch | {model_name} saved MB | {base_name} saved MB | memory ratio |",
        "|---|---|---|---|---|",
    ]
    for size in args.sizes:
        for mode in args.modes:
            for batch in args.batch:
                if mode == "compiled" and batch not in args.compile_batch:
                    continue
                steps = [train_step(args, name, size, batch, mode) for name in (model_name, base_name)]
                warmup = args.warmup + (3 if mode == "compiled" else 0)
                ours, base = paired_ms(steps, torch.device(args.device), args.iters, warmup)
                rows.append(
                    f"| {size[0]}x{size[1]} | {batch} | {mode} | {ours:.2f} | {base:.2f} | {ours / base:.3f}x "
                    f"| {batch / ours * 1e3:.2f} |"
                )
                print(rows[-1], flush=True)
                if mode == "eager" and args.device == "cpu":  # bytes autograd saves for backward
                    saved = [peak_memory_mb(step, torch.device("cpu")) for step in steps]
                    memory.append(
                        f"| {size[0]}x{size[1]} | {batch} | {saved[0]:.0f} | {saved[1]:.0f} "
                        f"| {saved[0] / saved[1]:.3f}x |"
                    )
                    print(memory[-1], flush=True)
    rows += [
        "",
        f"| input | mode | {model_name} emb/s | {base_name} emb/s | throughput ratio |",
        "|---|---|---|---|---|",
    ]
    for size in args.sizes:
        for mode in args.modes:
            steps = [inference_step(args, name, size, mode) for name in (model_name, base_name)]
            ours, base = (
                args.infer_batch / ms * 1e3
                for ms in paired_ms(steps, torch.device(args.device), args.iters, args.warmup + 2)
            )
            rows.append(f"| {size[0]}x{size[1]} | {mode} | {ours:.2f} | {base:.2f} | {ours / base:.3f}x |")
            print(rows[-1], flush=True)
    if len(memory) > 2:
        rows += ["", *memory]
    print("\n" + "\n".join(rows))


if __name__ == "__main__":
    main()
