"""Evaluating a trained run: one precision for the trainer's evaluation and ``wrim eval``, per-trial reports.

``AMP_CHOICES``, ``amp_dtype`` and ``precision_name`` are ``wrim.engine.precision``'s, named here too.

The trainer's evaluations (each epoch's and the final one written to ``final_metrics.json``) and ``wrim eval`` embed
images through the same [`EvalModel`][wrim.engine.evaluate.EvalModel]: the run's ``amp`` setting ([D] bf16 autocast
on CUDA, fp32 on the CPU, as in training) and memory format. ``wrim eval`` reads them from the run's saved
``config.yaml``, so both print the same numbers for the same weights, trials and protocol (docs: Evaluation, section
Using a trained checkpoint).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from wrim.engine.precision import AMP_CHOICES, amp_dtype, autocast, memory_format, precision_name
from wrim.engine.rundir import CONFIG, RunFolder
from wrim.evaluation.card import ProtocolCard, check_training_trial, protocol_card
from wrim.evaluation.metrics import METRIC_NAMES
from wrim.flip import flip_average

if TYPE_CHECKING:
    from wrim.data import TestSplit, VIReIDDataset
    from wrim.distributed import DistInfo
    from wrim.engine.config import Config

__all__ = [
    "AMP_CHOICES",
    "CheckpointEvaluation",
    "EvalModel",
    "amp_dtype",
    "evaluate_checkpoint",
    "evaluate_training_weights",
    "load_run_model",
    "plot_ranklist_png",
    "precision_name",
    "resolve_checkpoint",
]


class EvalModel(nn.Module):
    """Runs an eval-mode model under a training precision and memory format; returns float32 embeddings.

    Args:
        net: ``net(images, modalities) -> (B, D)`` in eval mode.
        device: where ``net`` lives.
        amp_dtype: the autocast dtype (``None``: fp32), see [`amp_dtype()`][wrim.engine.evaluate.amp_dtype].
        channels_last: feed images in ``torch.channels_last`` memory format.
        img_size: the (H, W) the network was trained at, when known (``load_run_model`` sets it).
    """

    def __init__(
        self,
        net: nn.Module,
        device: torch.device,
        amp_dtype: torch.dtype | None,
        channels_last: bool,
        img_size: tuple[int, int] | None = None,
    ):
        super().__init__()
        self.img_size = img_size
        self.net = net
        self.device = device
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last

    def _prep(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=memory_format(self.channels_last))

    def forward(self, images: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W), (B,) -> (B, D) float32 embeddings."""
        with autocast(self.device.type, self.amp_dtype):
            return self.net(self._prep(images), modalities.to(self.device)).float()

    def embed(self, images: torch.Tensor, modalities: torch.Tensor, flip: bool = True) -> torch.Tensor:
        """(B, 3, H, W), (B,) -> (B, D) float32 embeddings, flip-averaged when ``flip`` and the model offers it."""
        if not hasattr(self.net, "embed"):
            return flip_average(self.forward, images, modalities) if flip else self.forward(images, modalities)
        with autocast(self.device.type, self.amp_dtype):
            return self.net.embed(self._prep(images), modalities.to(self.device), flip=flip).float()


