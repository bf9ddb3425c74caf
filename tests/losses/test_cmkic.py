"""CMKICLoss against the loop reference, its properties, gradients, autocast and input validation."""

from __future__ import annotations

import pytest
import torch
from losses_loop_reference import cmkic_reference

from wrim.losses import CMKICLoss
from wrim.miners import CrossModalityKeyInstanceMiner, KeyInstanceMiner

DTYPES = [torch.float32, torch.float64]


def _tol(dtype: torch.dtype) -> dict[str, float]:
    return {"rel": 1e-4, "abs": 1e-5} if dtype == torch.float32 else {"rel": 1e-10, "abs": 1e-12}


def _vireid_batch(num_ids: int, per_modality: int, dim: int, dtype: torch.dtype, seed: int):
    """A sampler-style batch: ``num_ids`` identities x (``per_modality`` visible + ``per_modality`` infrared)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(num_ids).repeat_interleave(2 * per_modality)
    modalities = torch.tensor(([0] * per_modality + [1] * per_modality) * num_ids)
    centres = torch.randn(num_ids, dim, generator=g, dtype=torch.float64)
    emb = centres[labels] + 0.8 * torch.randn(len(labels), dim, generator=g, dtype=torch.float64)
    return emb.to(dtype), labels, modalities


def _ragged_batch(dtype: torch.dtype, seed: int):
    """Random labels and modalities: uneven counts, and identities present in one modality only."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 6, (20,), generator=g)
    modalities = torch.randint(0, 2, (20,), generator=g)
    labels[:3] = 10  # identity 10 only visible
    modalities[:3] = 0
    labels[3:5] = 11  # identity 11 only infrared
    modalities[3:5] = 1
    modalities[5], labels[5], modalities[6], labels[6] = 0, 12, 1, 12  # at least one cross-modality positive
    return torch.randn(20, 5, generator=g, dtype=torch.float64).to(dtype), labels, modalities


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 3, 100])
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5])
def test_matches_loop_reference(dtype, k, temperature):
    for seed in range(3):
        emb, labels, modalities = _vireid_batch(4, 4, 16, dtype, seed)
        loss = CMKICLoss(k=k, temperature=temperature)(emb, labels, modalities=modalities)
        assert loss.dtype == dtype
        assert loss.item() == pytest.approx(cmkic_reference(emb, labels, modalities, k, temperature), **_tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("k", [1, 2, 4])
def test_matches_reference_with_one_modality_identities(dtype, k):
    for seed in range(4):
        emb, labels, modalities = _ragged_batch(dtype, seed)
        loss = CMKICLoss(k=k, temperature=0.2)(emb, labels, modalities=modalities)
        assert loss.item() == pytest.approx(cmkic_reference(emb, labels, modalities, k, 0.2), **_tol(dtype))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_matches_reference_with_exact_ties(k):
    # +-1 vectors of dim 16 normalise to +-1/4 exactly: similarities are exact multiples of 1/8 with many ties.
    g = torch.Generator().manual_seed(3)
    emb = torch.randint(0, 2, (24, 16), generator=g).float() * 2 - 1
    emb[5] = emb[4]  # duplicated samples tie exactly
    emb[13] = emb[12]
    labels = torch.arange(3).repeat_interleave(8)
    modalities = torch.tensor(([0] * 4 + [1] * 4) * 3)
    loss = CMKICLoss(k=k, temperature=0.1)(emb, labels, modalities=modalities)
    assert loss.item() == pytest.approx(cmkic_reference(emb, labels, modalities, k, 0.1), rel=1e-5)


def test_indices_tuple_replaces_mining():
    emb, labels, modalities = _ragged_batch(torch.float64, 0)
    # same-modality pairs too: each anchor is averaged in the direction of its own modality
    pairs = KeyInstanceMiner(k=2)(emb, labels)
    loss = CMKICLoss(k=1)(emb, labels, modalities=modalities, indices_tuple=pairs)
    assert loss.item() == pytest.approx(cmkic_reference(emb, labels, modalities, 1, 0.1, pairs=pairs), rel=1e-10)
    mined = CrossModalityKeyInstanceMiner(k=3)(emb, labels, modalities=modalities)
    from_miner = CMKICLoss(k=3)(emb, labels, modalities=modalities, indices_tuple=mined)
    assert from_miner.item() == pytest.approx(CMKICLoss(k=3)(emb, labels, modalities=modalities).item(), rel=1e-12)


def test_triplet_indices_tuple_is_read_as_pairs():
    emb, labels, modalities = _vireid_batch(3, 2, 8, torch.float64, 0)
    a = torch.tensor([0, 0, 4])
    p = torch.tensor([2, 3, 6])
    n = torch.tensor([6, 7, 2])
    loss = CMKICLoss()(emb, labels, modalities=modalities, indices_tuple=(a, p, n))
    expected = cmkic_reference(emb, labels, modalities, 2, 0.1, pairs=(a, p, a, n))
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_k_at_least_positives_equals_all_positive_supcon():
    emb, labels, modalities = _vireid_batch(4, 3, 8, torch.float64, 1)
    tau = 0.1
    z = torch.nn.functional.normalize(emb, dim=1)
    logits = z @ z.T / tau
    other = modalities[:, None] != modalities[None, :]
    same = labels[:, None] == labels[None, :]
    per_dir = []
    for m in (0, 1):  # SupCon-style over all cross-modality positives, one log-softmax per (anchor, positive)
        rows = []
        for i in torch.nonzero(modalities == m).flatten().tolist():
            negs = logits[i][other[i] & ~same[i]]
            pos = logits[i][other[i] & same[i]]
            rows.append(torch.stack([-(s - torch.logsumexp(torch.cat([s[None], negs]), 0)) for s in pos]).mean())
        per_dir.append(torch.stack(rows).mean())
    supcon = sum(per_dir).item()
    for k in (3, 4, 50):  # every anchor has exactly 3 cross-modality positives
        assert CMKICLoss(k=k, temperature=tau)(emb, labels, modalities=modalities).item() == pytest.approx(
            supcon, rel=1e-10
        )
    assert CMKICLoss(k=1, temperature=tau)(emb, labels, modalities=modalities).item() > supcon  # harder positives only


def test_permutation_invariant():
    emb, labels, modalities = _ragged_batch(torch.float64, 2)
    perm = torch.randperm(len(labels))
    for k in (1, 2):
        loss_fn = CMKICLoss(k=k)
        expected = loss_fn(emb, labels, modalities=modalities)
        torch.testing.assert_close(loss_fn(emb[perm], labels[perm], modalities=modalities[perm]), expected)


@pytest.mark.parametrize("k", [1, 2])
def test_decreases_when_key_positive_moves_closer(k):
    # Identity 0 lives in the xy-plane, identity 1 along z: moving the key positive of anchor 0 towards it changes
    # only s(anchor, key positive); all negative similarities stay 0.
    def batch(theta: float) -> torch.Tensor:
        t = torch.tensor(theta, dtype=torch.float64).deg2rad()
        return torch.stack(
            [
                torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64),  # 0: visible, id 0 (the anchor)
                torch.stack([t.cos(), t.sin(), torch.zeros((), dtype=torch.float64)]),  # 1: infrared, id 0 (key)
                torch.tensor([0.866, 0.5, 0.0], dtype=torch.float64),  # 2: infrared, id 0 (30 degrees)
                torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64),  # 3: visible, id 1
                torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64),  # 4: infrared, id 1
            ]
        )

    labels = torch.tensor([0, 0, 0, 1, 1])
    modalities = torch.tensor([0, 1, 1, 0, 1])
    loss_fn = CMKICLoss(k=k, temperature=0.1)
    values = [loss_fn(batch(theta), labels, modalities=modalities).item() for theta in (170.0, 140.0, 100.0, 60.0)]
    assert all(a > b for a, b in zip(values, values[1:])), values


