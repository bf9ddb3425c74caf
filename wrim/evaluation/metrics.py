"""Protocol-exact CMC / mAP / mINP for visible-infrared re-identification, vectorised in torch.

``evaluate`` reproduces the field's reference functions (AGW / DEEN ``eval_metrics.py``: ``eval_sysu``,
``eval_regdb``, ``eval_llcm``) on whole query chunks at once instead of looping over queries.

Shape legend:
    Q: number of queries, G: number of gallery images, R: ``min(max_rank, G)``, P: distinct gallery ids.

    distmat: (Q, G), smaller = more similar; query_ids, query_cams: (Q,); gallery_ids, gallery_cams: (G,)
    -> RankMetrics(cmc: (R,), mAP, mINP)

Per query (gallery sorted by distance, ``raw`` = the 0/1 match vector over the gallery images the camera rule keeps):

- camera rule [N]: ``"sysu"`` drops *every* cam2 gallery image for a cam3 query, whatever its identity (what
  ``eval_sysu`` does; its docstring says "same pid and camid", the code does not); ``"regdb"`` drops nothing;
  ``"llcm"`` drops gallery images with the query's identity *and* camera.
- a query whose ``raw`` holds no match is skipped (it is not "valid") for CMC, mAP and mINP.
- :math:`\\mathrm{AP} = \\frac{1}{|\\mathrm{rel}|}\\sum_k \\frac{\\mathrm{cumsum}(raw)_k}{k+1}\\, raw_k`
  (non-interpolated), :math:`\\mathrm{INP} = |\\mathrm{rel}| / (R_{hard} + 1)` with :math:`R_{hard}` the 0-based
  position of the last match (Ye et al., TPAMI 2021).
- standard CMC: :math:`\\mathrm{cmc}_k = [\\text{first match at position} \\le k]`, averaged over valid queries.
- de-duplicated CMC ("the author's released code" protocol, returned by ``eval_sysu`` and ``eval_llcm``): only the
  first kept occurrence of each gallery identity stays in the ranked list before the CMC is taken. Rank-1 equals the
  standard rank-1; rank-k > 1 can be higher. The reference appends it for every query but divides by the number of
  valid queries; an invalid query's curve is all zeros, so this equals the mean over valid queries.

Differences from the reference, all documented on ``evaluate``: ties are ranked as a *stable* sort ranks them
(numpy's default quicksort orders exact ties arbitrarily), and a ranked list shorter than ``max_rank`` (the camera
rule dropped images, or fewer distinct ids than ``max_rank``) is padded with its last value, where the reference
would build a ragged array.

Two rankers give identical results: when no identity has more than ``_COUNT_MAX_POSITIVES`` gallery images (every
re-id gallery in practice) and the distances are float32 / small ints, the rank of each match is the count of kept
gallery images that precede it (no sort at all, O(Q M G) for M matches per query); otherwise each row is
stable-sorted (O(Q G log G)).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["METRIC_NAMES", "PROTOCOLS", "RankMetrics", "camera_keep_mask", "evaluate", "mean_metrics"]

PROTOCOLS: tuple[str, ...] = ("sysu", "regdb", "llcm")
_CMC_KINDS: tuple[str, ...] = ("reference", "standard")
_REPORTED_RANKS: tuple[int, ...] = (1, 5, 10, 20)
#: The reported metrics, in the order the field's tables give them (`RankMetrics.as_dict`'s keys): R1, R5, R10, R20,
#: mAP, mINP.
METRIC_NAMES: tuple[str, ...] = (*(f"R{k}" for k in _REPORTED_RANKS), "mAP", "mINP")
# Elements of a (query chunk x gallery) block of the sort ranker; a few int64 blocks of this size stay live per chunk
# (~32 MiB each). The counting ranker's (query chunk x M x gallery) bool block may be 4x larger: its int64 blocks are
# (query chunk x gallery) only, and fewer, larger blocks keep the op count low.
_CHUNK_ELEMENTS: int = 1 << 22
# Ranking by counting costs O(Q M G) for M = the most gallery images of one identity, a sort O(Q G log G); counting
# wins on re-id galleries (SYSU single-shot: M <= 4, RegDB: M = 10) and is used up to this M.
_COUNT_MAX_POSITIVES: int = 32


@dataclass
class RankMetrics:
    """Ranking metrics of one evaluation, as fractions in 0..1.

    Attributes:
        cmc: (R,) float32 CMC curve; ``cmc[k]`` is the rank-(k+1) accuracy.
        mAP: mean average precision over valid queries.
        mINP: mean inverse negative penalty over valid queries.
    """

    cmc: torch.Tensor
    mAP: float
    mINP: float

    @property
    def rank1(self) -> float:
        """Rank-1 accuracy as a fraction."""
        return float(self.cmc[0])

    def rank(self, k: int) -> float:
        """Rank-``k`` accuracy (1-based) as a fraction.

        Past the end of the curve (a gallery smaller than ``k``) every ranked list is exhausted, so the last value
        is returned.
        """
        if k < 1:
            raise ValueError(f"rank k is 1-based and must be >= 1; got {k}")
        return float(self.cmc[min(k, self.cmc.numel()) - 1])

    def as_dict(self) -> dict[str, float]:
        """`METRIC_NAMES` -> value in percent, the numbers the field reports."""
        out = {f"R{k}": 100.0 * self.rank(k) for k in _REPORTED_RANKS}
        out["mAP"] = 100.0 * self.mAP
        out["mINP"] = 100.0 * self.mINP
        return out


def mean_metrics(metrics: Sequence[RankMetrics]) -> RankMetrics:
    """Average several evaluations (e.g. the 10 gallery trials) as the field does: mean CMC, mean mAP, mean mINP.

    Curves of different lengths (trials whose gallery is smaller than ``max_rank``) are padded with their last
    value before averaging.

    Args:
        metrics: the per-trial results.
    """
    if len(metrics) == 0:
        raise ValueError("mean_metrics needs at least one RankMetrics; got an empty sequence")
    length = max(m.cmc.numel() for m in metrics)
    curves = []
    for m in metrics:
        cmc = m.cmc.detach().to("cpu", torch.float32)
        if cmc.numel() < length:
            cmc = torch.cat([cmc, cmc[-1:].expand(length - cmc.numel())])
        curves.append(cmc)
    return RankMetrics(
        cmc=torch.stack(curves).mean(0),
        mAP=float(np.mean([m.mAP for m in metrics])),
        mINP=float(np.mean([m.mINP for m in metrics])),
    )


def camera_keep_mask(
    protocol: str,
    query_ids: torch.Tensor,
    query_cams: torch.Tensor | None,
    ranked_ids: torch.Tensor,
    ranked_cams: torch.Tensor | None,
) -> torch.Tensor | None:
    """The reference camera rule: which gallery images each query keeps.

    Args:
        protocol: ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        query_ids: (Q,) query identities.
        query_cams: (Q,) query cameras (unused for ``"regdb"``).
        ranked_ids: (Q, G) gallery identities, any column order (usually sorted by distance per query).
        ranked_cams: (Q, G) gallery cameras in the same order (unused for ``"regdb"``).

    Returns:
        (Q, G) bool mask, True = kept; ``None`` for ``"regdb"``, which keeps everything.
    """
    if protocol == "regdb":
        return None
    if query_cams is None or ranked_cams is None:
        raise ValueError(f'protocol="{protocol}" needs query_cams and gallery_cams; only "regdb" ignores cameras')
    if protocol == "sysu":
        # eval_sysu: remove = (q_camid == 3) & (g_camids[order] == 2), the identity is not checked.
        return ~((query_cams == 3)[:, None] & (ranked_cams == 2))
    if protocol == "llcm":
        # eval_llcm: remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid).
        return ~((ranked_ids == query_ids[:, None]) & (ranked_cams == query_cams[:, None]))
    raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")


def _to_tensor(x: Any, name: str, device: torch.device | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        t = x.detach()
    elif isinstance(x, (np.ndarray, list, tuple)):
        array = np.asarray(x)
        if array.dtype.kind not in "biufc":
            raise TypeError(f"{name} must hold numbers; got numpy dtype {array.dtype} (e.g. strings)")
        t = torch.from_numpy(np.ascontiguousarray(array))
    else:
        raise TypeError(f"{name} must be a torch.Tensor, numpy array or list; got {type(x).__name__}")
    return t if device is None else t.to(device)


def _label_codes(query: Any, gallery: Any) -> tuple[Any, Any]:
    """String labels (e.g. LLCM-style names) become integer codes shared by the query and gallery sides.

    Numeric labels pass through (lists as arrays, converted once). Codes index the sorted union of both sides'
    labels, so equal labels get equal codes and the metrics are those of any injective relabelling.
    """
    arrays = [np.asarray(x) if isinstance(x, (np.ndarray, list, tuple)) else x for x in (query, gallery)]
    textual = [isinstance(a, np.ndarray) and a.dtype.kind in "USO" for a in arrays]
    if not any(textual):
        return arrays[0], arrays[1]
    if not all(textual):
        raise TypeError("query and gallery labels must both be strings or both be integers; got one of each")
    labels = [a.astype(str) for a in arrays]
    codes = np.unique(np.concatenate(labels), return_inverse=True)[1].reshape(-1)
    return codes[: labels[0].size].reshape(labels[0].shape), codes[labels[0].size :].reshape(labels[1].shape)


def _ids(x: Any, name: str, length: int, axis: str, device: torch.device) -> torch.Tensor:
    t = _to_tensor(x, name, device)
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(f"{name} must hold integer ids; got dtype {t.dtype}")
    if t.dim() != 1 or t.shape[0] != length:
        raise ValueError(
            f"{name} must have shape ({length},), one entry per distmat {axis}; got shape {tuple(t.shape)}"
        )
    return t.long()


@torch.no_grad()
def evaluate(
    distmat: torch.Tensor | np.ndarray,
    query_ids: torch.Tensor | np.ndarray | Sequence[int],
    gallery_ids: torch.Tensor | np.ndarray | Sequence[int],
    query_cams: torch.Tensor | np.ndarray | Sequence[int] | None,
    gallery_cams: torch.Tensor | np.ndarray | Sequence[int] | None,
    protocol: str = "sysu",
    max_rank: int = 20,
    cmc: str = "reference",
    *,
    chunk_size: int | None = None,
) -> RankMetrics:
    """CMC, mAP and mINP exactly as the reference ``eval_sysu`` / ``eval_regdb`` / ``eval_llcm`` compute them [N].

    Runs on the device of ``distmat`` (numpy input runs on the CPU), vectorised over chunks of queries so that
    LLCM-scale matrices fit in memory.

    Differences from the reference code:

    - exactly equal distances are ranked in gallery order, as a *stable* sort ranks them; numpy's default
      quicksort orders them arbitrarily, so with exact ties the two can rank differently (continuous features
      practically never tie). Compare against the reference run with ``np.argsort(..., kind="stable")``.
    - where the reference would build a ragged array (a ranked list shorter than ``max_rank`` after the camera rule,
      or fewer distinct identities than ``max_rank`` for the de-duplicated CMC) each curve is padded with its last
      value; wherever the reference is defined the results are equal.

    Args:
        distmat: (Q, G) distances, smaller = more similar (the reference callers pass ``-q_feat @ g_feat.T``).
        query_ids: (Q,) query person ids: integers, or strings (mapped to integer codes together with
            ``gallery_ids``, which must then be strings too).
        gallery_ids: (G,) gallery person ids.
        query_cams: (Q,) integer query camera ids (SYSU cam 1..6, LLCM 1..9; the SYSU rule needs the numbers);
            may be ``None`` for ``"regdb"``.
        gallery_cams: (G,) gallery camera ids; may be ``None`` for ``"regdb"``.
        protocol: the camera rule, ``"sysu"`` (drop every cam2 gallery image for a cam3 query), ``"regdb"``
            (drop nothing) or ``"llcm"`` (drop same identity and same camera).
        max_rank: length of the CMC curve, clipped to G as the reference does.
        cmc: ``"reference"`` returns the curve the reference returns (de-duplicated for ``"sysu"`` and ``"llcm"``,
            standard for ``"regdb"``); ``"standard"`` always returns the standard CMC.
        chunk_size: queries per vectorised block; default keeps a block near 4M elements.

    Returns:
        ``RankMetrics`` with ``cmc`` a (min(max_rank, G),) float32 CPU tensor.

    Raises:
        ValueError: unknown ``protocol`` or ``cmc``, mismatched shapes, NaN distances, ``max_rank < 1``, or no query
            has a match left in the gallery.
        TypeError: inputs that are not tensors / arrays, non-integer cameras, float ids, or string ids on one side
            only.
    """
    max_rank = _check_options(protocol, cmc, max_rank)
    dist = _check_distmat(distmat)
    q_ids, g_ids, q_cams, g_cams = _check_labels(dist, query_ids, gallery_ids, query_cams, gallery_cams, protocol)
    rank_len = min(max_rank, dist.shape[1])
    dedup = cmc == "reference" and protocol != "regdb"
    scores = _Scores(rank_len, dist.device)
    for ranks in _rank_chunks(dist, q_ids, g_ids, q_cams, g_cams, protocol, dedup, chunk_size):
        scores.add(*ranks)
    return scores.result(protocol)


def _check_options(protocol: str, cmc: str, max_rank: int) -> int:
    """Validate ``evaluate``'s options; returns ``max_rank`` as a Python int."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    if cmc not in _CMC_KINDS:
        raise ValueError(f"unknown cmc {cmc!r}; choose one of {_CMC_KINDS}")
    if isinstance(max_rank, bool) or not isinstance(max_rank, numbers.Integral) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive int; got {max_rank!r}")
    return int(max_rank)  # numpy integers too


