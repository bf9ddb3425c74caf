"""The seed's ablations (paper.md §5) as a study over seeds: every variant x seed, mean ± std, paired differences.

Each experiment is a list of variants, each a list of config overrides of ``--config`` (default ``synthetic``;
``synthetic_bench`` is the benchmark sized for the study, docs/reproducing.md "Ablations on the synthetic benchmark"):

- ``wrim_vs_baseline``: the config's network without any MIIM vs with them (same backbone, recipe and seed);
- ``placement`` ("MIIM placement"): no MIIM / block 1 only / blocks 1-2 (separate) / blocks 3-4 (shared) / all four;
- ``metric`` ("metric loss"): AICL (CMKIC on P5 + P4) vs batch-hard triplet vs AGW's weighted-regularisation triplet;
- ``k`` ("key instances K"): K in {2, 1, 4, 8};
- ``compression`` ("block-1 spatial compression"): the block-1 MIIM's stride in {4, 1, 2, 8};
- ``gate`` / ``gate_34`` ("MIIM gate: learned vs constant"): all four MIIMs (blocks 3-4) with their learned gate vs
  the gate fixed at ½ during training (``X + BN(X)``, a control: is it the re-weighting or the added normalised
  residual?), against the baseline;
- ``aicl`` ("AICL's P4 term"): CMKIC on P5 + 0.5 x CMKIC on P4 (the paper's AICL) vs CMKIC on P5 only;
- ``baseline_metric`` ("metric loss on the baseline"): the ``metric`` variants on the network without MIIMs;
- ``wrim_vs_baseline_triplet`` / ``wrim_vs_baseline_wr_triplet``: ``wrim_vs_baseline`` with that metric loss, so
  that MIIM's effect is measured under each loss (with ``metric`` and ``baseline_metric``: a 2 x 3 factorial).

Every variant x seed is one ``wrim.engine.Trainer`` run in ``<runs-dir>/<variant>-seed<S>``; its metrics go to
``<out>/runs/<variant>-seed<S>.json``. A run whose result file exists is skipped (a run interrupted after an epoch
resumes from its checkpoint), so the same command continues a study. Variants with the same overrides (the paper's
setting appears in several experiments) share their runs. Seeds run interleaved (seed 0 of every variant, then
seed 1, ...), so a stopped study has paired runs. Then ``<out>/ablations.{md,json,csv}`` and ``ablations.png``
give, per variant, mean ± sample std over seeds, the per-seed values and the paired difference against the
experiment's first variant with its standard error (std of the per-seed differences / sqrt(n)).

Run::

    python examples/ablations.py --config synthetic_bench --seeds 0-4 --experiments wrim_vs_baseline \
        --out docs/study --runs-dir /work/study        # the study (resumable)
    python examples/ablations.py --out docs/study --table-only   # the table from the finished runs only
    python examples/ablations.py --fast                # one variant per experiment on a tiny set (seconds each)
    python examples/ablations.py --device cuda ...     # the same on a GPU (or device: in the config)
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from wrim.engine import Trainer, load_config
from wrim.layers import MIIM

__all__ = ["EXPERIMENTS", "Experiment", "Variant", "constant_gates", "main", "parse_seeds", "summarize"]


@dataclass(frozen=True)
class Variant:
    """One setting: ``key`` names its runs (shared by every experiment that lists it), ``label`` its table row.

    ``constant_gate`` (a control, [D]): every MIIM's gate is ½ throughout the run (`constant_gates`). With the
    non-affine BatchNorm after the re-weighting, ``BN(X ⊙ ½) = BN(X)`` per channel, so the block keeps its added
    normalised residual ``X + BN(X)`` and loses the image-dependent re-weighting (compression, GRI, restore).
    """

    key: str
    label: str
    overrides: tuple[str, ...] = ()
    constant_gate: bool = False


@dataclass(frozen=True)
class Experiment:
    """A titled list of variants; differences are taken against the first one."""

    title: str
    variants: tuple[Variant, ...]


PAPER = Variant("wrim", "all four blocks (paper)")
NO_MIIM = Variant("no_miim", "no MIIM (baseline)", ("model.kwargs.separate_stages=[]", "model.kwargs.shared_stages=[]"))
PAPER_LOSS = Variant(PAPER.key, "AICL / CMKIC (paper)")
PAPER_K = Variant(PAPER.key, "K = 2 (default)")
PAPER_STRIDE = Variant(PAPER.key, "stride 4 (paper)")
MIIM_34 = Variant(
    "miim_34", "blocks 3-4 (shared) only", ("model.kwargs.separate_stages=[]", "model.kwargs.shared_stages=[3,4]")
)
TRIPLET = Variant("triplet", "batch-hard triplet", ("loss.metric=triplet",))
WR_TRIPLET = Variant("wr_triplet", "weighted-regularisation triplet", ("loss.metric=wr_triplet",))
NO_MIIM_TRIPLET = Variant("no_miim_triplet", "no MIIM, batch-hard triplet", (*NO_MIIM.overrides, *TRIPLET.overrides))
NO_MIIM_WR_TRIPLET = Variant(
    "no_miim_wr_triplet", "no MIIM, weighted-regularisation triplet", (*NO_MIIM.overrides, *WR_TRIPLET.overrides)
)

#: experiment key -> experiment; ``--experiments`` takes keys or titles.
EXPERIMENTS: dict[str, Experiment] = {
    "wrim_vs_baseline": Experiment("WRIM-Net vs baseline", (NO_MIIM, Variant(PAPER.key, "WRIM-Net (MIIMs 1-4)"))),
    "placement": Experiment(
        "MIIM placement",
        (
            NO_MIIM,
            Variant("miim_1", "block 1 only", ("model.kwargs.separate_stages=[1]", "model.kwargs.shared_stages=[]")),
            Variant(
                "miim_12",
                "blocks 1-2 (separate) only",
                ("model.kwargs.separate_stages=[1,2]", "model.kwargs.shared_stages=[]"),
            ),
            MIIM_34,
            PAPER,
        ),
    ),
    "metric": Experiment("metric loss", (PAPER_LOSS, TRIPLET, WR_TRIPLET)),
    "k": Experiment(
        "key instances K",
        (PAPER_K, *(Variant(f"k{k}", f"K = {k}", (f"loss.k={k}",)) for k in (1, 4, 8))),
    ),
    "compression": Experiment(
        "block-1 spatial compression",
        (
            PAPER_STRIDE,
            *(Variant(f"stride{s}", f"stride {s}", (f"model.kwargs.stride=[{s},2,1,1]",)) for s in (1, 2, 8)),
        ),
    ),
    "gate": Experiment(
        "MIIM gate: learned vs constant",
        (
            Variant(PAPER.key, "all four, learned gate (paper)"),
            Variant("wrim_constant_gate", "all four, constant gate ½ (X + BN(X))", constant_gate=True),
            NO_MIIM,
        ),
    ),
    "gate_34": Experiment(
        "MIIM gate at blocks 3-4: learned vs constant",
        (
            Variant(MIIM_34.key, "blocks 3-4, learned gate", MIIM_34.overrides),
            Variant("miim_34_constant_gate", "blocks 3-4, constant gate ½", MIIM_34.overrides, constant_gate=True),
            NO_MIIM,
        ),
    ),
    "aicl": Experiment(
        "AICL's P4 term",
        (Variant(PAPER.key, "P5 + 0.5 x P4 (paper)"), Variant("p5_only", "CMKIC on P5 only", ("loss.p4_weight=0",))),
    ),
    "baseline_metric": Experiment(
        "metric loss on the baseline",
        (
            Variant(NO_MIIM.key, "no MIIM, AICL / CMKIC", NO_MIIM.overrides),
            NO_MIIM_TRIPLET,
            NO_MIIM_WR_TRIPLET,
        ),
    ),
    "wrim_vs_baseline_triplet": Experiment(
        "WRIM-Net vs baseline, batch-hard triplet",
        (NO_MIIM_TRIPLET, Variant(TRIPLET.key, "WRIM-Net, batch-hard triplet", TRIPLET.overrides)),
    ),
    "wrim_vs_baseline_wr_triplet": Experiment(
        "WRIM-Net vs baseline, weighted-regularisation triplet",
        (
            NO_MIIM_WR_TRIPLET,
            Variant(WR_TRIPLET.key, "WRIM-Net, weighted-regularisation triplet", WR_TRIPLET.overrides),
        ),
    ),
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
METRICS = ("R1", "mAP", "mINP")


def parse_seeds(text: str) -> list[int]:
    """``"0-4"``, ``"0,2,5"`` or a mix (``"0-2,7"``) -> sorted distinct seeds."""
    seeds: set[int] = set()
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        if not lo.isdigit() or (hi and not hi.isdigit()):
            raise ValueError(f"--seeds: {part!r} is not a seed or a range; write e.g. 0-4 or 0,1,2")
        seeds.update(range(int(lo), int(hi or lo) + 1))
    if not seeds:
        raise ValueError(f"--seeds: {text!r} names no seed; write e.g. 0-4")
    return sorted(seeds)


def _select(names: list[str] | None) -> list[Experiment]:
    if not names:
        return list(EXPERIMENTS.values())
    by_name = {**{e.title.lower(): e for e in EXPERIMENTS.values()}, **EXPERIMENTS}
    unknown = [n for n in names if n not in by_name and n.lower() not in by_name]
    if unknown:
        raise ValueError(f"--experiments: unknown {unknown}; choose from {list(EXPERIMENTS)}")
    return [by_name.get(n, by_name.get(n.lower())) for n in names]


# ---------------------------------------------------------------------------------------------- running


def _machine(device: str) -> dict[str, object]:
    """What ran it: the device (and GPU name), the CPU, its core count and the torch threads."""
    import torch

    info: dict[str, object] = {
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _cpu_seconds() -> float:
    """CPU seconds used by this process and its finished children (the DataLoader workers), whatever else runs."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


