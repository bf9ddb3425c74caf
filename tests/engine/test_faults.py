"""Fault injection: kills by pid inside training and inside checkpoint writes, a full disk, two runs on one folder,
a diverging run, bad configs and damaged files. Each fault must leave a run that resumes to exactly the weights and
metrics of an uninterrupted run, or stop with one line and exit code 2 naming the key or the file.

Faults are injected at controlled points (``_fault_driver.py`` wraps the checkpoint writer, the pointer update,
evaluation and the loss), so the timing is deterministic. The runs are tiny (8 identities, a 0.5 M-parameter
WRIM-Net on timm's ``test_resnet``, 2 epochs); the kill matrix is marked slow.
"""

import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tests.engine._tiny import FAULT, wrimnet_test_tiny
from wrim.cli import main
from wrim.engine import checkpoint
from wrim.engine.checkpoint import (
    CheckpointError,
    clean_stale_temporaries,
    load_checkpoint,
    prune_checkpoints,
    publish_checkpoint,
    read_pointer,
    save_checkpoint,
)
from wrim.engine.rundir import RunFolder, RunLock, RunLockedError, is_run_of, new_run_name
from wrim.models import _registry, load_weights

DRIVER = Path(__file__).with_name("_fault_driver.py")
TIME_KEYS = ("img_per_s", "epoch_time_s")


@pytest.fixture
def tiny_model(monkeypatch):
    monkeypatch.setitem(_registry._ENTRYPOINTS, "wrimnet_test_tiny", wrimnet_test_tiny)


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8))


def _save(run_dir: Path, epoch: int, seed: int = 0) -> Path:
    set_dir = save_checkpoint(run_dir, _net(seed), {"epoch": epoch, "x": torch.arange(3)})
    publish_checkpoint(run_dir, "last", set_dir, epoch=epoch)
    return set_dir


