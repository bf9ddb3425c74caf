"""flip_average: wrim's one flip-averaging function (renormalised sum; DEEN's plain sum on request)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wrim.evaluation import flip_average


def _embed(images: torch.Tensor, modalities: torch.Tensor | None) -> torch.Tensor:
    """A left-right asymmetric stand-in model: (B, 3, 4, 6) -> (B, 5), L2-normalised as WRIMNet's eval output."""
    weight = torch.arange(3 * 4 * 6 * 5, dtype=torch.float32).reshape(72, 5).sin()
    out = images.flatten(1) @ weight  # (B, 5)
    if modalities is not None:
        out = out + modalities[:, None].float()
    return F.normalize(out, dim=1)


def test_renormalised_and_deen_sum_against_two_separate_passes():
    images = torch.randn(3, 3, 4, 6)
    modalities = torch.tensor([0, 1, 1])
    straight = _embed(images, modalities)
    flipped = _embed(torch.flip(images, dims=[3]), modalities)  # the mirror image, computed independently
    deen = flip_average(_embed, images, modalities, renormalize=False)
    torch.testing.assert_close(deen, straight + flipped)
    wrim_default = flip_average(_embed, images, modalities)
    torch.testing.assert_close(wrim_default, (straight + flipped) / (straight + flipped).norm(dim=1, keepdim=True))
    assert not torch.allclose(deen.norm(dim=1), torch.ones(3))  # the sum's norm varies: it changes a dot ranking


def test_one_forward_pass_on_twice_the_batch():
    calls = []

    def counting(images: torch.Tensor, modalities: torch.Tensor | None) -> torch.Tensor:
        calls.append((images.shape[0], None if modalities is None else modalities.tolist()))
        return _embed(images, modalities)

    flip_average(counting, torch.randn(2, 3, 4, 6), torch.tensor([0, 1]))
    assert calls == [(4, [0, 1, 0, 1])]
    flip_average(counting, torch.randn(2, 3, 4, 6))
    assert calls[-1] == (4, None)
