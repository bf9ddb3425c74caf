"""Key-instance miners: keep each anchor's ``k`` hardest (least cosine-similar) positives.

WRIM-Net's CMKIC loss [P] contrasts an anchor with its *key instances*, the top-K least similar samples of the
same identity in the other modality, against the other-identity samples of the other modality. These miners
produce exactly those pairs in pytorch-metric-learning's ``(a1, p, a2, n)`` format, so the key-instance idea can
feed any PML pair loss (``ContrastiveLoss``, ``NTXentLoss``, ...), inside or outside VI-ReID.

For an anchor ``i`` with candidate positives ``P(i)`` and negatives ``N(i)``:

    P^K(i) = the k elements of P(i) with the smallest s_ij = z_i . z_j   (all of P(i) when |P(i)| <= k)

and the mined pairs are ``{(i, p) : p in P^K(i)}`` and ``{(i, n) : n in N(i)}``. Ties are broken towards the lower
reference index. Shape legend: ``B`` anchors, ``R`` reference samples, ``D`` embedding size.
"""

from __future__ import annotations

import torch

from wrim.miners.base import CosinePairMiner
from wrim.miners.utils import select_per_row

__all__ = ["CrossModalityKeyInstanceMiner", "KeyInstanceMiner"]


class KeyInstanceMiner(CosinePairMiner):
    """Each anchor's ``k`` least cosine-similar positives, and all its negatives.

    With ``cross_modality=False`` (the default) it is a general hard-positive miner for any metric-learning task;
    with ``cross_modality=True`` only pairs across modalities are kept (CMKIC's key instances, see
    [`CrossModalityKeyInstanceMiner`][wrim.miners.CrossModalityKeyInstanceMiner]).

    Examples:
        >>> miner = KeyInstanceMiner(k=2)
        >>> a1, p, a2, n = miner(embeddings, labels)  # (B, D), (B,) -> PML pairs
    """

    def __init__(self, k: int = 2, cross_modality: bool = False) -> None:
        """
        Args:
            k: number of key (least-similar) positives kept per anchor; [D] default 2 (docs/losses.md).
            cross_modality: pair only samples of different modalities; ``forward`` then needs ``modalities``.
        """
        super().__init__(k, cross_modality)

    def select(self, sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return select_per_row(sim, pos, self.k, largest=False), neg  # the k least similar positives


class CrossModalityKeyInstanceMiner(KeyInstanceMiner):
    """CMKIC's miner [P]: per anchor, its ``k`` least similar same-identity samples of the other modality.

    Positives: for every anchor, the ``k`` least cosine-similar samples with the same label and the other modality
    (all of them when fewer exist). Negatives: every sample with a different label and the other modality.

    Examples:
        >>> miner = CrossModalityKeyInstanceMiner(k=2)
        >>> a1, p, a2, n = miner(embeddings, labels, modalities)  # (B, D), (B,), (B,)
        >>> loss = pytorch_metric_learning.losses.NTXentLoss()(embeddings, labels, (a1, p, a2, n))
    """

    def __init__(self, k: int = 2) -> None:
        """
        Args:
            k: number of key instances per anchor; [D] default 2; the paper's ablation compares K in {1, 4, 8}.
        """
        super().__init__(k=k, cross_modality=True)

    def extra_repr(self) -> str:
        return f"k={self.k}"