@dataclass
class CheckpointEvaluation:
    """What ``wrim eval`` measured: every trial, their mean and spread, and how the images were embedded.

    Attributes:
        checkpoint: the weights file.
        dataset: the dataset name.
        protocol: the protocol arguments (e.g. ``{"mode": "all", "shots": 1}``).
        trial_ids: the gallery trials, in the order of ``trials``.
        trials: per trial, each of ``wrim.evaluation.METRIC_NAMES`` in %.
        mean: the trial average (the number the field reports).
        precision: ``"fp32"`` or the autocast dtype, e.g. ``"bf16 autocast"``.
        flip: whether the flipped image's embedding was added.
        galleries: how the galleries were drawn (``dataset.gallery_sampling``; ``None`` where there is no choice).
        img_size: the (H, W) the images were resized to.
        model: the loaded network (eval mode); dataset_object: the dataset it was evaluated on.
        card: the protocol card ([`ProtocolCard`][wrim.evaluation.ProtocolCard]) of this evaluation.
    """

    checkpoint: str
    dataset: str
    protocol: dict[str, Any]
    trial_ids: list[int]
    trials: list[dict[str, float]]
    mean: dict[str, float]
    precision: str
    flip: bool
    galleries: str | None = None
    img_size: tuple[int, int] = (288, 144)
    model: nn.Module | None = field(default=None, repr=False)
    dataset_object: Any = field(default=None, repr=False)
    card: ProtocolCard | None = None

    @property
    def std(self) -> dict[str, float | None]:
        """The sample standard deviation (n - 1) of each metric over the trials; ``None`` with one trial."""
        if len(self.trials) < 2:
            return {key: None for key in self.mean}
        n = len(self.trials)
        return {key: math.sqrt(sum((t[key] - self.mean[key]) ** 2 for t in self.trials) / (n - 1)) for key in self.mean}

    def as_json(self) -> str:
        """The report as JSON: ``checkpoint``, ``dataset``, ``protocol``, ``precision``, ``flip``, ``galleries``,
        ``trials`` (``[{"trial": id, "R1": ...}, ...]``), ``mean`` and ``std`` (metrics in %), and ``card``."""
        trials = [{"trial": t, **m} for t, m in zip(self.trial_ids, self.trials)]
        keys = ("checkpoint", "dataset", "protocol", "precision", "flip", "galleries")
        report = {key: getattr(self, key) for key in keys}
        card = None if self.card is None else self.card.as_dict()
        return json.dumps({**report, "trials": trials, "mean": self.mean, "std": self.std, "card": card}, indent=2)

    def format(self) -> str:
        """A table: one line per trial, then ``mean ± std``; the settings on the first line."""
        keys = [k for k in METRIC_NAMES if k in self.mean]
        galleries = f", galleries {self.galleries}" if self.galleries else ""
        lines = [
            f"{self.dataset} {self.protocol} with {self.checkpoint} ({self.precision}, flip {self.flip}{galleries})",
            "trial  " + "  ".join(f"{k:>13}" for k in keys),
        ]
        if self.card is not None:
            lines[0] = f"{self.card.header()}\nweights {self.checkpoint}"
        lines += [f"{t:>5}  " + "  ".join(f"{m[k]:13.2f}" for k in keys) for t, m in zip(self.trial_ids, self.trials)]
        std = self.std
        cells = [f"{self.mean[k]:6.2f}" + (f" ± {std[k]:4.2f}" if std[k] is not None else " " * 7) for k in keys]
        lines.append(" mean  " + "  ".join(cells))
        return "\n".join(lines)


def _run_settings(run_dir: Path, dataset: str) -> tuple[dict, dict, dict]:
    """``(model.json, saved config as a dict, the run's settings for this dataset)`` of a run folder."""
    from wrim.engine.config import config_to_dict

    folder = RunFolder(run_dir)
    info = folder.read_model_info()
    saved = config_to_dict(folder.read_config()) if folder.file(CONFIG).is_file() else {}
    same_data = saved.get("data", {}).get("dataset") == dataset
    run_eval = saved.get("eval", {}) if same_data else {}
    settings = {
        "dataset_kwargs": dict(saved.get("data", {}).get("dataset_kwargs") or {}) if same_data else {},
        "protocol": dict(run_eval.get("protocol") or {}),
        "trials": run_eval.get("final_trials"),
        "flip": bool(run_eval.get("flip", False)),
        "batch_size": int(saved.get("eval", {}).get("batch_size", 128)),
        "amp": saved.get("amp", "auto"),
        "channels_last": bool(saved.get("model", {}).get("channels_last", False)),
    }
    return info, saved, settings


