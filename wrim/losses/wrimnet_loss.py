r"""WRIMNetLoss: WRIM-Net's training objective, the ID loss on every head plus a metric loss (docs: Losses and miners).

[P] losses, [D] weights and label smoothing:

$$
\mathcal{L} = w_{id} \sum_{h} \mathrm{CE}_{\epsilon}(\text{logits}_h, y) + w_{m} \, \mathcal{L}_{metric}
$$

with the metric loss an `AICLLoss` (CMKIC on P5 + λ4 CMKIC on P4 by default; ``AICLLoss(loss=TripletLoss())``
for the triplet ablation) or none. [D] Under DDP the metric loss sees the global batch: the projections, labels and
modalities of every rank are gathered in rank order with gradient (`wrim.distributed.all_gather_with_grad`; no
loss scaling is needed, the derivation is in `wrim.distributed`), so key instances and negatives come from all
ranks; the ID loss is a per-rank mean (the global mean after DDP's gradient average, for equal shards).
Shape legend: ``B`` batch, ``C`` identities, ``D`` projection size.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wrim._checks import check_nonnegative
from wrim.distributed import all_gather_with_grad

__all__ = ["WRIMNetLoss"]


class _CalledMetric:
    """A metric loss that offers no checked path (any callable ``loss(p5, p4, labels, modalities=...)``): nothing is
    checked at the entrance, and the loss is its call on the (gathered) batch. `AICLLoss` offers the same two
    methods with its checks."""

    def __init__(self, loss: Any) -> None:
        self.loss = loss

    def check_inputs(
        self, p5: torch.Tensor, p4: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        return p5, p4, labels, modalities

    def compute_loss(
        self, p5: torch.Tensor, p4: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor | None
    ) -> torch.Tensor:
        return self.loss(p5, p4, labels, **({} if modalities is None else {"modalities": modalities}))


def _two_step(loss: Any) -> Any:
    """``loss`` when it offers ``check_inputs`` and ``compute_loss`` on ``(p5, p4, labels, modalities)`` (as
    `AICLLoss` does: checked once at the entrance, computed on the gathered batch), else its call."""
    offers = callable(getattr(loss, "check_inputs", None)) and callable(getattr(loss, "compute_loss", None))
    return loss if offers else _CalledMetric(loss)


class WRIMNetLoss(nn.Module):
    r"""ID (cross-entropy with label smoothing) on every head's logits plus a metric loss on the P5 / P4 projections.

    $$
    \mathcal{L} = w_{id} \sum_{h} \mathrm{CE}_{\epsilon}(\text{logits}_h, y) + w_{m} \, \mathcal{L}_{metric}
    $$

    After each call ``terms`` holds every named value, detached, for logging: ``id_<head>`` per head, the metric
    loss's own ``terms`` (e.g. ``cmkic_p5``, ``cmkic_p4``), ``id``, ``metric`` and ``loss``.

    With ``gather_across_ranks`` (default) and an active process group, the metric loss is computed on every rank's
    samples (the value equals the single-process loss on the concatenated batch); without a process group it is a
    no-op.

    Examples:
        >>> loss_fn = WRIMNetLoss(AICLLoss(loss=CMKICLoss(k=2)), id_weight=1.0, metric_weight=1.0)
        >>> loss = loss_fn(model(images, modalities), labels, modalities=modalities)  # WRIMNetOutput -> ()
    """

    def __init__(
        self,
        metric_loss: nn.Module | None,
        id_weight: float = 1.0,
        metric_weight: float = 1.0,
        label_smoothing: float = 0.1,
        gather_across_ranks: bool = True,
    ) -> None:
        """
        Args:
            metric_loss: called as ``metric_loss(p5, p4, labels, modalities=...)``, e.g. ``AICLLoss()``; None for
                the ID loss alone. One that offers ``check_inputs`` and ``compute_loss`` on those four arguments (as
                ``AICLLoss`` does) is checked once, at the entrance before the DDP gather, then computed unchecked.
            id_weight: w_id; [D] default 1.0.
            metric_weight: w_m; [D] default 1.0.
            label_smoothing: ε of the cross-entropy; [D] default 0.1.
            gather_across_ranks: under DDP, compute the metric loss over all ranks' samples (gradient flows back to
                each sample's rank); False keeps each rank's metric loss local to its shard. [D] default True.
        """
        super().__init__()
        self.metric_loss = metric_loss
        self.id_weight = check_nonnegative(id_weight, "id_weight")
        self.metric_weight = check_nonnegative(metric_weight, "metric_weight")
        self.gather_across_ranks = bool(gather_across_ranks)
        self.id_loss = nn.CrossEntropyLoss(label_smoothing=check_nonnegative(label_smoothing, "label_smoothing"))
        self.terms: dict[str, torch.Tensor] = {}

    def forward(self, output: Any, labels: torch.Tensor, *, modalities: torch.Tensor | None = None) -> torch.Tensor:
        """Compute the total; its named parts go to ``self.terms``.

        Args:
            output: the model's training output (``wrim.models.WRIMNetOutput``): ``logits`` {head: (B, C)},
                ``p5_projection`` and ``p4_projection`` (B, D).
            labels: (B,) identity labels.
            modalities: keyword-only, (B,) ids, 0 = visible, 1 = infrared.

        Returns:
            The scalar loss.
        """
        terms = {f"id_{head}": self.id_loss(logits.float(), labels) for head, logits in output.logits.items()}
        id_total = torch.stack(list(terms.values())).sum()  # heads -> ()
        parts: dict[str, torch.Tensor] = {}
        if self.metric_loss is None:
            metric = id_total.new_zeros(())
        else:
            p5, p4 = output.p5_projection.float(), output.p4_projection.float()  # (B, D5), (B, D4)
            metric_loss = _two_step(self.metric_loss)
            p5, p4, labels, modalities = metric_loss.check_inputs(p5, p4, labels, modalities)  # once, before the gather
            if self.gather_across_ranks:  # (B, .) -> (N * B, .) in rank order; identity in a single process
                p5, p4, labels = all_gather_with_grad(p5), all_gather_with_grad(p4), all_gather_with_grad(labels)
                modalities = None if modalities is None else all_gather_with_grad(modalities)
            metric = metric_loss.compute_loss(p5, p4, labels, modalities)
            parts = dict(getattr(self.metric_loss, "terms", {}))
        total = self.id_weight * id_total + self.metric_weight * metric
        self.terms = {
            **{k: v.detach() for k, v in terms.items()},
            **parts,
            "id": id_total.detach(),
            "metric": metric.detach(),
            "loss": total.detach(),
        }
        return total

    def extra_repr(self) -> str:
        return (
            f"id_weight={self.id_weight}, metric_weight={self.metric_weight}, "
            f"gather_across_ranks={self.gather_across_ranks}"
        )
