"""AICLLoss: the weighted P5 + P4 terms of a loss (CMKIC by default) against the loop references, gradients."""

from __future__ import annotations

import pytest
import torch
from losses_loop_reference import cmkic_reference, triplet_reference

from wrim.losses import AICLLoss, CMKICLoss, TripletLoss


def _batch(dtype: torch.dtype, seed: int, num_ids: int = 4, per_modality: int = 3):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_ids).repeat_interleave(2 * per_modality)
    modalities = torch.tensor(([0] * per_modality + [1] * per_modality) * num_ids)
    p5 = torch.randn(len(labels), 12, generator=g, dtype=torch.float64).to(dtype)
    p4 = torch.randn(len(labels), 6, generator=g, dtype=torch.float64).to(dtype)
    return p5, p4, labels, modalities


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 5])
@pytest.mark.parametrize("p5_keys_from_p4", [False, True])
def test_matches_loop_reference(dtype, k, p5_keys_from_p4):
    tol = {"rel": 1e-4} if dtype == torch.float32 else {"rel": 1e-10}
    for seed in range(2):
        p5, p4, labels, modalities = _batch(dtype, seed)
        loss_fn = AICLLoss(
            CMKICLoss(k=k, temperature=0.2), p5_weight=1.0, p4_weight=0.5, p5_keys_from_p4=p5_keys_from_p4
        )
        total = loss_fn(p5, p4, labels, modalities=modalities)
        terms = loss_fn.terms
        assert total.dim() == 0
        ref_p5 = cmkic_reference(p5, labels, modalities, k, 0.2, select_embeddings=p4 if p5_keys_from_p4 else None)
        ref_p4 = cmkic_reference(p4, labels, modalities, k, 0.2)
        assert set(terms) == {"cmkic_p5", "cmkic_p4"}
        assert terms["cmkic_p5"].item() == pytest.approx(ref_p5, **tol)
        assert terms["cmkic_p4"].item() == pytest.approx(ref_p4, **tol)
        assert total.item() == pytest.approx(ref_p5 + 0.5 * ref_p4, **tol)


def test_keys_from_p4_changes_the_p5_term():
    p5, p4, labels, modalities = _batch(torch.float64, 0)
    own_fn, from_p4_fn = AICLLoss(CMKICLoss(k=1)), AICLLoss(CMKICLoss(k=1), p5_keys_from_p4=True)
    own_fn(p5, p4, labels, modalities=modalities)
    from_p4_fn(p5, p4, labels, modalities=modalities)
    own, from_p4 = own_fn.terms["cmkic_p5"], from_p4_fn.terms["cmkic_p5"]
    assert own.item() == pytest.approx(CMKICLoss(k=1)(p5, labels, modalities=modalities).item(), rel=1e-12)
    assert from_p4.item() < own.item()  # own keys are the least similar, so the hardest under P5


def test_weights_and_detached_terms():
    p5, p4, labels, modalities = _batch(torch.float32, 1)
    p5.requires_grad_(True)
    loss_fn = AICLLoss(p5_weight=2.0, p4_weight=0.25)
    total = loss_fn(p5, p4, labels, modalities=modalities)
    terms = loss_fn.terms
    torch.testing.assert_close(total, 2.0 * terms["cmkic_p5"] + 0.25 * terms["cmkic_p4"])
    assert total.requires_grad and not terms["cmkic_p5"].requires_grad
    total.backward()
    assert torch.isfinite(p5.grad).all()


@pytest.mark.parametrize("p5_keys_from_p4", [False, True])
def test_gradcheck(p5_keys_from_p4):
    p5, p4, labels, modalities = _batch(torch.float64, 2, num_ids=3, per_modality=2)
    p5 = p5[:, :4].clone().requires_grad_(True)
    p4 = p4[:, :3].clone().requires_grad_(True)
    loss_fn = AICLLoss(CMKICLoss(k=1, temperature=0.5), p5_keys_from_p4=p5_keys_from_p4)
    assert torch.autograd.gradcheck(lambda a, b: loss_fn(a, b, labels, modalities=modalities), (p5, p4))


def test_float32_under_autocast():
    p5, p4, labels, modalities = _batch(torch.float32, 0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        total = AICLLoss()(p5.bfloat16(), p4.bfloat16(), labels, modalities=modalities)
    assert total.dtype == torch.float32
    expected = AICLLoss()(p5.bfloat16().float(), p4.bfloat16().float(), labels, modalities=modalities)
    torch.testing.assert_close(total, expected)


def test_bad_inputs():
    p5, p4, labels, modalities = _batch(torch.float32, 0)
    with pytest.raises(ValueError, match="same batch"):
        AICLLoss()(p5, p4[:-1], labels, modalities=modalities)
    with pytest.raises(ValueError, match="same length"):
        AICLLoss()(p5, p4, labels[:-1], modalities=modalities)
    with pytest.raises(ValueError, match="IdentityModalitySampler"):
        AICLLoss(CMKICLoss(no_positive="raise"))(p5, p4, labels, modalities=torch.ones_like(modalities))
    with pytest.raises(ValueError, match="needs modalities"):
        AICLLoss()(p5, p4, labels)
    with pytest.raises(ValueError, match="key_embeddings"):
        AICLLoss(TripletLoss(), p5_keys_from_p4=True)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        AICLLoss(loss=lambda x, y: x.sum())
    with pytest.raises(ValueError, match="p4_weight must be >= 0"):
        AICLLoss(p4_weight=-1.0)


def test_triplet_variant_matches_loop_reference():
    # AICLLoss(loss=TripletLoss()): the engine's "triplet" ablation, the same two-stage weighted sum.
    p5, p4, labels, modalities = _batch(torch.float64, 3)
    loss_fn = AICLLoss(loss=TripletLoss(margin=0.3, cross_modality=True), p5_weight=1.0, p4_weight=0.5)
    total = loss_fn(p5, p4, labels, modalities=modalities)
    ref_p5 = triplet_reference(p5, labels, modalities, margin=0.3, cross_modality=True)
    ref_p4 = triplet_reference(p4, labels, modalities, margin=0.3, cross_modality=True)
    assert set(loss_fn.terms) == {"triplet_p5", "triplet_p4"}
    assert loss_fn.terms["triplet_p5"].item() == pytest.approx(ref_p5, rel=1e-10)
    assert total.item() == pytest.approx(ref_p5 + 0.5 * ref_p4, rel=1e-10)
