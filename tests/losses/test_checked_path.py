"""The losses' "check once" path is a pair of methods a loss offers, not a switch on its class: a user's ``BaseLoss``
inside ``AICLLoss`` and a user's metric loss with ``check_inputs`` / ``compute_loss`` inside ``WRIMNetLoss`` are
checked once per call; a loss without them is called."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from wrim.losses import AICLLoss, BaseLoss, WRIMNetLoss


class CountingLoss(BaseLoss):
    """Mean squared distance of each anchor to the batch mean of its identity: a loss whose value we know."""

    cross_modality = True

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def check_batch(self, *args):
        self.checks += 1
        return super().check_batch(*args)

    def compute_loss(self, batch, indices_tuple=None):
        return _spread(batch.embeddings, batch.labels)


def _spread(embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    means = torch.stack([embeddings[labels == label].mean(0) for label in labels])  # (B, D)
    return ((embeddings - means) ** 2).sum(1).mean()


def _batch():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat_interleave(4)
    modalities = torch.tensor([0, 0, 1, 1] * 3)
    return torch.randn(12, 8, generator=g), torch.randn(12, 6, generator=g), labels, modalities


def test_a_user_base_loss_in_aicl_is_checked_once_for_both_stages():
    p5, p4, labels, modalities = _batch()
    inner = CountingLoss()
    total = AICLLoss(inner, p5_weight=1.0, p4_weight=0.5)(p5, p4, labels, modalities=modalities)
    assert inner.checks == 1
    assert total.item() == pytest.approx((_spread(p5, labels) + 0.5 * _spread(p4, labels)).item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs modalities"):  # the one check is the loss's own
        AICLLoss(inner)(p5, p4, labels)


def test_a_loss_without_the_checked_path_is_called_with_the_modalities():
    p5, p4, labels, modalities = _batch()
    seen = []

    class Plain(nn.Module):
        def forward(self, embeddings, labels, modalities=None):
            seen.append(modalities)
            return _spread(embeddings, labels)

    total = AICLLoss(Plain(), p4_weight=0.25)(p5, p4, labels, modalities=modalities)
    assert total.item() == pytest.approx((_spread(p5, labels) + 0.25 * _spread(p4, labels)).item(), rel=1e-6)
    assert len(seen) == 2 and all(torch.equal(m, modalities) for m in seen)


def _output(p5, p4):
    return SimpleNamespace(logits={"p5": torch.zeros(p5.shape[0], 3)}, p5_projection=p5, p4_projection=p4)


def test_wrimnet_loss_asks_the_metric_loss_for_its_checked_path():
    p5, p4, labels, modalities = _batch()
    calls = []

    class MyMetric:  # not an AICLLoss: offers the two methods
        def check_inputs(self, p5, p4, labels, modalities):
            calls.append("check")
            return p5, p4, labels.long(), modalities

        def compute_loss(self, p5, p4, labels, modalities):
            calls.append("compute")
            return _spread(p5, labels) + _spread(p4, labels)

        def __call__(self, *args, **kwargs):
            raise AssertionError("the checked path is used, not the call")

    loss = WRIMNetLoss(MyMetric(), id_weight=0.0, gather_across_ranks=False)
    total = loss(_output(p5, p4), labels, modalities=modalities)
    assert calls == ["check", "compute"]
    assert total.item() == pytest.approx((_spread(p5, labels) + _spread(p4, labels)).item(), rel=1e-6)

    called = []
    plain = WRIMNetLoss(
        lambda p5, p4, labels, modalities=None: called.append(modalities) or p5.sum() * 0, id_weight=0.0
    )
    plain(_output(p5, p4), labels, modalities=modalities)
    assert len(called) == 1 and torch.equal(called[0], modalities)
