"""Runs examples/train_vireid.py --fast: one short epoch on a tiny synthetic set, then the SYSU protocol."""

import math
import runpy
from pathlib import Path

import pytest

from tests.metric_bounds import assert_metric_bounds

pytestmark = pytest.mark.repo  # runs the scripts in examples/

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "train_vireid.py"


def test_train_vireid_fast():
    main = runpy.run_path(str(SCRIPT))["main"]
    result = main(["--fast"])
    assert math.isfinite(result["loss"])
    assert_metric_bounds(result, num_test_ids=8)  # --fast: SyntheticVIReID(num_test_ids=8)
