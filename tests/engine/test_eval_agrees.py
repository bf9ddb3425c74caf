"""``wrim eval`` evaluates as the trainer's final evaluation does: same precision, trials, protocol and numbers."""

import json

import pytest

from tests.engine._tiny import tiny_overrides
from wrim.engine.cli import main


def test_eval_equals_final_metrics_under_bf16_autocast(tmp_path, capsys):
    """A bf16 run (autocast on the CPU too) gives the same numbers in final_metrics.json and ``wrim eval``: an
    fp32 ``wrim eval`` (the defect of issue 32) embeds differently and disagrees."""
    overrides = tiny_overrides(tmp_path, "bf16", "epochs=1", "data.num_workers=0", "amp=bf16", "eval.final_trials=[0,1]")
    assert main(["train", "--config", "synthetic", *overrides]) == 0
    final = json.loads((tmp_path / "bf16" / "final_metrics.json").read_text())
    capsys.readouterr()

    args = ["eval", "--checkpoint", str(tmp_path / "bf16"), "--dataset", "synthetic", "--num-workers", "0"]
    assert main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["precision"] == "bfloat16 autocast" and report["trials"][1]["trial"] == 1
    for key in ("R1", "R5", "R10", "R20", "mAP", "mINP"):
        assert report["mean"][key] == pytest.approx(final[key], abs=1e-9), key
        values = [t[key] for t in report["trials"]]
        assert report["mean"][key] == pytest.approx(sum(values) / 2, abs=1e-9)
        assert report["std"][key] == pytest.approx(abs(values[0] - values[1]) / 2**0.5, abs=1e-9)

    assert main([*args, "--amp", "none"]) == 0  # fp32 embeddings of the same weights: the old behaviour
    table = capsys.readouterr().out.splitlines()
    assert "(fp32, flip False" in table[0] and table[-1].startswith(" mean") and "±" in table[-1]
    assert [line.split()[0] for line in table[2:-1]] == ["0", "1"]
