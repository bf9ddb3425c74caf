"""Runs examples/train_vireid.py --fast: one short epoch on a tiny synthetic set, then the SYSU protocol."""

import math
import runpy
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_vireid.py"


def test_train_vireid_fast():
    main = runpy.run_path(str(SCRIPT))["main"]
    result = main(["--fast"])
    assert math.isfinite(result["loss"])
    for key in ("R1", "mAP", "mINP"):
        assert 0.0 <= result[key] <= 100.0
