"""Defaults that always build: the GRI head count, the sine-cosine encoding for any width, and the error message."""

from __future__ import annotations

import pytest
import torch

from wrim import GRI, MIIM, ModalityMIIM


def _largest_divisor_up_to_8(dim: int) -> int:
    return max(h for h in range(1, 9) if dim % h == 0)


# the channel counts of issue 11 (convnext_atto 40/320, regnetx_002 24/56/152/368, ghostnet 40/112/160, edgenext 36)
@pytest.mark.parametrize("channels", [40, 60, 100, 200, 36, 56, 152, 368, 112, 2])
def test_miim_builds_with_default_arguments(channels: int) -> None:
    module = MIIM(channels)
    dim = channels // 2
    assert module.gri.num_heads == _largest_divisor_up_to_8(dim)
    assert dim % module.gri.num_heads == 0
    x = torch.randn(2, channels, 6, 3)
    out = module(x)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert ModalityMIIM(channels)(x, torch.tensor([0, 1])).shape == x.shape


def test_paper_widths_keep_eight_heads() -> None:
    """ResNet-50's placements (paper.md §1): C' = 128, 256, 256, 512 all take [N]'s 8 heads."""
    for channels, reduction in ((256, 2), (512, 2), (1024, 4), (2048, 4)):
        assert MIIM(channels, reduction=reduction).gri.num_heads == 8


@pytest.mark.parametrize("dim", [1, 3, 6, 10, 18, 20])
def test_gri_any_width(dim: int) -> None:
    module = GRI(dim)
    assert module.num_heads == _largest_divisor_up_to_8(dim)
    assert module(torch.randn(2, dim, 3, 2)).shape == (2, 6, dim)


def test_explicit_head_count_that_does_not_divide_names_everything() -> None:
    with pytest.raises(ValueError) as info:
        MIIM(40, num_heads=8)
    message = str(info.value)
    for part in ("num_heads=8", "channels // reduction = 40 // 2 = 20", "Valid head counts: 1, 2, 4, 5, 10, 20"):
        assert part in message