def test_gradcheck():
    emb, labels, modalities = _vireid_batch(3, 2, 4, torch.float64, 0)
    emb.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: CMKICLoss(k=1, temperature=0.5)(x, labels, modalities=modalities), (emb,))
    assert torch.autograd.gradcheck(lambda x: CMKICLoss(k=2, temperature=0.1)(x, labels, modalities=modalities), (emb,))


def test_gradient_finite_when_an_anchor_has_no_negative():
    emb = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    modalities = torch.tensor([0, 1, 0, 0])  # identity 1 only visible: anchor 0 has a positive, no negative
    loss = CMKICLoss()(emb, labels, modalities=modalities)
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_float32_under_autocast():
    emb, labels, modalities = _vireid_batch(4, 4, 32, torch.float32, 0)
    loss_fn = CMKICLoss()
    expected = loss_fn(emb, labels, modalities=modalities)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        same = loss_fn(emb, labels, modalities=modalities)
        half = loss_fn(emb.bfloat16(), labels, modalities=modalities)
    assert same.dtype == torch.float32 and half.dtype == torch.float32
    torch.testing.assert_close(same, expected)
    torch.testing.assert_close(half, loss_fn(emb.bfloat16().float(), labels, modalities=modalities))


def test_runs_on_device(device):
    emb, labels, modalities = _vireid_batch(4, 2, 8, torch.float32, 0)
    loss = CMKICLoss()(emb.to(device), labels, modalities=modalities)
    assert loss.device.type == device.type
    assert loss.item() == pytest.approx(cmkic_reference(emb, labels, modalities, 2, 0.1), rel=1e-4)


