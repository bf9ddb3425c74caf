"""TripletLoss and WRTripletLoss (AGW's comparators) against loop references, gradients and validation."""

from __future__ import annotations

import pytest
import torch
from losses_loop_reference import triplet_reference, wr_triplet_reference

from wrim.losses import TripletLoss, WRTripletLoss


def _batch(dtype: torch.dtype, seed: int):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (18,), generator=g)
    modalities = torch.randint(0, 2, (18,), generator=g)
    labels[0], modalities[0] = 9, 0  # a singleton identity: never a valid anchor
    emb = torch.randn(18, 6, generator=g, dtype=torch.float64)
    return emb.to(dtype), labels, modalities


def _tol(dtype: torch.dtype) -> dict[str, float]:
    return {"rel": 1e-4, "abs": 1e-5} if dtype == torch.float32 else {"rel": 1e-9, "abs": 1e-12}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cross_modality", [False, True])
@pytest.mark.parametrize("margin", [0.0, 0.3, 2.0])
def test_triplet_matches_loop_reference(dtype, cross_modality, margin):
    for seed in range(3):
        emb, labels, modalities = _batch(dtype, seed)
        loss = TripletLoss(margin=margin, cross_modality=cross_modality)(emb, labels, modalities=modalities)
        expected = triplet_reference(emb, labels, modalities, margin=margin, cross_modality=cross_modality)
        assert loss.dtype == dtype
        assert loss.item() == pytest.approx(expected, **_tol(dtype))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cross_modality", [False, True])
def test_wr_triplet_matches_loop_reference(dtype, cross_modality):
    for seed in range(3):
        emb, labels, modalities = _batch(dtype, seed)
        loss = WRTripletLoss(cross_modality=cross_modality)(emb, labels, modalities=modalities)
        expected = wr_triplet_reference(emb, labels, modalities, cross_modality=cross_modality)
        assert loss.item() == pytest.approx(expected, **_tol(dtype))


def test_triplet_equals_agw_batch_hard_on_a_pk_batch():
    # AGW's OriTripletLoss written as in its code: max over the same-label row (self included), min over the rest.
    emb = torch.randn(16, 8, dtype=torch.float64)
    labels = torch.arange(4).repeat_interleave(4)
    dist = torch.cdist(emb, emb).clamp(min=1e-6)
    same = labels[:, None] == labels[None, :]
    dist_ap = torch.stack([dist[i][same[i]].max() for i in range(16)])
    dist_an = torch.stack([dist[i][~same[i]].min() for i in range(16)])
    agw = torch.nn.MarginRankingLoss(margin=0.3)(dist_an, dist_ap, torch.ones(16, dtype=torch.float64))
    assert TripletLoss(margin=0.3)(emb, labels).item() == pytest.approx(agw.item(), rel=1e-9)


@pytest.mark.parametrize("loss_fn", [TripletLoss(), TripletLoss(cross_modality=True), WRTripletLoss(True)])
def test_gradcheck(loss_fn):
    emb = torch.randn(8, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    modalities = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    assert torch.autograd.gradcheck(lambda x: loss_fn(x, labels, modalities=modalities), (emb,))


def test_wr_triplet_gradient_finite():
    emb = torch.randn(8, 3, requires_grad=True)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    WRTripletLoss()(emb, labels).backward()
    assert torch.isfinite(emb.grad).all()


def test_float32_under_autocast():
    emb, labels, modalities = _batch(torch.float32, 0)
    for loss_fn in (TripletLoss(), WRTripletLoss()):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn(emb.bfloat16(), labels, modalities=modalities)
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, loss_fn(emb.bfloat16().float(), labels, modalities=modalities))


def test_bad_inputs():
    emb, labels, modalities = _batch(torch.float32, 0)
    for loss_fn in (TripletLoss(cross_modality=True, no_positive="raise"), WRTripletLoss(True, no_positive="raise")):
        with pytest.raises(ValueError, match="needs modalities"):
            loss_fn(emb, labels)
        with pytest.raises(ValueError, match="same length"):
            loss_fn(emb, labels[:-1], modalities=modalities)
        with pytest.raises(ValueError, match="IdentityModalitySampler"):
            loss_fn(emb, labels, modalities=torch.zeros_like(modalities))
    with pytest.raises(ValueError, match="positive"):
        TripletLoss(no_positive="raise")(emb[:3], torch.tensor([0, 1, 2]))
    with pytest.warns(UserWarning, match="positive"):
        assert TripletLoss()(emb[:3], torch.tensor([0, 1, 2])).item() == 0.0
    with pytest.raises(ValueError, match="indices_tuple"):
        TripletLoss()(emb, labels, (labels, labels, labels))
    with pytest.raises(ValueError, match="margin must be >= 0"):
        TripletLoss(margin=-0.1)
