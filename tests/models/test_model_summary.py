"""summary(): per-stage / per-MIIM parameters and FLOPs, checked against direct counts."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from wrim.models import WRIMNet, create_model, summary

SIZE = (64, 32)


def _gflops(fn, *args) -> float:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn(*args)
    return counter.get_total_flops() / 1e9


@pytest.fixture(scope="module")
def models() -> tuple[WRIMNet, WRIMNet]:
    wrimnet = create_model("wrimnet_resnet18", num_classes=4, img_size=SIZE).eval()
    baseline = create_model("baseline_resnet18", num_classes=4, img_size=SIZE).eval()
    return wrimnet, baseline


@pytest.mark.needs(torch="2.4")
def test_rows_and_totals(models) -> None:
    wrimnet, baseline = models
    result = summary(wrimnet)
    names = [row.name for row in result.rows]
    assert names == ["stage1", "miim1", "stage2", "miim2", "stage3", "miim3", "stage4", "miim4", "heads"]
    rows = {row.name: row for row in result.rows}
    assert result.total.params == sum(p.numel() for p in wrimnet.parameters())
    assert result.backbone_total.params == sum(p.numel() for p in wrimnet.backbone.parameters())
    assert result.miim_total.params == sum(p.numel() for p in wrimnet.miims.parameters())
    assert rows["miim1"].params == sum(p.numel() for p in wrimnet.miims["stage1"].parameters())
    # the whole forward pass is attributed to some row
    images = torch.zeros(2, 3, *SIZE)
    total = _gflops(lambda x, m: wrimnet(x, m, num_visible=1), images, torch.tensor([0, 1])) / 2
    assert result.total.gflops == pytest.approx(total, rel=1e-6)
    unsplit = summary(wrimnet, split_by_modality=False)
    assert unsplit.total.gflops == pytest.approx(_gflops(wrimnet, images, torch.tensor([0, 1])) / 2, rel=1e-6)

    plain = summary(baseline)
    assert [row.name for row in plain.rows] == ["stage1", "stage2", "stage3", "stage4", "heads"]
    plain_rows = {row.name: row for row in plain.rows}
    for index in range(1, 5):
        assert rows[f"stage{index}"] == plain_rows[f"stage{index}"]
    assert plain.miim_total.params == 0 and plain.miim_total.gflops == 0
    table = str(result)
    assert "| miim4 |" in table and "backbone (stages 1-4)" in table and "resnet18 at 64x32" in table


@pytest.mark.needs(torch="2.4")
def test_counts_match_direct_counts(models) -> None:
    wrimnet, _ = models
    result = summary(wrimnet, img_size=(128, 64))
    rows = {row.name: row for row in result.rows}
    assert result.img_size == (128, 64)
    with torch.no_grad():
        maps = wrimnet.backbone(torch.zeros(1, 3, 128, 64), torch.tensor([0]))  # after the MIIMs
    wrimnet.backbone.set_block(4, None)  # layer4 alone, without the MIIM hooked after it
    try:
        assert rows["stage4"].gflops == pytest.approx(_gflops(wrimnet.backbone.model.layer4, maps[2]))
    finally:
        wrimnet.backbone.set_block(4, wrimnet.miims["stage4"])
    assert rows["miim4"].gflops == pytest.approx(_gflops(wrimnet.miims["stage4"], maps[3]))
    # split by modality (the default), each sample runs through one copy of a ModalityMIIM; in the any-order
    # formulation both copies compute their gates for every sample
    one = _gflops(wrimnet.miims["stage1"].visible, maps[0])
    assert rows["miim1"].gflops == pytest.approx(one)
    both = one + _gflops(wrimnet.miims["stage1"].infrared, maps[0])
    unsplit = {row.name: row for row in summary(wrimnet, img_size=(128, 64), split_by_modality=False).rows}
    assert unsplit["miim1"].gflops == pytest.approx(both)


@pytest.mark.needs(torch="2.4")
def test_split_removes_the_discarded_copys_flops() -> None:
    """wrimnet_resnet50 at 288x144: the separate MIIMs (stages 1, 2) cost one copy per image instead of two.

    The two copies have the same shapes, and only the gate (compression conv, GRI, restore) is counted, so the
    split rows are exactly half the any-order rows; the shared MIIMs (stages 3, 4) are unchanged.
    """
    model = create_model("wrimnet_resnet50", num_classes=4).eval()
    split = {row.name: row.gflops for row in summary(model, img_size=(288, 144)).rows}
    both = {row.name: row.gflops for row in summary(model, img_size=(288, 144), split_by_modality=False).rows}
    for name in ("miim1", "miim2"):
        assert split[name] == pytest.approx(both[name] / 2, rel=1e-9), name
    for name in ("stage1", "stage2", "stage3", "stage4", "miim3", "miim4", "heads"):
        assert split[name] == pytest.approx(both[name], rel=1e-9), name
    saved = (both["miim1"] + both["miim2"]) / 2
    assert saved == pytest.approx(0.499, abs=0.001)  # of 2.272 MIIM GFLOPs per image (docs/performance.md)


def test_flops_before_torch_2_4_are_nan_with_a_warning(models, monkeypatch) -> None:
    """torch 2.3's FlopCounterMode also counts a MIIM inside the stage it is hooked to: no per-row FLOPs there."""
    wrimnet, _ = models
    monkeypatch.setattr(torch, "__version__", "2.3.1+cu121")
    with pytest.warns(UserWarning, match=r"FLOPs per row need torch>=2.4 \(installed 2.3.1\+cu121\)"):
        result = summary(wrimnet)
    assert all(math.isnan(row.gflops) for row in result.rows)
    assert result.total.params == sum(p.numel() for p in wrimnet.parameters())


def test_summary_restores_training_mode(models) -> None:
    wrimnet, _ = models
    wrimnet.train()
    summary(wrimnet)
    assert wrimnet.training
    wrimnet.eval()
    with pytest.raises(TypeError, match="WRIMNet"):
        summary(torch.nn.Linear(2, 2))
