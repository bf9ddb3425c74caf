"""Tests of the ``wrim`` command line: train (1 tiny epoch), eval of its checkpoint, synth, errors, ``-m wrim``."""

import json
import runpy
import sys

import pytest
import torch

from tests.engine._tiny import DATASET_ARGS, tiny_overrides
from tests.metric_bounds import assert_metric_bounds
from wrim.cli import build_parser, main


def test_train_then_eval_checkpoint(tmp_path, capsys):
    assert (
        main(["train", "--config", "synthetic", *tiny_overrides(tmp_path, "cli", "epochs=1", "data.num_workers=0")])
        == 0
    )
    out = capsys.readouterr().out
    assert "final (" in out and "R1" in out and "mAP" in out and "mINP" in out
    run_dir = tmp_path / "cli"
    names = {p.name for p in run_dir.iterdir()}
    expected = {"config.yaml", "model.json", "metrics.csv", "metrics.jsonl", "train.log", "final_metrics.json"}
    assert expected | {"last.json", "best.json", "checkpoints"} <= names
    last = run_dir / json.loads((run_dir / "last.json").read_text())["set"]
    assert {p.name for p in last.iterdir()} == {"model.safetensors", "state.pt", "manifest.json"}
    state = torch.load(last / "state.pt", weights_only=True)  # no arbitrary pickles
    assert state["epoch"] == 1 and "optimizer" in state and "rng" in state
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "loss", "id", "metric", "cmkic_p5", "R1", "mAP", "mINP"} <= set(header)
    final = json.loads((run_dir / "final_metrics.json").read_text())
    assert_metric_bounds(final, num_test_ids=8)  # the tiny set of _tiny.py

    checkpoint = tmp_path / "cli"  # the run folder: its best checkpoint
    args = [
        "eval",
        "--checkpoint",
        str(checkpoint),
        "--dataset",
        "synthetic",
        *DATASET_ARGS,
        "--trials",
        "0",
        "--num-workers",
        "0",
    ]
    assert main([*args, "mode=all", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [t["trial"] for t in report["trials"]] == [0] and report["std"]["R1"] is None  # one trial: no spread
    assert report["mean"]["R1"] == pytest.approx(final["R1"], abs=0.01)
    assert report["mean"]["mAP"] == pytest.approx(final["mAP"], abs=0.01)


def test_fresh_run_does_not_overwrite_a_checkpointed_folder(tmp_path, capsys):
    run = tmp_path / "taken"
    run.mkdir()
    (run / "last.json").write_text('{"set": "checkpoints/e0001-0", "epoch": 1}')
    assert main(["train", *tiny_overrides(tmp_path, "taken", "epochs=1")]) == 2
    assert "pass --resume" in capsys.readouterr().err


def test_resume_flag_needs_a_checkpoint(tmp_path, capsys):
    assert main(["train", "--resume", *tiny_overrides(tmp_path, "nothing", "epochs=1")]) == 2
    assert "holds no checkpoint" in capsys.readouterr().err


def test_unknown_key_is_a_clear_error(capsys):
    assert main(["train", "optim.learning_rate=0.1"]) == 2
    err = capsys.readouterr().err
    assert "unknown config key 'optim.learning_rate'" in err and "'lr'" in err


def test_synth_writes_sysu_layout(tmp_path, capsys):
    assert main(["synth", "--out", str(tmp_path / "synth"), "--num-ids", "6"]) == 0
    assert "6 training identities" in capsys.readouterr().out
    assert (tmp_path / "synth" / "exp" / "train_id.txt").is_file()
    assert sorted(p.name for p in (tmp_path / "synth").glob("cam*")) == [f"cam{i}" for i in range(1, 7)]


def test_parser_subcommands():
    parser = build_parser()
    assert parser.parse_args(["train"]).config == "synthetic"
    assert parser.parse_args(["train", "--resume"]).resume is True
    assert parser.parse_args(["bench", "--quick"]).quick is True
    assert parser.parse_args(["bench", "step", "--device", "cpu"]).options == ["--device", "cpu"]
    with pytest.raises(SystemExit):
        parser.parse_args(["eval"])  # --checkpoint and --dataset are required


def test_python_dash_m_wrim(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["wrim", "train", "epochs=abc"])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("wrim", run_name="__main__")
    assert exit_info.value.code == 2
    assert "epochs must be an integer" in capsys.readouterr().err


def test_bench_rejects_unknown_names(capsys):
    assert main(["bench", "no_such_bench"]) == 2
    assert "available" in capsys.readouterr().err
