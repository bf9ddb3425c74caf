"""The model as evaluation sees it: eval mode under the training precision and memory format, float32 embeddings."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from wrim.evaluation.flip import flip_average

if TYPE_CHECKING:
    from wrim.data import TestSplit

__all__ = ["EvalModel", "plot_ranklist_png"]


class EvalModel(nn.Module):
    """Runs the eval-mode model under the training precision and memory format; returns float32 embeddings."""

    def __init__(self, net: nn.Module, device: torch.device, amp_dtype: torch.dtype | None, channels_last: bool):
        super().__init__()
        self.net = net
        self.device = device
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last

    def _prep(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def forward(self, images: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W), (B,) -> (B, D) float32 embeddings."""
        with self._autocast():
            return self.net(self._prep(images), modalities.to(self.device)).float()

    def embed(self, images: torch.Tensor, modalities: torch.Tensor, flip: bool = True) -> torch.Tensor:
        """(B, 3, H, W), (B,) -> (B, D) float32 embeddings, flip-averaged when ``flip`` and the model offers it."""
        if not hasattr(self.net, "embed"):
            return flip_average(self.forward, images, modalities) if flip else self.forward(images, modalities)
        with self._autocast():
            return self.net.embed(self._prep(images), modalities.to(self.device), flip=flip).float()


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