def test_bad_arguments():
    with pytest.raises(ValueError, match="k must be >= 1"):
        CMKICLoss(k=0)
    with pytest.raises(TypeError, match="k must be an int"):
        CMKICLoss(k=1.5)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        CMKICLoss(temperature=0.0)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        CMKICLoss(temperature=-0.1)


def test_bad_inputs():
    emb, labels, modalities = _vireid_batch(2, 2, 8, torch.float32, 0)
    loss_fn = CMKICLoss()
    with pytest.raises(ValueError, match="same length"):
        loss_fn(emb, labels[:-1], modalities=modalities)
    with pytest.raises(ValueError, match="modalities must have shape"):
        loss_fn(emb, labels, modalities=modalities[:-1])
    with pytest.raises(ValueError, match=r"shape \(batch, dim\)"):
        loss_fn(emb[None], labels, modalities=modalities)
    with pytest.raises(ValueError, match="wrim.VISIBLE"):
        loss_fn(emb, labels, modalities=modalities + 1)
    strict = CMKICLoss(no_positive="raise")
    with pytest.raises(ValueError, match="IdentityModalitySampler"):
        strict(emb, labels, modalities=torch.zeros_like(modalities))  # one modality only
    disjoint = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])  # identities 0, 2 only visible; 1, 3 only infrared
    with pytest.raises(ValueError, match="0 identities present in both modalities"):
        strict(emb, disjoint, modalities=modalities)
    with pytest.raises(ValueError, match="at least one positive pair"):
        empty = torch.zeros(0, dtype=torch.long)
        strict(emb, labels, (empty, empty, torch.tensor([0]), torch.tensor([2])), modalities=modalities)
    with pytest.raises(ValueError, match="no_positive must be one of"):
        CMKICLoss(no_positive="ignore")
    with pytest.raises(ValueError, match="needs modalities"):
        loss_fn(emb, labels)
    with pytest.raises(TypeError, match="by keyword"):
        loss_fn(emb, labels, modalities)  # the third positional argument is indices_tuple, as in PML
    with pytest.raises(TypeError, match="4-tuple"):
        loss_fn(emb, labels, modalities=modalities, indices_tuple=(labels, labels))
    with pytest.raises(ValueError, match="outside"):
        big = torch.tensor([100])
        loss_fn(emb, labels, modalities=modalities, indices_tuple=(torch.tensor([0]), big, torch.tensor([0]), big))


@pytest.mark.cuda
def test_cuda_matches_cpu_with_ties_and_autocast():
    g = torch.Generator().manual_seed(4)
    emb = torch.randint(0, 2, (32, 16), generator=g).float() * 2 - 1  # exact ties, see above
    labels = torch.arange(4).repeat_interleave(8)
    modalities = torch.tensor(([0] * 4 + [1] * 4) * 4)
    cuda = torch.device("cuda")
    for k in (1, 2, 3):
        loss_fn = CMKICLoss(k=k)
        expected = loss_fn(emb, labels, modalities=modalities)
        on_gpu = loss_fn(emb.to(cuda), labels.to(cuda), modalities=modalities.to(cuda))
        torch.testing.assert_close(on_gpu.cpu(), expected)
        mined_cpu = CrossModalityKeyInstanceMiner(k=k)(emb, labels, modalities=modalities)
        mined_gpu = CrossModalityKeyInstanceMiner(k=k)(emb.to(cuda), labels.to(cuda), modalities=modalities.to(cuda))
        assert all(torch.equal(a, b.cpu()) for a, b in zip(mined_cpu, mined_gpu))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        loss = CMKICLoss()(emb.to(cuda).bfloat16(), labels.to(cuda), modalities=modalities.to(cuda))
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss.cpu(), CMKICLoss()(emb, labels, modalities=modalities))


def test_no_positive_default_is_zero_with_one_warning():
    emb, labels, modalities = _vireid_batch(2, 2, 8, torch.float32, 0)
    emb.requires_grad_(True)
    loss_fn = CMKICLoss()
    one_modality = torch.zeros_like(modalities)
    with pytest.warns(UserWarning, match="0 visible|IdentityModalitySampler"):
        loss = loss_fn(emb, labels, modalities=one_modality)
    assert loss.item() == 0.0
    loss.backward()  # a zero loss still back-propagates (zero gradients), so a training step does not fail
    assert torch.equal(emb.grad, torch.zeros_like(emb))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: the later calls do not check (no host sync)
        assert loss_fn(emb, labels, modalities=one_modality).item() == 0.0
