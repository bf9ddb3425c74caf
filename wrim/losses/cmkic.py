r"""CMKIC: the Cross-Modality Key-Instance Contrastive loss of WRIM-Net (docs/losses.md).

[P] For an anchor of one modality the positives are its *key instances*, the top-K least similar samples of the same
identity in the other modality; the negatives are the samples of other identities in the other modality. [N] the
term is an InfoNCE/SupCon-style contrast, and the total is the V→I term plus the I→V term. [D] wrim's exact form,
on L2-normalised embeddings z with s_ij = z_i . z_j and temperature τ:

$$
L(i) = -\frac{1}{|P^K(i)|} \sum_{p \in P^K(i)}
       \log \frac{e^{s_{ip}/\tau}}{e^{s_{ip}/\tau} + \sum_{n \in N(i)} e^{s_{in}/\tau}}
\mathcal{L}_{CMKIC} = \operatorname{mean}_{i \in V} L(i) + \operatorname{mean}_{i \in I} L(i)
$$

where anchors without a cross-modality positive are skipped. Each per-pair term is computed stably as
``softplus(logsumexp_n(s_in / τ) - s_ip / τ)``.

Shape legend: ``B`` batch, ``D`` embedding size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wrim.losses._common import check_temperature, compute_dtype, no_positive_message
from wrim.miners.utils import (
    IndicesTuple,
    check_embeddings,
    check_k,
    check_labels,
    pair_masks,
    pairs_to_masks,
    select_per_row,
)
from wrim.modality import INFRARED, VISIBLE, check_modalities

__all__ = ["CMKICLoss", "cmkic_from_masks", "cmkic_key_masks"]


def cmkic_key_masks(
    sim: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Key-instance positives and cross-modality negatives of a batch, from its similarity matrix.

    Args:
        sim: (B, B) cosine similarities (only their order is used; no gradient flows through the selection).
        labels: (B,) identity labels.
        modalities: (B,) modality ids.
        k: number of key instances per anchor.

    Returns:
        ``(pos, neg)``, (B, B) bool each: the k least similar same-identity other-modality samples per anchor,
        and all other-identity other-modality samples.
    """
    pos, neg = pair_masks(labels, labels, modalities, modalities, cross_modality=True, exclude_self=True)
    return select_per_row(sim.detach(), pos, k, largest=False), neg


