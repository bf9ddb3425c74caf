"""Slow, loop-based references for wrim's losses (plain Python / numpy, float64), PML-test style.

Each function writes the loss out anchor by anchor and pair by pair, independent of the vectorised code in
``wrim.losses``. The tests compare against them; ``wrim bench losses`` times them.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["cmkic_reference", "triplet_reference", "wr_triplet_reference"]


def _as_array(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=np.float64)


def _as_list(x) -> list[int]:
    if hasattr(x, "tolist"):
        return [int(v) for v in x.tolist()]
    return [int(v) for v in x]


def _normalise(x: np.ndarray) -> np.ndarray:
    return np.stack([row / max(float(np.sqrt(np.dot(row, row))), 1e-12) for row in x])


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b))


def cmkic_reference(embeddings, labels, modalities, k, temperature, select_embeddings=None, pairs=None) -> float:
    """CMKIC by loops: per anchor, its k least similar other-modality positives vs its other-modality negatives.

    Args:
        embeddings: (B, D).
        labels: (B,).
        modalities: (B,) 0 / 1.
        k: key instances per anchor.
        temperature: τ.
        select_embeddings: embeddings whose similarities choose the key instances (AICL's P4 option).
        pairs: optional ``(a1, p, a2, n)``: use these positive / negative pairs instead of mining.
    """
    z = _normalise(_as_array(embeddings))
    zs = z if select_embeddings is None else _normalise(_as_array(select_embeddings))
    labels, mods = _as_list(labels), _as_list(modalities)
    batch = len(labels)
    if pairs is not None:
        a1, p, a2, n = (_as_list(t) for t in pairs)
        pos_pairs, neg_pairs = set(zip(a1, p)), set(zip(a2, n))
    per_direction: dict[int, list[float]] = {0: [], 1: []}
    for i in range(batch):
        if pairs is None:
            candidates = [j for j in range(batch) if j != i and labels[j] == labels[i] and mods[j] != mods[i]]
            positives = sorted(candidates, key=lambda j: (_dot(zs[i], zs[j]), j))[:k]
            negatives = [j for j in range(batch) if labels[j] != labels[i] and mods[j] != mods[i]]
        else:
            positives = sorted(j for j in range(batch) if (i, j) in pos_pairs)
            negatives = sorted(j for j in range(batch) if (i, j) in neg_pairs)
        if not positives:
            continue
        neg_exp = sum(math.exp(_dot(z[i], z[j]) / temperature) for j in negatives)
        terms = []
        for j in positives:
            pos_exp = math.exp(_dot(z[i], z[j]) / temperature)
            terms.append(-math.log(pos_exp / (pos_exp + neg_exp)))
        per_direction[mods[i]].append(sum(terms) / len(terms))
    if not per_direction[0] and not per_direction[1]:
        raise ValueError("no anchor has a positive")
    return sum(sum(v) / len(v) for v in per_direction.values() if v)


def _agw_distances(x: np.ndarray) -> list[list[float]]:
    batch = len(x)
    return [
        [math.sqrt(max(float(np.dot(x[i] - x[j], x[i] - x[j])), 1e-12)) for j in range(batch)] for i in range(batch)
    ]


def _positives_negatives(i: int, labels: list[int], mods: list[int] | None, cross: bool):
    batch = len(labels)
    other = (lambda j: mods[j] != mods[i]) if cross else (lambda j: True)
    positives = [j for j in range(batch) if j != i and labels[j] == labels[i] and other(j)]
    negatives = [j for j in range(batch) if labels[j] != labels[i] and other(j)]
    return positives, negatives


def triplet_reference(embeddings, labels, modalities=None, margin=0.3, cross_modality=False) -> float:
    """AGW's OriTripletLoss by loops: relu(hardest positive distance - hardest negative distance + margin)."""
    x = _as_array(embeddings)
    labels = _as_list(labels)
    mods = None if modalities is None else _as_list(modalities)
    dist = _agw_distances(x)
    losses = []
    for i in range(len(labels)):
        positives, negatives = _positives_negatives(i, labels, mods, cross_modality)
        if positives and negatives:
            hardest_pos = max(dist[i][j] for j in positives)
            hardest_neg = min(dist[i][j] for j in negatives)
            losses.append(max(0.0, hardest_pos - hardest_neg + margin))
    if not losses:
        raise ValueError("no valid anchor")
    return sum(losses) / len(losses)


def _agw_weighted_sum(values: list[float]) -> float:
    # AGW's softmax_weights: the max runs over the whole masked row, whose masked-out zeros take part in it.
    max_v = max([0.0] + values)
    exps = [math.exp(v - max_v) for v in values]
    norm = sum(exps) + 1e-6
    return sum(v * e / norm for v, e in zip(values, exps))


def wr_triplet_reference(embeddings, labels, modalities=None, cross_modality=False) -> float:
    """AGW's TripletLoss_WRT by loops: softplus(weighted positive distance - weighted negative distance)."""
    x = _as_array(embeddings)
    labels = _as_list(labels)
    mods = None if modalities is None else _as_list(modalities)
    dist = _agw_distances(x)
    losses = []
    for i in range(len(labels)):
        positives, negatives = _positives_negatives(i, labels, mods, cross_modality)
        if not (positives and negatives):
            continue
        if not cross_modality:
            positives = positives + [i]  # AGW: the anchor itself is in its positive mask
        furthest_pos = _agw_weighted_sum([dist[i][j] for j in positives])
        # the negatives are weighted by softmax(-d); AGW's sum is over d * w
        neg_d = [dist[i][j] for j in negatives]
        max_v = max([0.0] + [-d for d in neg_d])
        exps = [math.exp(-d - max_v) for d in neg_d]
        norm = sum(exps) + 1e-6
        closest_neg = sum(d * e / norm for d, e in zip(neg_d, exps))
        diff = furthest_pos - closest_neg
        losses.append(math.log1p(math.exp(diff)))
    if not losses:
        raise ValueError("no valid anchor")
    return sum(losses) / len(losses)
