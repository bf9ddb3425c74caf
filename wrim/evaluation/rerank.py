"""k-reciprocal re-ranking (Zhong et al., "Re-ranking Person Re-identification with k-reciprocal Encoding",
CVPR 2017), vectorised in torch.

Shape legend:
    Q: queries, G: gallery images, N = Q + G, K = k1 + 1.

    q_g_dist: (Q, G), q_q_dist: (Q, Q), g_g_dist: (G, G) -> (Q, G) re-ranked distances

Over all N images with :math:`d` the squared distance, each column divided by its maximum:

- :math:`N(i, k)`: the k nearest neighbours of i (i itself included); the k-reciprocal set
  :math:`R(i, k) = \\{j \\in N(i, k) : i \\in N(j, k)\\}`.
- expansion: :math:`R^*(i) = R(i, k_1) \\cup R(c, k_1/2)` for every :math:`c \\in R(i, k_1)` whose
  :math:`|R(c, k_1/2) \\cap R(i, k_1)| > \\tfrac{2}{3} |R(c, k_1/2)|`.
- :math:`V_{i,j} = e^{-d(i,j)} / \\sum_{j' \\in R^*(i)} e^{-d(i,j')}` on :math:`R^*(i)`, 0 elsewhere; local query
  expansion replaces :math:`V_i` by the mean of :math:`V` over the :math:`k_2` nearest neighbours of i.
- Jaccard distance :math:`d_J(i, j) = 1 - \\frac{\\sum_k \\min(V_{ik}, V_{jk})}{2 - \\sum_k \\min(V_{ik}, V_{jk})}`
  (the rows of V sum to 1), final distance :math:`(1 - \\lambda) d_J + \\lambda d`.

Cost: O(N^2) memory for the distance matrix and the neighbour masks; the Jaccard term gathers only the non-zero
entries of each gallery row of V, O(Q G s) for s the most non-zeros of a row.
"""

from __future__ import annotations

import torch

__all__ = ["k_reciprocal_rerank"]

_GATHER_ELEMENTS: int = 1 << 24  # (query chunk x G x s) block of the Jaccard term


def _reciprocal(neighbours: torch.Tensor, num: int) -> torch.Tensor:
    """(N, N) bool: ``R[i, j]`` = j is among the first ``neighbours.shape[1]`` of i and i among those of j."""
    forward = torch.zeros(num, num, dtype=torch.bool, device=neighbours.device)
    forward.scatter_(1, neighbours, True)
    return forward & forward.T


@torch.no_grad()
def k_reciprocal_rerank(
    q_g_dist: torch.Tensor,
    q_q_dist: torch.Tensor,
    g_g_dist: torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    lambda_value: float = 0.3,
) -> torch.Tensor:
    """Re-rank query-gallery distances with k-reciprocal encoding (Zhong et al., CVPR 2017).

    The inputs should be true distances (smaller = more similar, symmetric ``q_q_dist`` / ``g_g_dist``), e.g. the
    euclidean or cosine (``1 - cos``) distances of the features. Exactly tied neighbours may be ordered differently
    from a numpy implementation (``topk`` here, ``argsort`` there).

    Args:
        q_g_dist: (Q, G) query-gallery distances.
        q_q_dist: (Q, Q) query-query distances.
        g_g_dist: (G, G) gallery-gallery distances.
        k1: size of the k-reciprocal neighbourhood (paper default 20).
        k2: neighbours averaged by local query expansion; 1 disables it (paper default 6).
        lambda_value: weight of the original distance in the final one (paper default 0.3).

    Returns:
        (Q, G) float32 re-ranked distances on the inputs' device.
    """
    num_q, num_g = _check_inputs(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value)
    num = num_q + num_g
    k1 = min(k1, num - 1)
    k2 = min(k2, num)
    dist = torch.cat([torch.cat([q_q_dist, q_g_dist], 1), torch.cat([q_g_dist.T, g_g_dist], 1)], 0).float()  # (N, N)
    dist = dist.pow(2)
    dist = (dist / dist.amax(0, keepdim=True).clamp_min(torch.finfo(dist.dtype).tiny)).T  # column-normalised
    neighbours = torch.topk(dist, max(k1 + 1, k2), dim=1, largest=False).indices  # (N, max(K, k2)), nearest first
    expanded = _expanded_neighbourhoods(neighbours, k1, num)  # (N, N) R*(i)
    weights = torch.where(expanded, torch.exp(-dist), 0.0)  # (N, N)
    vec = weights / weights.sum(1, keepdim=True)  # (N, N) V, rows sum to 1
    if k2 > 1:
        qe_idx = neighbours[:, :k2]  # (N, k2)
        step = max(1, _GATHER_ELEMENTS // (k2 * num))
        vec = torch.cat([vec[qe_idx[s : s + step]].mean(1) for s in range(0, num, step)])  # (N, N)
    jaccard = _jaccard_distance(vec[:num_q], vec[num_q:])  # (Q, G)
    return jaccard * (1.0 - lambda_value) + dist[:num_q, num_q:] * lambda_value


def _check_inputs(
    q_g_dist: torch.Tensor, q_q_dist: torch.Tensor, g_g_dist: torch.Tensor, k1: int, k2: int, lambda_value: float
) -> tuple[int, int]:
    """Validate `k_reciprocal_rerank`'s arguments; returns ``(Q, G)``."""
    if q_g_dist.dim() != 2:
        raise ValueError(f"q_g_dist must be (Q, G); got shape {tuple(q_g_dist.shape)}")
    num_q, num_g = q_g_dist.shape
    if tuple(q_q_dist.shape) != (num_q, num_q) or tuple(g_g_dist.shape) != (num_g, num_g):
        raise ValueError(
            f"q_q_dist must be ({num_q}, {num_q}) and g_g_dist ({num_g}, {num_g}) to match q_g_dist; got "
            f"{tuple(q_q_dist.shape)} and {tuple(g_g_dist.shape)}"
        )
    if k1 < 1 or k2 < 1:
        raise ValueError(f"k1 and k2 must be >= 1; got k1={k1}, k2={k2}")
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"lambda_value must be in [0, 1]; got {lambda_value}")
    return num_q, num_g


