"""The miner base class: pytorch-metric-learning's miner contract, with per-sample modality ids.

Shape legend: ``B`` anchors, ``R`` reference samples (``R = B`` without ``ref_emb``), ``D`` embedding size.
"""

from __future__ import annotations

import torch
from torch import nn

from wrim.miners.utils import (
    IndicesTuple,
    check_embeddings,
    check_k,
    check_labels,
    cosine_similarity_matrix,
    masks_to_pairs,
    pair_masks,
)
from wrim.modality import check_modalities

__all__ = ["BaseMiner", "CosinePairMiner"]


class BaseMiner(nn.Module):
    """Base class of wrim's miners, following pytorch-metric-learning's (PML) ``BaseMiner``.

    ``forward`` validates the batch, runs [`mine()`][wrim.miners.BaseMiner.mine] under ``torch.no_grad()`` and checks
    that the result is PML's pair format ``(a1, p, a2, n)``, so it can be passed unchanged as ``indices_tuple`` to any
    PML loss or to [`wrim.losses.CMKICLoss`][wrim.losses.CMKICLoss]. Anchors index ``embeddings``; positives and
    negatives index ``ref_emb`` (``embeddings`` itself when ``ref_emb`` is None, in which case an anchor is never paired
    with itself).

    Subclasses implement only [`mine()`][wrim.miners.BaseMiner.mine]. After each call ``num_pos_pairs`` and
    ``num_neg_pairs`` hold the sizes of the mined sets (PML's recordable statistics).

    Args:
        needs_modalities: whether ``forward`` requires ``modalities`` (cross-modality miners).
    """

    def __init__(self, needs_modalities: bool = False) -> None:
        super().__init__()
        self.needs_modalities = needs_modalities
        self.num_pos_pairs = 0
        self.num_neg_pairs = 0

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
        ref_modalities: torch.Tensor | None = None,
    ) -> IndicesTuple:
        """Mine pairs.

        Args:
            embeddings: anchors, (B, D).
            labels: identity labels of the anchors, (B,).
            modalities: modality ids of the anchors, (B,), ``wrim.VISIBLE`` (0) / ``wrim.INFRARED`` (1).
            ref_emb: optional reference embeddings, (R, D); positives and negatives are taken from them.
            ref_labels: labels of ``ref_emb``, (R,); required with ``ref_emb``.
            ref_modalities: modality ids of ``ref_emb``, (R,); required with ``ref_emb`` for cross-modality miners.

        Returns:
            ``(a1, p, a2, n)``: LongTensors, (P,), (P,), (N,), (N,), on the device of ``embeddings``.
        """
        embeddings = check_embeddings(embeddings)
        batch = embeddings.shape[0]
        labels = check_labels(labels, batch).to(embeddings.device)
        if modalities is None and self.needs_modalities:
            raise ValueError(
                f"{type(self).__name__} needs modalities: a (B,) tensor with 0 = visible, 1 = infrared per sample"
            )
        if modalities is not None:
            modalities = check_modalities(modalities, batch).to(embeddings.device)
        if ref_emb is None:
            if ref_labels is not None or ref_modalities is not None:
                raise ValueError("ref_labels / ref_modalities were given without ref_emb; pass ref_emb too")
            ref_emb, ref_labels, ref_modalities = embeddings, labels, modalities
        else:
            ref_emb = check_embeddings(ref_emb, name="ref_emb")
            if ref_emb.shape[1] != embeddings.shape[1]:
                raise ValueError(
                    f"ref_emb has dim {ref_emb.shape[1]} but embeddings have dim {embeddings.shape[1]}; they must match"
                )
            if ref_labels is None:
                raise ValueError("ref_emb was given without ref_labels; pass one label per reference embedding")
            ref_labels = check_labels(ref_labels, ref_emb.shape[0], name="ref_labels").to(embeddings.device)
            if ref_modalities is None and self.needs_modalities:
                raise ValueError(f"{type(self).__name__} with ref_emb needs ref_modalities, one id per ref_emb row")
            if ref_modalities is not None:
                ref_modalities = check_modalities(ref_modalities, ref_emb.shape[0], name="ref_modalities")
                ref_modalities = ref_modalities.to(embeddings.device)
        with torch.no_grad():
            out = self.mine(embeddings, labels, modalities, ref_emb, ref_labels, ref_modalities)
        self.output_assertion(out)
        self.num_pos_pairs = len(out[0])
        self.num_neg_pairs = len(out[2])
        return out

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor | None,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
        ref_modalities: torch.Tensor | None,
    ) -> IndicesTuple:
        """Return ``(a1, p, a2, n)``; ``ref_emb is embeddings`` when mining within the batch (exclude self pairs).

        Args:
            embeddings: anchors, (B, D).
            labels: (B,) LongTensor.
            modalities: (B,) LongTensor or None.
            ref_emb: (R, D), the very same object as ``embeddings`` when no reference set was given.
            ref_labels: (R,) LongTensor.
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


class CosinePairMiner(BaseMiner):
    """A miner that keeps ``k`` pairs per anchor chosen by cosine similarity among its label-defined candidates.

    Candidates: positives ``P(i)`` share the anchor's label, negatives ``N(i)`` do not; with ``cross_modality``
    both are restricted to the other modality. Subclasses implement [`select()`][wrim.miners.CosinePairMiner.select],
    which narrows the (B, R) masks; ties are broken towards the lower reference index.

    Args:
        k: pairs kept per anchor on the selected side.
        cross_modality: pair only samples of different modalities; ``forward`` then needs ``modalities``.
    """

    def __init__(self, k: int, cross_modality: bool = False) -> None:
        super().__init__(needs_modalities=cross_modality)
        self.k = check_k(k)
        self.cross_modality = bool(cross_modality)

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor | None,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
        ref_modalities: torch.Tensor | None,
    ) -> IndicesTuple:
        sim = cosine_similarity_matrix(embeddings, ref_emb)  # (B, D), (R, D) -> (B, R)
        pos, neg = pair_masks(
            labels, ref_labels, modalities, ref_modalities, self.cross_modality, exclude_self=ref_emb is embeddings
        )  # (B, R) each
        return masks_to_pairs(*self.select(sim, pos, neg))

    def select(self, sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Narrow the candidate masks. (B, R) similarities and bool masks -> (B, R) positive and negative masks."""
        raise NotImplementedError(f"{type(self).__name__} must implement select()")

    def extra_repr(self) -> str:
        return f"k={self.k}, cross_modality={self.cross_modality}"
