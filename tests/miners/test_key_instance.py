"""Key-instance and hardest-negative miners against slow loop references (plain Python / numpy)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wrim.miners import BaseMiner, CrossModalityKeyInstanceMiner, HardestNegativeMiner, KeyInstanceMiner


def _cos(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y)))


def mine_reference(emb, labels, modalities, k, cross, hard_side, ref=None):
    """Loop reference: per anchor, positives / negatives by hand; keep the k least similar positives
    (``hard_side="positive"``) or the k most similar negatives (``"negative"``); ties to the lower index."""
    x = emb.double().numpy()
    labels, mods = labels.tolist(), None if modalities is None else modalities.tolist()
    if ref is None:
        rx, rlabels, rmods, same_set = x, labels, mods, True
    else:
        rx, rlabels, rmods, same_set = ref[0].double().numpy(), ref[1].tolist(), ref[2].tolist(), False
    pos_pairs, neg_pairs = [], []
    for i in range(len(labels)):
        positives, negatives = [], []
        for j in range(len(rlabels)):
            if same_set and i == j:
                continue
            if cross and mods[i] == rmods[j]:
                continue
            (positives if labels[i] == rlabels[j] else negatives).append(j)
        if hard_side == "positive":
            positives = sorted(positives, key=lambda j: (_cos(x[i], rx[j]), j))[:k]
        else:
            negatives = sorted(negatives, key=lambda j: (-_cos(x[i], rx[j]), j))[:k]
        pos_pairs += [(i, j) for j in sorted(positives)]
        neg_pairs += [(i, j) for j in sorted(negatives)]
    return pos_pairs, neg_pairs


def _as_pairs(out):
    a1, p, a2, n = out
    return list(zip(a1.tolist(), p.tolist())), list(zip(a2.tolist(), n.tolist()))


def _batch(seed: int, dtype: torch.dtype = torch.float32):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 5, (22,), generator=g)
    modalities = torch.randint(0, 2, (22,), generator=g)
    labels[:3], modalities[:3] = 7, 0  # identity 7 only visible
    labels[3:5], modalities[3:5] = 8, 1  # identity 8 only infrared
    return torch.randn(22, 6, generator=g, dtype=torch.float64).to(dtype), labels, modalities


MINERS = [
    ("positive", lambda k, cross: KeyInstanceMiner(k=k, cross_modality=cross)),
    ("negative", lambda k, cross: HardestNegativeMiner(k=k, cross_modality=cross)),
]


@pytest.mark.parametrize("hard_side,make", MINERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("k", [1, 2, 3, 50])
@pytest.mark.parametrize("cross", [False, True])
def test_matches_loop_reference(hard_side, make, dtype, k, cross):
    for seed in range(3):
        emb, labels, modalities = _batch(seed, dtype)
        out = make(k, cross)(emb, labels, modalities=modalities)
        assert all(t.dtype == torch.long for t in out)
        assert _as_pairs(out) == mine_reference(emb, labels, modalities, k, cross, hard_side)


@pytest.mark.parametrize("hard_side,make", MINERS)
@pytest.mark.parametrize("k", [1, 2, 4])
@pytest.mark.parametrize("cross", [False, True])
def test_exact_ties_go_to_the_lower_index(hard_side, make, k, cross):
    # +-1 vectors of dim 16 normalise to +-1/4 exactly, so similarities tie exactly, on every device.
    g = torch.Generator().manual_seed(1)
    emb = torch.randint(0, 2, (20, 16), generator=g).float() * 2 - 1
    emb[7] = emb[6]
    emb[9] = emb[8]
    labels = torch.arange(4).repeat_interleave(5)
    modalities = torch.tensor([0, 1, 0, 1, 1] * 4)
    out = make(k, cross)(emb, labels, modalities=modalities)
    assert _as_pairs(out) == mine_reference(emb, labels, modalities, k, cross, hard_side)


@pytest.mark.parametrize("hard_side,make", MINERS)
@pytest.mark.parametrize("cross", [False, True])
def test_ref_emb_semantics(hard_side, make, cross):
    # PML's ref_emb semantics: anchors index embeddings, positives / negatives index ref_emb, no self-exclusion.
    emb, labels, modalities = _batch(0)
    ref, ref_labels, ref_mods = emb[:12].clone(), labels[:12].clone(), modalities[:12].clone()
    out = make(2, cross)(emb, labels, ref, ref_labels, modalities=modalities, ref_modalities=ref_mods)
    expected = mine_reference(emb, labels, modalities, 2, cross, hard_side, ref=(ref, ref_labels, ref_mods))
    assert _as_pairs(out) == expected
    if hard_side == "negative" and not cross:  # all positives kept: the anchor's own copy in ref_emb is one of them
        assert any(a == p for a, p in _as_pairs(out)[0])


def test_cross_modality_miner_on_visible_anchors_and_infrared_reference():
    emb, labels, modalities = _batch(2)
    vis, ir = modalities == 0, modalities == 1
    miner = CrossModalityKeyInstanceMiner(k=2)
    a1, p, a2, n = miner(
        emb[vis], labels[vis], emb[ir], labels[ir], modalities=modalities[vis], ref_modalities=modalities[ir]
    )
    assert (labels[vis][a1] == labels[ir][p]).all() and (labels[vis][a2] != labels[ir][n]).all()
    assert torch.bincount(a1, minlength=int(vis.sum())).max() <= 2


def test_cross_modality_miner_is_key_instance_miner_with_modalities():
    emb, labels, modalities = _batch(3)
    for k in (1, 2):
        a = CrossModalityKeyInstanceMiner(k=k)(emb, labels, modalities=modalities)
        b = KeyInstanceMiner(k=k, cross_modality=True)(emb, labels, modalities=modalities)
        assert all(torch.equal(x, y) for x, y in zip(a, b))


def test_pair_semantics_and_statistics():
    emb, labels, modalities = _batch(4)
    miner = CrossModalityKeyInstanceMiner(k=2)
    a1, p, a2, n = miner(emb, labels, modalities=modalities)
    assert (labels[a1] == labels[p]).all() and (modalities[a1] != modalities[p]).all()
    assert (labels[a2] != labels[n]).all() and (modalities[a2] != modalities[n]).all()
    assert miner.num_pos_pairs == len(a1) and miner.num_neg_pairs == len(a2)
    # identities 7 (visible only) and 8 (infrared only) have no key instance
    assert not torch.isin(a1, torch.tensor([0, 1, 2, 3, 4])).any()


def test_runs_without_grad_and_on_device(device):
    emb, labels, modalities = _batch(5)
    emb = emb.to(device).requires_grad_(True)
    out = KeyInstanceMiner(k=2)(emb, labels, modalities=modalities)
    assert all(t.device.type == device.type and not t.requires_grad for t in out)
    assert _as_pairs(tuple(t.cpu() for t in out)) == mine_reference(
        emb.detach().cpu(), labels, modalities, 2, False, "positive"
    )


def test_output_assertion():
    with pytest.raises(TypeError, match="4-tuple"):
        BaseMiner.output_assertion((torch.zeros(2, dtype=torch.long),) * 3)
    with pytest.raises(TypeError, match="len"):
        BaseMiner.output_assertion((torch.zeros(2, dtype=torch.long),) + (torch.zeros(1, dtype=torch.long),) * 3)
    with pytest.raises(TypeError, match="LongTensors"):
        BaseMiner.output_assertion((torch.zeros(2),) * 4)


def test_bad_inputs():
    emb, labels, modalities = _batch(0)
    with pytest.raises(ValueError, match="k must be >= 1"):
        KeyInstanceMiner(k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        HardestNegativeMiner(k=2.0)
    with pytest.raises(ValueError, match="needs modalities"):
        CrossModalityKeyInstanceMiner()(emb, labels)
    with pytest.raises(ValueError, match="same length"):
        KeyInstanceMiner()(emb, labels[:-1])
    with pytest.raises(ValueError, match="wrim.VISIBLE"):
        CrossModalityKeyInstanceMiner()(emb, labels, modalities=modalities + 1)
    with pytest.raises(ValueError, match="without ref_labels"):
        KeyInstanceMiner()(emb, labels, ref_emb=emb)
    with pytest.raises(ValueError, match="needs ref_modalities"):
        CrossModalityKeyInstanceMiner()(emb, labels, modalities=modalities, ref_emb=emb, ref_labels=labels)
    with pytest.raises(ValueError, match="dim"):
        KeyInstanceMiner()(emb, labels, ref_emb=emb[:, :3], ref_labels=labels)
    with pytest.raises(ValueError, match="without ref_emb"):
        KeyInstanceMiner()(emb, labels, ref_labels=labels)
