"""A cross-batch memory that also stores modality ids, for cross-modality losses and miners (docs: Losses and miners).

pytorch-metric-learning's ``CrossBatchMemory`` queues embeddings and labels and calls its loss as
``loss(embeddings, labels, indices_tuple, E_mem, L_mem)`` (and its miner as ``miner(embeddings, labels, E_mem,
L_mem)``): no modality ids travel, so a cross-modality loss cannot tell which memory rows are visible and which are
infrared. [`CrossModalityMemory`][wrim.losses.CrossModalityMemory] has the same constructor and queue, and also queues
the ids; it passes them on by keyword (``modalities=``, ``ref_modalities=``) to wrim's cross-modality miners and to
``CMKICLoss``, and calls a pytorch-metric-learning loss exactly as ``CrossBatchMemory`` does.

Shape legend: ``B`` batch, ``M`` memory size, ``D`` embedding size.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from wrim._checks import check_embeddings, check_labels, check_modalities, missing_modalities_message

__all__ = ["CrossModalityMemory"]


class CrossModalityMemory(nn.Module):
    """A FIFO memory of (embedding, label, modality) rows; the loss compares each batch with the whole memory.

    Every call enqueues the batch (detached) and then computes ``loss`` with the batch as anchors and the memory
    (the batch included) as the reference set. Pairs are cross-modality only, so an anchor is never paired with its
    own memory row. With a ``miner`` (a wrim cross-modality miner) the pairs are mined against the memory and
    passed as ``indices_tuple`` to ``loss``, which may then be any pytorch-metric-learning loss.

    Examples:
        >>> memory = CrossModalityMemory(CMKICLoss(k=2), embedding_size=128, memory_size=1024)
        >>> loss = memory(embeddings, labels, modalities=modalities)  # (B, 128), (B,), (B,) -> ()
        >>> ntx = CrossModalityMemory(NTXentLoss(), 128, miner=CrossModalityKeyInstanceMiner(k=2))
    """

    def __init__(
        self, loss: nn.Module, embedding_size: int, memory_size: int = 1024, miner: nn.Module | None = None
    ) -> None:
        """
        Args:
            loss: ``wrim.losses.CMKICLoss`` (without a miner), or any loss taking
                ``(embeddings, labels, indices_tuple, ref_emb, ref_labels)`` (with a miner).
            embedding_size: D.
            memory_size: M, the number of rows kept (pytorch-metric-learning's default 1024).
            miner: optional wrim cross-modality miner, e.g. ``CrossModalityKeyInstanceMiner(k=2)``.

        Raises:
            ValueError: a miner that is not cross-modality, or no miner and a loss that cannot take
                ``ref_modalities=``.
        """
        super().__init__()
        for value, name in ((embedding_size, "embedding_size"), (memory_size, "memory_size")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1; got {value!r}")
        if miner is not None and not getattr(miner, "cross_modality", False):
            raise ValueError(
                "CrossModalityMemory needs a cross-modality miner (e.g. wrim.miners.CrossModalityKeyInstanceMiner): "
                "the batch is in the memory too, and only cross-modality pairs never pair a sample with itself"
            )
        takes_ref_modalities = "ref_modalities" in inspect.signature(loss.forward).parameters
        if miner is None and not (takes_ref_modalities and getattr(loss, "takes_pairs", True)):
            raise ValueError(
                f"{type(loss).__name__} cannot take ref_modalities=; give CrossModalityMemory a miner="
                "wrim.miners.CrossModalityKeyInstanceMiner(...) to choose the pairs, or use wrim.losses.CMKICLoss"
            )
        self.loss = loss
        self.miner = miner
        self.embedding_size = embedding_size
        self.memory_size = memory_size
        self._loss_takes_modalities = "modalities" in inspect.signature(loss.forward).parameters
        self.register_buffer("embedding_memory", torch.zeros(memory_size, embedding_size))
        self.register_buffer("label_memory", torch.zeros(memory_size, dtype=torch.long))
        self.register_buffer("modality_memory", torch.zeros(memory_size, dtype=torch.long))
        self.queue_idx = 0
        self.has_been_filled = False

    def reset_queue(self) -> None:
        """Empty the memory."""
        self.queue_idx = 0
        self.has_been_filled = False

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor, *, modalities: torch.Tensor) -> torch.Tensor:
        """Enqueue the batch, then compute the loss of the batch against the memory.

        Args:
            embeddings: (B, D) anchors, B <= M.
            labels: (B,) identity labels.
            modalities: keyword-only, (B,) ids, ``wrim.VISIBLE`` (0) / ``wrim.INFRARED`` (1).

        Returns:
            The loss's scalar.
        """
        embeddings = check_embeddings(embeddings)
        batch, device = embeddings.shape[0], embeddings.device
        if embeddings.shape[1] != self.embedding_size:
            raise ValueError(f"embeddings have dim {embeddings.shape[1]}; this memory holds {self.embedding_size}")
        if batch > self.memory_size:
            raise ValueError(f"a batch of {batch} does not fit a memory of {self.memory_size}; raise memory_size")
        if modalities is None:
            raise ValueError(missing_modalities_message("CrossModalityMemory"))
        labels = check_labels(labels, batch).to(device)
        modalities = check_modalities(modalities, batch).to(device)
        slots = (self.queue_idx + torch.arange(batch, device=device)) % self.memory_size  # (B,)
        self.embedding_memory = self.embedding_memory.to(device=device, dtype=embeddings.dtype)
        self.label_memory = self.label_memory.to(device)
        self.modality_memory = self.modality_memory.to(device)
        self.embedding_memory[slots] = embeddings.detach()
        self.label_memory[slots] = labels
        self.modality_memory[slots] = modalities
        self.has_been_filled = self.has_been_filled or self.queue_idx + batch >= self.memory_size
        self.queue_idx = (self.queue_idx + batch) % self.memory_size
        filled = self.memory_size if self.has_been_filled else self.queue_idx
        ref_emb = self.embedding_memory[:filled]  # (R, D), R = min(seen, M)
        ref_labels, ref_modalities = self.label_memory[:filled], self.modality_memory[:filled]  # (R,) each
        if self.miner is not None:
            pairs = self.miner(
                embeddings, labels, ref_emb, ref_labels, modalities=modalities, ref_modalities=ref_modalities
            )
            if self._loss_takes_modalities:
                return self.loss(embeddings, labels, pairs, ref_emb, ref_labels, modalities=modalities)
            return self.loss(embeddings, labels, pairs, ref_emb, ref_labels)
        return self.loss(
            embeddings, labels, None, ref_emb, ref_labels, modalities=modalities, ref_modalities=ref_modalities
        )

    def extra_repr(self) -> str:
        return f"embedding_size={self.embedding_size}, memory_size={self.memory_size}"
