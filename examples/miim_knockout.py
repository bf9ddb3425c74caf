"""What a trained WRIM-Net takes from each MIIM: test-time knock-outs and gate statistics of finished runs.

For each run folder (a ``wrim train`` run of a network with MIIMs) and each MIIM placement, the run's own test
protocol is evaluated with that one MIIM changed at test time ([D], docs: Reproducing the paper, section Ablations
on the synthetic benchmark):

- ``removed``: ``Out = X``, the block is taken out (what the rest of the network learnt to expect from it is gone);
- ``constant gate``: ``G`` is replaced by one value per channel, its mean over the calibration images of the
  copy's modality (the branch becomes ``BN(X ⊙ c)``: a per-channel rescaling of ``X`` that no longer depends on
  the image, so GRI's interaction is gone and the added normalised residual stays);
- ``channel gate only``: ``G`` is averaged over the h x w regions of each image (per-image channel attention kept,
  the spatial selectivity gone);
- ``spatial gate only``: ``G`` is averaged over the C channels of each region (spatial attention kept).

The changed MIIM's BatchNorm statistics are re-estimated under the change on calibration images from the training
split (``--calibration`` of each modality), so that a gate of another mean is not also mis-normalised. With them,
per MIIM: the gate's mean, its spread over channels, over regions within an image and over images, the visible
vs infrared difference of the per-channel mean gate, and the relative size of the branch ``|Out - X| / |X|``.

Run::

    python examples/miim_knockout.py runs/wrim-seed0 runs/wrim-seed1 runs/wrim-seed2 --out knockout
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import statistics
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from wrim.data import read_image
from wrim.data.transforms import TestTransform
from wrim.engine.evaluate import evaluate_checkpoint, load_run_model
from wrim.engine.rundir import RunFolder
from wrim.layers import MIIM, ModalityMIIM
from wrim.visualize import capture_gates

__all__ = ["INTERVENTIONS", "gate_statistics", "intervene", "knockout_run", "main"]

#: the table's label -> the intervention's name in ``MIIM.intervene`` (docs: Layers, Gate modes and interventions).
INTERVENTIONS: dict[str, str] = {
    "removed": "removed",
    "constant gate": "channel_mean",
    "channel gate only": "channel_only",
    "spatial gate only": "spatial_only",
}


def _copies(block: nn.Module) -> dict[str, MIIM]:
    """The MIIM copies of a placement: ``{"visible", "infrared"}`` of a ModalityMIIM, ``{"shared"}`` of a MIIM."""
    if isinstance(block, ModalityMIIM):
        return {"visible": block.visible, "infrared": block.infrared}
    return {"shared": block}


def _load_images(records: list, img_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    transform = TestTransform(img_size)
    images = torch.stack([transform(read_image(r.path), r.modality) for r in records])  # (B, 3, H, W)
    return images, torch.tensor([r.modality for r in records])  # (B,)


def _calibration(dataset, per_modality: int, img_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_modality`` training images of each modality, spread over identities, alternating visible / infrared
    (so that every calibration batch holds both, as the training batches did)."""
    by_modality = []
    for modality in (0, 1):
        records = [r for r in dataset.train if r.modality == modality]
        by_modality.append(records[:: max(1, len(records) // per_modality)][:per_modality])
    chosen = [record for pair in zip(*by_modality) for record in pair]
    return _load_images(chosen, img_size)  # (2 * per_modality, 3, H, W), (2 * per_modality,)


@torch.no_grad()
def gate_statistics(
    net: nn.Module, images: torch.Tensor, modalities: torch.Tensor
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, torch.Tensor]]]:
    """Per placement: gate statistics over ``images`` and the per-copy, per-channel mean gate (for ``constant``).

    A separate MIIM's copy is measured on the images of its own modality (the only ones it re-weights).
    """
    branch_sizes: dict[str, float] = {}

    def size_hook(name: str):
        def hook(_module: nn.Module, inputs: tuple, out: torch.Tensor) -> None:
            branch_sizes[name] = float((out - inputs[0]).norm() / inputs[0].norm())

        return hook

    handles = [block.register_forward_hook(size_hook(name)) for name, block in net.miims.items()]
    try:
        with capture_gates(net) as records:
            net(images, modalities)
    finally:
        for handle in handles:
            handle.remove()
    stats, channel_means = {}, {}
    for name, copies in records.items():
        own = {
            copy: gate if copy == "shared" else gate[modalities == (0 if copy == "visible" else 1)]
            for copy, gate in copies.items()
        }  # copy -> (b, C, h, w)
        channel_means[name] = {copy: gate.mean(dim=(0, 2, 3)) for copy, gate in own.items()}  # copy -> (C,)
        gate = torch.cat(list(own.values()))  # (B, C, h, w): each image through its own copy
        if "shared" in own:
            by_modality = [gate[modalities == m].mean(dim=(0, 2, 3)) for m in (0, 1)]  # 2 x (C,)
        else:
            by_modality = [channel_means[name]["visible"], channel_means[name]["infrared"]]  # 2 x (C,)
        stats[name] = {
            "mean": float(gate.mean()),
            "std over channels": float(gate.mean(dim=(0, 2, 3)).std()),
            "std over regions": float(gate.std(dim=(2, 3)).mean()) if gate[0, 0].numel() > 1 else 0.0,
            "std over images": float(gate.mean(dim=(2, 3)).std(dim=0).mean()),
            "visible - infrared": float((by_modality[0] - by_modality[1]).abs().mean()),
            "branch / input": branch_sizes[name],
        }
    return stats, channel_means


@contextlib.contextmanager
def intervene(
    block: nn.Module,
    change: str,
    channel_means: dict[str, torch.Tensor],
    calibration: tuple[torch.Tensor, torch.Tensor],
    net: nn.Module,
) -> Iterator[None]:
    """``block`` changed by ``block.intervene(change)`` until the context ends, with re-estimated BatchNorm statistics.

    A gate change re-estimates the block's BatchNorm running statistics under the change on ``calibration`` (the
    block alone in training mode, cumulative average); ``MIIM.intervene`` puts the trained ones back afterwards.
    ``channel_means``: each copy's per-channel mean gate (``"channel_mean"`` uses the copy's own).
    """
    copies = _copies(block)
    means = channel_means.get("shared")
    if means is None:
        means = torch.stack([channel_means["visible"], channel_means["infrared"]])  # (2, C): visible, infrared
    momenta = {copy: miim.norm.momentum for copy, miim in copies.items()}
    with block.intervene(change, channel_mean=means if change == "channel_mean" else None):
        try:
            if change != "removed":
                for miim in copies.values():
                    miim.norm.reset_running_stats()
                    miim.norm.momentum = None  # cumulative average over the calibration batches
                block.train()
                with torch.no_grad():
                    images, modalities = calibration
                    for start in range(0, len(images), 64):
                        net(images[start : start + 64], modalities[start : start + 64])
                block.eval()
            yield
        finally:
            for copy, miim in copies.items():
                miim.norm.momentum = momenta[copy]


def knockout_run(run_dir: Path, calibration_per_modality: int = 128, num_workers: int = 0) -> dict:
    """The run's test metrics intact and under every intervention at every MIIM, plus the gate statistics."""
    from wrim.evaluation import evaluate_protocol

    folder = RunFolder(run_dir)
    checkpoint = folder.weights()  # the weights its final evaluation used
    model = load_run_model(run_dir, checkpoint, device="cpu")  # embeds as evaluate_checkpoint does
    net = model.net
    if not getattr(net, "miims", None):
        raise ValueError(f"{run_dir}: the network has no MIIM to knock out (a baseline run?)")
    data = folder.read_config().data  # the run's own dataset
    report = evaluate_checkpoint(checkpoint, run_dir, data.dataset, data.root, device="cpu", num_workers=num_workers)
    dataset = report.dataset_object
    calibration = _calibration(dataset, calibration_per_modality, report.img_size)
    stats, channel_means = gate_statistics(net, *calibration)
    result = {"run": str(run_dir), "intact": report.mean, "gates": stats, "changed": {}}
    for name, block in net.miims.items():
        for label, change in INTERVENTIONS.items():
            with intervene(block, change, channel_means[name], calibration, net), torch.no_grad():
                changed = evaluate_protocol(
                    model, dataset, trials=report.trial_ids, img_size=report.img_size, device="cpu",
                    flip=report.flip, num_workers=num_workers, **report.protocol,
                ).as_dict()  # fmt: skip
            result["changed"].setdefault(name, {})[label] = changed
            print(
                f"{run_dir.name} {name} {label}: mAP {changed['mAP']:.2f} (intact {report.mean['mAP']:.2f})", flush=True
            )
    return result


def _mean_se(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:+.2f}"
    return f"{statistics.mean(values):+.2f} ± {statistics.stdev(values) / math.sqrt(len(values)):.2f}"


def write_table(results: list[dict], path: Path) -> str:
    """Markdown: Δ mAP (changed - intact, mean ± SE over runs) per MIIM and intervention, then the gate statistics."""
    names = list(results[0]["changed"])
    lines = [
        f"Runs: {', '.join(Path(r['run']).name for r in results)}; intact mAP "
        + ", ".join(f"{r['intact']['mAP']:.2f}" for r in results),
        "",
        "| MIIM | " + " | ".join(f"Δ mAP, {label}" for label in INTERVENTIONS) + " |",
        "|---|" + "---:|" * len(INTERVENTIONS),
    ]
    for name in names:
        deltas = [
            _mean_se([r["changed"][name][label]["mAP"] - r["intact"]["mAP"] for r in results])
            for label in INTERVENTIONS
        ]
        lines.append(f"| {name} | " + " | ".join(deltas) + " |")
    keys = list(results[0]["gates"][names[0]])
    lines += ["", "| MIIM | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
    for name in names:
        cells = [f"{statistics.mean(r['gates'][name][key] for r in results):.3f}" for key in keys]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="wrim run folders of networks with MIIMs")
    parser.add_argument("--out", type=Path, default=Path("knockout"), help="knockout.json and knockout.md go here")
    parser.add_argument("--calibration", type=int, default=128, help="training images of each modality")
    parser.add_argument("--num-workers", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        for run in args.runs:
            RunFolder(run).require()
        results = [knockout_run(run, args.calibration, args.num_workers) for run in args.runs]
    except ValueError as err:
        parser.error(str(err))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "knockout.json").write_text(json.dumps(results, indent=1))
    print(write_table(results, args.out / "knockout.md"))
    return results


if __name__ == "__main__":
    main()
