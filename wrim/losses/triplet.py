r"""Triplet comparators for the paper's "CMKIC vs triplet" ablation: AGW's two triplet losses.

Both use AGW's Euclidean distance on the raw (not normalised) embeddings,
``d_ij = sqrt(max(|x_i|^2 + |x_j|^2 - 2 x_i . x_j, 1e-12))`` (the diagonal is exactly ``sqrt(1e-12)``), and both
can be restricted to cross-modality pairs (``cross_modality=True``: positives and negatives from the other
modality only). Anchors without a positive (another sample of their identity, of the other modality if asked) or
without a negative are skipped; the loss is the mean over the remaining anchors (0 when none remains).

- [`TripletLoss`][wrim.losses.TripletLoss] — AGW's ``OriTripletLoss`` (batch hard, Hermans et al. 2017):
  ``mean_i relu(max_{p} d_ip - min_{n} d_in + margin)``.
- [`WRTripletLoss`][wrim.losses.WRTripletLoss] — AGW's ``TripletLoss_WRT`` (weighted regularisation triplet, Ye et al.
  TPAMI 2021): softmax-weighted positive and negative distances and a soft margin,
  ``mean_i softplus(sum_p w_ip d_ip - sum_n w_in d_in)`` with ``w_ip ∝ exp(d_ip)`` and ``w_in ∝ exp(-d_in)``.

Shape legend: ``B`` batch, ``D`` embedding size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wrim._checks import PairBatch, check_nonnegative, compute_dtype, no_positive_message
from wrim.losses.base import BaseLoss
from wrim.pairs import IndicesTuple, pair_masks

__all__ = ["TripletLoss", "WRTripletLoss"]


class _AGWBatchLoss(BaseLoss):
    """AGW's batch losses: they choose their own pairs within the batch (no ``indices_tuple``, no ``ref_emb``)."""

    takes_pairs = False

    def __init__(self, cross_modality: bool, no_positive: str) -> None:
        super().__init__(no_positive)
        self.cross_modality = bool(cross_modality)

    def _candidates(self, batch: PairBatch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The embeddings in the compute dtype (B, D), the (B, B) positive and negative masks and the (B,) anchors
        that have both; applies ``no_positive``."""
        labels, modalities = batch.labels, batch.modalities
        pos, neg = pair_masks(labels, labels, modalities, modalities, self.cross_modality)  # (B, B) each
        valid = pos.any(dim=1) & neg.any(dim=1)  # (B,)
        self.check_any_anchor(
            valid,
            lambda: no_positive_message(type(self).__name__, labels, modalities if self.cross_modality else None),
        )
        embeddings = batch.embeddings
        return embeddings.to(compute_dtype(embeddings)), pos, neg, valid


def _agw_distance(x: torch.Tensor) -> torch.Tensor:
    """AGW's ``pdist_torch``: Euclidean distances with a 1e-12 floor, (B, D) -> (B, B); exact zero on the diagonal."""
    sq_norm = x.pow(2).sum(dim=1)  # (B,)
    sq = sq_norm[:, None] + sq_norm[None, :] - 2.0 * (x @ x.T)  # (B, B)
    eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)  # (B, B)
    sq = sq.masked_fill(eye, 0.0)  # x_i - x_i is exactly 0; the expansion may leave rounding noise
    return sq.clamp(min=1e-12).sqrt()  # (B, B)


