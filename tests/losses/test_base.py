"""BaseLoss: one validated entrance per call path, the no_positive policy in one place, one key-instance mining."""

from __future__ import annotations

import pytest
import torch

import wrim._checks as checks
from wrim.losses import AICLLoss, BaseLoss, CMKICLoss, TripletLoss, WRIMNetLoss
from wrim.miners import CrossModalityKeyInstanceMiner


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(4)  # (16,)
    modalities = torch.tensor([0, 0, 1, 1]).repeat(4)  # (16,)
    return torch.randn(16, 8, generator=g), labels, modalities


class _Output:
    def __init__(self, p5: torch.Tensor, p4: torch.Tensor) -> None:
        self.logits = {"p5": p5[:, :4]}
        self.p5_projection, self.p4_projection = p5, p4


def _count_modality_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = checks.check_modalities

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(checks, "check_modalities", counting)
    return calls


def test_wrimnet_loss_validates_modalities_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_modality_checks(monkeypatch)
    emb, labels, modalities = _batch()
    WRIMNetLoss(AICLLoss())(_Output(emb, emb[:, :6]), labels, modalities=modalities)
    assert len(calls) == 1  # the entrance (before the gather); the two CMKIC terms trust it


def test_direct_calls_still_check(monkeypatch: pytest.MonkeyPatch) -> None:
    emb, labels, modalities = _batch()
    bad = modalities.clone()
    bad[0] = 2
    for call in (
        lambda: CMKICLoss()(emb, labels, modalities=bad),
        lambda: AICLLoss()(emb, emb, labels, modalities=bad),
        lambda: WRIMNetLoss(AICLLoss())(_Output(emb, emb), labels, modalities=bad),
    ):
        with pytest.raises(ValueError, match=r"found \[2\]"):
            call()
    with pytest.raises(ValueError, match="needs modalities"):
        WRIMNetLoss(AICLLoss())(_Output(emb, emb), labels)
    calls = _count_modality_checks(monkeypatch)
    AICLLoss()(emb, emb, labels, modalities=modalities)
    assert len(calls) == 1


def test_cmkic_key_instances_are_the_miners() -> None:
    emb, labels, modalities = _batch(1)
    for k in (1, 2, 3):
        pairs = CrossModalityKeyInstanceMiner(k)(emb, labels, modalities=modalities)
        mined_inside = CMKICLoss(k=k)(emb, labels, modalities=modalities)
        given = CMKICLoss(k=k)(emb, labels, pairs, modalities=modalities)
        assert torch.equal(mined_inside, given)


def test_no_positive_policy_lives_in_the_base() -> None:
    emb, labels, modalities = _batch()
    single = torch.zeros_like(modalities)  # one modality: no cross-modality positive
    for loss in (CMKICLoss(), TripletLoss(cross_modality=True)):
        assert isinstance(loss, BaseLoss)
        with pytest.warns(UserWarning, match="no anchor"):
            assert loss(emb, labels, modalities=single) == 0
        assert loss._checked_once
        loss(emb, labels, modalities=single)  # warned once: no second warning, no host sync
    with pytest.raises(ValueError, match="no anchor"):
        CMKICLoss(no_positive="raise")(emb, labels, modalities=single)