def _check_distmat(distmat: Any) -> torch.Tensor:
    """The (Q, G) distance matrix as a tensor: real, non-empty, without NaN; half precision read as float32."""
    dist = _to_tensor(distmat, "distmat", None)
    if dist.dim() != 2:
        raise ValueError(f"distmat must be a (num_query, num_gallery) matrix; got shape {tuple(dist.shape)}")
    if dist.dtype == torch.bool or dist.dtype.is_complex:
        raise TypeError(f"distmat must hold real distances; got dtype {dist.dtype}")
    if dist.dtype in (torch.float16, torch.bfloat16):
        dist = dist.float()  # exact, order-preserving; CPU sort kernels are fastest in float32
    if dist.shape[0] == 0 or dist.shape[1] == 0:
        raise ValueError(f"distmat is empty (shape {tuple(dist.shape)}); need at least one query and gallery image")
    if dist.dtype.is_floating_point and bool(torch.isnan(dist).any()):
        raise ValueError("distmat contains NaN; check the features (e.g. a zero vector L2-normalised)")
    return dist


def _check_labels(
    dist: torch.Tensor, query_ids: Any, gallery_ids: Any, query_cams: Any, gallery_cams: Any, protocol: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """``(q_ids, g_ids, q_cams, g_cams)`` on ``dist``'s device, (Q,) / (G,); the cameras are None for ``"regdb"``."""
    num_q, num_g = dist.shape
    device = dist.device
    query_ids, gallery_ids = _label_codes(query_ids, gallery_ids)
    q_ids = _ids(query_ids, "query_ids", num_q, "row", device)
    g_ids = _ids(gallery_ids, "gallery_ids", num_g, "column", device)
    if protocol == "regdb":
        return q_ids, g_ids, None, None
    if query_cams is None or gallery_cams is None:
        raise ValueError(f'protocol="{protocol}" needs query_cams and gallery_cams; only "regdb" ignores cameras')
    q_cams = _ids(query_cams, "query_cams", num_q, "row", device)
    g_cams = _ids(gallery_cams, "gallery_cams", num_g, "column", device)
    return q_ids, g_ids, q_cams, g_cams


def _rank_chunks(
    dist: torch.Tensor,
    q_ids: torch.Tensor,
    g_ids: torch.Tensor,
    q_cams: torch.Tensor | None,
    g_cams: torch.Tensor | None,
    protocol: str,
    dedup: bool,
    chunk_size: int | None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]:
    """The ranking part of ``evaluate``: per chunk of queries, ``(pos_rank, num_rel, dedup_rank)``.

    ``pos_rank`` (q, M): the 0-based ranks of each query's matches after the camera rule, in rank order (M, the most
    gallery images of one identity, bounds the matches); ``num_rel`` (q,): how many; ``dedup_rank`` (q,): the rank
    of the first match in the de-duplicated list (None without ``dedup``).
    """
    num_q, num_g = dist.shape
    uniq_ids, g_compact = torch.unique(g_ids, return_inverse=True)  # (P,), (G,)
    q_compact = torch.searchsorted(uniq_ids, q_ids).clamp_(max=uniq_ids.numel() - 1)  # (Q,) right where present
    max_pos = int(torch.bincount(g_compact).max())  # most gallery images of one identity: bound on matches per query
    by_count = max_pos <= _COUNT_MAX_POSITIVES and dist.dtype in (torch.float32, torch.int32, torch.int16, torch.int8)
    if chunk_size is None:
        chunk_size = max(1, (4 * _CHUNK_ELEMENTS // (num_g * (max_pos + 1))) if by_count else _CHUNK_ELEMENTS // num_g)
    elif chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1; got {chunk_size}")
    ranker = _ranks_by_count if by_count else _ranks_by_sort
    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        yield ranker(
            dist[start:stop],
            q_ids[start:stop],
            None if q_cams is None else q_cams[start:stop],
            g_ids,
            g_cams,
            protocol,
            max_pos,
            (g_compact, q_compact[start:stop], uniq_ids.numel()) if dedup else None,
        )


class _Scores:
    """The scoring part of ``evaluate``: CMC counts, AP and INP accumulated over chunks of ranked queries."""

    def __init__(self, rank_len: int, device: torch.device) -> None:
        self.rank_len = rank_len
        self.cmc_counts = torch.zeros(rank_len + 1, dtype=torch.long, device=device)
        self.ap_parts: list[torch.Tensor] = []
        self.inp_parts: list[torch.Tensor] = []

    def add(self, pos_rank: torch.Tensor, num_rel: torch.Tensor, dedup_rank: torch.Tensor | None) -> None:
        """Score one chunk (``_rank_chunks``' output); queries without a match are skipped, as the reference does."""
        valid = num_rel > 0
        if not bool(valid.any()):
            return
        # AP = mean over matches m (0-based, in rank order) of (m + 1) / (rank_m + 1); INP = |rel| / (last rank + 1)
        slots = torch.arange(pos_rank.shape[1], device=pos_rank.device)  # (M,)
        in_use = slots < num_rel[:, None]  # (q, M)
        precision = (slots + 1).double() / (pos_rank + 1).double()  # (q, M)
        ap = torch.where(in_use, precision, 0.0).sum(1) / num_rel.clamp(min=1)
        last = pos_rank.gather(1, (num_rel - 1).clamp(min=0)[:, None]).squeeze(1)  # (q,)
        inp = num_rel.double() / (last + 1).double()
        self.ap_parts.append(ap[valid])
        self.inp_parts.append(inp[valid])
        hit_rank = pos_rank[:, 0] if dedup_rank is None else dedup_rank
        self.cmc_counts += torch.bincount(hit_rank[valid].clamp(max=self.rank_len), minlength=self.rank_len + 1)

    def result(self, protocol: str) -> RankMetrics:
        """The CMC curve (over the valid queries), mAP and mINP."""
        if not self.ap_parts:
            raise ValueError(
                "no query has a matching gallery image left after the camera rule "
                f'(protocol="{protocol}"): every query identity is absent from the gallery. '
                "Check that query_ids and gallery_ids use the same identity labels and that the protocol is right."
            )
        ap_all = torch.cat(self.ap_parts)
        num_valid = ap_all.numel()
        counts = self.cmc_counts[: self.rank_len].cumsum(0).cpu().to(torch.float32)
        curve = counts / torch.tensor(num_valid, dtype=torch.float32)
        return RankMetrics(cmc=curve, mAP=float(ap_all.mean()), mINP=float(torch.cat(self.inp_parts).mean()))


def _slot_matrix(raw: torch.Tensor, values: torch.Tensor, max_pos: int, fill: int) -> torch.Tensor:
    """Pack the ``values`` at the True entries of each row of ``raw`` (q, G) into (q, max_pos), in column order."""
    slot = torch.where(raw, raw.cumsum(1) - 1, max_pos)  # (q, G); non-matches go to a spill column
    out = torch.full((raw.shape[0], max_pos + 1), fill, dtype=values.dtype, device=raw.device)
    out.scatter_(1, slot, values.expand_as(slot))
    return out[:, :max_pos]  # (q, M)


def _ranks_by_sort(
    dist: torch.Tensor,
    q_ids: torch.Tensor,
    q_cams: torch.Tensor | None,
    g_ids: torch.Tensor,
    g_cams: torch.Tensor | None,
    protocol: str,
    max_pos: int,
    dedup: tuple[torch.Tensor, torch.Tensor, int] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Kept-list ranks of every match from a stable sort of each row: O(q G log G).

    Returns:
        pos_rank: (q, M) 0-based ranks of the matches in the kept list, ascending, padded with G.
        num_rel: (q,) number of kept matches.
        dedup_rank: (q,) 0-based rank of the first match in the de-duplicated list, or None.
    """
    num_g = dist.shape[1]
    order = torch.argsort(dist, dim=1, stable=True)  # (q, G)
    ranked_ids = g_ids.expand_as(order).gather(1, order)  # (q, G)
    ranked_cams = None if g_cams is None else g_cams.expand_as(order).gather(1, order)
    keep = camera_keep_mask(protocol, q_ids, q_cams, ranked_ids, ranked_cams)
    raw = ranked_ids == q_ids[:, None]
    if keep is None:
        kept_pos = torch.arange(num_g, device=dist.device).expand_as(order)  # (q, G) rank in the kept list
    else:
        raw &= keep
        kept_pos = keep.cumsum(1) - 1
    pos_rank = _slot_matrix(raw, kept_pos, max_pos, num_g)
    dedup_rank = None
    if dedup is not None:
        # First kept rank of every gallery id; the de-duplicated rank of the first match is the number of ids whose
        # first kept occurrence comes before it.
        g_compact, q_compact, num_ids = dedup
        kept_rank = kept_pos if keep is None else torch.where(keep, kept_pos, num_g)
        first_of_id = torch.full((dist.shape[0], num_ids), num_g, dtype=torch.long, device=dist.device)
        first_of_id.scatter_reduce_(1, g_compact.expand_as(order).gather(1, order), kept_rank, reduce="amin")
        dedup_rank = (first_of_id < first_of_id.gather(1, q_compact[:, None])).sum(1, dtype=torch.int32).long()
    return pos_rank, raw.sum(1), dedup_rank


def _ranks_by_count(
    dist: torch.Tensor,
    q_ids: torch.Tensor,
    q_cams: torch.Tensor | None,
    g_ids: torch.Tensor,
    g_cams: torch.Tensor | None,
    protocol: str,
    max_pos: int,
    dedup: tuple[torch.Tensor, torch.Tensor, int] | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Kept-list ranks of every match by counting the kept images that precede it: O(q M G), no sort.

    Each (distance, column) pair becomes one int64 key, ordered as a stable sort orders them, so "precedes" is a
    single comparison; dropped images get the largest key and are never counted. Same returns as ``_ranks_by_sort``.
    """
    num_q, num_g = dist.shape
    cols = torch.arange(num_g, device=dist.device)
    if dist.dtype == torch.float32:
        bits = (dist + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0, which numpy ranks as equal
        ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # IEEE bits -> integers in the floats' order
    else:
        ordered = dist
    key = ordered.long() * num_g + cols  # (q, G) unique per row, same order as a stable argsort
    keep = camera_keep_mask(
        protocol, q_ids, q_cams, g_ids[None, :], None if g_cams is None else g_cams[None, :]
    )  # (q, G) or None
    raw = g_ids[None, :] == q_ids[:, None]  # (q, G)
    if keep is not None:
        raw = raw & keep
        key = torch.where(keep, key, torch.iinfo(torch.long).max)
    num_rel = raw.sum(1)  # (q,)
    pos_key = _slot_matrix(raw, key, max_pos, torch.iinfo(torch.long).max)  # (q, M)
    # (q, M, G) -> (q, M); spill slots count all kept. (An int32 sum of bools is ~20x faster than int64 on CPU.)
    pos_rank = (key[:, None, :] < pos_key[:, :, None]).sum(-1, dtype=torch.int32).long()
    pos_rank = torch.where(pos_key == torch.iinfo(torch.long).max, num_g, pos_rank).sort(1).values
    dedup_rank = None
    if dedup is not None:
        g_compact, _, num_ids = dedup
        before = (key < pos_key.amin(1, keepdim=True)).to(torch.uint8)  # (q, G) kept images before the first match
        seen = torch.zeros(num_q, num_ids, dtype=torch.uint8, device=dist.device)
        seen.scatter_reduce_(1, g_compact.expand(num_q, num_g), before, reduce="amax")  # (q, P)
        dedup_rank = seen.sum(1, dtype=torch.int32).long()
    return pos_rank, num_rel, dedup_rank
