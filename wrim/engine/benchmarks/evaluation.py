"""``wrim.evaluation.evaluate`` against a loop port of the field's reference evaluation code.

    wrim bench evaluation --scales sysu,llcm --threads 1

The problems are synthetic but shaped like the real protocols. The loop reference below is a numpy port of AGW /
DEEN's ``eval_sysu`` and ``eval_llcm`` (a per-query Python loop, numpy argsort, de-duplicated CMC). Features are
identity-clustered float32 vectors, distances negative cosine, the camera sets the real ones:

- ``sysu``: 3,803 IR queries (cam3 / cam6) x 301 single-shot RGB gallery images of 96 ids (cam1/2/4/5);
- ``llcm``: 7,166 NIR queries x one VIS image per (id, camera) of 351 ids over 9 cameras (about 3k);
- ``llcm-full``: the v2i role swap at full size, 8,680 VIS-sized probes x 7,166 NIR-sized gallery;
- ``llcm-huge``: a 14,000 x 30,000 matrix (1.7 GB of float32 distances), to show the chunked memory use.

The two large scales time wrim only unless ``--ref-on-large`` is given (the loop takes minutes there). wrim's time
is the median of ``--repeats`` runs after one warm-up, the loop's one run; "equal" compares the two results (the
loop with a stable argsort, so that exact ties cannot order differently). The last column is the process's peak
resident memory so far (it includes the distance matrix itself).
"""

from __future__ import annotations

import argparse
import functools
import resource

import numpy as np
import torch

from wrim.engine.benchmarks._cli import BenchParser
from wrim.engine.benchmarks._timing import median_ms
from wrim.evaluation import evaluate

__all__ = ["QUICK", "build_parser", "run"]

QUICK = ("--scales", "sysu", "--repeats", "1")

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


def build_parser() -> argparse.ArgumentParser:
    parser = BenchParser("evaluation", __doc__)
    parser.add_argument("--scales", default="sysu,llcm", help=f"comma-separated, from {list(SCALES)}")
    parser.add_argument("--repeats", type=int, default=5, help="wrim timings: the median of this many runs")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="device for wrim (the loop always runs on the CPU)")
    parser.add_argument("--ref-on-large", action="store_true", help="also time the loop on llcm-full / llcm-huge")
    return parser


def _row(scale: str, args: argparse.Namespace) -> str:
    distmat, q_pids, g_pids, q_cams, g_cams, protocol = make_problem(scale)
    device = torch.device(args.device)
    inputs = [torch.from_numpy(x).to(device) for x in (distmat, q_pids, g_pids, q_cams, g_cams)]
    out = evaluate(*inputs, protocol=protocol)
    t_wrim = median_ms(lambda: evaluate(*inputs, protocol=protocol), device, args.repeats, warmup=1) / 1e3
    if scale in ("sysu", "llcm") or args.ref_on_large:
        loop = functools.partial(reference_loop, distmat, q_pids, g_pids, q_cams, g_cams, protocol)
        t_ref = median_ms(loop, torch.device("cpu"), iters=1, warmup=0) / 1e3
        ref = reference_loop(distmat, q_pids, g_pids, q_cams, g_cams, protocol, kind="stable")
        equal = (
            np.allclose(out.cmc.cpu().numpy(), ref[0], rtol=0, atol=1e-6)
            and abs(out.mAP - ref[1]) < 1e-9
            and abs(out.mINP - ref[2]) < 1e-9
        )
        ref_cell, speed_cell, equal_cell = f"{t_ref:.3f}", f"{t_ref / t_wrim:.0f}x", "yes" if equal else "NO"
    else:
        ref_cell = speed_cell = equal_cell = "-"
    return (
        f"| {scale} | {distmat.shape[0]} x {distmat.shape[1]} | {protocol} | {ref_cell} | {t_wrim:.4f} | "
        f"{speed_cell} | {100 * out.rank1:.2f} | {100 * out.mAP:.2f} | {100 * out.mINP:.2f} | {equal_cell} | "
        f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} |"
    )


def run(args: argparse.Namespace) -> list[str]:
    """Prints one Markdown row per scale; returns the table."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, wrim on {args.device}\n")
    rows = [
        "| scale | queries x gallery | protocol | reference loop (s) | wrim (s) | speed-up | R1 | mAP | mINP | equal "
        "| peak RSS (MiB) |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    print("\n".join(rows), flush=True)
    for scale in args.scales.split(","):
        if scale not in SCALES:
            raise ValueError(f"unknown scale {scale!r}; choose from {list(SCALES)}")
        rows.append(_row(scale, args))
        print(rows[-1], flush=True)
    return rows
