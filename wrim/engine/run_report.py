"""What a run reports besides its checkpoints: ``model.json``, the provenance segment, the final results
(``final_metrics.json`` with its protocol card, ``curves.png``, ``ranklist.png``) and what ``Trainer.fit`` returns
(`TrainResult`).

Each is a function of the run's parts, so that [`Trainer`][wrim.engine.Trainer] keeps only the order of the run:
`model_info` when it starts, `provenance_segment` when a process starts training it, `write_final_results` after the
final evaluation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from wrim.engine.config import Config, config_sha256, config_to_dict
from wrim.engine.evaluate import plot_ranklist_png
from wrim.engine.logger import plot_curves
from wrim.engine.precision import precision_name
from wrim.engine.provenance import environment, utc_now
from wrim.engine.rundir import RunFolder
from wrim.evaluation.card import ProtocolCard, protocol_card

if TYPE_CHECKING:
    from wrim.data import TestSplit, VIReIDDataset

__all__ = ["TrainResult", "final_card", "model_info", "provenance_segment", "write_final_results"]

log = logging.getLogger("wrim")


@dataclass
class TrainResult:
    """What [`Trainer.fit()`][wrim.engine.Trainer.fit] returns.

    Args:
        run_dir: the run folder (config, checkpoints, metrics, PNGs).
        metrics: the final evaluation in % (``R1``, ``R5``, ``R10``, ``R20``, ``mAP``, ``mINP``).
        best_epoch: the epoch (1-based) of the best R1 seen during training (0 when never evaluated).
        best_r1: that R1 in %.
    """

    run_dir: Path
    metrics: dict[str, float]
    best_epoch: int
    best_r1: float


def model_info(net: nn.Module, dataset: VIReIDDataset, config: Config, model_name: str | None) -> dict[str, Any]:
    """``model.json``: what rebuilds the network, its MIIMs' gate modes and (RegDB) the split it trains on.

    Args:
        net: the network.
        dataset: the training data (its ``num_classes``; its ``trial`` when it has one).
        config: the run configuration (``data.img_size``).
        model_name: ``model.name``, or ``None`` for a model object given to the trainer (``wrim eval`` cannot
            rebuild it: the class is named for the reader).
    """
    from wrim.layers import miim_placements

    info: dict[str, Any] = {
        "model": model_name,
        "num_classes": dataset.num_classes,
        "img_size": config.data.img_size,
    }
    if model_name is None:
        info["class"] = f"{type(net).__module__}.{type(net).__qualname__}"
    gates = {name: block.describe_gate() for name, block in miim_placements(net).items()}
    if gates:
        info["gates"] = gates
    if getattr(dataset, "trial", None) is not None:
        info["training_trial"] = int(dataset.trial)
    return info


def provenance_segment(
    config: Config,
    dataset: VIReIDDataset,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    world_size: int,
    *,
    resumed: bool,
    epochs_done: int,
) -> dict[str, Any]:
    """A process's provenance segment (``wrim.engine.provenance``): code, versions, device, config, data, and the
    epochs done when it starts."""
    from wrim.data.fingerprint import dataset_fingerprint

    return {
        "started": utc_now(),
        "resumed": resumed,
        "epochs": [epochs_done, epochs_done],
        **environment(device, precision_name(amp_dtype), world_size),
        "seed": config.seed,
        "config_sha256": config_sha256(config),
        "config": config_to_dict(config),
        "dataset": dataset_fingerprint(dataset, config.eval.protocol),
    }


def final_card(
    config: Config, dataset: VIReIDDataset, amp_dtype: torch.dtype | None, checkpoint: dict[str, Any]
) -> ProtocolCard:
    """The protocol card of the final evaluation (the same card ``wrim eval`` gives for these weights)."""
    trials = dataset.default_trials if config.eval.final_trials is None else config.eval.final_trials
    return protocol_card(
        dataset, protocol=config.eval.protocol, trials=list(trials), flip=config.eval.flip,
        precision=precision_name(amp_dtype), checkpoint=checkpoint, training_trial=getattr(dataset, "trial", None),
    )  # fmt: skip


def write_final_results(
    folder: RunFolder,
    weights: Path,
    metrics: dict[str, float],
    card: ProtocolCard,
    *,
    best_epoch: int,
    history: list[dict[str, Any]],
    ranklist: tuple[TestSplit, dict[str, torch.Tensor]] | None,
    img_size: tuple[int, int],
) -> None:
    """``final_metrics.json`` (the weights evaluated, the best epoch, the metrics and the card), ``curves.png`` from
    the epochs' ``history``, and ``ranklist.png`` of the first trial's split when ``ranklist`` (its split and
    embedded features) is given."""
    result = {"weights": weights.relative_to(folder.path).as_posix(), "best_epoch": best_epoch, **metrics}
    folder.write_final_metrics({**result, "card": card.as_dict()})
    log.info("protocol: %s", card.header())
    plot_curves(history, folder.path / "curves.png")
    if ranklist is not None:
        plot_ranklist_png(*ranklist, folder.path / "ranklist.png", img_size)
