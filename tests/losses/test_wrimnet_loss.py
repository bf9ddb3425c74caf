"""WRIMNetLoss: ID loss on every head + the metric loss, against the equations; its logged terms."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from losses_loop_reference import cmkic_reference, triplet_reference

from wrim.losses import AICLLoss, CMKICLoss, TripletLoss, WRIMNetLoss


def _output(seed: int = 0, num_classes: int = 5):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(4)
    modalities = torch.tensor([0, 0, 1, 1] * 4)
    out = SimpleNamespace(
        logits={h: torch.randn(16, num_classes, generator=g, dtype=torch.float64) for h in ("p5", "part0", "p4")},
        p5_projection=torch.randn(16, 8, generator=g, dtype=torch.float64),
        p4_projection=torch.randn(16, 6, generator=g, dtype=torch.float64),
    )
    return out, labels, modalities


def _smoothed_ce(logits: torch.Tensor, labels: torch.Tensor, eps: float) -> float:
    """(1 - eps) * NLL + eps * mean_c(-log p_c), averaged over the batch (label smoothing, Szegedy et al. 2016)."""
    logp = torch.log_softmax(logits, dim=1)
    nll = -logp[torch.arange(len(labels)), labels]
    return ((1 - eps) * nll + eps * (-logp.mean(dim=1))).mean().item()


def test_id_plus_aicl_matches_the_equations():
    out, labels, modalities = _output()
    loss_fn = WRIMNetLoss(AICLLoss(CMKICLoss(k=2, temperature=0.1)), id_weight=0.5, metric_weight=2.0)
    total = loss_fn(out, labels, modalities=modalities)
    id_terms = {h: _smoothed_ce(v.float(), labels, 0.1) for h, v in out.logits.items()}
    metric = cmkic_reference(out.p5_projection, labels, modalities, 2, 0.1) + 0.5 * cmkic_reference(
        out.p4_projection, labels, modalities, 2, 0.1
    )
    assert total.item() == pytest.approx(0.5 * sum(id_terms.values()) + 2.0 * metric, rel=1e-5)
    assert list(loss_fn.terms) == ["id_p5", "id_part0", "id_p4", "cmkic_p5", "cmkic_p4", "id", "metric", "loss"]
    assert loss_fn.terms["id_part0"].item() == pytest.approx(id_terms["part0"], rel=1e-5)
    assert not any(t.requires_grad for t in loss_fn.terms.values())


def test_triplet_variant_and_id_only():
    out, labels, modalities = _output(1)
    loss_fn = WRIMNetLoss(AICLLoss(loss=TripletLoss(cross_modality=True)))
    total = loss_fn(out, labels, modalities=modalities)
    metric = triplet_reference(out.p5_projection, labels, modalities, 0.3, True) + 0.5 * triplet_reference(
        out.p4_projection, labels, modalities, 0.3, True
    )
    assert loss_fn.terms["metric"].item() == pytest.approx(metric, rel=1e-6)
    assert total.item() == pytest.approx(loss_fn.terms["id"].item() + metric, rel=1e-6)
    id_only = WRIMNetLoss(None)
    assert id_only(out, labels).item() == pytest.approx(loss_fn.terms["id"].item(), rel=1e-6)
    assert id_only.terms["metric"].item() == 0.0
    with pytest.raises(ValueError, match="id_weight must be >= 0"):
        WRIMNetLoss(None, id_weight=-1.0)
