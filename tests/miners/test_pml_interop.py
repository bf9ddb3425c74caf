"""The miners' tuples plug into pytorch-metric-learning losses unchanged (runs with the ``pml`` extra)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from losses_loop_reference import cmkic_reference

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


def test_the_issue_calls_in_pml_order():
    emb, labels, modalities = _batch(3)
    ref_emb, ref_labels = emb[:12], labels[:12]
    pairs = KeyInstanceMiner()(emb, labels, ref_emb, ref_labels)  # PML's positional order
    expected = KeyInstanceMiner()(emb, labels, ref_emb=ref_emb, ref_labels=ref_labels)
    assert all(torch.equal(a, b) for a, b in zip(pairs, expected))
    mined = CrossModalityKeyInstanceMiner(k=2)(emb, labels, modalities=modalities)
    loss = CMKICLoss()(emb, labels, mined, modalities=modalities)  # PML's (embeddings, labels, indices_tuple)
    assert loss.item() == pytest.approx(cmkic_reference(emb, labels, modalities, 2, 0.1, pairs=mined), rel=1e-10)
    with pytest.raises(ValueError, match="modalities=modalities"):
        CMKICLoss()(emb, labels, mined)
    with pytest.raises(ValueError, match="modalities=modalities"):
        CrossModalityKeyInstanceMiner()(emb, labels, ref_emb, ref_labels)


def _pml_with_ref(name: str):
    return {
        "NTXentLoss": lambda: pml_losses.NTXentLoss(temperature=0.1),
        "SupConLoss": lambda: pml_losses.SupConLoss(temperature=0.1),
        "TripletMarginLoss": lambda: pml_losses.TripletMarginLoss(margin=0.2),
        "ContrastiveLoss": lambda: pml_losses.ContrastiveLoss(),
    }[name]()


@pytest.mark.parametrize("name", ["NTXentLoss", "SupConLoss", "TripletMarginLoss", "ContrastiveLoss"])
def test_miner_called_as_pml_calls_it_feeds_pml_losses_with_ref_emb(name):
    emb, labels, modalities = _batch(4)
    emb.requires_grad_(True)
    vis, ir = modalities == 0, modalities == 1
    miner = CrossModalityKeyInstanceMiner(k=2)
    pairs = miner(emb[vis], labels[vis], emb[ir], labels[ir], modalities=modalities[vis], ref_modalities=modalities[ir])
    loss = _pml_with_ref(name)(emb[vis], labels[vis], pairs, emb[ir], labels[ir])
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert emb.grad[ir].abs().sum() > 0  # the reference rows receive gradient through PML's ref_emb path
    if name == "NTXentLoss":
        assert loss.item() == pytest.approx(ntxent_by_hand(emb[vis], pairs, 0.1, ref_emb=emb[ir]), rel=1e-6)


def _triplets_to_pairs(triplets):
    a, p, n = triplets
    return a, p, a, n


@pytest.mark.parametrize("miner_name", ["BatchHardMiner", "MultiSimilarityMiner"])
def test_wrim_losses_take_pml_miner_output(miner_name):
    miners = pytest.importorskip("pytorch_metric_learning.miners")
    emb, labels, modalities = _batch(5)
    mined = getattr(miners, miner_name)()(emb, labels)  # triplets (a, p, n) or pairs (a1, p, a2, n)
    pairs = _triplets_to_pairs(mined) if len(mined) == 3 else mined
    loss = CMKICLoss(temperature=0.1)(emb, labels, mined, modalities=modalities)
    assert loss.item() == pytest.approx(cmkic_reference(emb, labels, modalities, 2, 0.1, pairs=pairs), rel=1e-10)


def test_aicl_composes_a_pml_loss():
    from wrim.losses import AICLLoss

    emb, labels, _ = _batch(6)
    aicl = AICLLoss(loss=pml_losses.NTXentLoss(temperature=0.1), p5_weight=1.0, p4_weight=0.5)
    total = aicl(emb, emb[:, :4], labels)  # no modalities: PML losses do not take them
    assert set(aicl.terms) == {"nt_xent_p5", "nt_xent_p4"}
    ntx = pml_losses.NTXentLoss(temperature=0.1)
    assert total.item() == pytest.approx(ntx(emb, labels).item() + 0.5 * ntx(emb[:, :4], labels).item(), rel=1e-12)


def test_pml_cross_batch_memory_with_a_wrim_miner():
    # PML's own CrossBatchMemory calls miner(embeddings, labels, E_mem, L_mem): wrim's miners take that shape.
    memory = pml_losses.CrossBatchMemory(pml_losses.NTXentLoss(0.1), 8, memory_size=48, miner=KeyInstanceMiner(k=2))
    for seed in range(3):
        emb, labels, _ = _batch(seed)
        emb.requires_grad_(True)
        loss = memory(emb, labels)
        loss.backward()
        assert torch.isfinite(loss) and emb.grad.abs().sum() > 0
    # a cross-modality miner cannot get modality ids through it: a clear error naming the wrim memory
    cross = pml_losses.CrossBatchMemory(pml_losses.NTXentLoss(0.1), 8, miner=CrossModalityKeyInstanceMiner())
    with pytest.raises(ValueError, match="CrossModalityMemory"):
        cross(*_batch(0)[:2])


def test_cross_modality_memory_recipe_with_pml_loss_trains():
    from wrim.losses import CrossModalityMemory

    torch.manual_seed(0)
    model = torch.nn.Linear(8, 8, dtype=torch.float64)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    memory = CrossModalityMemory(
        pml_losses.NTXentLoss(temperature=0.1), 8, memory_size=72, miner=CrossModalityKeyInstanceMiner(k=2)
    )
    emb0, labels0, mods0 = _batch(7)
    losses = []
    for _ in range(5):  # the same batch: the memory then holds copies of it, and the loss must fall
        loss = memory(model(emb0), labels0, modalities=mods0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0]
