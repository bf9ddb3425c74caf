"""The miner base class: pytorch-metric-learning's miner contract, with per-sample modality ids.

Shape legend: ``B`` anchors, ``R`` reference samples (``R = B`` without ``ref_emb``), ``D`` embedding size.
"""

from __future__ import annotations

import torch
from torch import nn

from wrim._checks import check_pair_batch
from wrim.pairs import IndicesTuple

__all__ = ["BaseMiner"]


class BaseMiner(nn.Module):
    """Base class of wrim's miners, with pytorch-metric-learning's (PML) call shape.

    ``miner(embeddings, labels, ref_emb, ref_labels, modalities=..., ref_modalities=...)`` validates the batch, runs
    [`mine()`][wrim.miners.BaseMiner.mine] under ``torch.no_grad()`` and checks that the result is PML's pair format
    ``(a1, p, a2, n)``, so it can be passed unchanged as ``indices_tuple`` to any PML loss or to
    [`wrim.losses.CMKICLoss`][wrim.losses.CMKICLoss]. Anchors index ``embeddings``; positives and negatives index
    ``ref_emb`` (``embeddings`` itself when ``ref_emb`` is None, in which case an anchor is never paired with itself).
    The modality ids are keyword-only, so PML code that calls miners positionally works unchanged.

    Subclasses implement only [`mine()`][wrim.miners.BaseMiner.mine]. After each call ``num_pos_pairs`` and
    ``num_neg_pairs`` hold the sizes of the mined sets (PML's recordable statistics).

    Args:
        cross_modality: pair only samples of different modalities; ``forward`` then needs ``modalities``.
    """

    def __init__(self, cross_modality: bool = False) -> None:
        super().__init__()
        self.cross_modality = bool(cross_modality)
        self.num_pos_pairs = 0
        self.num_neg_pairs = 0

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
        *,
        modalities: torch.Tensor | None = None,
        ref_modalities: torch.Tensor | None = None,
    ) -> IndicesTuple:
        """Mine pairs.

        Args:
            embeddings: anchors, (B, D).
            labels: identity labels of the anchors, (B,).
            ref_emb: optional reference embeddings, (R, D); positives and negatives are taken from them.
            ref_labels: labels of ``ref_emb``, (R,); required with ``ref_emb``.
            modalities: keyword-only, modality ids of the anchors, (B,), ``wrim.VISIBLE`` (0) / ``wrim.INFRARED``
                (1); required by cross-modality miners.
            ref_modalities: keyword-only, modality ids of ``ref_emb``, (R,); required with ``ref_emb`` by
                cross-modality miners.

        Returns:
            ``(a1, p, a2, n)``: LongTensors, (P,), (P,), (N,), (N,), on the device of ``embeddings``.

        Raises:
            ValueError: mismatched lengths, or a cross-modality miner called without ``modalities``.
        """
        batch = check_pair_batch(
            type(self).__name__,
            embeddings,
            labels,
            ref_emb,
            ref_labels,
            modalities,
            ref_modalities,
            mines=True,
            need_modalities=self.cross_modality,
        )
        embeddings, labels, modalities = batch.embeddings, batch.labels, batch.modalities
        ref_emb = embeddings if batch.ref_emb is None else batch.ref_emb  # the very object: mining within the batch
        with torch.no_grad():
            out = self.mine(embeddings, labels, ref_emb, batch.ref_labels, modalities, batch.ref_modalities)
        self.output_assertion(out)
        self.num_pos_pairs = len(out[0])
        self.num_neg_pairs = len(out[2])
        return out

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
        modalities: torch.Tensor | None,
        ref_modalities: torch.Tensor | None,
    ) -> IndicesTuple:
        """Return ``(a1, p, a2, n)``; ``ref_emb is embeddings`` when mining within the batch (exclude self pairs).

        Args:
            embeddings: anchors, (B, D).
            labels: (B,) LongTensor.
            ref_emb: (R, D), the very same object as ``embeddings`` when no reference set was given.
            ref_labels: (R,) LongTensor.
            modalities: (B,) LongTensor or None.
            ref_modalities: (R,) LongTensor or None.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement mine()")

    @staticmethod
    def output_assertion(output: IndicesTuple) -> None:
        """Check PML's pair format: a 4-tuple of 1-D LongTensors with ``len(a1) == len(p)``, ``len(a2) == len(n)``."""
        if not isinstance(output, tuple) or len(output) != 4:
            raise TypeError("a miner must return a 4-tuple (a1, p, a2, n) of LongTensors")
        if any(not isinstance(t, torch.Tensor) or t.dim() != 1 or t.dtype != torch.long for t in output):
            raise TypeError("a miner must return 1-D LongTensors")
        a1, p, a2, n = output
        if len(a1) != len(p) or len(a2) != len(n):
            raise TypeError("a miner's pairs must satisfy len(a1) == len(p) and len(a2) == len(n)")

    def extra_repr(self) -> str:
        return f"cross_modality={self.cross_modality}"