def _expanded_neighbourhoods(neighbours: torch.Tensor, k1: int, num: int) -> torch.Tensor:
    """R*(i): R(i, k1) plus each candidate's R(c, k1 / 2) that overlaps R(i, k1) by more than 2/3. (N, N) bool.

    Args:
        neighbours: (N, >= k1 + 1) indices, nearest first.
        k1: the (clipped) neighbourhood size.
        num: N, queries and gallery together.
    """
    half = min(round(k1 / 2), num - 1)  # round half to even, as numpy's around
    recip = _reciprocal(neighbours[:, : k1 + 1], num)  # (N, N) R(i, k1)
    recip_half = _reciprocal(neighbours[:, : half + 1], num)  # (N, N) R(i, k1 / 2)
    # Candidates c in R(i, k1) and each candidate's R(c, k1 / 2), as padded index lists.
    cand = neighbours[:, : k1 + 1]  # (N, K)
    cand_ok = recip.gather(1, cand)  # (N, K)
    half_idx = neighbours[:, : half + 1]  # (N, H)
    half_ok = recip_half.gather(1, half_idx)  # (N, H)
    members = half_idx[cand]  # (N, K, H) R(c, k1 / 2) of every candidate
    members_ok = half_ok[cand]  # (N, K, H)
    in_recip = recip.gather(1, members.reshape(num, -1)).view_as(members) & members_ok  # (N, K, H)
    overlap = in_recip.sum(-1, dtype=torch.int32).double()  # (N, K)
    size = members_ok.sum(-1, dtype=torch.int32).double()  # (N, K)
    accept = cand_ok & (overlap > (2.0 / 3.0) * size)  # (N, K)
    expanded = recip.clone()  # (N, N) R*(i)
    add = accept[:, :, None] & members_ok  # (N, K, H)
    rows = torch.arange(num, device=neighbours.device)[:, None, None].expand_as(members)
    expanded[rows[add], members[add]] = True
    return expanded


def _jaccard_distance(vec_q: torch.Tensor, vec_g: torch.Tensor) -> torch.Tensor:
    """``1 - |V_q ∩ V_g| / |V_q ∪ V_g|`` with fuzzy sets, (Q, N), (G, N) -> (Q, G).

    ``sum_k min(V_ik, V_jk)`` runs over the non-zeros of each gallery row (a min with 0 adds nothing).
    """
    num_q, num_g = vec_q.shape[0], vec_g.shape[0]
    nnz = int((vec_g > 0).sum(1).max())
    g_val, g_idx = torch.topk(vec_g, max(nnz, 1), dim=1)  # (G, s)
    step = max(1, _GATHER_ELEMENTS // (num_g * g_idx.shape[1]))
    overlap_min = torch.cat(
        [torch.minimum(vec_q[s : s + step][:, g_idx], g_val).sum(-1) for s in range(0, num_q, step)]
    )  # (Q, G, s) -> (Q, G)
    return 1.0 - overlap_min / (2.0 - overlap_min)
