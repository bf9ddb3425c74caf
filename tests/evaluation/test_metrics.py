"""Tests for wrim.evaluation.metrics: equality with a loop port of the reference eval_sysu / eval_regdb / eval_llcm."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import torch

from wrim.evaluation import RankMetrics, evaluate, mean_metrics, metrics


def _pad(curve: np.ndarray, length: int) -> np.ndarray:
    # The reference truncates with cmc[:max_rank]; a shorter row would make its np.asarray ragged (undefined).
    # wrim pads such a row with its last value, so the port does the same.
    curve = curve[:length]
    if curve.size < length:
        curve = np.concatenate([curve, np.full(length - curve.size, curve[-1] if curve.size else 0)])
    return curve


def reference_eval(distmat, q_pids, g_pids, q_camids, g_camids, protocol, max_rank=20, dedup=True):
    """Loop port of AGW/DEEN eval_sysu, eval_regdb and eval_llcm (anchors.md section 4), with a stable argsort."""
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1, kind="stable")
    pred_label = g_pids[indices]
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    if protocol == "regdb":  # eval_regdb hard-codes the cameras, so nothing is removed
        q_camids = np.ones(num_q, dtype=np.int32)
        g_camids = 2 * np.ones(num_g, dtype=np.int32)
    new_all_cmc, all_cmc, all_ap, all_inp = [], [], [], []
    num_valid_q = 0.0
    for q_idx in range(num_q):
        q_pid = q_pids[q_idx]
        q_camid = q_camids[q_idx]
        order = indices[q_idx]
        if protocol == "sysu":
            remove = (q_camid == 3) & (g_camids[order] == 2)
        else:
            remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        keep = np.invert(remove)

        new_cmc = pred_label[q_idx][keep]
        new_index = np.unique(new_cmc, return_index=True)[1]
        new_cmc = np.asarray([new_cmc[index] for index in sorted(new_index)])
        new_match = (new_cmc == q_pid).astype(np.int32)
        new_all_cmc.append(_pad(new_match.cumsum(), max_rank))

        orig_cmc = matches[q_idx][keep]
        if not np.any(orig_cmc):
            continue
        cmc = orig_cmc.cumsum()
        pos_max_idx = np.max(np.where(orig_cmc == 1))
        all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        cmc[cmc > 1] = 1
        all_cmc.append(_pad(cmc, max_rank))
        num_valid_q += 1.0
        num_rel = orig_cmc.sum()
        tmp_cmc = orig_cmc.cumsum()
        tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(tmp_cmc)]) * orig_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)
    assert num_valid_q > 0
    all_cmc = np.asarray(all_cmc).astype(np.float32).sum(0) / num_valid_q
    new_all_cmc = np.asarray(new_all_cmc).astype(np.float32).sum(0) / num_valid_q
    curve = new_all_cmc if dedup and protocol != "regdb" else all_cmc
    return curve, float(np.mean(all_ap)), float(np.mean(all_inp))


def _random_problem(rng, num_q, num_g, num_ids, cams, ties):
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    q_cams = rng.choice(cams[0], num_q)
    g_cams = rng.choice(cams[1], num_g)
    if ties:  # few distinct values -> many exact ties
        distmat = rng.integers(0, 6, (num_q, num_g)).astype(np.float32)
    else:
        distmat = rng.standard_normal((num_q, num_g)).astype(np.float32)
    return distmat, q_pids, g_pids, q_cams, g_cams


_CAMS = {
    "sysu": ([3, 6], [1, 2, 4, 5]),
    "regdb": ([1], [2]),
    "llcm": ([1, 2, 3, 4], [1, 2, 3, 4]),
}


def _assert_equal(got: RankMetrics, ref) -> None:
    curve, m_ap, m_inp = ref
    torch.testing.assert_close(got.cmc, torch.from_numpy(curve), rtol=0, atol=1e-7)
    assert got.mAP == pytest.approx(m_ap, rel=1e-12, abs=1e-12)
    assert got.mINP == pytest.approx(m_inp, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("protocol", ["sysu", "regdb", "llcm"])
@pytest.mark.parametrize("cmc", ["reference", "standard"])
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape", [(40, 60, 12), (25, 9, 5), (30, 200, 40)])
@pytest.mark.parametrize("ranker", ["count", "sort"])
def test_matches_reference_loop(protocol, cmc, ties, shape, ranker, monkeypatch):
    if ranker == "sort":  # force the sort-based ranker that large identities / float64 inputs take
        monkeypatch.setattr(metrics, "_COUNT_MAX_POSITIVES", 0)
    rng = np.random.default_rng(zlib.crc32(repr((protocol, cmc, ties, shape)).encode()))  # same problem every run
    num_q, num_g, num_ids = shape
    problem = _random_problem(rng, num_q, num_g, num_ids, _CAMS[protocol], ties)
    got = evaluate(*problem, protocol=protocol, max_rank=20, cmc=cmc)
    ref = reference_eval(*problem, protocol=protocol, max_rank=20, dedup=cmc == "reference")
    assert got.cmc.shape == (min(20, num_g),)
    _assert_equal(got, ref)


@pytest.mark.parametrize("protocol", ["sysu", "llcm"])
def test_chunking_and_torch_inputs(protocol):
    rng = np.random.default_rng(7)
    problem = _random_problem(rng, 53, 70, 10, _CAMS[protocol], ties=True)
    ref = reference_eval(*problem, protocol=protocol)
    torch_problem = [torch.from_numpy(x) for x in problem]
    for chunk in (1, 7, None):
        _assert_equal(evaluate(*torch_problem, protocol=protocol, chunk_size=chunk), ref)
    lists = [problem[0]] + [x.tolist() for x in problem[1:]]
    _assert_equal(evaluate(*lists, protocol=protocol), ref)
    _assert_equal(evaluate(torch.from_numpy(problem[0]).double(), *torch_problem[1:], protocol=protocol), ref)
    transposed = torch.from_numpy(np.ascontiguousarray(problem[0].T)).T  # non-contiguous rows
    _assert_equal(evaluate(transposed, *torch_problem[1:], protocol=protocol, chunk_size=5), ref)
    # integer distances (ties everywhere): int32 takes the counting ranker, int64 the sort ranker
    for dtype in (torch.int32, torch.int64, torch.float16):
        _assert_equal(evaluate(torch.from_numpy(problem[0]).to(dtype), *torch_problem[1:], protocol=protocol), ref)


def test_dedup_differs_from_standard_beyond_rank1():
    # Gallery ranked: id1, id1, id2(query id). Standard: first match at rank 3; de-duplicated: rank 2.
    dist = np.array([[0.1, 0.2, 0.3]])
    q, g = np.array([2]), np.array([1, 1, 2])
    qc, gc = np.array([3]), np.array([1, 1, 1])
    ref = evaluate(dist, q, g, qc, gc, protocol="sysu", cmc="reference")
    std = evaluate(dist, q, g, qc, gc, protocol="sysu", cmc="standard")
    assert ref.cmc.tolist() == [0.0, 1.0, 1.0]
    assert std.cmc.tolist() == [0.0, 0.0, 1.0]
    assert ref.mAP == std.mAP == pytest.approx(1 / 3)


def test_hand_computed_example():
    # Two queries, five gallery images, distances already in rank order per row.
    #   q0 (id 0, cam 3): gallery ranks ids [1, 0, 2, 0, 1] with cams [1, 2, 4, 5, 1]; sysu drops the cam2 image
    #      -> kept ids [1, 2, 0, 1], raw [0, 0, 1, 0]: AP = 1/3, INP = 1/3, first match at kept rank 3;
    #      dedup list [1, 2, 0] -> also rank 3.
    #   q1 (id 1, cam 6): nothing dropped; ids [1, 0, 2, 0, 1] -> raw [1, 0, 0, 0, 1]:
    #      AP = (1/1 + 2/5) / 2 = 0.7, INP = 2/5, first match rank 1.
    dist = np.array([[0.0, 1.0, 2.0, 3.0, 4.0], [0.0, 1.0, 2.0, 3.0, 4.0]])
    g_ids = np.array([1, 0, 2, 0, 1])
    g_cams = np.array([1, 2, 4, 5, 1])
    out = evaluate(dist, np.array([0, 1]), g_ids, np.array([3, 6]), g_cams, protocol="sysu", max_rank=4)
    assert out.cmc.tolist() == [0.5, 0.5, 1.0, 1.0]
    assert out.mAP == pytest.approx((1 / 3 + 0.7) / 2)
    assert out.mINP == pytest.approx((1 / 3 + 0.4) / 2)
    assert out.rank1 == 0.5
    # regdb keeps the cam2 image: q0 raw [0, 1, 0, 1, 0] -> AP = (1/2 + 2/4) / 2 = 0.5, INP = 2/4.
    out = evaluate(dist, np.array([0, 1]), g_ids, None, None, protocol="regdb", max_rank=4)
    assert out.cmc.tolist() == [0.5, 1.0, 1.0, 1.0]
    assert out.mAP == pytest.approx((0.5 + 0.7) / 2)
    assert out.mINP == pytest.approx((0.5 + 0.4) / 2)
    d = out.as_dict()
    assert set(d) == {"R1", "R5", "R10", "R20", "mAP", "mINP"}
    assert d["R1"] == pytest.approx(50.0) and d["R20"] == pytest.approx(100.0)


def test_llcm_drops_same_id_same_camera_only():
    dist = np.array([[0.0, 1.0, 2.0]])
    # rank 1: same id, same cam (dropped); rank 2: other id, same cam (kept); rank 3: same id, other cam
    out = evaluate(dist, np.array([5]), np.array([5, 6, 5]), np.array([2]), np.array([2, 2, 3]), protocol="llcm")
    assert out.cmc.tolist() == [0.0, 1.0, 1.0]
    assert out.mAP == pytest.approx(0.5)


def test_invalid_queries_are_skipped():
    dist = np.array([[0.0, 1.0], [0.0, 1.0]])
    out = evaluate(dist, np.array([0, 9]), np.array([1, 0]), None, None, protocol="regdb")
    assert out.cmc.tolist() == [0.0, 1.0]
    assert out.mAP == pytest.approx(0.5)


def test_max_rank_clipped_to_gallery():
    rng = np.random.default_rng(3)
    problem = _random_problem(rng, 10, 6, 3, _CAMS["llcm"], ties=False)
    out = evaluate(*problem, protocol="llcm", max_rank=50)
    assert out.cmc.shape == (6,)
    assert out.rank(20) == out.rank(6)
    assert out.as_dict()["R10"] == pytest.approx(100 * out.rank(6))
    with pytest.raises(ValueError, match="1-based"):
        out.rank(0)


def test_mean_metrics():
    a = RankMetrics(cmc=torch.tensor([0.5, 1.0]), mAP=0.2, mINP=0.1)
    b = RankMetrics(cmc=torch.tensor([0.0, 0.5, 0.5]), mAP=0.4, mINP=0.3)
    m = mean_metrics([a, b])
    torch.testing.assert_close(m.cmc, torch.tensor([0.25, 0.75, 0.75]))
    assert m.mAP == pytest.approx(0.3) and m.mINP == pytest.approx(0.2)
    with pytest.raises(ValueError, match="at least one"):
        mean_metrics([])


def test_errors():
    dist = np.zeros((2, 3))
    q, g, qc, gc = np.array([0, 1]), np.array([0, 1, 1]), np.array([3, 3]), np.array([1, 1, 1])
    with pytest.raises(ValueError, match="unknown protocol"):
        evaluate(dist, q, g, qc, gc, protocol="market")
    with pytest.raises(ValueError, match="unknown cmc"):
        evaluate(dist, q, g, qc, gc, cmc="dedup")
    with pytest.raises(ValueError, match="query_ids must have shape"):
        evaluate(dist, np.array([0]), g, qc, gc)
    with pytest.raises(ValueError, match="gallery_ids must have shape"):
        evaluate(dist, q, g[:2], qc, gc)
    with pytest.raises(ValueError, match="gallery_cams must have shape"):
        evaluate(dist, q, g, qc, gc[:1])
    with pytest.raises(ValueError, match="distmat must be"):
        evaluate(np.zeros(3), q, g, qc, gc)
    with pytest.raises(ValueError, match="needs query_cams"):
        evaluate(dist, q, g, None, None, protocol="sysu")
    with pytest.raises(ValueError, match="no query has a matching gallery image"):
        evaluate(dist, np.array([7, 8]), g, qc, gc)
    with pytest.raises(ValueError, match="max_rank"):
        evaluate(dist, q, g, qc, gc, max_rank=0)
    with pytest.raises(ValueError, match="NaN"):
        evaluate(np.full((2, 3), np.nan), q, g, qc, gc)
    with pytest.raises(TypeError, match="integer ids"):
        evaluate(dist, q.astype(float), g, qc, gc)
    # sysu: a cam3 query whose only matches are on cam2 has none left
    with pytest.raises(ValueError, match="no query has a matching"):
        evaluate(np.zeros((1, 2)), np.array([0]), np.array([0, 1]), np.array([3]), np.array([2, 1]))
    with pytest.raises(TypeError, match="both be strings or both be integers"):
        evaluate(dist, np.array(["a", "b"]), g, qc, gc)
    with pytest.raises(TypeError, match="query_cams must hold numbers"):
        evaluate(dist, q, g, ["cam3", "cam3"], gc)


@pytest.mark.parametrize("protocol", ["sysu", "regdb", "llcm"])
def test_string_ids_equal_their_integer_codes(protocol):
    # identity names (e.g. folder names) rank exactly like any injective integer relabelling of them
    rng = np.random.default_rng(3)
    dist, q_ids, g_ids, q_cams, g_cams = _random_problem(rng, 30, 50, 8, _CAMS[protocol], ties=False)
    names = np.array([f"person_{7 * i % 8:04d}" for i in range(8)])  # sorted name order != integer order
    ref = reference_eval(dist, q_ids, g_ids, q_cams, g_cams, protocol)
    _assert_equal(evaluate(dist, list(names[q_ids]), names[g_ids].astype(object), q_cams, g_cams, protocol), ref)


def test_numpy_integer_max_rank_and_infinite_distances():
    rng = np.random.default_rng(5)
    dist, q_ids, g_ids, q_cams, g_cams = _random_problem(rng, 20, 40, 6, _CAMS["llcm"], ties=False)
    dist[rng.random(dist.shape) < 0.2] = np.inf  # e.g. a masked-out pair
    dist[rng.random(dist.shape) < 0.1] = -np.inf
    ref = reference_eval(dist, q_ids, g_ids, q_cams, g_cams, "llcm", max_rank=7)
    _assert_equal(evaluate(dist, q_ids, g_ids, q_cams, g_cams, "llcm", max_rank=np.int64(7)), ref)
    with pytest.raises(ValueError, match="max_rank"):
        evaluate(dist, q_ids, g_ids, q_cams, g_cams, "llcm", max_rank=True)


@pytest.mark.cuda
@pytest.mark.parametrize("protocol", ["sysu", "regdb", "llcm"])
def test_cuda_matches_reference(protocol):
    rng = np.random.default_rng(11)
    problem = _random_problem(rng, 300, 250, 30, _CAMS[protocol], ties=True)
    cuda_problem = [torch.from_numpy(x).cuda() for x in problem]
    got = evaluate(*cuda_problem, protocol=protocol, chunk_size=64)
    _assert_equal(got, reference_eval(*problem, protocol=protocol))