def _valid_mean(values: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    return torch.where(valid, values, torch.zeros_like(values)).sum() / valid.sum().clamp(min=1)


class TripletLoss(_AGWBatchLoss):
    r"""Batch-hard triplet loss, AGW's ``OriTripletLoss`` (the field's baseline comparator).

    $$
    \mathcal{L} = \frac{1}{|A|} \sum_{i \in A}
        \big[\max_{p \in P(i)} d_{ip} - \min_{n \in N(i)} d_{in} + m\big]_+
    $$

    ``P(i)``: other samples of the anchor's identity; ``N(i)``: samples of other identities; both from the other
    modality only when ``cross_modality=True``; ``A``: anchors with both. ``d``: AGW's Euclidean distance on the
    raw embeddings. Computed in float32 (float64 stays float64) with autocast disabled.

    Examples:
        >>> loss = TripletLoss(margin=0.3)(features, labels)  # (B, D), (B,) -> ()
        >>> loss = TripletLoss(cross_modality=True)(features, labels, modalities=modalities)
    """

    def __init__(self, margin: float = 0.3, cross_modality: bool = False, no_positive: str = "warn") -> None:
        """
        Args:
            margin: m, the ranking margin; AGW's default 0.3.
            cross_modality: take positives and negatives from the anchor's other modality only.
            no_positive: a batch without a usable anchor: ``"warn"`` returns 0 (warned once, on the first call),
                ``"raise"`` raises ``ValueError`` (a host sync per call); see `CMKICLoss`.
        """
        super().__init__(cross_modality, no_positive)
        self.margin = check_nonnegative(margin, "margin")

    def compute_loss(self, batch: PairBatch, indices_tuple: IndicesTuple | None = None) -> torch.Tensor:
        """The loss of a validated batch (`BaseLoss.compute_loss`; the batch defines the pairs)."""
        with torch.autocast(device_type=batch.embeddings.device.type, enabled=False):
            x, pos, neg, valid = self._candidates(batch)
            dist = _agw_distance(x)  # (B, B)
            hardest_pos = dist.masked_fill(~pos, float("-inf")).amax(dim=1)  # (B,)
            hardest_neg = dist.masked_fill(~neg, float("inf")).amin(dim=1)  # (B,)
            per_anchor = F.relu(hardest_pos - hardest_neg + self.margin)  # (B,); inf - inf rows are masked out
            return _valid_mean(per_anchor, valid)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, cross_modality={self.cross_modality}"


def _agw_softmax_weights(dist: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """AGW's ``softmax_weights``: a masked softmax over each row, with AGW's ``+1e-6`` in the normaliser."""
    max_v = (dist * mask).amax(dim=1, keepdim=True)  # (B, 1)
    diff = dist - max_v  # (B, B)
    expd = torch.exp(diff) * mask  # (B, B)
    return expd / (expd.sum(dim=1, keepdim=True) + 1e-6)  # (B, B)


class WRTripletLoss(_AGWBatchLoss):
    r"""Weighted regularisation triplet, AGW's ``TripletLoss_WRT`` (no margin, no parameter).

    $$
    \mathcal{L} = \frac{1}{|A|} \sum_{i \in A}
        \log\Big(1 + \exp\big(\textstyle\sum_{p} w_{ip} d_{ip} - \sum_{n} w_{in} d_{in}\big)\Big),\quad
    w_{ip} = \frac{e^{d_{ip}}}{\sum_{p'} e^{d_{ip'}}},\quad w_{in} = \frac{e^{-d_{in}}}{\sum_{n'} e^{-d_{in'}}}
    $$

    As in AGW, without ``cross_modality`` the positive set of the weighting includes the anchor itself (distance
    ``sqrt(1e-12)``) and the softmax normalisers carry a ``+1e-6``. With ``cross_modality=True`` positives and
    negatives come from the other modality only. ``A``: anchors with a positive other than themselves and a
    negative. Computed in float32 (float64 stays float64) with autocast disabled.

    Examples:
        >>> loss = WRTripletLoss()(features, labels)  # (B, D), (B,) -> ()
    """

    def __init__(self, cross_modality: bool = False, no_positive: str = "warn") -> None:
        """
        Args:
            cross_modality: take positives and negatives from the anchor's other modality only.
            no_positive: a batch without a usable anchor: ``"warn"`` returns 0 (warned once, on the first call),
                ``"raise"`` raises ``ValueError`` (a host sync per call); see `CMKICLoss`.
        """
        super().__init__(cross_modality, no_positive)

    def compute_loss(self, batch: PairBatch, indices_tuple: IndicesTuple | None = None) -> torch.Tensor:
        """The loss of a validated batch (`BaseLoss.compute_loss`; the batch defines the pairs)."""
        with torch.autocast(device_type=batch.embeddings.device.type, enabled=False):
            x, pos, neg, valid = self._candidates(batch)
            if not self.cross_modality:
                pos = pos | torch.eye(x.shape[0], dtype=torch.bool, device=x.device)  # AGW: the anchor is a positive
            pos_f, neg_f = pos.to(x.dtype), neg.to(x.dtype)  # (B, B) each
            dist = _agw_distance(x)  # (B, B)
            dist_ap, dist_an = dist * pos_f, dist * neg_f  # (B, B) each
            furthest_pos = (dist_ap * _agw_softmax_weights(dist_ap, pos_f)).sum(dim=1)  # (B,)
            closest_neg = (dist_an * _agw_softmax_weights(-dist_an, neg_f)).sum(dim=1)  # (B,)
            per_anchor = F.softplus(furthest_pos - closest_neg)  # (B,): SoftMarginLoss(closest - furthest, y=1)
            return _valid_mean(per_anchor, valid)

    def extra_repr(self) -> str:
        return f"cross_modality={self.cross_modality}"
