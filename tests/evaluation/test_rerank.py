"""Tests for wrim.evaluation.rerank: k-reciprocal re-ranking against a loop port of the algorithm."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wrim.evaluation import evaluate, k_reciprocal_rerank


def reference_rerank(q_g, q_q, g_g, k1=20, k2=6, lambda_value=0.3):
    """Per-image loop form of Zhong et al. (CVPR 2017), numpy, stable argsort."""
    original = np.concatenate([np.concatenate([q_q, q_g], 1), np.concatenate([q_g.T, g_g], 1)], 0)
    original = np.power(original, 2).astype(np.float32)
    original = np.transpose(original / np.max(original, axis=0))
    num_q, num = q_g.shape[0], original.shape[0]
    initial_rank = np.argsort(original, axis=1, kind="stable")
    half = int(np.around(k1 / 2.0))
    vec = np.zeros_like(original)
    for i in range(num):
        forward = initial_rank[i, : k1 + 1]
        backward = initial_rank[forward, : k1 + 1]
        recip = forward[np.where(backward == i)[0]]
        expansion = recip
        for cand in recip:
            c_forward = initial_rank[cand, : half + 1]
            c_backward = initial_rank[c_forward, : half + 1]
            c_recip = c_forward[np.where(c_backward == cand)[0]]
            if len(np.intersect1d(c_recip, recip)) > 2.0 / 3 * len(c_recip):
                expansion = np.append(expansion, c_recip)
        expansion = np.unique(expansion)
        weight = np.exp(-original[i, expansion])
        vec[i, expansion] = weight / np.sum(weight)
    if k2 != 1:
        vec = np.stack([vec[initial_rank[i, :k2]].mean(0) for i in range(num)])
    overlap = np.zeros((num_q, num), dtype=np.float32)
    for i in range(num_q):
        for j in range(num):
            overlap[i, j] = np.minimum(vec[i], vec[j]).sum()
    jaccard = 1 - overlap / (2.0 - overlap)
    final = jaccard * (1 - lambda_value) + original[:num_q] * lambda_value
    return final[:, num_q:]


def _clustered(num_ids, per_id_q, per_id_g, dim=16, noise=0.6, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centres = torch.randn(num_ids, dim, generator=gen)
    q_ids = torch.arange(num_ids).repeat_interleave(per_id_q)
    g_ids = torch.arange(num_ids).repeat_interleave(per_id_g)
    q = centres[q_ids] + noise * torch.randn(len(q_ids), dim, generator=gen)
    g = centres[g_ids] + noise * torch.randn(len(g_ids), dim, generator=gen)
    return q, g, q_ids, g_ids


@pytest.mark.parametrize(("k1", "k2", "lambda_value"), [(20, 6, 0.3), (6, 3, 0.5), (5, 1, 0.0), (3, 2, 1.0)])
def test_matches_loop_reference(k1, k2, lambda_value):
    q, g, _, _ = _clustered(6, 2, 5, noise=0.8)
    q_g, q_q, g_g = torch.cdist(q, g), torch.cdist(q, q), torch.cdist(g, g)
    got = k_reciprocal_rerank(q_g, q_q, g_g, k1=k1, k2=k2, lambda_value=lambda_value)
    ref = reference_rerank(q_g.numpy(), q_q.numpy(), g_g.numpy(), k1=k1, k2=k2, lambda_value=lambda_value)
    assert got.shape == (12, 30)
    torch.testing.assert_close(got, torch.from_numpy(ref), rtol=1e-4, atol=1e-5)


def test_changes_the_ranking_as_the_reference_does():
    q, g, _, _ = _clustered(6, 2, 5, noise=1.0, seed=3)
    q_g, q_q, g_g = torch.cdist(q, g), torch.cdist(q, q), torch.cdist(g, g)
    got = k_reciprocal_rerank(q_g, q_q, g_g, k1=6, k2=3)
    ref = torch.from_numpy(reference_rerank(q_g.numpy(), q_q.numpy(), g_g.numpy(), k1=6, k2=3))
    moved = (got.argsort(1) != q_g.argsort(1)).any(1)
    assert moved.sum() >= q_g.shape[0] // 2  # re-ranking reorders the gallery of most queries
    assert torch.equal(got.argsort(1), ref.argsort(1))


def test_improves_or_equals_on_clustered_data():
    q, g, q_ids, g_ids = _clustered(10, 3, 8, noise=1.1, seed=1)
    q_g, q_q, g_g = torch.cdist(q, g), torch.cdist(q, q), torch.cdist(g, g)
    cams_q, cams_g = torch.full_like(q_ids, 3), torch.full_like(g_ids, 1)
    before = evaluate(q_g, q_ids, g_ids, cams_q, cams_g, protocol="regdb")
    after = evaluate(k_reciprocal_rerank(q_g, q_q, g_g), q_ids, g_ids, cams_q, cams_g, protocol="regdb")
    assert before.mAP < 1.0  # the case is not trivially solved already
    assert after.mAP >= before.mAP
    # a well separated case stays perfect
    q, g, q_ids, g_ids = _clustered(5, 2, 6, noise=0.05, seed=2)
    d = k_reciprocal_rerank(torch.cdist(q, g), torch.cdist(q, q), torch.cdist(g, g), k1=5, k2=2)
    out = evaluate(d, q_ids, g_ids, None, None, protocol="regdb")
    assert out.mAP == pytest.approx(1.0)


def test_symmetric_inputs_self_retrieval():
    # gallery == query set: every image's nearest re-ranked neighbour is itself
    x = torch.randn(20, 8)
    d = torch.cdist(x, x)
    out = k_reciprocal_rerank(d, d, d, k1=5, k2=3)
    assert torch.isfinite(out).all()
    assert torch.equal(out.argmin(1), torch.arange(20))


def test_errors():
    with pytest.raises(ValueError, match="q_q_dist must be"):
        k_reciprocal_rerank(torch.rand(3, 4), torch.rand(4, 4), torch.rand(4, 4))
    with pytest.raises(ValueError, match="k1 and k2"):
        k_reciprocal_rerank(torch.rand(3, 4), torch.rand(3, 3), torch.rand(4, 4), k1=0)
    with pytest.raises(ValueError, match="lambda_value"):
        k_reciprocal_rerank(torch.rand(3, 4), torch.rand(3, 3), torch.rand(4, 4), lambda_value=2.0)
