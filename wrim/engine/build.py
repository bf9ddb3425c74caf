"""One place that turns a [`Config`][wrim.engine.Config] into the parts of a run.

Everything that builds the dataset, the model, the loss, the optimiser, the schedule and the training loader from a
config lives here, and ``Trainer``, ``wrim train --dry-run`` and ``wrim eval`` all build through it ([D]): a change
of how a part is built is then a change in one function. The number of classes always comes from the dataset
object (``dataset.num_classes``), never from a table.

| part | built by | from |
|---|---|---|
| dataset | `build_dataset()` | ``data.dataset`` (a registered name), ``data.root``, ``data.dataset_kwargs`` |
| model | `build_model()` | ``model.name`` (a registered entrypoint), ``model.kwargs``, ``data.img_size`` |
| loss | `build_loss()` | ``loss.*``: ``WRIMNetLoss`` (ID loss on every head + the metric term) |
| optimiser, schedule | ``build_optimizer`` / ``build_scheduler`` (``wrim.engine.optim``) | ``optim.*`` |
| training step | `build_step()` | ``amp``, ``optim.clip_grad_norm``, ``model.compile`` and the loss |
| loader | `build_loader()` | ``data.*``, ``seed`` and the process's rank |

A registered model entrypoint is called as ``entrypoint(pretrained=..., num_classes=..., img_size=(H, W),
**model.kwargs)``, exactly as the built-in ones, plus ``pretrained_file=`` when ``model.pretrained_file`` is set
and ``pretrained_tag=`` when ``model.pretrained_tag`` is set and the entrypoint takes it (a parameter of that name,
or ``**kwargs``); an entrypoint without it is called without it, and the log says so.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import random
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from wrim.engine.config import Config, DataConfig, EvalConfig, LossConfig, ModelConfig
from wrim.engine.optim import build_optimizer, build_scheduler
from wrim.engine.precision import amp_dtype
from wrim.engine.step import TrainStep, loss_scaler

if TYPE_CHECKING:
    from wrim.data import VIReIDDataset
    from wrim.distributed import DistInfo

__all__ = [
    "build_dataset",
    "build_loader",
    "build_loss",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "build_step",
    "build_train_transform",
    "check_evaluation",
    "check_parts",
    "check_process_count",
    "seed_everything",
]

log = logging.getLogger("wrim")

#: Seconds the hub client waits for a weights file's metadata while a model is built with ``pretrained=True``.
_HUB_LOOKUP_TIMEOUT_S = 3


def seed_everything(seed: int) -> None:
    """Seeds python's ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (legacy code and augmentations use the global state)
    torch.manual_seed(seed)


def build_dataset(config: DataConfig) -> VIReIDDataset:
    """The dataset registered as ``config.dataset`` (``wrim.data.list_datasets()``), built from ``config.root`` and
    ``config.dataset_kwargs``.

    Raises:
        ValueError: an unknown name (the registered ones listed) or a dataset that needs ``data.root`` without it.
    """
    from wrim.data import create_dataset

    return create_dataset(config.dataset, config.root, **config.dataset_kwargs)


def build_model(config: ModelConfig, num_classes: int, img_size: tuple[int, int], weights: bool = True) -> nn.Module:
    """The registered model ``config.name`` for ``num_classes`` identities at ``img_size``.

    Args:
        config: the model section (``name``, ``pretrained``, ``pretrained_file``, ``kwargs``).
        num_classes: the classifier size: ``dataset.num_classes``.
        img_size: (H, W) of the training images.
        weights: load the backbone weights ``config`` asks for; ``False`` builds without them (a dry run, or a
            model whose trained weights are loaded next).

    Raises:
        ValueError: an unknown name (the registered ones listed, and how to add one), or ``model.pretrained_file``
            for an entrypoint that takes no such argument.
    """
    from wrim.models import create_model, model_entrypoint

    model_entrypoint(config.name)  # an unknown name: the one "unknown model" error (the registered names listed)
    kwargs = dict(config.kwargs)
    if weights and config.pretrained_file is not None:
        if not _takes(model_entrypoint(config.name), "pretrained_file"):
            raise ValueError(
                f"model.pretrained_file is set, but model {config.name!r} takes no pretrained_file argument: load "
                "the weights in its entrypoint, or unset model.pretrained_file"
            )
        kwargs["pretrained_file"] = config.pretrained_file
    if weights and config.pretrained_tag is not None:
        if _takes(model_entrypoint(config.name), "pretrained_tag"):
            kwargs["pretrained_tag"] = config.pretrained_tag
        else:  # the documented entrypoint signature has no tag: a config's weights tag is for the built-in models
            log.warning("model.pretrained_tag=%s is not passed: %s takes no pretrained_tag argument",
                        config.pretrained_tag, config.name)  # fmt: skip
    pretrained = weights and config.pretrained
    with _bounded_hub_lookup(pretrained and config.pretrained_file is None):
        return create_model(
            config.name, pretrained=pretrained, num_classes=num_classes, img_size=tuple(img_size), **kwargs
        )


