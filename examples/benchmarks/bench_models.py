"""WRIMNet vs the plain baseline: parameters, GFLOPs (``wrim.models.summary``) and forward / backward times.

    python examples/benchmarks/bench_models.py                       # resnet50 pair, 288x144 and 384x128, batch 8
    python examples/benchmarks/bench_models.py --models wrimnet_resnet18 baseline_resnet18 --sizes 128x64 --iters 3

For each model and input size: the ``summary()`` totals (GFLOPs per image, eval forward; FlopCounterMode counts
2 FLOPs per multiply-add), the eval forward time (``torch.no_grad``) and the training forward + backward time
(cross-entropy on every head, no optimiser step; WRIMNet gets the batch's ``num_visible`` as from the trainer),
median of ``--iters`` after one warm-up, fp32; the models'
steps alternate. ``--tables``
also prints each model's per-stage / per-MIIM table.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_ms  # noqa: E402

from wrim.models import create_model, summary  # noqa: E402

NUM_CLASSES = 395  # SYSU-MM01's training identities


def _model_steps(name: str, size: tuple[int, int], batch: int, device: torch.device, tables: bool):
    """A model's summary and its two timed steps: eval forward and training forward + backward."""
    model = create_model(name, num_classes=NUM_CLASSES, img_size=size).to(device)
    result = summary(model, size)
    if tables:
        print(result, "\n")
    images = torch.randn(batch, 3, *size, device=device)
    modalities = (torch.arange(batch, device=device) // max(batch // 2, 1)).clamp(max=1)  # half visible, half IR
    labels = torch.randint(0, NUM_CLASSES, (batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def forward() -> None:
        model.eval()
        with torch.no_grad():
            model(images, modalities)

    split = {"num_visible": int((modalities == 0).sum())} if model.separate_stages else {}  # as the trainer

    def forward_backward() -> None:
        model.train()
        out = model(images, modalities, **split)
        sum(loss_fn(logits, labels) for logits in out.logits.values()).backward()
        model.zero_grad(set_to_none=True)

    return result, {"fwd_ms": forward, "fwd_bwd_ms": forward_backward}


def measure(names: list[str], size: tuple[int, int], batch: int, iters: int, device: torch.device, tables: bool):
    """Summary totals and median step times of each model; the models' steps alternate, so that a changing
    machine load affects them alike."""
    built = {name: _model_steps(name, size, batch, device, tables) for name in names}
    times = {name: {step: [] for step in steps} for name, (_, steps) in built.items()}
    for step in ("fwd_ms", "fwd_bwd_ms"):
        for _, steps in built.values():  # warm-up
            steps[step]()
        for _ in range(iters):
            for name, (_, steps) in built.items():
                times[name][step].append(median_ms(steps[step], device, iters=1, warmup=0))
    return {
        name: {
            "params": result.total.params / 1e6,
            "gflops": result.total.gflops,
            "miim_gflops": result.miim_total.gflops,
            **{step: statistics.median(values) for step, values in times[name].items()},
        }
        for name, (result, _) in built.items()
    }


def main(argv: list[str] | None = None) -> list[dict]:
    """Measure every model at every size and print a Markdown table; returns the rows."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["wrimnet_resnet50", "baseline_resnet50"])
    parser.add_argument("--sizes", nargs="+", default=["288x144", "384x128"], help="HxW")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--tables", action="store_true", help="print each model's per-stage summary table")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    device = torch.device(args.device)
    rows = []
    print(f"device {device}, {torch.get_num_threads()} threads, batch {args.batch}, fp32, median of {args.iters}")
    print(
        "| model | input | params (M) | GFLOPs/img | of which MIIM | fwd ms | fwd+bwd ms | fwd ratio | fwd+bwd ratio |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for size_text in args.sizes:
        size = tuple(int(v) for v in size_text.lower().split("x"))
        measured = measure(args.models, size, args.batch, args.iters, device, args.tables)
        reference = measured[args.models[-1]]
        for name, m in measured.items():
            rows.append({"model": name, "size": size_text, **m})
            print(
                f"| {name} | {size_text} | {m['params']:.2f} | {m['gflops']:.2f} | {m['miim_gflops']:.2f} | "
                f"{m['fwd_ms']:.0f} | {m['fwd_bwd_ms']:.0f} | {m['fwd_ms'] / reference['fwd_ms']:.2f} | "
                f"{m['fwd_bwd_ms'] / reference['fwd_bwd_ms']:.2f} |",
                flush=True,
            )
    return rows


if __name__ == "__main__":
    main()
