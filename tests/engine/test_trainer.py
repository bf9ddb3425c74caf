"""Tests of the training loop: exact resume on the CPU, NaN/inf stop with the last good checkpoint, run folder."""

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from tests.engine._tiny import tiny_overrides
from wrim.engine import NonFiniteLossError, Trainer, load_config
from wrim.engine.checkpoint import load_checkpoint, read_pointer

TIME_KEYS = ("img_per_s", "epoch_time_s")


def _records(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIME_KEYS} for x in lines]


def _weights(run_dir, tag):
    return run_dir / read_pointer(run_dir, tag)["set"] / "model.safetensors"


def test_resume_gives_identical_weights_and_metrics(tmp_path, monkeypatch):
    """2 epochs straight == interrupted during epoch 2, then --resume: same weights bit for bit, same metrics."""
    extra = ("epochs=2", "eval.every=1", "data.num_workers=2")
    full = Trainer(load_config("synthetic", tiny_overrides(tmp_path, "full", *extra))).fit()

    original = Trainer.train_epoch

    def interrupted(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt  # killed at the start of the second epoch
        return original(self, epoch)

    monkeypatch.setattr(Trainer, "train_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Trainer(load_config("synthetic", tiny_overrides(tmp_path, "split", *extra))).fit()
    assert load_checkpoint(tmp_path / "split", "last")["epoch"] == 1
    monkeypatch.setattr(Trainer, "train_epoch", original)
    result = Trainer(load_config("synthetic", tiny_overrides(tmp_path, "split", *extra)), resume=True).fit()

    a = load_file(_weights(full.run_dir, "last"))
    b = load_file(_weights(result.run_dir, "last"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert _records(full.run_dir) == _records(result.run_dir)
    assert full.metrics == result.metrics
    state_a = load_checkpoint(full.run_dir, "last")
    state_b = load_checkpoint(result.run_dir, "last")
    assert state_a["epoch"] == state_b["epoch"] == 2
    assert state_a["scheduler"]["last_epoch"] == state_b["scheduler"]["last_epoch"]


def test_nan_loss_stops_with_clear_error_and_keeps_last_checkpoint(tmp_path, monkeypatch):
    from wrim.losses import AICLLoss

    calls = {"n": 0}
    original = AICLLoss.compute_loss  # what WRIMNetLoss calls after checking its input once

    def poisoned(self, p5, p4, labels, modalities):
        total = original(self, p5, p4, labels, modalities)
        calls["n"] += 1
        if calls["n"] > trainer.iters_per_epoch + 2:  # the third step of the second epoch
            self.terms = dict(self.terms, cmkic_p5=self.terms["cmkic_p5"] * float("nan"))
            total = total * float("nan")
        return total

    cfg = load_config("synthetic", tiny_overrides(tmp_path, "nan", "epochs=3", "data.num_workers=0", "eval.every=0"))
    trainer = Trainer(cfg)
    monkeypatch.setattr(AICLLoss, "compute_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 2 .*cmkic_p5 = nan.*after epoch 1"):
        trainer.fit()
    state = load_checkpoint(tmp_path / "nan", "last")
    assert state["epoch"] == 1
    weights = load_file(_weights(tmp_path / "nan", "last"))
    assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point())
    records = _records(tmp_path / "nan")
    assert [r["epoch"] for r in records] == [1] and math.isfinite(records[0]["loss"])
