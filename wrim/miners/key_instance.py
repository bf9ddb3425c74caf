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

from wrim._checks import check_k
from wrim.miners.base import BaseMiner
from wrim.pairs import IndicesTuple, cosine_similarity_matrix, masks_to_pairs, pair_masks, select_per_row

__all__ = ["CrossModalityKeyInstanceMiner", "KeyInstanceMiner", "key_instance_masks"]


def key_instance_masks(
    sim: torch.Tensor,
    labels: torch.Tensor,
    ref_labels: torch.Tensor,
    modalities: torch.Tensor | None,
    ref_modalities: torch.Tensor | None,
    k: int,
    cross_modality: bool,
    exclude_self: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key-instance mining, wrim's one implementation (the miners and `wrim.losses.CMKICLoss` use it).

    Args:
        sim: (B, R) similarities that choose the key instances (read without gradient).
        labels: (B,) anchor labels.
        ref_labels: (R,) reference labels.
        modalities: (B,) anchor ids; needed with ``cross_modality``.
        ref_modalities: (R,) reference ids; needed with ``cross_modality``.
        k: key instances kept per anchor.
        cross_modality: pair only samples of different modalities.
        exclude_self: the reference set is the batch itself (an anchor is not its own positive).

    Returns:
        The (B, R) bool masks ``P^K(i)`` (the ``k`` least similar positives; ties to the lower index) and ``N(i)``.
    """
    pos, neg = pair_masks(labels, ref_labels, modalities, ref_modalities, cross_modality, exclude_self)  # (B, R)
    return select_per_row(sim.detach(), pos, k, largest=False), neg


class KeyInstanceMiner(BaseMiner):
    """Each anchor's ``k`` least cosine-similar positives, and all its negatives.

    With ``cross_modality=False`` (the default) it is a general hard-positive miner for any metric-learning task;
    with ``cross_modality=True`` only pairs across modalities are kept (CMKIC's key instances, see
    [`CrossModalityKeyInstanceMiner`][wrim.miners.CrossModalityKeyInstanceMiner]).

    Examples:
        >>> miner = KeyInstanceMiner(k=2)
        >>> a1, p, a2, n = miner(embeddings, labels)  # (B, D), (B,) -> PML pairs
        >>> a1, p, a2, n = miner(embeddings, labels, ref_emb, ref_labels)  # PML's positional order
    """

    def __init__(self, k: int = 2, cross_modality: bool = False) -> None:
        """
        Args:
            k: number of key (least-similar) positives kept per anchor; [D] default 2 (docs: The paper, section CMKIC).
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
        exclude_self = ref_emb is embeddings
        return masks_to_pairs(
            *key_instance_masks(
                sim, labels, ref_labels, modalities, ref_modalities, self.k, self.cross_modality, exclude_self
            )
        )

    def extra_repr(self) -> str:
        return f"k={self.k}, cross_modality={self.cross_modality}"


class CrossModalityKeyInstanceMiner(KeyInstanceMiner):
    """CMKIC's miner [P]: per anchor, its ``k`` least similar same-identity samples of the other modality.

    Positives: for every anchor, the ``k`` least cosine-similar samples with the same label and the other modality
    (all of them when fewer exist). Negatives: every sample with a different label and the other modality.

    Examples:
        >>> miner = CrossModalityKeyInstanceMiner(k=2)
        >>> a1, p, a2, n = miner(embeddings, labels, modalities=modalities)  # (B, D), (B,), (B,)
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