def cmkic_from_masks(
    sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, modalities: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The CMKIC value for given positive / negative pair masks (vectorised over anchors).

    Args:
        sim: (B, B) cosine similarities of the L2-normalised embeddings.
        pos: (B, B) bool, the positives ``P^K(i)`` of each anchor (row).
        neg: (B, B) bool, the negatives ``N(i)`` of each anchor.
        modalities: (B,) modality ids; anchors are averaged per modality, and the two means summed.
        temperature: τ.

    Raises:
        ValueError: no anchor has a positive.
    """
    logits = sim / temperature  # (B, B)
    has_neg = neg.any(dim=1)  # (B,)
    # Rows without negatives are filled with finite zeros so that logsumexp's backward stays NaN-free.
    neg_logits = logits.masked_fill(~neg, float("-inf")).masked_fill(~has_neg[:, None], 0.0)  # (B, B)
    neg_lse = torch.logsumexp(neg_logits, dim=1)  # (B, B) -> (B,)
    anchors, positives = pos.nonzero(as_tuple=True)  # (P,), (P,): only the positive pairs need a term
    pair_loss = F.softplus(neg_lse[anchors] - logits[anchors, positives])  # (P,): -log(e^s_ip / (e^s_ip + sum_n))
    pair_loss = pair_loss * has_neg[anchors]  # an anchor without negatives contributes -log 1 = 0
    num_pos = pos.sum(dim=1)  # (B,)
    anchor_loss = logits.new_zeros(logits.shape[0]).index_add(0, anchors, pair_loss)  # (P,) -> (B,)
    anchor_loss = anchor_loss / num_pos.clamp(min=1)  # (B,): mean over the anchor's positives
    valid = num_pos > 0  # (B,)
    if not bool(valid.any()):
        raise ValueError("CMKIC: no anchor has a positive; indices_tuple must hold at least one positive pair (a1, p)")
    total = sim.new_zeros(())
    for modality in (VISIBLE, INFRARED):  # the two directions V->I and I->V (not a loop over anchors)
        in_dir = valid & (modalities == modality)  # (B,)
        total = total + (anchor_loss * in_dir).sum() / in_dir.sum().clamp(min=1)
    return total


class CMKICLoss(nn.Module):
    r"""Cross-Modality Key-Instance Contrastive loss (WRIM-Net [P], exact form [D], docs/losses.md).

    $$
    L(i) = -\frac{1}{|P^K(i)|} \sum_{p \in P^K(i)}
           \log \frac{e^{s_{ip}/\tau}}{e^{s_{ip}/\tau} + \sum_{n \in N(i)} e^{s_{in}/\tau}},\qquad
    \mathcal{L} = \operatorname{mean}_{i \in V} L(i) + \operatorname{mean}_{i \in I} L(i)
    $$

    ``P^K(i)``: the ``k`` least cosine-similar samples with the anchor's label and the other modality (all of them
    when fewer exist; mined without gradient, ties to the lower index); ``N(i)``: all samples with another label and
    the other modality; ``s`` the cosine similarity. Given an ``indices_tuple`` (from any wrim or
    pytorch-metric-learning miner), its pairs define ``P(i)`` and ``N(i)`` instead and each anchor is averaged in the
    direction of its own modality. Computed in float32 (float64 inputs stay float64) with autocast disabled.

    Examples:
        >>> loss_fn = CMKICLoss(k=2, temperature=0.1)
        >>> loss = loss_fn(projections, labels, modalities)  # (B, D), (B,), (B,) -> ()
    """

    def __init__(self, k: int = 2, temperature: float = 0.1) -> None:
        """
        Args:
            k: number of key instances per anchor; [D] default 2 (the paper's ablation: K in {1, 4, 8}).
            temperature: τ, dividing the cosine similarities; [D] default 0.1.
        """
        super().__init__()
        self.k = check_k(k)
        self.temperature = check_temperature(temperature)

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor,
        indices_tuple: IndicesTuple | None = None,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            embeddings: (B, D) embeddings (e.g. the 128-d projections); normalised inside.
            labels: (B,) identity labels.
            modalities: (B,) ids, ``wrim.VISIBLE`` (0) / ``wrim.INFRARED`` (1).
            indices_tuple: optional pairs ``(a1, p, a2, n)`` or triplets ``(a, p, n)`` indexing the batch; when
                given they replace the key-instance mining.

        Returns:
            The scalar loss, float32 (float64 for float64 input).

        Raises:
            ValueError: mismatched lengths, or a batch in which no anchor has a cross-modality positive.
        """
        embeddings = check_embeddings(embeddings)
        batch = embeddings.shape[0]
        labels = check_labels(labels, batch).to(embeddings.device)
        modalities = check_modalities(modalities, batch).to(embeddings.device)
        with torch.autocast(device_type=embeddings.device.type, enabled=False):
            z = F.normalize(embeddings.to(compute_dtype(embeddings)), dim=1)  # (B, D)
            sim = z @ z.T  # (B, D) @ (D, B) -> (B, B)
            if indices_tuple is None:
                pos, neg = cmkic_key_masks(sim, labels, modalities, self.k)  # (B, B) each
                if not bool(pos.any()):
                    raise ValueError(no_positive_message("CMKICLoss", labels, modalities))
            else:
                pos, neg = pairs_to_masks(indices_tuple, batch, batch)
                pos, neg = pos.to(embeddings.device), neg.to(embeddings.device)
            return cmkic_from_masks(sim, pos, neg, modalities, self.temperature)

    def extra_repr(self) -> str:
        return f"k={self.k}, temperature={self.temperature}"