def _takes(function: Any, name: str) -> bool:
    """Whether ``function`` accepts the keyword argument ``name`` (a parameter of that name, or ``**kwargs``)."""
    params = inspect.signature(function).parameters.values()
    return any(p.name == name and p.kind is not p.POSITIONAL_ONLY or p.kind is p.VAR_KEYWORD for p in params)


def build_loss(config: LossConfig) -> nn.Module:
    """The training objective of ``loss.*``: ID loss on every head plus the metric term (``wrim.losses``)."""
    from wrim.losses import WRIMNetLoss

    return WRIMNetLoss(
        _metric_loss(config),
        id_weight=config.id_weight,
        metric_weight=config.metric_weight,
        label_smoothing=config.label_smoothing,
        gather_across_ranks=config.gather_across_ranks,
    )


def build_step(
    config: Config,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    *,
    loss: Any = None,
    scaler: torch.amp.GradScaler | None = None,
) -> TrainStep:
    """The engine's training step for ``config``: what ``Trainer`` runs for each batch and ``wrim bench`` times.

    Args:
        config: the run configuration (``amp``, ``optim.clip_grad_norm``, ``model.compile``, ``loss.*``).
        model: the module the step calls, on ``device`` (the network, or its ``DistributedDataParallel`` wrapper).
        optimizer: the optimiser of the network's parameters (`build_optimizer`).
        device: where the step runs (``amp: auto`` is bf16 on CUDA, fp32 elsewhere).
        loss: the objective; ``None`` builds ``loss.*`` (`build_loss`) and checks each step that the model returns
            the ``WRIMNetOutput`` it needs.
        scaler: the GradScaler to use (the trainer keeps its state in checkpoints); ``None`` makes the precision's
            own (``wrim.engine.step.loss_scaler``).
    """
    output_type = None
    if loss is None:
        from wrim.models import WRIMNetOutput

        loss, output_type = build_loss(config.loss), WRIMNetOutput
    precision = amp_dtype(config.amp, device)
    return TrainStep(
        model,
        loss,
        optimizer,
        amp_dtype=precision,
        scaler=scaler if scaler is not None else loss_scaler(device, precision),
        clip_grad_norm=config.optim.clip_grad_norm,
        compile=config.model.compile,
        output_type=output_type,
    )


def _metric_loss(config: LossConfig) -> nn.Module | None:
    """The metric term selected by ``loss.metric``, from plain arguments (``wrim.losses``).

    ``"aicl"``: the paper's AICL (CMKIC on P5 + ``p4_weight`` * CMKIC on P4); ``"triplet"`` / ``"wr_triplet"``: the
    same two-stage sum with a batch-hard / weighted-regularisation triplet loss (the "CMKIC vs triplet" ablation);
    ``"none"``: no metric term.
    """
    from wrim import losses

    if config.metric == "none":
        return None
    if config.metric == "aicl":
        loss = losses.CMKICLoss(k=config.k, temperature=config.temperature)
    elif config.metric == "triplet":
        loss = losses.TripletLoss(margin=config.margin, cross_modality=config.cross_modality)
    else:
        loss = losses.WRTripletLoss(cross_modality=config.cross_modality)
    return losses.AICLLoss(
        loss,
        p5_weight=config.p5_weight,
        p4_weight=config.p4_weight,
        p5_keys_from_p4=config.p5_keys_from_p4 and config.metric == "aicl",
    )