def _one_line_error(capsys) -> str:
    """The CLI's error: exactly one ``wrim ...: error`` line, the last on stderr (log lines of a run come before)."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("wrim ")]
    assert len(errors) == 1 and lines[-1] == errors[0], lines
    return errors[0]


# ---------------------------------------------------------------- checkpoint sets (no training)


def test_checkpoint_set_roundtrip_and_fallback_to_the_previous_complete_set(tmp_path, caplog):
    first = _save(tmp_path, 1, seed=1)
    second = _save(tmp_path, 2, seed=2)
    manifest = json.loads((second / "manifest.json").read_text())
    assert manifest["epoch"] == 2 and set(manifest["files"]) == {"model.safetensors", "state.pt"}
    umask = os.umask(0)
    os.umask(umask)
    assert (second / "state.pt").stat().st_mode & 0o777 == 0o666 & ~umask  # not 0600 whatever the umask
    net = _net(9)
    state = load_checkpoint(tmp_path, "last", net)
    assert state["epoch"] == 2 and torch.equal(net[0].weight, _net(2)[0].weight)

    with open(second / "state.pt", "r+b") as f:  # truncated by a crash of the disk or a copy
        f.truncate(100)
    state = load_checkpoint(tmp_path, "last", net)
    assert state["epoch"] == 1 and Path(state["checkpoint_set"]) == first
    assert torch.equal(net[0].weight, _net(1)[0].weight)
    assert "falling back" in caplog.text and "state.pt" in caplog.text
    with pytest.raises(CheckpointError, match="no 'best' checkpoint"):
        load_checkpoint(tmp_path, "best")


def test_full_disk_names_the_disk_and_bytes_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    _save(tmp_path, 1, seed=1)
    original = checkpoint._write_file

    def full(path, write):
        if path.name == "state.pt":
            raise OSError(errno.ENOSPC, "No space left on device")
        original(path, write)

    monkeypatch.setattr(checkpoint, "_write_file", full)
    with pytest.raises(CheckpointError, match=r"disk full: the checkpoint needs [\d.]+ MB .* mounted at .* free"):
        _save(tmp_path, 2, seed=2)
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))  # the half-written set is removed
    assert load_checkpoint(tmp_path, "last")["epoch"] == 1

    monkeypatch.setattr(checkpoint, "_write_file", original)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10**9, 10**9, 10))
    with pytest.raises(CheckpointError, match="0.0 MB are free"):  # checked before anything is written
        _save(tmp_path, 2)
    assert not list((tmp_path / "checkpoints").glob(".tmp-*"))


def test_stale_temporaries_are_cleaned_and_old_sets_pruned(tmp_path):
    sets = [_save(tmp_path, e) for e in (1, 2, 3, 4)]
    publish_checkpoint(tmp_path, "best", sets[0], epoch=1, R1=50.0)
    (tmp_path / "checkpoints" / ".tmp-abc").mkdir()
    (tmp_path / ".last.json.xyz.tmp").write_text("")
    removed = clean_stale_temporaries(tmp_path)
    assert {p.name for p in removed} == {".tmp-abc", ".last.json.xyz.tmp"}
    prune_checkpoints(tmp_path, keep=2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == sorted(s.name for s in (sets[0], *sets[2:]))
    assert read_pointer(tmp_path, "best")["set"].endswith(sets[0].name)


# ---------------------------------------------------------------- one run per folder


def test_run_names_are_unique_and_matched_exactly():
    a, b = new_run_name("synthetic"), new_run_name("synthetic")
    assert is_run_of(a, "synthetic") and str(os.getpid()) in a
    assert not is_run_of("synthetic_big-20261127-120000-000001-42", "synthetic")
    time.sleep(1e-5)
    assert a != new_run_name("synthetic") or a != b


def test_second_run_on_a_locked_folder_exits_2_naming_the_holder(tmp_path, capsys):
    run = tmp_path / "busy"
    run.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from wrim.engine.rundir import RunLock; "
         "RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(60)", str(run)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            RunLock(run).acquire()
        assert main(["train", *FAULT, f"output_dir={tmp_path}", "run_name=busy"]) == 2
        err = _one_line_error(capsys)
        assert f"in use by another wrim run (pid {holder.pid})" in err
    finally:
        holder.kill()
        holder.wait()
    lock = RunLock(run)  # the kernel released the dead holder's lock
    lock.acquire()
    lock.release()


# ---------------------------------------------------------------- bad configs and files: one line, exit 2

BAD_OVERRIDES = [
    ("optim.clip_grad_norm=-1", "optim.clip_grad_norm must be > 0"),
    ("optim.clip_grad_norm=0", "optim.clip_grad_norm must be > 0"),
    ("loss.label_smoothing=2", "loss.label_smoothing must be < 1"),
    ("log_every=0", "log_every must be >= 1"),
    ("data.random_erasing=5", "data.random_erasing must be <= 1"),
    ("device=tpu", "device='tpu' is not allowed"),
    ("optim.lr=-1", "optim.lr must be > 0"),
    ("eval.batch_size=0", "eval.batch_size must be >= 1"),
    ("eval.protocol={modes: all}", "eval.protocol has key(s) ['modes']"),
    ("model.kwargs.bogus=1", "model.kwargs has key(s) ['bogus']"),
    ("data.dataset_kwargs.bogus=1", "data.dataset_kwargs has key(s) ['bogus']"),
    ("run_name=", "run_name='' is not allowed"),
    ("eval.protocol={mode: ", "eval.protocol: cannot parse"),
]


@pytest.mark.parametrize(("override", "message"), BAD_OVERRIDES)
def test_bad_override_is_one_line_exit_2_naming_the_key(tmp_path, capsys, override, message):
    assert main(["train", f"output_dir={tmp_path}", override]) == 2
    assert message in _one_line_error(capsys)
    assert not any(tmp_path.iterdir())  # no run folder for a config that never started


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("epochs: 2\noptim:\n  lr: [1,\n", r"bad\.yaml:4:1: YAML error"),
        ("epochs: 2\nepochs: 3\n", r"bad\.yaml:2:1: YAML error: duplicate key 'epochs' \(first at line 1\)"),
    ],
)
def test_yaml_errors_name_file_line_and_column(tmp_path, capsys, text, message):
    (tmp_path / "bad.yaml").write_text(text)
    assert main(["train", "--config", str(tmp_path / "bad.yaml")]) == 2
    assert re.search(message, _one_line_error(capsys))


def test_cli_argument_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["synth", "--out", str(tmp_path / "file")]) == 2
    assert "is a file" in _one_line_error(capsys)
    run = tmp_path / "run"
    _save(run, 1)
    (run / "model.json").write_text(json.dumps({"model": "wrimnet_resnet18", "num_classes": 8, "img_size": [64, 32]}))
    assert main(["eval", "--checkpoint", str(run), "--dataset", "synthetic", "--img-size", "64x"]) == 2
    assert "--img-size must be H,W" in _one_line_error(capsys)


def test_damaged_files_are_named(tmp_path, capsys):
    run = tmp_path / "run"
    set_dir = _save(run, 1)
    (run / "model.json").write_text(json.dumps({"model": "wrimnet_resnet18", "num_classes": 8, "img_size": [64, 32]}))
    with pytest.raises(ValueError, match="is a folder"):
        load_weights(_net(), run)
    with pytest.raises(ValueError, match=r"state\.pt is not a readable \.safetensors file"):
        load_weights(_net(), set_dir / "state.pt")
    assert main(["eval", "--checkpoint", str(set_dir / "state.pt"), "--dataset", "synthetic"]) == 2
    assert "state.pt" in _one_line_error(capsys)
    (set_dir / "model.safetensors").write_bytes(b"\x00" * 10)
    assert main(["eval", "--checkpoint", str(run), "--dataset", "synthetic"]) == 2
    err = _one_line_error(capsys)
    assert "model.safetensors' is damaged" in err and "no complete 'last' checkpoint" in err


def test_resume_rejects_structural_changes_without_touching_the_run(tmp_path, capsys):
    run = tmp_path / "run"
    _save(run, 1)
    assert main(["train", "--resume", str(run)]) == 2  # no config.yaml: not a run folder
    assert "config.yaml" in _one_line_error(capsys)
    from wrim.engine import load_config, save_config

    save_config(load_config("synthetic", FAULT), run / "config.yaml")
    before = (run / "config.yaml").read_text()
    assert main(["train", "--resume", str(run), "optim.name=sgd", "data.num_ids=8"]) == 2
    err = _one_line_error(capsys)
    assert "cannot change the run's structure (data.num_ids: 4 -> 8, optim.name: 'adamw' -> 'sgd')" in err
    assert main(["train", "--resume", "optim.lr=1", f"output_dir={tmp_path}", "run_name=run"]) == 2
    assert "optim.lr: 0.001 -> 1.0" in _one_line_error(capsys)  # the override is not read as the run folder
    assert (run / "config.yaml").read_text() == before


def test_a_resume_is_checked_once_and_names_a_model_that_does_not_fit(tmp_path, monkeypatch, tiny_model):
    from wrim.engine import Trainer, resume, trainer
    from wrim.engine.resume import resume_config

    run = tmp_path / "run"
    assert main(["train", *FAULT, f"output_dir={tmp_path}", "run_name=run", "epochs=1"]) == 0
    calls = []

    def counting(original):
        def check(*args, **kwargs):
            calls.append(args[0])
            return original(*args, **kwargs)

        return check

    monkeypatch.setattr(resume, "check_resume", counting(resume.check_resume))
    monkeypatch.setattr(trainer, "check_resume", counting(trainer.check_resume))
    assert main(["train", "--resume", str(run), "epochs=2"]) == 0
    assert len(calls) == 1  # wrim train --resume: one check, the trainer's
    other = wrimnet_test_tiny(num_classes=3, img_size=(64, 32))  # the run has 8 identities
    with pytest.raises(ValueError, match=r"--resume: .*shapes differ.*build the model the run was trained with"):
        Trainer(resume_config(run, ["epochs=3"]), run_dir=run, resume=True, model=other).fit()


# ---------------------------------------------------------------- real runs: kills, full disk, divergence


def _records(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(x).items() if k not in TIME_KEYS} for x in lines]


def _outcome(run_dir: Path) -> tuple[dict, list[dict], dict]:
    weights = load_file(run_dir / read_pointer(run_dir, "last")["set"] / "model.safetensors")
    final = json.loads((run_dir / "final_metrics.json").read_text())
    return weights, _records(run_dir), {k: v for k, v in final.items() if k != "weights"}


def _same(a: tuple, b: tuple) -> bool:
    wa, wb = a[0], b[0]
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa) and a[1:] == b[1:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted tiny run."""
    out = tmp_path_factory.mktemp("reference")
    mp = pytest.MonkeyPatch()
    mp.setitem(_registry._ENTRYPOINTS, "wrimnet_test_tiny", wrimnet_test_tiny)
    try:
        assert main(["train", *FAULT, f"output_dir={out}", "run_name=ref"]) == 0
    finally:
        mp.undo()
    log = (out / "ref" / "train.log").read_text()
    iters = int(log.split(" iters/epoch")[0].rsplit(" ", 1)[1])
    return _outcome(out / "ref"), iters