def _training_trial(info: dict, saved: dict) -> int | None:
    """The split a run was trained on (``model.json``'s ``training_trial``; for a RegDB run written before it was
    recorded, ``data.dataset_kwargs.trial``, default 1)."""
    if info.get("training_trial") is not None:
        return int(info["training_trial"])
    data = saved.get("data") or {}
    if data.get("dataset") == "regdb":
        return int((data.get("dataset_kwargs") or {}).get("trial", 1))
    return None


def evaluate_checkpoint(
    checkpoint: Path,
    run_dir: Path,
    dataset: str,
    root: str | None = None,
    *,
    trials: list[int] | None = None,
    img_size: tuple[int, int] | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    flip: bool | None = None,
    amp: str | None = None,
    num_workers: int = 2,
    dataset_kwargs: dict[str, Any] | None = None,
    protocol: dict[str, Any] | None = None,
    compile: bool = False,
    allow_cross_trial: bool = False,
) -> CheckpointEvaluation:
    """Evaluates a run's weights as the trainer's final evaluation does (``wrim eval``).

    Every setting left at ``None`` is the run's own (from its ``config.yaml``) when ``dataset`` is the dataset it
    was trained on: ``amp`` and the memory format, ``eval.flip``, ``eval.protocol``, ``eval.final_trials`` and
    ``data.dataset_kwargs``; on another dataset its defaults. The result therefore equals ``final_metrics.json``
    for the weights that file names.

    Args:
        checkpoint: the weights file (``<run>/checkpoints/<set>/model.safetensors``).
        run_dir: the run folder holding ``model.json`` (and ``config.yaml``).
        dataset: a registered dataset name (``wrim.data.list_datasets()``).
        root: the dataset folder (``None`` for the synthetic set).
        trials: gallery trials; img_size: (H, W), default the training size.
        batch_size: images per forward pass (default the run's ``eval.batch_size``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...; flip: add the flipped image's embedding.
        amp: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"none"``.
        num_workers: DataLoader workers; dataset_kwargs: dataset constructor arguments (added to the run's).
        protocol: protocol arguments (e.g. ``mode="indoor"``), replacing the run's ``eval.protocol``.
        compile: ``torch.compile`` the network (``net.compile()``; opt-in, ``wrim eval --compile``): WRIMNet's
            ``embed`` calls the compiled forward with each batch's visible count.
        allow_cross_trial: evaluate a model on a split it was not trained on (RegDB: another trial, whose test
            identities it trained on); refused otherwise, and the card says so when allowed.
    """
    from wrim.engine.build import build_dataset
    from wrim.engine.config import DataConfig
    from wrim.evaluation import evaluate_protocol

    info, saved, run = _run_settings(run_dir, dataset)
    model = load_run_model(run_dir, checkpoint, img_size=img_size, device=device, amp=amp)  # weights checked first
    img_size, torch_device, dtype, net = model.img_size, model.device, model.amp_dtype, model.net
    dataset_kwargs = {**run["dataset_kwargs"], **(dataset_kwargs or {})}
    data = build_dataset(DataConfig(dataset=dataset, root=root, dataset_kwargs=dataset_kwargs))
    training_trial = _training_trial(info, saved) if saved.get("data", {}).get("dataset") == dataset else None
    check_training_trial(data, training_trial, allow_cross_trial)
    if compile:
        net.compile()
    protocol = run["protocol"] if protocol is None else protocol
    flip = run["flip"] if flip is None else flip
    trials = run["trials"] if trials is None else trials
    batch_size = run["batch_size"] if batch_size is None else batch_size
    with torch.no_grad():
        result = evaluate_protocol(
            model, data, trials=trials, img_size=img_size, batch_size=batch_size, device=torch_device, flip=flip,
            num_workers=num_workers, **protocol,
        )  # fmt: skip
    card = protocol_card(
        data, protocol=protocol, trials=list(result.trial_ids), flip=flip, precision=precision_name(dtype),
        checkpoint=RunFolder(run_dir).checkpoint_choice(Path(checkpoint)), training_trial=training_trial,
    )  # fmt: skip
    return CheckpointEvaluation(
        checkpoint=str(checkpoint),
        dataset=dataset,
        protocol=protocol,
        trial_ids=list(result.trial_ids),
        trials=[{k: float(v) for k, v in m.as_dict().items()} for m in result.trials],
        mean={k: float(v) for k, v in result.as_dict().items()},
        precision=precision_name(dtype),
        flip=flip,
        galleries=getattr(data, "gallery_sampling", None),
        img_size=img_size,
        card=card,
        model=net,
        dataset_object=data,
    )


