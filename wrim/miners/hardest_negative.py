"""Hardest-negative miner: keep each anchor's ``k`` most cosine-similar negatives, and all its positives.

The counterpart of [`wrim.miners.KeyInstanceMiner`][wrim.miners.KeyInstanceMiner] on the negative side: for an anchor
``i`` with candidate positives ``P(i)`` and negatives ``N(i)``,

    N^K(i) = the k elements of N(i) with the largest s_ij = z_i . z_j   (all of N(i) when |N(i)| <= k)

and the mined pairs are ``{(i, p) : p in P(i)}`` and ``{(i, n) : n in N^K(i)}``, in pytorch-metric-learning's
``(a1, p, a2, n)`` format. Ties are broken towards the lower reference index. Shape legend: ``B`` anchors,
``R`` reference samples, ``D`` embedding size.
"""

from __future__ import annotations

import torch

from wrim._checks import check_k
from wrim.miners.base import BaseMiner
from wrim.pairs import IndicesTuple, cosine_similarity_matrix, masks_to_pairs, pair_masks, select_per_row

__all__ = ["HardestNegativeMiner"]


class HardestNegativeMiner(BaseMiner):
    """Each anchor's ``k`` most cosine-similar negatives, and all its positives.

    Examples:
        >>> miner = HardestNegativeMiner(k=1, cross_modality=True)
        >>> a1, p, a2, n = miner(embeddings, labels, modalities=modalities)  # (B, D), (B,), (B,) -> PML pairs
    """

    def __init__(self, k: int = 1, cross_modality: bool = False) -> None:
        """
        Args:
            k: number of hardest (most similar) negatives kept per anchor.
            cross_modality: pair only samples of different modalities; ``forward`` then needs ``modalities``.
        """
        super().__init__(cross_modality)
        self.k = check_k(k)

    def mine(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        ref_emb: torch.Tensor,
        ref_labels: torch.Tensor,
        modalities: torch.Tensor | None,
        ref_modalities: torch.Tensor | None,
    ) -> IndicesTuple:
        sim = cosine_similarity_matrix(embeddings, ref_emb)  # (B, D), (R, D) -> (B, R)
        pos, neg = pair_masks(
            labels, ref_labels, modalities, ref_modalities, self.cross_modality, exclude_self=ref_emb is embeddings
        )  # (B, R) each
        return masks_to_pairs(pos, select_per_row(sim, neg, self.k, largest=True))  # the k most similar negatives

    def extra_repr(self) -> str:
        return f"k={self.k}, cross_modality={self.cross_modality}"
