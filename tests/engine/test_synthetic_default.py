"""README's first command: ``wrim train`` on the synthetic default trains, evaluates and beats an R1 floor.

Measured on 2 shared CPU cores (see the engine's closing note): the floor below is set well under that value so
that seeds / platforms do not make the test flaky, and well above chance (30 test identities: ~3 % R1).
"""

import json

import pytest

from wrim.engine.cli import main

R1_FLOOR = 10.0


@pytest.mark.slow
def test_synthetic_default_reaches_r1_floor(tmp_path, capsys):
    assert main(["train", f"output_dir={tmp_path}", "run_name=default"]) == 0
    out = capsys.readouterr().out
    assert "R1" in out and "mAP" in out and "mINP" in out
    final = json.loads((tmp_path / "default" / "final_metrics.json").read_text())
    assert final["R1"] >= R1_FLOOR, final