def evaluate_training_weights(
    net: nn.Module,
    dataset: VIReIDDataset,
    config: Config,
    device: torch.device,
    amp_dtype: torch.dtype | None,
    dist: DistInfo,
    trials: Sequence[int] | None,
) -> tuple[dict[str, float], tuple[TestSplit, dict[str, torch.Tensor]] | None]:
    """The trainer's evaluation of the weights it holds: ``(metrics, (first split, features by path))`` on rank 0,
    ``({}, None)`` on the others; ``net`` is left in training mode.

    Every image of the requested trials is embedded once (``wrim.evaluation.extract_features``) through
    [`EvalModel`][wrim.engine.evaluate.EvalModel] at the run's precision, then ``wrim.evaluation.evaluate_protocol``
    scores and averages the trials from those embeddings (R1..mINP in %). Under DDP this is collective: every rank
    embeds its contiguous block of the images with rank 0's weights and buffers (broadcast first), the blocks are
    gathered in order, and rank 0 computes the metrics, so the features equal the single-process ones and extraction
    time falls as 1/N.

    Args:
        net: the network being trained.
        dataset: the run's data; config: the run configuration (``eval.*``, ``data.img_size``, the memory format).
        device: where ``net`` lives; amp_dtype: the run's autocast dtype.
        dist: this process's place in the job.
        trials: gallery trials to average; ``None`` = the dataset's default trials.
    """
    import torch.distributed

    from wrim.evaluation import evaluate_protocol, extract_features
    from wrim.evaluation.protocol import trial_splits

    trial_ids = list(dataset.default_trials if trials is None else trials)
    splits = trial_splits(dataset, trial_ids, config.eval.protocol)
    records = {r.path: r for split in splits for r in (*split.query, *split.gallery)}
    eval_model = EvalModel(net, device, amp_dtype, config.model.channels_last)
    with torch.no_grad():
        if dist.distributed:  # every rank embeds with rank 0's model (per-rank BN buffers may differ)
            for tensor in net.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        feats = extract_features(
            eval_model, list(records.values()), img_size=tuple(config.data.img_size),
            batch_size=config.eval.batch_size, device=device, flip=config.eval.flip,
            num_workers=config.data.num_workers, shard=True,
        )  # (N, D)  # fmt: skip
    net.train()
    if not dist.is_main:
        return {}, None
    features = dict(zip(records, feats.cpu()))
    result = evaluate_protocol(features, dataset, trials=trial_ids, **config.eval.protocol)
    return {k: float(v) for k, v in result.as_dict().items()}, (splits[0], features)


