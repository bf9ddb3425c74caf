"""README's first command: ``wrim train`` on the synthetic default trains, evaluates and beats an R1 floor.

Measured (synthetic generator v5: 40 train ids, 64x32; 8 epochs; 10 gallery trials): R1 26.12, mAP 30.87,
mINP 21.64; ``wrim train`` took 137 s wall on an otherwise idle 2-core machine, synthetic set generation included
(docs/performance.md#the-main-job has the earlier figures and why they moved). It runs in the default suite so
that CI checks the main job every time.
"""

import json

from wrim.cli import main

# The floor, from chance (not from the measured value). The protocol is SYSU-MM01 all-search single-shot on the
# synthetic set's 30 test identities: each query (an infrared image) is ranked against one image per identity and
# visible camera that sees it; every identity is seen by the same distribution of visible cameras, so an embedding
# that carries no identity information puts a query's own identity first with probability ~1/30 (the cam3 -> cam2
# rule drops cameras for every identity alike): chance R1 = 100 / 30 = 3.3 %. Its spread over the ~290 queries is
# at most that of 30 independent identities (queries of one identity fully correlated), sqrt(p (1 - p) / 30) = 3.3
# points. Three times chance, 10 %, is 2 of those worst-case deviations above chance and ~6 deviations of
# independent queries (sqrt(p (1 - p) / 290) = 1.05 points): a run that learned nothing does not reach it.
CHANCE_R1 = 100.0 / 30
R1_FLOOR = 3 * CHANCE_R1


def test_synthetic_default_reaches_r1_floor(tmp_path, capsys):
    assert main(["train", f"output_dir={tmp_path}", "run_name=default"]) == 0
    out = capsys.readouterr().out
    assert "R1" in out and "mAP" in out and "mINP" in out
    final = json.loads((tmp_path / "default" / "final_metrics.json").read_text())
    assert final["R1"] >= R1_FLOOR, final
