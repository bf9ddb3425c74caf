"""Bounds every correct evaluation of a short synthetic run satisfies, derived from the protocol, not measured.

SYSU-MM01 all-search single-shot on a synthetic set with ``T`` test identities: a query's gallery holds one image
per identity and visible camera (4 visible cameras), so ``G <= 4 T`` images, and every query that is scored has
at least one image of its identity there (the reference code skips the others). Hence, per query,

- AP = mean over its matches of (matches so far / rank) >= 1 / G: the worst case is one match, ranked last;
- INP = matches / rank of the last match >= 1 / G;
- the CMC is non-decreasing in the rank, and reaches 100 % at rank G.

Chance level is higher (R1 = 100 / T for an embedding without identity information), but a one-epoch run on a
few identities is not guaranteed to beat chance, so these runs are held to what any ranking gives; the trained
main job is held to a floor above chance (tests/engine/test_synthetic_default.py).
"""

from __future__ import annotations

import math

VISIBLE_CAMERAS = 4  # SYSU-MM01 all-search gallery cameras 1, 2, 4, 5


def assert_metric_bounds(metrics: dict, num_test_ids: int) -> None:
    """Check the bounds above on ``{"R1", ..., "mAP", "mINP"}`` in percent."""
    gallery_max = VISIBLE_CAMERAS * num_test_ids
    floor = 100.0 / gallery_max
    assert "mAP" in metrics, metrics
    for key in ("mAP", "mINP")[: 1 + ("mINP" in metrics)]:
        assert math.isfinite(metrics[key]) and floor - 1e-4 <= metrics[key] <= 100.0 + 1e-4, (key, metrics)
    ranks = sorted((int(key[1:]), metrics[key]) for key in metrics if key.startswith("R") and key[1:].isdigit())
    assert ranks and ranks[0][0] == 1, metrics
    values = [value for _, value in ranks]
    assert all(0.0 <= v <= 100.0 + 1e-4 for v in values), metrics
    assert values == sorted(values), metrics  # CMC non-decreasing
    for rank, value in ranks:
        if rank >= gallery_max:
            assert value >= 100.0 - 1e-4, (rank, metrics)
