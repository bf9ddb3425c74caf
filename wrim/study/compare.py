"""``wrim compare``: runs grouped by their config difference, paired by seed, compared only like with like.

Each run is a finished run folder or a record of ``wrim study`` (``<out>/runs/*.json``). Runs are grouped by what
their configs set differently (seed, paths and logging aside); a study's records are grouped by variant instead. Each
group is paired by seed with the reference group: per metric, mean ± std of each group, and the paired Δ with its
95 % interval, p-value and n (`wrim.study.stats`). Where every paired run was evaluated at more than one epoch during
training (``eval.every``), the same comparison is made at each of those epochs, on the trials of ``eval.trials``:
whether a ranking holds as training goes on.

Two runs are paired only when everything but the compared factor agrees ([D]; see
docs: Evaluation, section Comparing runs). They must share the code (commit, dirty tree), torch and timm, the device
type and precision (each segment of a resumed run included), the protocol card and the dataset's fingerprint. The
first difference is refused in one line;
``allow_mixed`` makes the table anyway and marks each affected row. A difference the compared config keys explain
(``amp`` changes the precision, ``eval.*`` the card, ``data.*`` the dataset) is the factor itself, not a mix.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wrim.engine.provenance import COMPARED_FIELDS, field_value
from wrim.engine.rundir import read_json, run_record, write_json
from wrim.evaluation import METRIC_NAMES
from wrim.study.stats import PairedDifference, paired_difference

__all__ = [
    "COMPARED_METRICS",
    "ComparisonRow",
    "ComparisonTable",
    "compare_runs",
    "compare_study",
    "load_runs",
    "plot_forest",
    "to_csv",
    "to_markdown",
    "write_outputs",
]

#: The metrics a comparison reports unless told otherwise (``wrim compare --metrics``, ``wrim study``'s tables).
COMPARED_METRICS: tuple[str, ...] = ("R1", "mAP", "mINP")

#: Config keys that never make two runs different settings (the pairing key, paths, logging, workers).
IGNORED_KEYS: tuple[str, ...] = (
    "seed", "name", "run_name", "output_dir", "progress", "log_every", "keep_checkpoints", "data.num_workers",
    "data.root", "eval.ranklist", "eval.batch_size",
)  # fmt: skip
#: Which config keys (prefixes) explain a difference of a provenance field or of the card.
EXPLAINED_BY: dict[str, tuple[str, ...]] = {
    "precision": ("amp", "device"),
    "device.type": ("device",),
    "card": ("eval.", "data.", "amp", "device"),
    "dataset": ("data.",),
}


@dataclass
class Run:
    """One finished run as compare reads it."""

    name: str
    seed: int
    config: dict[str, Any]
    metrics: dict[str, float]
    card: dict[str, Any] | None
    provenance: dict[str, Any] | None
    variant: str | None = None
    label: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def segments(self) -> list[dict[str, Any]]:
        return (self.provenance or {}).get("segments") or []

    @property
    def resumed(self) -> bool:
        return len(self.segments) > 1


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key != "dataset_kwargs" and key != "protocol":
            out.update(_flatten(value, name + "."))
        else:
            out[name] = json.dumps(value, sort_keys=True)
    return out


def load_runs(paths: list[str | Path]) -> list[Run]:
    """Read run folders and study records.

    Raises:
        ValueError: a path that is neither, a run that has not finished, or a damaged file (one line each).
    """
    runs = []
    for path in map(Path, paths):
        if path.is_dir():
            record = run_record(path)
        elif path.suffix == ".json" and path.is_file():
            record = read_json(path)
            if not isinstance(record, dict) or "metrics" not in record or "config" not in record:
                raise ValueError(f"{str(path)!r} is not a run record of wrim study (no metrics / config)")
        else:
            raise ValueError(f"{str(path)!r} is neither a run folder nor a study record (.json)")
        config = record["config"]
        runs.append(
            Run(
                name=str(record.get("run") or path.stem), seed=int(record.get("seed", config.get("seed", 0))),
                config=config, metrics=record["metrics"], card=record.get("card"),
                provenance=record.get("provenance"), variant=record.get("variant"), label=record.get("label"),
                history=record.get("history") or [],
            )
        )  # fmt: skip
    return runs


def _differing_keys(runs: list[Run]) -> list[str]:
    flat = [_flatten(run.config) for run in runs]
    keys = sorted({key for config in flat for key in config})
    ignored = [key for key in keys if key in IGNORED_KEYS]
    return [k for k in keys if k not in ignored and len({config.get(k) for config in flat}) > 1]


def group_runs(runs: list[Run]) -> dict[str, list[Run]]:
    """Runs grouped by variant (study records) or by the values of the config keys they set differently, in the
    order first seen; a group's name is its variant, or ``key=value, ...``."""
    keys = _differing_keys(runs)
    groups: dict[str, list[Run]] = {}
    for run in runs:
        flat = _flatten(run.config)
        name = run.variant or (", ".join(f"{k}={flat.get(k, 'unset')}" for k in keys) or "all runs")
        groups.setdefault(name, []).append(run)
    return groups


