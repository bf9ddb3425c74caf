"""Benchmark ``wrim.evaluation.evaluate`` against a loop port of the field's reference evaluation code.

The loop reference below is a faithful numpy port of AGW / DEEN ``eval_sysu`` and ``eval_llcm`` (anchors.md
section 4: per-query Python loop, numpy argsort, de-duplicated CMC). Problems are synthetic but shaped like the real
protocols: identity-clustered float32 features, negative cosine distances, the real camera sets.

- ``sysu``: 3,803 IR queries (cam3 / cam6) x 301 single-shot RGB gallery images of 96 ids (cam1/2/4/5).
- ``llcm``: 7,166 NIR queries x one VIS image per (id, camera) of 351 ids over 9 cameras (about 3k).
- ``llcm-full``: the v2i role swap at full size, 8,680 VIS-sized probes x 7,166 NIR-sized gallery.
- ``llcm-huge``: a 14,000 x 30,000 matrix (1.7 GB of float32 distances) to show the chunked memory use.

The two large scales time wrim only unless ``--ref-on-large`` is given (the loop takes minutes there). The last
column is the process's peak resident memory so far (it includes the distance matrix itself).

Usage::

    python examples/benchmarks/bench_eval.py                       # sysu + llcm, markdown table
    python examples/benchmarks/bench_eval.py --scales sysu --threads 1
"""

from __future__ import annotations

import argparse
import functools
import resource
import time

import numpy as np
import torch

from wrim.evaluation import evaluate

SCALES = {
    # name: (num_query, num_ids, query cams, gallery cams, gallery images or None = one per (id, cam), protocol)
    "sysu": (3803, 96, (3, 6), (1, 2, 4, 5), 301, "sysu"),
    "llcm": (7166, 351, (1, 2, 4, 5, 6, 7, 8, 9), tuple(range(1, 10)), None, "llcm"),
    "llcm-full": (8680, 351, tuple(range(1, 10)), (1, 2, 4, 5, 6, 7, 8, 9), 7166, "llcm"),
    "llcm-huge": (14000, 351, (1, 2, 4, 5, 6, 7, 8, 9), tuple(range(1, 10)), 30000, "llcm"),
}


def reference_loop(distmat, q_pids, g_pids, q_camids, g_camids, protocol, max_rank=20, kind="quicksort"):
    """Loop port of eval_sysu / eval_llcm: returns (de-duplicated cmc, mAP, mINP)."""
    num_q, num_g = distmat.shape
    if num_g < max_rank:
        max_rank = num_g
    indices = np.argsort(distmat, axis=1, kind=kind)
    pred_label = g_pids[indices]
    matches = (g_pids[indices] == q_pids[:, np.newaxis]).astype(np.int32)
    new_all_cmc, all_ap, all_inp = [], [], []
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
        new_all_cmc.append((new_cmc == q_pid).astype(np.int32).cumsum()[:max_rank])
        orig_cmc = matches[q_idx][keep]
        if not np.any(orig_cmc):
            continue
        cmc = orig_cmc.cumsum()
        pos_max_idx = np.max(np.where(orig_cmc == 1))
        all_inp.append(cmc[pos_max_idx] / (pos_max_idx + 1.0))
        num_valid_q += 1.0
        num_rel = orig_cmc.sum()
        tmp_cmc = np.asarray([x / (i + 1.0) for i, x in enumerate(orig_cmc.cumsum())]) * orig_cmc
        all_ap.append(tmp_cmc.sum() / num_rel)
    new_all_cmc = np.asarray(new_all_cmc).astype(np.float32).sum(0) / num_valid_q
    return new_all_cmc, float(np.mean(all_ap)), float(np.mean(all_inp))


def make_problem(scale: str, seed: int = 0, dim: int = 256):
    """Identity-clustered features -> (negative cosine distmat, q_pids, g_pids, q_cams, g_cams, protocol)."""
    num_q, num_ids, q_cam_set, g_cam_set, num_g, protocol = SCALES[scale]
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids, dim)).astype(np.float32)
    q_pids = rng.integers(0, num_ids, num_q)
    q_cams = rng.choice(q_cam_set, num_q)
    pairs = np.array([(p, c) for p in range(num_ids) for c in g_cam_set])
    if num_g is None:  # one image per (id, camera), ~90 % of the pairs present as in a real sampled gallery
        pairs = pairs[rng.random(len(pairs)) < 0.9]
    elif num_g <= len(pairs):
        pairs = pairs[np.sort(rng.choice(len(pairs), num_g, replace=False))]
    else:
        pairs = pairs[rng.integers(0, len(pairs), num_g)]
    g_pids, g_cams = pairs[:, 0], pairs[:, 1]
    q_feat = centres[q_pids] + 3.0 * rng.standard_normal((num_q, dim)).astype(np.float32)
    g_feat = centres[g_pids] + 3.0 * rng.standard_normal((len(g_pids), dim)).astype(np.float32)
    q_feat /= np.linalg.norm(q_feat, axis=1, keepdims=True)
    g_feat /= np.linalg.norm(g_feat, axis=1, keepdims=True)
    return -(q_feat @ g_feat.T), q_pids, g_pids, q_cams, g_cams, protocol


def best_of(fn, repeats: int):
    """(fastest wall time of ``repeats`` calls, the last result)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scales", default="sysu,llcm", help=f"comma-separated, from {list(SCALES)}")
    parser.add_argument("--repeats", type=int, default=5, help="wrim timings: best of this many runs")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="device for wrim (the loop always runs on the CPU)")
    parser.add_argument("--ref-on-large", action="store_true", help="also time the loop on llcm-full / llcm-huge")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, wrim on {args.device}\n")
    print(
        "| scale | queries x gallery | protocol | reference loop (s) | wrim (s) | speed-up | R1 | mAP | mINP | equal "
        "| peak RSS (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for scale in args.scales.split(","):
        distmat, q_pids, g_pids, q_cams, g_cams, protocol = make_problem(scale)
        inputs = [torch.from_numpy(x).to(args.device) for x in (distmat, q_pids, g_pids, q_cams, g_cams)]

        def run_wrim(inputs=inputs, protocol=protocol):
            out = evaluate(*inputs, protocol=protocol)
            if inputs[0].is_cuda:
                torch.cuda.synchronize()
            return out

        if args.repeats > 1:
            run_wrim()  # warm-up
        t_wrim, out = best_of(run_wrim, args.repeats)
        if scale in ("sysu", "llcm") or args.ref_on_large:
            t_ref, _ = best_of(functools.partial(reference_loop, distmat, q_pids, g_pids, q_cams, g_cams, protocol), 1)
            # the equality check uses a stable argsort so exact ties cannot order differently
            ref = reference_loop(distmat, q_pids, g_pids, q_cams, g_cams, protocol, kind="stable")
            equal = (
                np.allclose(out.cmc.numpy(), ref[0], rtol=0, atol=1e-6)
                and abs(out.mAP - ref[1]) < 1e-9
                and abs(out.mINP - ref[2]) < 1e-9
            )
            ref_cell, speed_cell, equal_cell = f"{t_ref:.3f}", f"{t_ref / t_wrim:.0f}x", "yes" if equal else "NO"
        else:
            ref_cell = speed_cell = equal_cell = "-"
        print(
            f"| {scale} | {distmat.shape[0]} x {distmat.shape[1]} | {protocol} | {ref_cell} | {t_wrim:.4f} | "
            f"{speed_cell} | {100 * out.rank1:.2f} | {100 * out.mAP:.2f} | {100 * out.mINP:.2f} | {equal_cell} | "
            f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} |"
        )


if __name__ == "__main__":
    main()
