"""``wrim eval`` evaluates as the trainer's final evaluation does: same precision, trials, protocol and numbers."""

import json

import pytest

from tests.engine._tiny import tiny_overrides
from wrim.cli import main


def test_eval_equals_final_metrics_under_bf16_autocast(tmp_path, capsys):
    """A bf16 run (autocast on the CPU too) gives the same numbers in final_metrics.json and ``wrim eval``: an
    fp32 ``wrim eval`` (the defect of issue 32) embeds differently and disagrees."""
    overrides = ["epochs=1", "data.num_workers=0", "amp=bf16", "eval.final_trials=[0,1]"]
    overrides = tiny_overrides(tmp_path, "bf16", *overrides)
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
        # the protocol averages float32 metrics (in %, <= 100): one float32 rounding, 100 * 2**-24 < 1e-5
        assert report["mean"][key] == pytest.approx(sum(values) / 2, abs=1e-5)
        assert report["std"][key] == pytest.approx(abs(values[0] - values[1]) / 2**0.5, abs=1e-5)

    assert main([*args, "--amp", "none"]) == 0  # fp32 embeddings of the same weights: the old behaviour
    table = capsys.readouterr().out.splitlines()
    assert "flip off, fp32," in table[0] and table[-1].startswith(" mean") and "±" in table[-1]
    assert table[1].startswith("weights ") and [line.split()[0] for line in table[3:-1]] == ["0", "1"]

    # wrim search with the same run: infrared queries of one person against a visible camera's folders
    from wrim.data import SyntheticVIReID

    root = SyntheticVIReID(num_ids=16, num_test_ids=8, images_per_camera=2).root  # the run's cached set
    pid = sorted(p.name for p in (root / "cam3").iterdir())[-1]
    search = ["search", "--checkpoint", str(tmp_path / "bf16"), "--query", str(root / "cam3" / pid)]
    search += ["--query-modality", "infrared", "--gallery", str(root / "cam1"), "--gallery-modality", "visible"]
    assert main([*search, "--top", "3", "--out", str(tmp_path / "search")]) == 0
    rows = (tmp_path / "search" / "ranking.csv").read_text().splitlines()
    queries = len(list((root / "cam3" / pid).iterdir()))
    assert rows[0] == "query,rank,gallery,distance" and len(rows) == 1 + queries * 3  # top 3 of each query
    assert [float(r.split(",")[3]) for r in rows[1:4]] == sorted(float(r.split(",")[3]) for r in rows[1:4])
    assert all(r.split(",")[2].startswith(str(root / "cam1")) for r in rows[1:])
    if (tmp_path / "search" / "ranklist.png").exists():
        assert (tmp_path / "search" / "ranklist.png").read_bytes()[:4] == b"\x89PNG"


def test_a_last_weights_run_is_carded_and_evaluated_as_last(tmp_path, capsys):
    """``eval.final_checkpoint=last``: the card says ``last`` with no test-trial selection, even where the last set
    is also the best, and ``wrim eval`` of the run folder evaluates those weights, as final_metrics.json did."""
    overrides = ["epochs=2", "eval.every=1", "data.num_workers=0", "eval.final_trials=[0]"]
    overrides.append("eval.final_checkpoint=last")
    assert main(["train", "--config", "synthetic", *tiny_overrides(tmp_path, "last", *overrides)]) == 0
    run = tmp_path / "last"
    final = json.loads((run / "final_metrics.json").read_text())
    assert final["card"]["checkpoint"] == {"tag": "last", "epoch": 2}
    assert json.loads((run / "last.json").read_text())["set"] in final["weights"]
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--dataset", "synthetic", "--num-workers", "0", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["card"]["checkpoint"] == final["card"]["checkpoint"]
    for key in ("R1", "mAP", "mINP"):
        assert report["mean"][key] == pytest.approx(final[key], abs=1e-9), key