def load_run_model(
    run_dir: str | Path,
    checkpoint: str | Path | None = None,
    img_size: tuple[int, int] | None = None,
    device: str = "auto",
    amp: str | None = None,
) -> EvalModel:
    """A run's network with its weights, in eval mode, wrapped to embed as the trainer's evaluation does.

    Examples:
        ```python
        model = load_run_model("runs/sysu-wrimnet")              # the weights its final evaluation used
        embeddings = model(images, modalities)                    # (B, 3, H, W), (B,) -> (B, D) float32
        ```

    Args:
        run_dir: the run folder holding ``model.json`` (and ``config.yaml``).
        checkpoint: the weights file (``<run>/checkpoints/<set>/model.safetensors``); default the set ``best.json``
            names, else ``last.json``'s (verified against its manifest).
        img_size: (H, W) of the images it will see; default the training size (``model.json``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ...
        amp: the autocast setting; default the run's ``amp``.

    Returns:
        An [`EvalModel`][wrim.engine.evaluate.EvalModel] (``.net`` the network, ``.img_size`` the size it expects).
    """
    from wrim.distributed import resolve_device
    from wrim.engine.build import build_model
    from wrim.engine.config import ModelConfig
    from wrim.models import load_weights

    run_dir = Path(run_dir)
    info, saved, run = _run_settings(run_dir, dataset="")
    if checkpoint is None:
        checkpoint = RunFolder(run_dir).weights()
    img_size = tuple(img_size or info["img_size"])
    torch_device = resolve_device(device)
    dtype = amp_dtype(run["amp"] if amp is None else amp, torch_device)
    model_kwargs = dict(saved.get("model", {}).get("kwargs") or {})
    num_classes = info["num_classes"]
    config = ModelConfig(name=RunFolder(run_dir).model_name(), kwargs=model_kwargs)
    net = build_model(config, num_classes, img_size, weights=False)
    load_weights(net, checkpoint)
    net = net.to(torch_device, memory_format=memory_format(run["channels_last"])).eval()
    return EvalModel(net, torch_device, dtype, run["channels_last"], img_size=img_size)


def resolve_checkpoint(path: Path) -> tuple[Path, Path]:
    """``(weights file, run folder)`` that ``wrim eval --checkpoint`` / ``wrim search --checkpoint`` names: a run
    folder (the checkpoint its final evaluation used: `RunFolder.checkpoint_tag`), ``<run>/best``, ``<run>/last``
    (``.json`` too) or a checkpoint set's weights file.

    Raises:
        ValueError: not a run folder, a file of a set that is not its weights, or no such checkpoint.
    """
    from wrim.engine.checkpoint import SETS, WEIGHTS, CheckpointError

    if path.is_file() and path.parent.parent.name == SETS:  # a file of a checkpoint set
        if path.suffix != ".safetensors":
            raise ValueError(
                f"--checkpoint {str(path)!r} is not a weights file: give the set's {WEIGHTS} or the run folder"
            )
        run_dir = path.parent.parent.parent
        RunFolder(run_dir).require()
        return path, run_dir
    if path.is_file() and path.suffix == ".safetensors":
        RunFolder(path.parent).require()
        return path, path.parent
    tag = path.name.removesuffix(".safetensors").removesuffix(".json")  # <run>/best.safetensors: an older layout
    run_dir, tag = (path, None) if path.is_dir() else (path.parent, tag)
    folder = RunFolder(run_dir)
    folder.require()
    try:
        return folder.weights(tag), run_dir
    except CheckpointError as err:
        raise ValueError(f"--checkpoint {str(path)!r}: {err}") from None


def plot_ranklist_png(
    split: TestSplit, features: dict[str, torch.Tensor], path: Path, img_size: tuple[int, int]
) -> None:
    """Writes the rank list of ``split`` (from its embedded ``features``, by image path) to ``path``; skipped, with a
    log line, without matplotlib."""
    from wrim.evaluation import pairwise_distance, plot_ranklist

    query = torch.stack([features[r.path] for r in split.query])  # (Q, D)
    gallery = torch.stack([features[r.path] for r in split.gallery])  # (G, D)
    try:
        plot_ranklist(
            pairwise_distance(query, gallery), split.query, split.gallery, path, protocol=split.protocol,
            img_size=img_size,
        )  # fmt: skip
    except ImportError:
        logging.getLogger("wrim").info("matplotlib not installed: skipping ranklist.png (pip install 'wrim[train]')")
