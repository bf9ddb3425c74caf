"""CMKIC + AICL under torch.compile(fullgraph=True): same values as eager, and unknown modality ids are errors."""

from __future__ import annotations

import pytest
import torch
from losses_loop_reference import cmkic_reference

from wrim.losses import AICLLoss, CMKICLoss


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(4)
    modalities = torch.tensor([0, 0, 1, 1] * 4)
    return torch.randn(16, 12, generator=g), torch.randn(16, 8, generator=g), labels, modalities


def test_unknown_modality_id_is_an_error_eagerly():
    p5, p4, labels, modalities = _batch()
    bad = modalities.clone()
    bad[3] = 2
    with pytest.raises(ValueError, match=r"wrim.VISIBLE \(0\) or wrim.INFRARED \(1\); found \[2\]"):
        CMKICLoss()(p5, labels, modalities=bad)
    with pytest.raises(ValueError, match="found \\[2\\]"):
        AICLLoss()(p5, p4, labels, modalities=bad)


@pytest.mark.needs_compile
@pytest.mark.slow
def test_cmkic_and_aicl_fullgraph_compile_match_eager_and_reject_unknown_ids():
    p5, p4, labels, modalities = _batch()
    aicl = AICLLoss(CMKICLoss(k=2, temperature=0.1), p5_weight=1.0, p4_weight=0.5, p5_keys_from_p4=True)

    def step(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return aicl(a, b, y, modalities=m)

    eager = step(p5, p4, labels, modalities)
    compiled = torch.compile(step, fullgraph=True)
    out = compiled(p5, p4, labels, modalities)
    torch.testing.assert_close(out, eager)
    ref = cmkic_reference(p5, labels, modalities, 2, 0.1, select_embeddings=p4) + 0.5 * cmkic_reference(
        p4, labels, modalities, 2, 0.1
    )
    assert out.item() == pytest.approx(ref, rel=1e-4)
    bad = modalities.clone()
    bad[3] = 2
    with pytest.raises(RuntimeError, match="wrim.VISIBLE"):
        compiled(p5, p4, labels, bad)
    cmkic = torch.compile(CMKICLoss(), fullgraph=True)
    torch.testing.assert_close(cmkic(p5, labels, modalities=modalities), CMKICLoss()(p5, labels, modalities=modalities))
    with pytest.raises(RuntimeError, match="wrim.VISIBLE"):
        cmkic(p5, labels, modalities=bad)
