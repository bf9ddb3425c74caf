"""Runs examples/swap_backbone.py --fast: WRIMNet on convnext_atto and vit_tiny_patch16_224, random images."""

import math
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # runs the scripts in examples/

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "swap_backbone.py"


def test_swap_backbone_fast(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    results = main(["--fast"])
    assert set(results) == {"convnext_atto", "vit_tiny_patch16_224"}
    # test embedding: BNNeck features of p5_global, two P5 strips and p4_global
    assert results["convnext_atto"]["embedding_dim"] == 3 * 320 + 160
    assert results["vit_tiny_patch16_224"]["embedding_dim"] == 4 * 192
    for result in results.values():
        assert math.isfinite(result["first_loss"]) and math.isfinite(result["last_loss"])
        assert abs(result["embedding_norm"] - 1) < 1e-4
    out = capsys.readouterr().out
    assert "| miim1 |" in out and "convnext_atto: 3 steps" in out
