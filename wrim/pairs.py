"""Pair masks shared by wrim's miners and losses: the one home of the (B, R) positive / negative masks.

Public, for writing miners and losses (docs: Custom loss and miner); it sits below [`wrim.miners`][wrim.miners] and
[`wrim.losses`][wrim.losses] and imports neither.

Shape legend: ``B`` anchors (the batch), ``R`` reference samples (the batch itself unless ``ref_emb`` is given),
``D`` embedding size.

Pairs follow pytorch-metric-learning's (PML) ``indices_tuple`` convention: a 4-tuple ``(a1, p, a2, n)`` of
LongTensors where ``(a1[i], p[i])`` is a positive pair and ``(a2[j], n[j])`` a negative pair, anchors indexing the
batch and ``p`` / ``n`` indexing the reference set. A 3-tuple ``(a, p, n)`` of triplets is also accepted where pairs
are read.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = [
    "IndicesTuple",
    "cosine_similarity_matrix",
    "masks_to_pairs",
    "pair_masks",
    "pairs_to_masks",
    "select_per_row",
]

IndicesTuple = tuple[torch.Tensor, ...]
_ARGMIN_MAX_K = 8  # up to this k, select_per_row uses k argmin passes instead of a full sort


def cosine_similarity_matrix(embeddings: torch.Tensor, ref_emb: torch.Tensor | None = None) -> torch.Tensor:
    """Cosine similarity of every anchor with every reference sample: wrim's one cosine similarity.

    Args:
        embeddings: anchors, (B, D).
        ref_emb: reference samples, (R, D); None (or ``embeddings`` itself) for the batch against itself.

    Returns:
        (B, R) similarities ``s_ij = z_i . z_j`` of the L2-normalised rows.
    """
    z = F.normalize(embeddings, dim=1)  # (B, D)
    ref_z = z if ref_emb is None or ref_emb is embeddings else F.normalize(ref_emb, dim=1)  # (R, D)
    return z @ ref_z.T  # (B, D) @ (D, R) -> (B, R)


def pair_masks(
    labels: torch.Tensor,
    ref_labels: torch.Tensor,
    modalities: torch.Tensor | None = None,
    ref_modalities: torch.Tensor | None = None,
    cross_modality: bool = False,
    exclude_self: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boolean masks of all positive and all negative (anchor, reference) pairs.

    Args:
        labels: anchor labels, (B,).
        ref_labels: reference labels, (R,).
        modalities: anchor modality ids, (B,); required when ``cross_modality`` is True.
        ref_modalities: reference modality ids, (R,); required when ``cross_modality`` is True.
        cross_modality: keep only pairs whose two samples come from different modalities.
        exclude_self: drop the diagonal (the reference set is the batch itself, so ``i == j`` is the anchor).

    Returns:
        ``(pos, neg)``, each (B, R) bool: same label / different label, restricted as asked.
    """
    same = labels[:, None] == ref_labels[None, :]  # (B, R)
    pos, neg = same, ~same
    if cross_modality:
        if modalities is None or ref_modalities is None:
            raise ValueError("cross_modality=True needs modalities (and ref_modalities when ref_emb is given)")
        other = modalities[:, None] != ref_modalities[None, :]  # (B, R)
        pos, neg = pos & other, neg & other
    if exclude_self:
        eye = torch.eye(pos.shape[0], pos.shape[1], dtype=torch.bool, device=pos.device)  # (B, R)
        pos = pos & ~eye
    return pos, neg


