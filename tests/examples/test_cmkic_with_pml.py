"""Runs examples/cmkic_with_pml.py --fast (needs the ``pml`` extra)."""

from __future__ import annotations

import math
import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # runs the scripts in examples/

pytest.importorskip("pytorch_metric_learning")

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "cmkic_with_pml.py"


@pytest.mark.parametrize(
    "loss,memory",
    [
        ("ntxent", "0"),
        ("contrastive", "0"),
        pytest.param("ntxent", "128", marks=pytest.mark.slow),
    ],  # + CrossModalityMemory
)
def test_cmkic_with_pml_fast(loss, memory, capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    result = main(["--fast", "--loss", loss, "--memory", memory])
    assert math.isfinite(result["first_loss"]) and math.isfinite(result["last_loss"])
    assert result["last_loss"] < result["first_loss"]
    assert result["rank1_after"] > result["rank1_before"]
    out = capsys.readouterr().out
    assert "final loss" in out and "CrossModalityKeyInstanceMiner(k=2)" in out
