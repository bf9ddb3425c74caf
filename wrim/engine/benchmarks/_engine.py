"""What the benchmarks time, built as the engine builds it: a sampler-shaped batch, the model, the training step
(``wrim.engine.build``: model, loss, optimiser, precision) and the evaluation's embedding call."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from wrim.engine.build import build_model, build_optimizer, build_step
from wrim.engine.config import Config, load_config
from wrim.engine.evaluate import EvalModel
from wrim.engine.precision import amp_dtype, memory_format
from wrim.modality import INFRARED, VISIBLE

__all__ = ["NUM_CLASSES", "bench_config", "engine_model", "inference_call", "sampler_batch", "training_call"]

NUM_CLASSES = 395  # SYSU-MM01's training identities


def sampler_batch(
    batch: int, size: tuple[int, int], device: torch.device, *, instances: int = 4, channels_last: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch laid out as the training sampler lays it out: ``batch / (2 k)`` identities, each ``k`` visible then
    ``k`` infrared images (``k = instances``).

    Returns:
        (B, 3, H, W) random images, (B,) labels and (B,) modalities, on ``device``.

    Raises:
        ValueError: ``batch`` is not a multiple of ``2 * instances``.
    """
    if batch < 2 * instances or batch % (2 * instances):
        raise ValueError(f"batch {batch} must be a multiple of 2 * instances = {2 * instances} (ids x (k vis + k ir))")
    ids = batch // (2 * instances)
    labels = torch.arange(ids).repeat_interleave(2 * instances)
    modalities = torch.tensor(([VISIBLE] * instances + [INFRARED] * instances) * ids)
    images = torch.randn(batch, 3, *size, generator=torch.Generator().manual_seed(0))
    images = images.contiguous(memory_format=memory_format(channels_last))
    return images.to(device), labels.to(device), modalities.to(device)


def bench_config(
    model: str, size: tuple[int, int], *, config: str = "sysu", channels_last: bool = True, compile: bool = False
) -> Config:
    """The shipped ``config`` (the paper's recipe by default) with ``model`` at ``size``, built without weights."""
    overrides = [
        f"model.name={model}",
        "model.pretrained=false",
        f"data.img_size=[{size[0]}, {size[1]}]",
        f"model.channels_last={str(channels_last).lower()}",
        f"model.compile={str(compile).lower()}",
    ]
    return load_config(config, overrides)


def engine_model(config: Config, device: torch.device) -> nn.Module:
    """``model.name`` built by ``wrim.engine.build.build_model`` (no weights), on ``device`` in the training memory
    format."""
    net = build_model(config.model, NUM_CLASSES, tuple(config.data.img_size), weights=False)
    return net.to(device, memory_format=memory_format(config.model.channels_last))


def training_call(config: Config, batch: int, device: torch.device) -> Callable[[], dict[str, torch.Tensor]]:
    """One training step of the engine (``build_step``: forward, every loss term, backward, optimiser update) on a
    sampler-shaped batch, as a closure; the host-counted visible count is passed as the epoch loop passes it."""
    net = engine_model(config, device).train()
    step = build_step(config, net, build_optimizer(net, config.optim), device)
    images, labels, modalities = sampler_batch(
        batch, tuple(config.data.img_size), device, channels_last=config.model.channels_last
    )
    num_visible = int((modalities == VISIBLE).sum())
    return lambda: step(images, labels, modalities, num_visible)


def inference_call(config: Config, batch: int, device: torch.device) -> Callable[[], torch.Tensor]:
    """One evaluation batch as the engine embeds it (``EvalModel.embed``, no flip, ``torch.no_grad``) of a mixed
    batch, as a closure; ``model.compile`` compiles the network as ``wrim eval --compile`` does."""
    net = engine_model(config, device).eval()
    if config.model.compile:
        net.compile()
    model = EvalModel(net, device, amp_dtype(config.amp, device), config.model.channels_last)
    images, _, modalities = sampler_batch(batch, tuple(config.data.img_size), device)

    def call() -> torch.Tensor:
        with torch.no_grad():
            return model.embed(images, modalities, flip=False)

    return call
