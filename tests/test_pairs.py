"""The vectorised pair helpers of ``wrim.pairs``."""

from __future__ import annotations

import pytest
import torch

from wrim.pairs import masks_to_pairs, pair_masks, pairs_to_masks, select_per_row


def test_select_per_row_smallest_largest_and_short_rows():
    scores = torch.tensor([[0.5, 0.1, 0.1, 0.9], [0.3, 0.2, 0.7, 0.0]])
    mask = torch.tensor([[True, True, True, True], [False, False, True, False]])
    smallest = select_per_row(scores, mask, 2, largest=False)
    largest = select_per_row(scores, mask, 2, largest=True)
    assert smallest.tolist() == [[False, True, True, False], [False, False, True, False]]
    assert largest.tolist() == [[True, False, False, True], [False, False, True, False]]
    ties = select_per_row(scores, mask, 1, largest=False)
    assert ties[0].tolist() == [False, True, False, False]  # 0.1 tie: the lower index wins


def test_pair_masks_exclude_self_and_cross_modality():
    labels = torch.tensor([0, 0, 1, 1])
    modalities = torch.tensor([0, 1, 0, 1])
    pos, neg = pair_masks(labels, labels)
    assert pos.tolist() == [
        [False, True, False, False],
        [True, False, False, False],
        [False, False, False, True],
        [False, False, True, False],
    ]
    assert neg.sum() == 8
    pos, neg = pair_masks(labels, labels, modalities, modalities, cross_modality=True)
    assert pos.sum() == 4 and neg.tolist()[0] == [False, False, False, True]
    with pytest.raises(ValueError, match="needs modalities"):
        pair_masks(labels, labels, cross_modality=True)


def test_pairs_round_trip():
    pos = torch.rand(5, 7) > 0.5
    neg = torch.rand(5, 7) > 0.5
    back_pos, back_neg = pairs_to_masks(masks_to_pairs(pos, neg), 5, 7)
    assert torch.equal(back_pos, pos) and torch.equal(back_neg, neg)


@pytest.mark.parametrize("largest", [False, True])
def test_argmin_path_equals_stable_sort_path(largest, monkeypatch):
    import wrim.pairs as utils

    scores = torch.randint(-3, 3, (30, 17)).float()  # many exact ties
    mask = torch.rand(30, 17) > 0.4
    fast = [select_per_row(scores, mask, k, largest) for k in range(1, 9)]
    monkeypatch.setattr(utils, "_ARGMIN_MAX_K", 0)
    for k, expected in zip(range(1, 9), fast):
        assert torch.equal(select_per_row(scores, mask, k, largest), expected)
