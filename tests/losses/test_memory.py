"""CrossModalityMemory and CMKICLoss with a reference set, against a loop written from the CMKIC equation."""

from __future__ import annotations

import math

import pytest
import torch
from losses_loop_reference import cmkic_reference

from wrim.losses import CMKICLoss, CrossModalityMemory, TripletLoss
from wrim.miners import CrossModalityKeyInstanceMiner, KeyInstanceMiner


def _batch(seed: int, num_ids: int = 3, per_modality: int = 2, dim: int = 6):
    g = torch.Generator().manual_seed(seed)
    labels = torch.randperm(5, generator=g)[:num_ids].repeat_interleave(2 * per_modality)
    modalities = torch.tensor(([0] * per_modality + [1] * per_modality) * num_ids)
    return torch.randn(len(labels), dim, generator=g, dtype=torch.float64), labels, modalities


def cmkic_with_reference_by_loops(emb, labels, mods, ref, ref_labels, ref_mods, k, tau) -> float:
    """Anchors from the batch, positives / negatives from the reference set; the CMKIC equation, by loops."""
    z = torch.nn.functional.normalize(emb, dim=1).tolist()
    rz = torch.nn.functional.normalize(ref, dim=1).tolist()
    dot = lambda a, b: sum(x * y for x, y in zip(a, b))  # noqa: E731
    per_direction: dict[int, list[float]] = {0: [], 1: []}
    for i in range(len(z)):
        cands = [j for j in range(len(rz)) if ref_labels[j] == labels[i] and ref_mods[j] != mods[i]]
        keys = sorted(cands, key=lambda j: (dot(z[i], rz[j]), j))[:k]
        negs = [j for j in range(len(rz)) if ref_labels[j] != labels[i] and ref_mods[j] != mods[i]]
        if not keys:
            continue
        neg = sum(math.exp(dot(z[i], rz[j]) / tau) for j in negs)
        terms = [-math.log(math.exp(dot(z[i], rz[j]) / tau) / (math.exp(dot(z[i], rz[j]) / tau) + neg)) for j in keys]
        per_direction[int(mods[i])].append(sum(terms) / len(terms))
    return sum(sum(v) / len(v) for v in per_direction.values() if v)


def test_cmkic_with_ref_emb_matches_loops():
    emb, labels, mods = _batch(0)
    ref, ref_labels, ref_mods = _batch(1, num_ids=4)
    ref_labels[:4] = labels[0]  # make sure some anchors have reference positives
    loss = CMKICLoss(k=2, temperature=0.2)(emb, labels, None, ref, ref_labels, modalities=mods, ref_modalities=ref_mods)
    expected = cmkic_with_reference_by_loops(emb, labels.tolist(), mods.tolist(), ref, ref_labels.tolist(),
                                             ref_mods.tolist(), 2, 0.2)  # fmt: skip
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_memory_first_step_is_the_batch_itself():
    # Memory = the batch (detached): cross-modality pairs never pair a sample with itself, so the value is CMKIC's.
    emb, labels, mods = _batch(2)
    memory = CrossModalityMemory(CMKICLoss(k=2, temperature=0.1), embedding_size=6, memory_size=32)
    loss = memory(emb, labels, modalities=mods)
    assert loss.item() == pytest.approx(cmkic_reference(emb, labels, mods, 2, 0.1), rel=1e-10)


def test_memory_runs_several_steps_fifo_and_gradients_reach_the_batch_only():
    memory = CrossModalityMemory(CMKICLoss(k=2, temperature=0.1), embedding_size=6, memory_size=20)
    history = []
    for step in range(4):  # 12 rows a step: the memory of 20 wraps around on the second step
        emb, labels, mods = _batch(10 + step)
        emb.requires_grad_(True)
        history.append((emb.detach(), labels, mods))
        loss = memory(emb, labels, modalities=mods)
        rows = torch.cat([h[0] for h in history])[-20:]  # the 20 most recent rows, in FIFO slots
        row_labels = torch.cat([h[1] for h in history])[-20:]
        row_mods = torch.cat([h[2] for h in history])[-20:]
        filled = min(12 * (step + 1), 20)
        slots = (torch.arange(12 * (step + 1))[-filled:]) % 20  # where each recent row was written
        ref = torch.empty(filled, 6, dtype=torch.float64)
        ref_labels = torch.empty(filled, dtype=torch.long)
        ref_mods = torch.empty(filled, dtype=torch.long)
        ref[slots], ref_labels[slots], ref_mods[slots] = rows[-filled:], row_labels[-filled:], row_mods[-filled:]
        expected = cmkic_with_reference_by_loops(emb.detach(), labels.tolist(), mods.tolist(), ref,
                                                 ref_labels.tolist(), ref_mods.tolist(), 2, 0.1)  # fmt: skip
        assert loss.item() == pytest.approx(expected, rel=1e-9), step
        loss.backward()
        assert emb.grad is not None and torch.isfinite(emb.grad).all()
    assert not memory.embedding_memory.requires_grad


def test_memory_with_a_miner_and_pml_call_shape():
    # With a miner, the loss is called as PML's CrossBatchMemory calls it: (emb, labels, pairs, E_mem, L_mem).
    calls = []

    class Recorder(torch.nn.Module):
        def forward(self, embeddings, labels, indices_tuple=None, ref_emb=None, ref_labels=None):
            calls.append((indices_tuple, ref_emb.shape[0]))
            return embeddings.sum() * 0

    emb, labels, mods = _batch(3)
    memory = CrossModalityMemory(Recorder(), 6, memory_size=64, miner=CrossModalityKeyInstanceMiner(k=1))
    memory(emb, labels, modalities=mods)
    memory(emb, labels, modalities=mods)
    pairs, refs = calls[-1]
    assert refs == 24 and len(pairs) == 4
    a1, p = pairs[0], pairs[1]
    assert (mods[a1] != memory.modality_memory[p]).all()  # cross-modality: never a sample with itself


def test_memory_bad_arguments():
    with pytest.raises(ValueError, match="cross-modality miner"):
        CrossModalityMemory(CMKICLoss(), 6, miner=KeyInstanceMiner())
    with pytest.raises(ValueError, match="ref_modalities"):
        CrossModalityMemory(TripletLoss(), 6)
    memory = CrossModalityMemory(CMKICLoss(), 6, memory_size=4)
    emb, labels, mods = _batch(0)
    with pytest.raises(ValueError, match="does not fit"):
        memory(emb, labels, modalities=mods)
    with pytest.raises(ValueError, match="needs modalities"):
        CrossModalityMemory(CMKICLoss(), 6)(emb, labels, modalities=None)
