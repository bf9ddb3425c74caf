"""The seed's ablations (paper.md §5) on the synthetic set, written as a markdown table.

Four experiments, each a handful of ``wrim.engine.Trainer`` runs that differ from the synthetic default
(``wrim/configs/synthetic.yaml``: WRIM-Net on ResNet-18, AICL, K = 2, stage-1 stride 4) in one setting:

1. MIIM on/off per stage: no MIIM (``baseline_resnet18``), block 1 only, blocks 1-2 (separate) only,
   blocks 3-4 (shared) only, all four (the paper);
2. CMKIC vs triplet: AICL (CMKIC on P5 + P4) vs batch-hard triplet vs AGW's weighted-regularisation triplet on
   the same projections with the same weights;
3. K sweep: the number of key instances K in {1, 2, 4, 8};
4. compression sweep: the spatial stride of the block-1 MIIM in {1, 2, 4, 8}.

Run::

    python examples/ablations.py                       # every variant, the synthetic default's epochs (long)
    python examples/ablations.py --epochs 4            # shorter runs
    python examples/ablations.py --fast                # one variant per experiment on a tiny set (seconds each)

The table goes to ``<out>/ablations.md`` (and is printed); every run keeps its own folder under ``<out>``. On the
synthetic set the differences are indicative only: one seed, a few CPU epochs, a small test set.
"""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

from wrim.engine import Trainer, load_config

__all__ = ["EXPERIMENTS", "main"]

#: experiment -> [(variant, overrides of the synthetic config)]; the first variant of each is the paper's setting.
EXPERIMENTS: dict[str, list[tuple[str, list[str]]]] = {
    "MIIM placement": [
        ("all four blocks (paper)", []),
        ("no MIIM (baseline)", ["model.name=baseline_resnet18"]),
        ("block 1 only", ["model.kwargs={separate_stages: [1], shared_stages: []}"]),
        ("blocks 1-2 (separate) only", ["model.kwargs={separate_stages: [1, 2], shared_stages: []}"]),
        ("blocks 3-4 (shared) only", ["model.kwargs={separate_stages: [], shared_stages: [3, 4]}"]),
    ],
    "metric loss": [
        ("AICL / CMKIC (paper)", []),
        ("batch-hard triplet", ["loss.metric=triplet"]),
        ("weighted-regularisation triplet", ["loss.metric=wr_triplet"]),
    ],
    "key instances K": [
        ("K = 2 (default)", []),
        ("K = 1", ["loss.k=1"]),
        ("K = 4", ["loss.k=4"]),
        ("K = 8", ["loss.k=8"]),
    ],
    "block-1 spatial compression": [
        ("stride 4 (paper)", []),
        ("stride 1", ["model.kwargs={stride: [1, 2, 1, 1]}"]),
        ("stride 2", ["model.kwargs={stride: [2, 2, 1, 1]}"]),
        ("stride 8", ["model.kwargs={stride: [8, 2, 1, 1]}"]),
    ],
}

#: --fast: a tiny synthetic set, 64x32 images, batches of 4 ids x (2 + 2), one epoch, one gallery trial.
FAST = [
    "data.dataset_kwargs={num_ids: 12, num_test_ids: 6, images_per_camera: 2}",
    "data.img_size=[64,32]",
    "data.num_ids=4",
    "data.num_instances=2",
    "data.num_workers=0",
    "epochs=1",
    "eval.final_trials=[0]",
    "eval.batch_size=64",
]


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    """Runs the ablation grid and writes ``ablations.md``; returns one row per run.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None, help="output folder (default runs/ablations-<UTC time>)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the synthetic config's)")
    parser.add_argument("--fast", action="store_true", help="tiny set, 1 epoch, the paper + one variant per row")
    args = parser.parse_args(argv)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("runs") / f"ablations-{stamp}"
    out.mkdir(parents=True, exist_ok=True)

    common = ["progress=false", "eval.every=0", "eval.ranklist=false", f"output_dir={out}"]
    if args.fast:
        common += FAST
    if args.epochs is not None:
        common.append(f"epochs={args.epochs}")

    rows: list[dict[str, object]] = []
    done: dict[tuple[str, ...], dict[str, object]] = {}  # the paper's setting is trained once, shared by all rows
    for experiment, variants in EXPERIMENTS.items():
        chosen = variants[:2] if args.fast else variants
        for variant, overrides in chosen:
            key = tuple(overrides)
            if key not in done:
                run_name = f"run{len(done):02d}"
                start = time.perf_counter()
                result = Trainer(load_config("synthetic", [*common, f"run_name={run_name}", *overrides])).fit()
                done[key] = {**result.metrics, "time_s": time.perf_counter() - start, "run": run_name}
            rows.append({"experiment": experiment, "variant": variant, **done[key]})

    epochs = load_config("synthetic", common).epochs
    which = "tiny --fast set" if args.fast else "default set"
    lines = [
        f"# Ablations on the synthetic set ({epochs} epoch(s) per run, {which})",
        "",
        "| experiment | variant | R1 | mAP | mINP | train+eval s | run |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['experiment']} | {r['variant']} | {r['R1']:.2f} | {r['mAP']:.2f} | {r['mINP']:.2f} "
            f"| {r['time_s']:.0f} | {r['run']} |"
        )
    table = "\n".join(lines) + "\n"
    (out / "ablations.md").write_text(table, encoding="utf-8")
    print(table)
    return rows


if __name__ == "__main__":
    main()
