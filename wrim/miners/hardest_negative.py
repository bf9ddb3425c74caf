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

from wrim.miners.base import CosinePairMiner
from wrim.miners.utils import select_per_row

__all__ = ["HardestNegativeMiner"]


class HardestNegativeMiner(CosinePairMiner):
    """Each anchor's ``k`` most cosine-similar negatives, and all its positives.

    Examples:
        >>> miner = HardestNegativeMiner(k=1, cross_modality=True)
        >>> a1, p, a2, n = miner(embeddings, labels, modalities)  # (B, D), (B,), (B,) -> PML pairs
    """

    def __init__(self, k: int = 1, cross_modality: bool = False) -> None:
        """
        Args:
            k: number of hardest (most similar) negatives kept per anchor.
            cross_modality: pair only samples of different modalities; ``forward`` then needs ``modalities``.
        """
        super().__init__(k, cross_modality)

    def select(self, sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pos, select_per_row(sim, neg, self.k, largest=True)  # the k most similar negatives