def _mismatch(a: Run, b: Run, factor_keys: list[str]) -> str | None:
    """The first difference between two runs' provenance, card or dataset that ``factor_keys`` do not explain."""

    def explained(name: str) -> bool:
        return any(key.startswith(prefix) for key in factor_keys for prefix in EXPLAINED_BY.get(name, ()))

    for run in (a, b):
        if not run.segments:
            return f"{run.name} has no provenance of its training (run before wrim recorded it)"
    for path in COMPARED_FIELDS:
        values = {json.dumps(field_value(s, path)) for s in a.segments + b.segments}
        if len(values) > 1 and not explained(path):
            return f"{path} differs ({' vs '.join(sorted(values))})"
    datasets = {s.get("dataset", {}).get("sha256") for s in a.segments + b.segments}
    if len(datasets) > 1 and not explained("dataset"):
        return "the dataset's fingerprint differs"
    cards = [None if run.card is None else {**run.card, "checkpoint": _choice(run.card)} for run in (a, b)]
    if cards[0] != cards[1] and not explained("card"):
        fields = sorted(k for k in (cards[0] or {}) if (cards[0] or {}).get(k) != (cards[1] or {}).get(k))
        return f"the protocol cards differ ({', '.join(fields) or 'one has none'})"
    return None


def _choice(card: dict[str, Any]) -> dict[str, Any]:
    """A card's checkpoint choice without its epoch (which best epoch was chosen is a result, not a protocol)."""
    return {k: v for k, v in card.get("checkpoint", {}).items() if k != "epoch"}


def _evaluated(run: Run, metrics: tuple[str, ...]) -> dict[int, dict[str, float]]:
    """The epochs of a run's history that hold every metric (those evaluated during training), with their values."""
    return {
        int(entry["epoch"]): {m: float(entry[m]) for m in metrics}
        for entry in run.history
        if "epoch" in entry and all(isinstance(entry.get(m), (int, float)) for m in metrics)
    }


@dataclass
class ComparisonRow:
    """One group against the reference: per metric its values and the paired difference; where the paired runs were
    evaluated at several epochs during training, the same per epoch (``epoch_values``, ``epoch_differences``)."""

    label: str
    n: int
    seeds: list[int]
    values: dict[str, list[float]]
    differences: dict[str, PairedDifference | None]
    resumed: list[int] = field(default_factory=list)
    mixed: str | None = None
    epoch_values: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    epoch_differences: dict[int, dict[str, PairedDifference | None]] = field(default_factory=dict)


@dataclass
class ComparisonTable:
    """A reference and its compared rows (``reference`` is the first row, with no differences)."""

    title: str
    reference: str
    rows: list[ComparisonRow]
    metrics: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        def diff(d: PairedDifference | None) -> dict[str, Any] | None:
            return None if d is None else {**d.__dict__, "verdict": d.verdict()}

        rows = [
            {
                **r.__dict__,
                "differences": {m: diff(d) for m, d in r.differences.items()},
                "epoch_differences": {e: {m: diff(d) for m, d in ds.items()} for e, ds in r.epoch_differences.items()},
            }
            for r in self.rows
        ]
        return {"title": self.title, "reference": self.reference, "metrics": list(self.metrics), "rows": rows}