def select_per_row(scores: torch.Tensor, mask: torch.Tensor, k: int, largest: bool) -> torch.Tensor:
    """Keep, in every row, the ``k`` masked entries with the smallest (or largest) score.

    Ties are broken deterministically towards the lower column index (a stable sort), so that the result does not
    depend on the device or the sorting kernel. Rows with fewer than ``k`` masked entries keep all of them.

    Args:
        scores: (B, R) scores, e.g. cosine similarities.
        mask: (B, R) bool, the candidates.
        k: how many to keep per row.
        largest: keep the largest scores (hardest negatives) instead of the smallest (hardest positives).

    Returns:
        (B, R) bool mask, a subset of ``mask`` with at most ``k`` True entries per row.
    """
    k = min(k, scores.shape[1])
    if k == 0:
        return mask.clone()
    keyed = -scores if largest else scores  # smallest key first in both cases
    keyed = keyed.masked_fill(~mask, float("inf"))  # (B, R): non-candidates sort last
    if k <= _ARGMIN_MAX_K:
        # k passes of argmin, which returns the first minimal index: the same tie-break as a stable sort, cheaper
        rows = torch.arange(keyed.shape[0], device=keyed.device)  # (B,)
        chosen = torch.zeros_like(mask)  # (B, R)
        for _ in range(k):  # k is small (the number of key instances), not the number of anchors
            idx = keyed.argmin(dim=1)  # (B,)
            chosen[rows, idx] = True
            keyed[rows, idx] = float("inf")
    else:
        order = torch.sort(keyed, dim=1, stable=True).indices[:, :k]  # (B, k)
        chosen = torch.zeros_like(mask).scatter_(1, order, True)  # (B, R)
    return chosen & mask


def masks_to_pairs(pos: torch.Tensor, neg: torch.Tensor) -> IndicesTuple:
    """Turn (B, R) positive / negative masks into PML's pair tuple ``(a1, p, a2, n)`` (row-major order)."""
    a1, p = pos.nonzero(as_tuple=True)  # (P,), (P,)
    a2, n = neg.nonzero(as_tuple=True)  # (N,), (N,)
    return a1, p, a2, n


def pairs_to_masks(indices_tuple: IndicesTuple, num_anchors: int, num_refs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Turn a PML ``indices_tuple`` into (B, R) positive / negative masks (a pair listed twice counts once).

    Args:
        indices_tuple: ``(a1, p, a2, n)`` pairs or ``(a, p, n)`` triplets, 1-D integer tensors.
        num_anchors: B, the number of anchors the indices ``a1`` / ``a2`` / ``a`` refer to.
        num_refs: R, the number of reference samples ``p`` / ``n`` refer to.
    """
    if not isinstance(indices_tuple, (tuple, list)) or len(indices_tuple) not in (3, 4):
        raise TypeError(
            "indices_tuple must be a 4-tuple (a1, p, a2, n) of pairs or a 3-tuple (a, p, n) of triplets, "
            f"as returned by a wrim or pytorch-metric-learning miner; got {type(indices_tuple).__name__}"
            + (f" of length {len(indices_tuple)}" if isinstance(indices_tuple, (tuple, list)) else "")
        )
    for t in indices_tuple:
        if not isinstance(t, torch.Tensor) or t.dim() != 1 or t.dtype.is_floating_point:
            raise TypeError("every element of indices_tuple must be a 1-D integer tensor")
    if len(indices_tuple) == 3:
        a, p, n = indices_tuple
        if not len(a) == len(p) == len(n):
            raise ValueError("a triplet indices_tuple (a, p, n) needs three tensors of equal length")
        a1, a2 = a, a
    else:
        a1, p, a2, n = indices_tuple
        if len(a1) != len(p) or len(a2) != len(n):
            raise ValueError("a pair indices_tuple (a1, p, a2, n) needs len(a1) == len(p) and len(a2) == len(n)")
    for idx, size, what in (
        (a1, num_anchors, "anchor"),
        (a2, num_anchors, "anchor"),
        (p, num_refs, "positive"),
        (n, num_refs, "negative"),
    ):
        if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= size):
            raise ValueError(f"indices_tuple holds a {what} index outside [0, {size}); mine on the same batch")
    device = p.device
    pos = torch.zeros(num_anchors, num_refs, dtype=torch.bool, device=device)  # (B, R)
    neg = torch.zeros(num_anchors, num_refs, dtype=torch.bool, device=device)  # (B, R)
    pos[a1.long(), p.long()] = True
    neg[a2.long(), n.long()] = True
    return pos, neg