def build_loader(
    dataset: VIReIDDataset, config: Config, dist: DistInfo, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """The training loader: the identity x modality sampler over this process's share of the identities.

    The workers start afresh every epoch (``persistent_workers=False``) from a generator the trainer seeds by
    (seed, epoch, rank); the augmentations themselves are seeded per sample by the sampler.
    """
    from wrim.data import build_train_loader

    data = config.data
    base = build_train_loader(
        dataset,
        **_augmentation(data),
        num_ids=data.num_ids,
        num_instances=data.num_instances,
        num_workers=data.num_workers,
        seed=config.seed,
        rank=dist.rank if dist.distributed else None,
        world_size=dist.world_size if dist.distributed else None,
        skip_bad_images=data.skip_bad_images,
    )
    return torch.utils.data.DataLoader(
        base.dataset,
        batch_sampler=base.batch_sampler,
        num_workers=data.num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )


def build_train_transform(config: DataConfig) -> Any:
    """The training augmentation of ``data.*``: the transform `build_loader` gives its loader
    (``wrim.data.loader.build_train_transform``)."""
    from wrim.data.loader import build_train_transform as data_train_transform

    return data_train_transform(**_augmentation(config))


def _augmentation(config: DataConfig) -> dict[str, Any]:
    """The image size and augmentation arguments of ``data.*``, by their names in ``wrim.data.build_train_loader``."""
    return {
        "img_size": config.img_size,
        "channel_aug": config.channel_aug,
        "random_erasing": config.random_erasing,
        "exchange_prob": config.exchange_prob,
        "channel_gray": config.channel_gray,
    }


def check_parts(model: Any, loss: Any, dataset: Any) -> None:
    """Checks the types of parts given to ``Trainer`` (a wrong one fails there, not deep inside the first step).

    Raises:
        TypeError: a model that is not an ``nn.Module``, a loss that is not callable, or a dataset that is not a
            ``wrim.data.VIReIDDataset``.
    """
    from wrim.data import VIReIDDataset

    if model is not None and not isinstance(model, nn.Module):
        raise TypeError(f"Trainer(model=...) must be a torch.nn.Module, got {type(model).__name__}")
    if loss is not None and not callable(loss):
        raise TypeError(f"Trainer(loss=...) must be callable as loss(outputs, labels, modalities=...), got {loss!r}")
    if dataset is not None and not isinstance(dataset, VIReIDDataset):
        raise TypeError(
            f"Trainer(dataset=...) must be a wrim.data.VIReIDDataset (e.g. wrim.data.ListDataset), got "
            f"{type(dataset).__name__}"
        )


def check_evaluation(config: EvalConfig, dataset: VIReIDDataset) -> None:
    """Checks the evaluation settings against the dataset before the first epoch, so that a run cannot train to
    its end and then fail: both trial lists name trials to evaluate, and each of their trials builds a query and
    a gallery under ``eval.protocol``.

    Raises:
        ValueError: ``eval.trials`` or ``eval.final_trials`` is null (the dataset's default trials) for a reader
            that declares no ``default_trials``, or empty, or names a trial the reader refuses (the key named).
    """
    default = tuple(dataset.default_trials)
    name = dataset.name or type(dataset).__name__
    checked: set[int] = set()
    for key, trials in (("eval.trials", config.trials), ("eval.final_trials", config.final_trials)):
        if trials is None and not default:
            raise ValueError(
                f"{key} is null, which means the dataset's default trials, but {name} declares none "
                f"(default_trials is empty): set {key}=[0] (the trials to evaluate), or give the reader a "
                "default_trials attribute"
            )
        if trials is not None and not trials:
            raise ValueError(f"{key} is empty: list the trials to evaluate, e.g. {key}=[0], or null for {default}")
        for trial in sorted(set(default if trials is None else trials) - checked):
            try:
                dataset.test_split(trial, **config.protocol)
            except (TypeError, ValueError) as err:  # a trial the reader refuses, a protocol key it does not take
                raise ValueError(f"{key}: trial {trial} with eval.protocol={config.protocol}: {err}") from err
            checked.add(trial)


def check_process_count(trained: int, resuming: int, num_ids: int) -> None:
    """A run resumes with the number of processes it was trained with: ``data.num_ids`` is per process and cannot
    change on ``--resume``, so another count would silently train on another global batch.

    Raises:
        ValueError: ``resuming != trained`` (both counts, and the identities per step each would give, named).
    """
    if resuming != trained:
        raise ValueError(
            f"--resume: the run was trained by {trained} process(es) x data.num_ids={num_ids}, and {resuming} would "
            f"train on {resuming * num_ids} identities per step instead of {trained * num_ids} (data.num_ids is per "
            f"process and cannot change on --resume): resume it with {trained} process(es)"
        )


@contextlib.contextmanager
def _bounded_hub_lookup(download: bool) -> Iterator[None]:
    """While timm fetches pretrained weights from the Hugging Face hub, its client's metadata request (the one that
    finds out whether a cached file is current) waits at most ``_HUB_LOOKUP_TIMEOUT_S`` seconds instead of its default
    10: an unreachable hub then falls back to locally cached weights at once, and missing ones fail with the message
    naming ``model.pretrained_file``. wrim opens no connection itself; a timeout set by the user
    (``HF_HUB_ETAG_TIMEOUT``) is kept."""
    try:
        from huggingface_hub import constants
    except ImportError:
        constants = None
    if not download or constants is None or constants.HF_HUB_ETAG_TIMEOUT != constants.DEFAULT_ETAG_TIMEOUT:
        yield
        return
    constants.HF_HUB_ETAG_TIMEOUT = _HUB_LOOKUP_TIMEOUT_S
    try:
        yield
    finally:
        constants.HF_HUB_ETAG_TIMEOUT = constants.DEFAULT_ETAG_TIMEOUT
