"""Optimisers and schedules of the field: SGD or Adam + warmup/step (AGW, BoT; docs: Training) or AdamW + cosine.

The schedule is a ``LambdaLR`` stepped once per iteration. Its factor is a function of the fractional epoch
``t = iteration / iters_per_epoch``:

- ``"step"`` (AGW/CAJ): ``(floor(t) + 1) / warmup_epochs`` while ``t < warmup_epochs``, then
  ``gamma ** (number of milestones <= floor(t))``; with ``warmup_epochs=10, milestones=(20, 50)`` this is AGW's
  ``lr * (e + 1) / 10`` for epochs 0-9, ``lr`` for 10-19, ``0.1 lr`` for 20-49 and ``0.01 lr`` from 50 on.
- ``"cosine"``: linear warmup per iteration over ``warmup_epochs``, then
  ``min_lr_factor + (1 - min_lr_factor) * (1 + cos(pi * progress)) / 2``.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from wrim.engine.config import OptimConfig

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]


def build_optimizer(model: nn.Module, config: OptimConfig) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW with two parameter groups: the backbone (``backbone_lr_mult * lr``) and the rest (``lr``).

    Every trainable parameter, BatchNorm weights and biases included, gets ``config.weight_decay`` (AGW's SGD and
    BoT's Adam both decay every parameter). ``"adam"`` is ``torch.optim.Adam``, whose weight decay is the L2 term
    ``wd * theta`` added to the gradient; ``"adamw"`` decouples it (Loshchilov & Hutter), a different optimiser.

    Backbone parameters are those whose name starts with one of ``config.backbone_prefixes`` (``backbone.``: how
    ``wrim.models.WRIMNet`` names its timm trunk). A model without such parameters gets one group, unless
    ``backbone_lr_mult`` is not 1: then the multiplier would silently apply to nothing, and it is an error.

    Args:
        model: the (unwrapped) model.
        config: the optimiser section of the run config.

    Raises:
        ValueError: ``optim.backbone_lr_mult`` is not 1 and no trainable parameter is named by
            ``optim.backbone_prefixes`` (the model's top-level names are listed).
    """
    backbone, head = [], []
    prefixes = tuple(config.backbone_prefixes)
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (backbone if name.startswith(prefixes) else head).append(p)
    if not backbone and config.backbone_lr_mult != 1:
        tops = sorted({name.split(".")[0] + "." for name, p in model.named_parameters() if p.requires_grad})
        raise ValueError(
            f"optim.backbone_lr_mult={config.backbone_lr_mult:g} applies to the parameters whose names start with "
            f"optim.backbone_prefixes={list(prefixes)}, and this model has none: name the attribute that holds "
            f"your pretrained network with optim.backbone_prefixes=[NAME.] (this model's: {', '.join(tops)}), or "
            "set optim.backbone_lr_mult=1 to train every parameter at optim.lr"
        )
    groups = [{"params": head, "lr": config.lr, "lr_mult": 1.0}]
    if backbone:
        groups.append(
            {"params": backbone, "lr": config.lr * config.backbone_lr_mult, "lr_mult": config.backbone_lr_mult}
        )
    if config.name == "sgd":
        return torch.optim.SGD(
            groups,
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            nesterov=config.nesterov and config.momentum > 0,
        )
    if config.name == "adam":
        return torch.optim.Adam(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    if config.name == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    raise ValueError(f"optim.name must be 'sgd', 'adam' or 'adamw', got {config.name!r}")


def lr_factor(t: float, epochs: int, config: OptimConfig) -> float:
    """The learning-rate factor at fractional epoch ``t`` (see the module docstring).

    Args:
        t: epochs done so far, fractional (``iteration / iters_per_epoch``).
        epochs: total training epochs.
        config: the optimiser section of the run config.
    """
    warmup = config.warmup_epochs
    if config.schedule == "step":
        epoch = math.floor(t)
        if epoch < warmup:
            return (epoch + 1) / warmup
        return config.gamma ** sum(1 for m in config.milestones if epoch >= m)
    if config.schedule == "cosine":
        if t < warmup:
            return max(t / warmup, 1e-3)
        progress = min(1.0, (t - warmup) / max(epochs - warmup, 1e-8))
        return config.min_lr_factor + (1 - config.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))
    raise ValueError(f"optim.schedule must be 'step' or 'cosine', got {config.schedule!r}")


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: OptimConfig, epochs: int, iters_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-iteration ``LambdaLR`` following `lr_factor()` (call ``scheduler.step()`` after each step).

    Args:
        optimizer: from [`build_optimizer()`][wrim.engine.build_optimizer] (each group's ``lr`` already includes its
            multiplier).
        config: the optimiser section of the run config.
        epochs: total training epochs.
        iters_per_epoch: optimiser steps per epoch.
    """
    if iters_per_epoch < 1:
        raise ValueError(f"iters_per_epoch must be >= 1, got {iters_per_epoch} (is the training set empty?)")

    def factor(step: int) -> float:
        return lr_factor(step / iters_per_epoch, epochs, config)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
