"""The miners' tuples plug into pytorch-metric-learning losses unchanged (runs with the ``pml`` extra)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wrim.losses import CMKICLoss
from wrim.miners import CrossModalityKeyInstanceMiner, HardestNegativeMiner, KeyInstanceMiner

pml_losses = pytest.importorskip("pytorch_metric_learning.losses")


def _batch(seed: int, num_ids: int = 4, per_modality: int = 3):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_ids).repeat_interleave(2 * per_modality)
    modalities = torch.tensor(([0] * per_modality + [1] * per_modality) * num_ids)
    return torch.randn(len(labels), 8, generator=g, dtype=torch.float64), labels, modalities


def _unit(x: torch.Tensor) -> np.ndarray:
    x = x.detach().numpy()
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def ntxent_by_hand(emb, pairs, temperature, ref_emb=None) -> float:
    """Mean over positive pairs of -log(e^{s_ap/τ} / (e^{s_ap/τ} + Σ_{(a, n)} e^{s_an/τ}))."""
    z = _unit(emb)
    rz = z if ref_emb is None else _unit(ref_emb)
    a1, p, a2, n = (t.tolist() for t in pairs)
    terms = []
    for a, q in zip(a1, p):
        pos = math.exp(float(z[a] @ rz[q]) / temperature)
        neg = sum(math.exp(float(z[a] @ rz[m]) / temperature) for b, m in zip(a2, n) if b == a)
        terms.append(-math.log(pos / (pos + neg)))
    return sum(terms) / len(terms)


def contrastive_by_hand(emb, pairs, pos_margin=0.0, neg_margin=1.0, ref_emb=None) -> float:
    """PML's ContrastiveLoss on L2-normalised Euclidean distances, each part averaged over its non-zero terms."""
    z = _unit(emb)
    rz = z if ref_emb is None else _unit(ref_emb)
    a1, p, a2, n = (t.tolist() for t in pairs)
    pos = [max(0.0, float(np.linalg.norm(z[a] - rz[q])) - pos_margin) for a, q in zip(a1, p)]
    neg = [max(0.0, neg_margin - float(np.linalg.norm(z[a] - rz[m]))) for a, m in zip(a2, n)]

    def avg_non_zero(values):
        values = [v for v in values if v > 0]
        return sum(values) / len(values) if values else 0.0

    return avg_non_zero(pos) + avg_non_zero(neg)


MINERS = [CrossModalityKeyInstanceMiner(k=2), KeyInstanceMiner(k=1), HardestNegativeMiner(k=3, cross_modality=True)]


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: type(m).__name__)
@pytest.mark.parametrize("temperature", [0.07, 0.5])
def test_ntxent_on_mined_pairs(miner, temperature):
    for seed in range(3):
        emb, labels, modalities = _batch(seed)
        pairs = miner(emb, labels, modalities=modalities)
        loss = pml_losses.NTXentLoss(temperature=temperature)(emb, labels, pairs)
        assert loss.item() == pytest.approx(ntxent_by_hand(emb, pairs, temperature), rel=1e-6)


@pytest.mark.parametrize("miner", MINERS, ids=lambda m: type(m).__name__)
def test_contrastive_on_mined_pairs(miner):
    for seed in range(3):
        emb, labels, modalities = _batch(seed)
        pairs = miner(emb, labels, modalities=modalities)
        loss = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)(emb, labels, pairs)
        assert loss.item() == pytest.approx(contrastive_by_hand(emb, pairs), rel=1e-9)


def test_ref_emb_visible_anchors_infrared_reference():
    emb, labels, modalities = _batch(1)
    vis, ir = modalities == 0, modalities == 1
    pairs = CrossModalityKeyInstanceMiner(k=2)(
        emb[vis],
        labels[vis],
        modalities=modalities[vis],
        ref_emb=emb[ir],
        ref_labels=labels[ir],
        ref_modalities=modalities[ir],
    )
    loss_fn = pml_losses.NTXentLoss(temperature=0.1)
    loss = loss_fn(emb[vis], labels[vis], pairs, ref_emb=emb[ir], ref_labels=labels[ir])
    assert loss.item() == pytest.approx(ntxent_by_hand(emb[vis], pairs, 0.1, ref_emb=emb[ir]), rel=1e-6)


def test_cmkic_is_twice_ntxent_on_a_balanced_batch():
    # Every anchor has exactly k key instances and both modalities have as many anchors, so CMKIC's
    # mean-per-direction sum is twice PML's mean over positive pairs.
    emb, labels, modalities = _batch(2)
    pairs = CrossModalityKeyInstanceMiner(k=2)(emb, labels, modalities=modalities)
    ntxent = pml_losses.NTXentLoss(temperature=0.1)(emb, labels, pairs)
    cmkic = CMKICLoss(k=2, temperature=0.1)(emb, labels, modalities=modalities)
    assert cmkic.item() == pytest.approx(2 * ntxent.item(), rel=1e-6)
    with_pairs = CMKICLoss(k=2, temperature=0.1)(emb, labels, modalities=modalities, indices_tuple=pairs)
    assert with_pairs.item() == pytest.approx(cmkic.item(), rel=1e-12)
