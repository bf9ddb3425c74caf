"""Using wrim's cross-modality losses and miners inside pytorch-metric-learning's trainers.

PML's trainers (``MetricLossOnly``, ``TrainWithClassifier``, ...) call ``loss(embeddings, labels, indices_tuple)``
and ``miner(embeddings, labels)``, through ``MultipleLosses`` too: there is no place for the per-sample modality ids
that ``CMKICLoss`` and the cross-modality miners need. [`ModalityCarrier`][wrim.losses.pml.ModalityCarrier] carries
them: it is the trainer's ``data_and_label_getter`` (it keeps the batch's modality ids) and wraps each loss and
miner so that they receive ``modalities=`` by keyword. PML's ``MPerClassSampler`` does not put both modalities of
an identity in a batch; [`pml_batch_sampler()`][wrim.losses.pml.pml_batch_sampler] hands wrim's
``IdentityModalitySampler`` to a PML trainer. Nothing here imports PML. Recipe: docs/losses.md, "PML's trainers".
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from wrim.modality import INFRARED, VISIBLE

__all__ = ["ModalityCarrier", "WithModalities", "pml_batch_sampler"]


class WithModalities(nn.Module):
    """A wrim loss or miner called as PML's trainers call it: ``inner(*args, modalities=<the batch's ids>)``.

    Made by [`ModalityCarrier.wrap()`][wrim.losses.pml.ModalityCarrier.wrap]. It warns on every batch in which no
    identity has samples of both modalities (such a batch trains nothing: a cross-modality loss is 0 there), with
    the count so far, at the 1st, 2nd, 4th, 8th, ... such batch.

    Args:
        inner: the wrim loss or miner.
        carrier: the [`ModalityCarrier`][wrim.losses.pml.ModalityCarrier] holding the current batch's ids.
    """

    def __init__(self, inner: nn.Module, carrier: ModalityCarrier) -> None:
        super().__init__()
        self.inner = inner
        self.carrier = carrier
        self.calls = 0
        self.one_modality_batches = 0

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        """(B, D) embeddings, (B,) labels, then PML's further positional arguments -> ``inner``'s result."""
        modalities = self.carrier.modalities
        if modalities is None:
            raise ValueError(
                f"{type(self.inner).__name__} wrapped by ModalityCarrier.wrap has no modality ids: pass "
                "data_and_label_getter=carrier.data_and_label_getter to the PML trainer (or call carrier.set(...))"
            )
        if modalities.shape[0] != embeddings.shape[0]:
            raise ValueError(
                f"the carried batch has {modalities.shape[0]} modality ids but the embeddings are "
                f"{tuple(embeddings.shape)}: a PML subset_batch_miner that drops samples cannot be used with it"
            )
        self.calls += 1
        self._warn_if_one_modality(labels, modalities)
        return self.inner(embeddings, labels, *args, modalities=modalities.to(embeddings.device), **kwargs)

    def _warn_if_one_modality(self, labels: torch.Tensor, modalities: torch.Tensor) -> None:
        labels = labels.detach().cpu()
        shared = set(labels[modalities == VISIBLE].tolist()) & set(labels[modalities == INFRARED].tolist())
        if shared:
            return
        self.one_modality_batches += 1
        if self.one_modality_batches & (self.one_modality_batches - 1) == 0:  # 1, 2, 4, 8, ...
            warnings.warn(
                f"{type(self.inner).__name__}: {self.one_modality_batches} of {self.calls} batches so far had no "
                "identity with samples of both modalities, so they trained nothing. PML's MPerClassSampler does not "
                "pair modalities: pass sampler=wrim.losses.pml.pml_batch_sampler(wrim.data.IdentityModalitySampler("
                "labels, modalities, num_ids, num_instances)) to the trainer",
                UserWarning,
                stacklevel=2,
            )


class ModalityCarrier:
    """Carries each batch's modality ids from the data to wrim losses and miners inside a PML trainer.

    Examples:
        ```python
        carrier = ModalityCarrier()
        trainer = MetricLossOnly(
            models, optimizers, batch_size, dataset=dataset,                  # items (image, label, ..., modality)
            loss_funcs={"metric_loss": carrier.wrap(CMKICLoss())},
            mining_funcs={"tuple_miner": carrier.wrap(CrossModalityKeyInstanceMiner(k=2))},
            data_and_label_getter=carrier.data_and_label_getter,
            sampler=pml_batch_sampler(IdentityModalitySampler(labels, modalities, num_ids=4, num_instances=2)),
        )
        ```

    Args:
        modality_index: where a batch (the collated dataset items) holds the modality ids; default the last entry,
            as in ``wrim.data.ImageDataset``'s ``(image, label, camera, modality)``.
        label_index: where it holds the labels; the images are entry 0.
    """

    def __init__(self, modality_index: int = -1, label_index: int = 1) -> None:
        self.modality_index = int(modality_index)
        self.label_index = int(label_index)
        self.modalities: torch.Tensor | None = None

    def set(self, modalities: torch.Tensor | Sequence[int]) -> None:
        """Sets the (B,) modality ids of the next loss / miner calls."""
        ids = torch.as_tensor(modalities).flatten()
        if ids.is_floating_point() or bool(((ids != VISIBLE) & (ids != INFRARED)).any()):
            raise ValueError(
                f"modality ids must be wrim.VISIBLE (0) or wrim.INFRARED (1); got {ids[:8].tolist()}: check "
                f"modality_index={self.modality_index} (where the batch holds them)"
            )
        self.modalities = ids

    def data_and_label_getter(self, batch: Sequence[Any]) -> tuple[Any, Any]:
        """PML's ``data_and_label_getter``: keeps the batch's modality ids, returns ``(images, labels)``."""
        self.set(batch[self.modality_index])
        return batch[0], batch[self.label_index]

    def wrap(self, loss_or_miner: nn.Module) -> WithModalities:
        """``loss_or_miner`` as PML's trainers call it, given this carrier's modality ids by keyword."""
        return WithModalities(loss_or_miner, self)


class _BatchSamplerView(torch.utils.data.BatchSampler):
    """A batch sampler seen as ``torch.utils.data.BatchSampler`` (what PML's trainers test for)."""

    def __init__(self, sampler: torch.utils.data.Sampler[list[int]]) -> None:  # no super().__init__: no batch_size
        self.sampler = sampler
        self.batch_size = None
        self.drop_last = False

    def __iter__(self):
        return iter(self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        """Passes on to the wrapped sampler (call it from PML's ``end_of_epoch_hook`` for a new permutation)."""
        self.sampler.set_epoch(epoch)


def pml_batch_sampler(sampler: torch.utils.data.Sampler[list[int]]) -> torch.utils.data.BatchSampler:
    """A batch sampler (e.g. ``wrim.data.IdentityModalitySampler``) in the type PML's trainers use as batches.

    PML's trainers hand ``sampler=`` to the DataLoader as ``batch_sampler`` only when it is a
    ``torch.utils.data.BatchSampler``; ``IdentityModalitySampler`` yields whole batches without being one.
    """
    if isinstance(sampler, torch.utils.data.BatchSampler):
        return sampler
    return _BatchSamplerView(sampler)