def _row(label: str, runs: list[Run], reference: list[Run], metrics: tuple[str, ...], factor: list[str],
         allow_mixed: bool) -> ComparisonRow:  # fmt: skip
    by_seed = {run.seed: run for run in runs}
    ref_by_seed = {run.seed: run for run in reference}
    common = sorted(set(by_seed) & set(ref_by_seed))
    mixed = next((m for s in common if (m := _mismatch(by_seed[s], ref_by_seed[s], factor))), None)
    mixed = mixed or next((_mismatch(run, run, []) for run in runs if _mismatch(run, run, [])), None)
    if mixed and not allow_mixed:
        raise ValueError(f"{label} cannot be paired with the reference: {mixed}; pass --allow-mixed to mark it instead")
    differences = {}
    for metric in metrics:
        values = [by_seed[s].metrics[metric] for s in common]
        differences[metric] = (
            paired_difference(values, [ref_by_seed[s].metrics[metric] for s in common]) if common else None
        )
    row = ComparisonRow(
        label=label, n=len(runs), seeds=sorted(by_seed),
        values={m: [by_seed[s].metrics[m] for s in sorted(by_seed)] for m in metrics}, differences=differences,
        resumed=sorted(run.seed for run in runs if run.resumed), mixed=mixed,
    )  # fmt: skip
    evaluated = {s: (_evaluated(by_seed[s], metrics), _evaluated(ref_by_seed[s], metrics)) for s in common}
    epochs = sorted(set.intersection(*(set(own) & set(ref) for own, ref in evaluated.values()))) if common else []
    for epoch in epochs if len(epochs) > 1 else []:
        own = {m: [evaluated[s][0][epoch][m] for s in common] for m in metrics}
        row.epoch_values[epoch] = own
        row.epoch_differences[epoch] = {
            m: paired_difference(own[m], [evaluated[s][1][epoch][m] for s in common]) for m in metrics
        }
    return row


def compare_runs(
    runs: list[Run],
    reference: str | None = None,
    variants: list[str] | None = None,
    *,
    title: str = "",
    metrics: tuple[str, ...] = COMPARED_METRICS,
    allow_mixed: bool = False,
    labels: dict[str, str] | None = None,
) -> ComparisonTable:
    """Group ``runs``, pair each group with ``reference`` by seed, and compute the paired differences.

    Args:
        runs: from `load_runs`.
        reference: the reference group (a variant or a group name); default the first group.
        variants: the groups to compare, in order (default every other group).
        title: the table's title.
        metrics: the metrics to report (of ``R1``, ``R5``, ``R10``, ``R20``, ``mAP``, ``mINP``).
        allow_mixed: make the table even when provenance differs, marking the rows.
        labels: display labels by group name (a study's variant labels).

    Raises:
        ValueError: fewer than two groups, an unknown group, no seed in common with the reference, or (without
            ``allow_mixed``) a pair whose provenance, card or dataset differs (the first difference named).
    """
    unknown = [m for m in metrics if m not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; choose from {list(METRIC_NAMES)}")
    groups = group_runs(runs)
    if len(groups) < 2:
        raise ValueError(
            f"wrim compare needs runs of at least two settings; got {len(runs)} run(s) of one setting "
            f"({next(iter(groups), 'none')})"
        )
    reference = reference or next(iter(groups))
    chosen = variants or [name for name in groups if name != reference]
    missing = [name for name in [reference, *chosen] if name not in groups]
    if missing:
        raise ValueError(f"no runs of {missing}; the runs form the groups {list(groups)}")
    labels = labels or {}
    ref_runs = groups[reference]
    rows = [_row(labels.get(reference, reference), ref_runs, ref_runs, metrics, [], allow_mixed)]
    for name in chosen:
        factor = _differing_keys(groups[name] + ref_runs)
        row = _row(labels.get(name, name), groups[name], ref_runs, metrics, factor, allow_mixed)
        if not any(d is not None for d in row.differences.values()):
            raise ValueError(f"{name} shares no seed with the reference {reference} (seeds {row.seeds} vs "
                             f"{sorted(r.seed for r in ref_runs)}): nothing can be paired")  # fmt: skip
        rows.append(row)
    for row in rows[:1]:
        row.differences = dict.fromkeys(metrics)
        row.epoch_differences = {epoch: dict.fromkeys(metrics) for epoch in row.epoch_differences}
    return ComparisonTable(
        title or f"vs {labels.get(reference, reference)}", labels.get(reference, reference), rows, metrics
    )


def _mean_std(values: list[float]) -> str:
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) < 2:
        return f"{mean:.2f}"
    std = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)) ** 0.5
    return f"{mean:.2f} ± {std:.2f}"


