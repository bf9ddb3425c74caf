"""Runs examples/miim_in_your_model.py --fast with a torchvision and a timm ResNet."""

import math
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # runs the scripts in examples/

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "miim_in_your_model.py"


@pytest.mark.parametrize("backbone", ["torchvision", "timm"])
def test_miim_in_your_model_fast(backbone, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    result = main(["--fast", "--backbone", backbone])
    assert result["num_miim"] == 4
    assert math.isfinite(result["first_loss"]) and math.isfinite(result["last_loss"])
    assert "4 MIIMs" in capsys.readouterr().out