KILLS = [  # (point, nth occurrence, signal): epoch 2's step 1 needs iters + 2 (filled in below)
    ("step", None, "SIGKILL"),
    ("step", None, "SIGINT"),
    ("weights", 2, "SIGKILL"),
    ("weights", 1, "SIGINT"),
    ("manifest", 2, "SIGKILL"),
    ("publish", 2, "SIGKILL"),
    ("eval", 1, "SIGKILL"),
    ("eval", 2, "SIGINT"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("point", "nth", "sig"), KILLS)
def test_kill_then_resume_matches_the_uninterrupted_run(tmp_path, capsys, reference, tiny_model, point, nth, sig):
    expected, iters = reference
    nth = iters + 2 if nth is None else nth
    args = [*FAULT, f"output_dir={tmp_path}", "run_name=run"]
    killed = subprocess.run([sys.executable, str(DRIVER), point, str(nth), sig, *args], capture_output=True, text=True)
    assert killed.returncode == (-signal.SIGKILL if sig == "SIGKILL" else 130), killed.stderr[-2000:]
    if sig == "SIGINT":
        assert killed.stderr.strip().splitlines()[-1] == "wrim train: interrupted"
    run = tmp_path / "run"
    assert main(["train", "--resume", str(run)]) == 0, capsys.readouterr().err
    assert _same(_outcome(run), expected)
    assert not list(run.glob("checkpoints/.tmp-*"))
    assert main(["train", "--resume", str(run)]) == 0  # finished: says so, re-runs nothing
    assert "already finished" in (run / "train.log").read_text()


def test_a_kill_between_saving_the_first_set_and_publishing_it_resumes(tmp_path, capsys, tiny_model) -> None:
    """Killed after epoch 1's set is complete and before ``last.json`` names it: the resume takes that set (the
    newest complete one), names it ``last``, re-runs epoch 1's evaluation and finishes."""
    args = [*FAULT, f"output_dir={tmp_path}", "run_name=run"]
    killed = subprocess.run([sys.executable, str(DRIVER), "publish", "1", "SIGKILL", *args], capture_output=True)
    run = tmp_path / "run"
    assert killed.returncode == -signal.SIGKILL and not (run / "last.json").exists()
    assert main(["train", "--resume", str(run)]) == 0, capsys.readouterr().err
    assert "resumed" in (run / "train.log").read_text() and (run / "final_metrics.json").is_file()
    assert load_checkpoint(run, "last")["epoch"] == RunFolder(run).read_config().epochs == 2


@pytest.mark.slow
def test_full_disk_during_a_run_then_resume(tmp_path, capsys, reference, monkeypatch, tiny_model):
    original, calls = checkpoint._write_file, {"n": 0}

    def full(path, write):
        if path.name == "state.pt":
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(errno.ENOSPC, "No space left on device")
        original(path, write)

    monkeypatch.setattr(checkpoint, "_write_file", full)
    args = [*FAULT, f"output_dir={tmp_path}", "run_name=run"]
    assert main(["train", *args]) == 2
    err = _one_line_error(capsys)
    assert "disk full" in err and "mounted at" in err and "MB are free" in err
    assert "disk full" in (tmp_path / "run" / "train.log").read_text()
    assert load_checkpoint(tmp_path / "run", "last")["epoch"] == 1
    monkeypatch.setattr(checkpoint, "_write_file", original)
    assert main(["train", "--resume", str(tmp_path / "run")]) == 0
    assert _same(_outcome(tmp_path / "run"), reference[0])


@pytest.mark.slow
def test_diverging_state_is_never_published(tmp_path, capsys, monkeypatch, tiny_model):
    """BatchNorm statistics overflow while the loss stays finite (as with optim.lr=1e6): injected in epoch 2."""
    from wrim.engine.trainer import Trainer

    original = Trainer.train_epoch

    def overflowing(self, epoch):
        record = original(self, epoch)
        if epoch == 1:
            bn = next(m for m in self.net.modules() if isinstance(m, nn.BatchNorm2d))
            bn.running_var.fill_(float("inf"))
        return record

    monkeypatch.setattr(Trainer, "train_epoch", overflowing)
    assert main(["train", *FAULT, f"output_dir={tmp_path}", "run_name=run"]) == 2
    err = _one_line_error(capsys)
    assert re.search(r"non-finite buffer '[\w.]+running_var' after epoch 2 .*nothing was saved.*epoch 1", err), err
    assert "non-finite buffer" in (tmp_path / "run" / "train.log").read_text()
    assert load_checkpoint(tmp_path / "run", "last")["epoch"] == 1
    for manifest in (tmp_path / "run").glob("checkpoints/*/manifest.json"):
        weights = load_file(manifest.parent / "model.safetensors")
        assert all(torch.isfinite(w).all() for w in weights.values() if w.is_floating_point()), manifest


@pytest.mark.slow
def test_two_runs_started_together_on_one_folder(tmp_path, tiny_model):
    args = [*FAULT, f"output_dir={tmp_path}", "run_name=same"]
    procs = [
        subprocess.Popen([sys.executable, str(DRIVER), "none", "0", "SIGINT", *args], stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = sorted((p.wait(), p.stderr.read()) for p in procs)
    assert [code for code, _ in results] == [0, 2], results
    assert "in use by another wrim run (pid" in results[1][1] or "already holds a checkpoint" in results[1][1]


_CTRL_C_DURING_SAVE = """
import signal, time
from wrim.engine.checkpoint import ctrl_c_deferred
done = []
try:
    with ctrl_c_deferred():
        signal.raise_signal(signal.SIGINT)
        time.sleep(0.05)  # a handler would have run by now
        done.append("save finished")
    print("no KeyboardInterrupt")
except KeyboardInterrupt:
    print("KeyboardInterrupt after", done, signal.getsignal(signal.SIGINT) is signal.default_int_handler)
"""


def test_ctrl_c_during_a_save_is_held_until_the_save_is_done() -> None:
    """In a fresh interpreter whose SIGINT is at its default, as in a run started from a terminal. A suite started in
    the background (``pytest &`` from a script) inherits SIGINT ignored, and so would the child: Python then installs
    no KeyboardInterrupt handler and the run is, rightly, not interruptible by Ctrl-C."""
    result = subprocess.run(
        [sys.executable, "-c", _CTRL_C_DURING_SAVE],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # held until the block was done, then delivered, and the default handler restored
    assert result.stdout.strip() == "KeyboardInterrupt after ['save finished'] True", result.stderr[-2000:]
