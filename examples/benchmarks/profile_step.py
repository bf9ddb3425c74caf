"""Per-op CPU profile of one WRIMNet training step and one inference batch against the plain baseline's.

    python examples/benchmarks/profile_step.py --size 288x144 --batch 16 --infer-batch 16

One training step is ``bench_step.py``'s (forward with the batch's ``num_visible``, ID loss on every head + AICL,
backward, SGD step); one inference batch is an eval-mode ``model.embed(images, modalities, flip=False)`` of a
single-modality batch (as the evaluation loader gives them). Both models run the same batch after one warm-up
call; ``torch.profiler`` (CPU) records the ops of ``--rounds`` calls of each, the two models alternating, and the
table lists the ops whose self time differs most between the two models (milliseconds of self CPU time per
call: each op's minimum over the rounds, which on a shared machine is its least disturbed measurement).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_step import NUM_CLASSES, train_step  # noqa: E402

import wrim  # noqa: E402


def op_times(step) -> dict[str, tuple[float, int]]:
    """Self CPU ms and call count per op name of one profiled call of ``step``."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    return {e.key: (e.self_cpu_time_total / 1e3, e.count) for e in prof.key_averages()}


def interleaved(ours, base, rounds: int) -> tuple[dict, dict]:
    """Per-op minimum over ``rounds`` profiled calls of each step, the two models alternating (after a warm-up
    call each): on a shared machine the minimum is the least disturbed measurement of each op."""
    ours(), base()
    runs: tuple[list, list] = ([], [])
    for _ in range(rounds):
        runs[0].append(op_times(ours))
        runs[1].append(op_times(base))
    return tuple(
        {
            key: (min(run.get(key, (0.0, 0))[0] for run in model_runs), model_runs[0].get(key, (0.0, 0))[1])
            for key in set().union(*model_runs)
        }
        for model_runs in runs
    )


def inference_batch(name: str, size: tuple[int, int], batch: int):
    model = wrim.create_model(name, num_classes=NUM_CLASSES, img_size=size).eval()
    images = torch.randn(batch, 3, *size)
    modalities = torch.full((batch,), wrim.INFRARED)

    def step() -> None:
        with torch.no_grad():
            model.embed(images, modalities, flip=False)

    return step


def table(title: str, ours: dict, base: dict, rows: int) -> str:
    names = sorted(set(ours) | set(base), key=lambda k: -abs(ours.get(k, (0, 0))[0] - base.get(k, (0, 0))[0]))
    total_o, total_b = sum(v[0] for v in ours.values()), sum(v[0] for v in base.values())
    lines = [
        f"{title}: self CPU total {total_o:.0f} ms vs {total_b:.0f} ms ({total_o / total_b:.2f}x)",
        "",
        "| op | WRIMNet ms (calls) | baseline ms (calls) | extra ms |",
        "|---|---:|---:|---:|",
    ]
    for key in names[:rows]:
        (o, oc), (b, bc) = ours.get(key, (0.0, 0)), base.get(key, (0.0, 0))
        lines.append(f"| `{key}` | {o:.1f} ({oc}) | {b:.1f} ({bc}) | {o - b:+.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs=2, default=["wrimnet_resnet50", "baseline_resnet50"])
    parser.add_argument("--size", type=lambda s: tuple(int(v) for v in s.split("x")), default=(288, 144))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--infer-batch", type=int, default=16)
    parser.add_argument("--rows", type=int, default=18)
    parser.add_argument("--rounds", type=int, default=3, help="profiled calls per model (per-op minimum)")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    ours_name, base_name = args.models
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {ours_name} vs {base_name}\n")
    step_args = argparse.Namespace(device="cpu", profile=False)  # bench_step's training step, eager, fp32
    ours, base = interleaved(
        train_step(step_args, ours_name, args.size, args.batch, "eager"),
        train_step(step_args, base_name, args.size, args.batch, "eager"),
        args.rounds,
    )
    print(table(f"training step, batch {args.batch}", ours, base, args.rows) + "\n", flush=True)
    ours, base = interleaved(
        inference_batch(ours_name, args.size, args.infer_batch),
        inference_batch(base_name, args.size, args.infer_batch),
        args.rounds,
    )
    print(table(f"inference batch {args.infer_batch}", ours, base, args.rows))


if __name__ == "__main__":
    main()