@contextlib.contextmanager
def constant_gates() -> Iterator[None]:
    """Every ``MIIM.gate`` returns ½ (the shape it would have) until the block ends: the ``constant_gate`` control.

    ``ModalityMIIM`` calls its copies' ``gate``, and the eval-mode folded path calls ``gate`` too, so every use is
    covered; the compression, GRI and restore parameters get no gradient (the optimiser skips them).
    """
    learned = MIIM.gate

    def half(self: MIIM, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W) -> (B, C, ⌈H/s⌉, ⌈W/s⌉), all ½
        height, width = -(-x.shape[2] // self.stride), -(-x.shape[3] // self.stride)
        return x.new_full((x.shape[0], self.channels, height, width), 0.5)

    MIIM.gate = half
    try:
        yield
    finally:
        MIIM.gate = learned


def _run(config_name: str, common: list[str], variant: Variant, seed: int, runs_dir: Path, result: Path) -> dict:
    """Trains ``variant`` with ``seed`` (resuming an interrupted run) and writes its result file."""
    from wrim.engine.checkpoint import checkpoint_exists

    run_name = f"{variant.key}-seed{seed}"
    overrides = [*common, *variant.overrides, f"seed={seed}", f"output_dir={runs_dir}", f"run_name={run_name}"]
    config = load_config(config_name, overrides)
    run_dir = runs_dir / run_name
    resume = checkpoint_exists(run_dir, "any")
    load_start, start, cpu_start = os.getloadavg(), time.perf_counter(), _cpu_seconds()
    trainer = Trainer(config, run_dir=run_dir if resume else None, resume=resume)
    with constant_gates() if variant.constant_gate else contextlib.nullcontext():
        fit = trainer.fit()
    record = {
        "variant": variant.key,
        "label": variant.label,
        "seed": seed,
        "config": config_name,
        "overrides": [*common, *variant.overrides],
        "constant_gate": variant.constant_gate,
        "epochs": config.epochs,
        **{k: fit.metrics[k] for k in ("R1", "R5", "R10", "R20", "mAP", "mINP")},
        "best_epoch": fit.best_epoch,
        "time_s": round(time.perf_counter() - start, 1),
        "cpu_s": round(_cpu_seconds() - cpu_start, 1),
        "resumed": resume,
        "load_avg_1min": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
        **_machine(str(trainer.device)),
        "run_dir": str(fit.run_dir),
        "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    result.parent.mkdir(parents=True, exist_ok=True)
    tmp = result.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    tmp.replace(result)  # a result file exists only for a finished run
    return record


def _load_or_run(args: argparse.Namespace, common: list[str], variant: Variant, seed: int) -> dict:
    """The run's result file if it exists (same settings, else ValueError), else the freshly trained run's."""
    result = Path(args.out) / "runs" / f"{variant.key}-seed{seed}.json"
    if result.is_file():
        record = json.loads(result.read_text(encoding="utf-8"))
        wanted = [*common, *variant.overrides]
        constant = record.get("constant_gate", False)
        if record["config"] != args.config or record["overrides"] != wanted or constant != variant.constant_gate:
            raise ValueError(
                f"{result} was written with --config {record['config']}, overrides {record['overrides']} and "
                f"constant_gate={constant}, not {args.config} {wanted} and constant_gate={variant.constant_gate}: "
                "use another --out for other settings"
            )
        print(f"skip {variant.key} seed {seed}: finished ({result})", flush=True)
        return {**record, "skipped": True}
    print(f"run {variant.key} seed {seed} ...", flush=True)
    return _run(args.config, common, variant, seed, Path(args.runs_dir or Path(args.out) / "checkpoints"), result)


# ---------------------------------------------------------------------------------------------- statistics


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def summarize(experiments: list[Experiment], records: list[dict]) -> list[dict]:
    """Per experiment and variant: n, per-seed values, mean ± sample std and the paired difference vs the first.

    The paired difference of a metric uses the seeds both variants finished: d_s = x_s - first_s, reported as
    mean(d) ± SE with SE = stdev(d) / sqrt(n) (``None`` when fewer than two pairs).
    """
    by_run = {(r["variant"], r["seed"]): r for r in records}
    summary = []
    for experiment in experiments:
        first = experiment.variants[0].key
        rows = []
        for variant in experiment.variants:
            seeds = sorted(s for (key, s) in by_run if key == variant.key)
            row: dict[str, object] = {"variant": variant.key, "label": variant.label, "n": len(seeds), "seeds": seeds}
            times = [by_run[variant.key, s]["time_s"] for s in seeds]
            row["time_s_mean"] = statistics.fmean(times) if times else None
            for metric in METRICS:
                values = [by_run[variant.key, s][metric] for s in seeds]
                row[f"{metric}_per_seed"] = values
                row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std(values) if values else (None, None)
                paired = [s for s in seeds if (first, s) in by_run]
                diffs = [by_run[variant.key, s][metric] - by_run[first, s][metric] for s in paired]
                mean_d, std_d = _mean_std(diffs) if diffs else (None, None)
                row[f"{metric}_diff"], row[f"{metric}_diff_n"] = mean_d, len(diffs)
                row[f"{metric}_diff_se"] = None if std_d is None else std_d / math.sqrt(len(diffs))
            rows.append(row)
        summary.append({"experiment": experiment.title, "reference": experiment.variants[0].label, "rows": rows})
    return summary


# ---------------------------------------------------------------------------------------------- writing


def _pm(mean: float | None, spread: float | None) -> str:
    if mean is None:
        return "–"
    return f"{mean:.2f}" if spread is None else f"{mean:.2f} ± {spread:.2f}"


def _markdown(summary: list[dict], heading: str) -> str:
    lines = [f"# {heading}", ""]
    for block in summary:
        lines += [
            f"## {block['experiment']} (differences: variant − {block['reference']}, paired by seed)",
            "",
            "| variant | n | R1 mean ± std | mAP mean ± std | mINP mean ± std | mAP per seed | R1 per seed "
            "| Δ mAP ± SE | Δ R1 ± SE | min / run |",
            "|---|---:|---:|---:|---:|---|---|---:|---:|---:|",
        ]
        for r in block["rows"]:
            per_seed = {m: ", ".join(f"{s}: {v:.2f}" for s, v in zip(r["seeds"], r[f"{m}_per_seed"])) for m in METRICS}
            minutes = "–" if r["time_s_mean"] is None else f"{r['time_s_mean'] / 60:.1f}"
            diffs = {m: _pm(r[f"{m}_diff"], r[f"{m}_diff_se"]) for m in ("mAP", "R1")}
            if r["variant"] == block["rows"][0]["variant"]:
                diffs = {"mAP": "reference", "R1": "reference"}
            lines.append(
                f"| {r['label']} | {r['n']} | {_pm(r['R1_mean'], r['R1_std'])} | {_pm(r['mAP_mean'], r['mAP_std'])} "
                f"| {_pm(r['mINP_mean'], r['mINP_std'])} | {per_seed['mAP'] or '–'} | {per_seed['R1'] or '–'} "
                f"| {diffs['mAP']} | {diffs['R1']} | {minutes} |"
            )
        lines.append("")
    lines.append("std: sample standard deviation over seeds; SE: standard error of the mean paired difference.")
    return "\n".join(lines) + "\n"


def _write_csv(records: list[dict], path: Path) -> None:
    fields = ["variant", "label", "seed", *METRICS, "R5", "R10", "R20", "best_epoch", "time_s", "cpu_s", "device"]
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(sorted(records, key=lambda r: (r["variant"], r["seed"])))


def plot_summary(summary: list[dict], path: Path) -> None:
    """One panel per experiment: each seed's mAP (small points) and mean ± std (error bar) per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(summary), figsize=(4.2 * len(summary), 4.0), squeeze=False)
    for ax, block in zip(axes[0], summary):
        for x, r in enumerate(block["rows"]):
            values = r["mAP_per_seed"]
            ax.plot([x + 0.08 * (i - (len(values) - 1) / 2) for i in range(len(values))], values, "o", ms=3, alpha=0.6)
            if values:
                ax.errorbar(x, r["mAP_mean"], yerr=r["mAP_std"] or 0.0, fmt="s", color="black", capsize=4)
        ax.set_xticks(range(len(block["rows"])), [r["label"] for r in block["rows"]], rotation=30, ha="right")
        ax.set_title(block["experiment"])
        ax.set_ylabel("mAP (%)")
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(experiments: list[Experiment], out: Path, heading: str) -> list[dict]:
    """Summarises every result file under ``<out>/runs`` for ``experiments``; writes the table, JSON, CSV, plot."""
    keys = {v.key for e in experiments for v in e.variants}
    files = sorted((out / "runs").glob("*.json"))
    records = [r for r in (json.loads(p.read_text(encoding="utf-8")) for p in files) if r["variant"] in keys]
    summary = summarize(experiments, records)
    (out / "ablations.md").write_text(_markdown(summary, heading), encoding="utf-8")
    (out / "ablations.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    _write_csv(records, out / "ablations.csv")
    try:
        plot_summary(summary, out / "ablations.png")
    except ImportError:
        print("no plot: matplotlib is missing (pip install 'wrim[train]')", flush=True)
    return summary


# ---------------------------------------------------------------------------------------------- command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="synthetic", help="shipped config name or YAML path (default synthetic)")
    parser.add_argument("--seeds", default=None, help="e.g. 0-4 or 0,1,2 (default: the config's seed)")
    parser.add_argument("--experiments", nargs="+", default=None, help=f"of {list(EXPERIMENTS)} (default all)")
    parser.add_argument("--out", default=None, help="table, plot, per-run results (default runs/ablations-<UTC>)")
    parser.add_argument("--runs-dir", default=None, help="run folders with checkpoints (default <out>/checkpoints)")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:N (default: the config's device)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the config's)")
    parser.add_argument("--fast", action="store_true", help="tiny set, 1 epoch, the first two variants of each")
    parser.add_argument("--table-only", action="store_true", help="only rewrite the table from the finished runs")
    return parser


def main(argv: list[str] | None = None) -> list[dict]:
    """Runs every variant x seed not finished yet, then writes the table; returns the summary (one block each).

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        experiments = _select(args.experiments)
        seeds = parse_seeds(args.seeds) if args.seeds else None
    except ValueError as err:
        parser.error(str(err))  # one line, exit 2
    if args.fast:
        experiments = [Experiment(e.title, e.variants[:2]) for e in experiments]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    args.out = args.out or str(Path("runs") / f"ablations-{stamp}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = ["progress=false", "eval.every=0", "eval.ranklist=false", *(FAST if args.fast else [])]
    if args.epochs is not None:
        common.append(f"epochs={args.epochs}")
    if args.device:
        common.append(f"device={args.device}")
    config = load_config(args.config, common)  # checks the config and the overrides before any run
    if not args.table_only:
        for experiment in experiments:
            for seed in seeds or [config.seed]:  # interleaved: every variant of seed 0, then of seed 1, ...
                for variant in experiment.variants:
                    _load_or_run(args, common, variant, seed)
    heading = f"Ablations on {config.name} ({config.epochs} epoch(s) per run{', tiny --fast set' if args.fast else ''})"
    summary = write_results(experiments, out, heading)
    print((out / "ablations.md").read_text(encoding="utf-8"))
    return summary


if __name__ == "__main__":
    main()