def _difference(d: PairedDifference | None) -> str:
    if d is None:
        return "reference"
    if d.low is None:
        return f"{d.mean:+.2f} (n = {d.n}, no interval)"
    return f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}], p {d.p:.2g}, n {d.n}: {d.verdict()}"


def to_markdown(tables: list[ComparisonTable]) -> str:
    """Each table as Markdown: per group n, seeds, mean ± std per metric, and the paired Δ [95 % CI], p, n, verdict."""
    lines = []
    for table in tables:
        metrics = table.metrics
        head = ["setting", "n", *(f"{m} mean ± std" for m in metrics), *(f"Δ {m} [95 % CI], p, n" for m in metrics)]
        lines += [
            f"### {table.title}",
            "",
            "| " + " | ".join(head) + " | notes |",
            "|---|---:|" + "---:|" * (len(head) - 1),
        ]
        for row in table.rows:
            notes = []
            if row.resumed:
                notes.append(f"resumed seeds {row.resumed}")
            if row.mixed:
                notes.append(f"MIXED: {row.mixed}")
            cells = [row.label, str(row.n), *(_mean_std(row.values[m]) for m in metrics)]
            cells += [_difference(row.differences[m]) for m in metrics]
            lines.append("| " + " | ".join(cells) + f" | {'; '.join(notes)} |")
        lines += ["", *_epoch_markdown(table)]
    lines.append(
        "Δ: the setting minus the reference, paired by seed; 95 % CI: mean ± t(0.975, n−1)·sd/√n; p: two-sided paired "
        "t-test. An interval containing 0 is not resolved; n ≤ 3 is an indication only."
    )
    return "\n".join(lines) + "\n"


def _epoch_markdown(table: ComparisonTable) -> list[str]:
    """The per-epoch table of ``table`` (epoch by epoch, each setting's runs at that epoch), or nothing when no pair
    was evaluated at more than one epoch."""
    epochs = sorted({epoch for row in table.rows[1:] for epoch in row.epoch_values})
    if not epochs:
        return []
    metrics = table.metrics
    head = ["epoch", "setting", "n", *(f"{m} mean ± std" for m in metrics)]
    head += [f"Δ {m} [95 % CI], p, n" for m in metrics]
    lines = [
        f"{table.title}, at each epoch evaluated during training (the trials of `eval.trials`, the weights of that "
        "epoch):",
        "",
        "| " + " | ".join(head) + " |",
        "|---:|---|---:|" + "---:|" * (len(head) - 3),
    ]
    for epoch in epochs:
        for row in table.rows:
            if epoch in row.epoch_values:
                values = row.epoch_values[epoch]
                cells = [str(epoch), row.label, str(len(values[metrics[0]])), *(_mean_std(values[m]) for m in metrics)]
                cells += [_difference(row.epoch_differences[epoch][m]) for m in metrics]
                lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def to_csv(tables: list[ComparisonTable]) -> str:
    """One line per table, setting, metric and epoch (``final`` for the final metrics, else an epoch evaluated during
    training): the values, n, and the paired Δ with its interval and p."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["table", "setting", "epoch", "metric", "n", "values", "delta", "ci_low", "ci_high", "p", "pairs",
                     "verdict", "resumed_seeds", "mixed"])  # fmt: skip
    for table in tables:
        for row in table.rows:
            results = [("final", row.values, row.differences)]
            results += [(e, row.epoch_values[e], row.epoch_differences[e]) for e in sorted(row.epoch_values)]
            for epoch, values, differences in results:
                for metric in table.metrics:
                    d = differences[metric]
                    pairs = [None] * 6 if d is None else [d.mean, d.low, d.high, d.p, d.n, d.verdict()]
                    listed = " ".join(f"{v:.4f}" for v in values[metric])
                    writer.writerow([table.title, row.label, epoch, metric, len(values[metric]), listed, *pairs,
                                     row.resumed, row.mixed or ""])  # fmt: skip
    return buffer.getvalue()


def plot_forest(tables: list[ComparisonTable], path: str | Path, metric: str = "mAP") -> Path:
    """The forest plot: each compared setting against its table's reference, Δ ``metric`` with its 95 % interval (a
    dot for n < 2); a pair that several tables share is drawn once."""
    from wrim._plotting import new_figure, save_figure

    pairs: dict[tuple[str, str], ComparisonRow] = {}
    for table in tables:
        for row in table.rows:
            if row.differences.get(metric) is not None:
                pairs.setdefault((row.label, table.reference), row)
    fig = new_figure("plot_forest", (9.0, 0.9 + 0.6 * len(pairs)))
    ax = fig.subplots()
    for y, row in enumerate(reversed(pairs.values())):
        d = row.differences[metric]
        colour = "black" if d.resolved else "grey"
        if d.low is not None:
            ax.plot([d.low, d.high], [y, y], color=colour, linewidth=2)
        ax.plot([d.mean], [y], "o", color=colour, markersize=6 if d.n > 3 else 4)
    ax.axvline(0.0, color="tab:red", linewidth=1, linestyle="--")
    labels = [f"{label}\nvs {reference}  (n {row.n})" for (label, reference), row in reversed(pairs.items())]
    ax.set_yticks(range(len(pairs)), labels, fontsize=8)
    ax.set_xlabel(f"Δ {metric} (points), paired by seed, 95 % t interval; grey: not resolved")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, path, dpi=130)


def write_outputs(tables: list[ComparisonTable], out: str | Path, metric: str = "mAP") -> list[Path]:
    """Write ``compare.md``, ``.csv``, ``.json`` and ``forest.png`` (with matplotlib) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "compare.md", out / "compare.csv", out / "compare.json"]
    written[0].write_text(to_markdown(tables), encoding="utf-8")
    written[1].write_text(to_csv(tables), encoding="utf-8")
    write_json(written[2], [table.as_dict() for table in tables])
    with contextlib.suppress(ImportError):  # no plot without matplotlib: the tables stand alone
        written.append(plot_forest(tables, out / "forest.png", metric))
    return written


def compare_study(spec: Any, runs: list[Run], metrics: tuple[str, ...], allow_mixed: bool) -> list[ComparisonTable]:
    """One table per comparison of a study file (``wrim.study.StudySpec``), with its variants' labels; a comparison
    none of whose variants has finished runs is left out."""
    labels = {key: variant.label for key, variant in spec.variants.items()}
    finished = {run.variant for run in runs}
    tables = []
    for comparison in spec.comparisons:
        variants = [v for v in comparison.variants if v in finished]
        if comparison.reference in finished and variants:
            chosen = [run for run in runs if run.variant in (comparison.reference, *variants)]
            tables.append(
                compare_runs(chosen, comparison.reference, variants, title=comparison.title, metrics=metrics,
                             allow_mixed=allow_mixed, labels=labels)
            )  # fmt: skip
    if not tables:
        raise ValueError("no comparison of the study has finished runs of its reference and of a variant yet")
    return tables
