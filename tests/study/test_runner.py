"""``wrim study`` on a tiny study (2 variants x 2 seeds, 2 workers), killed and resumed; one code version only;
the SLURM path's job array; study files' errors."""

from __future__ import annotations

import json
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wrim.cli import main
from wrim.engine.provenance import git_state
from wrim.study import load_study, plan, submit_slurm

PLUGIN = Path(__file__).with_name("_tiny_parts.py")
STUDY = f"""
name: tiny
config: synthetic
imports: [{PLUGIN}]
overrides:
  - "model.name=study_test_tiny"
  - "data.dataset_kwargs={{num_ids: 8, num_test_ids: 4, images_per_camera: 2}}"
  - "data.num_ids=4"
  - "data.num_instances=2"
  - "data.num_workers=0"
  - "epochs=3"
  - "eval.every=1"
  - "eval.final_trials=[0]"
  - "eval.ranklist=false"
seeds: [0, 1]
variants:
  no_miim:
    overrides: ["model.kwargs.separate_stages=[]", "model.kwargs.shared_stages=[]"]
  wrim: {{}}
comparisons:
  - {{title: WRIM vs baseline, reference: no_miim, variants: [wrim]}}
"""


@pytest.fixture
def study(tmp_path: Path, restore_registry) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(STUDY)
    return path


def _interrupted(runs: Path) -> set[str]:
    """Run folders with a published checkpoint and no final metrics."""
    return {p.name for p in runs.iterdir() if (p / "last.json").is_file() and not (p / "final_metrics.json").exists()}


def test_a_killed_study_resumes_to_the_same_records(study: Path, tmp_path: Path, capsys) -> None:
    out, runs = tmp_path / "out", tmp_path / "runs"
    command = [sys.executable, "-m", "wrim", "study", str(study), "--out", str(out), "--runs-dir", str(runs),
               "--workers", "2"]  # fmt: skip
    runner = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and not (runs.is_dir() and _interrupted(runs)):
        time.sleep(0.2)
    runner.send_signal(signal.SIGKILL)  # however the runner dies, its runs stop (Linux: SIGTERM to each)
    runner.wait()
    interrupted = _interrupted(runs)
    assert interrupted, "no run had a checkpoint when the runner was killed"
    time.sleep(2)
    assert main(["study", str(study), "--out", str(out), "--runs-dir", str(runs), "--workers", "2"]) == 0
    records = {p.stem: json.loads(p.read_text()) for p in (out / "runs").glob("*.json")}
    assert sorted(records) == ["no_miim-seed0", "no_miim-seed1", "wrim-seed0", "wrim-seed1"]
    for name, record in records.items():
        segments = record["provenance"]["segments"]
        assert {s["wrim"]["commit"] for s in segments} == {git_state()["commit"]}
        assert segments[-1]["outcome"] == "finished" and segments[-1]["epochs"][1] == 3
        assert 0 <= record["metrics"]["mAP"] <= 100 and record["card"]["trials"] == [0]
        assert len(record["history"]) == 3  # the evaluation of every epoch, kept
        if name in interrupted:  # resumed, and disclosed: the killed segment and the resume
            assert len(segments) == 2 and segments[1]["resumed"] and segments[0]["outcome"].startswith("killed")
    capsys.readouterr()
    assert main(["compare", *map(str, sorted((out / "runs").glob("*.json"))), "--study", str(study)]) == 0
    table = capsys.readouterr().out
    assert "### WRIM vs baseline" in table and ("resumed seeds" in table) == bool(interrupted)


def test_records_of_another_commit_are_refused(study: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    record = out / "runs" / "wrim-seed0.json"
    record.parent.mkdir(parents=True)
    segment = {"wrim": {"version": "0.0.1", "commit": "f" * 40, "dirty": False}}
    record.write_text(json.dumps({"metrics": {}, "config": {}, "provenance": {"segments": [segment]}}))
    assert main(["study", str(study), "--out", str(out), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrim-seed0.json was made by wrim 0.0.1 at commit ffff" in err
    assert main(["study", str(study), "--out", str(out), "--dry-run", "--allow-mixed"]) == 0
    assert "1 of 4 runs finished" in capsys.readouterr().out


class FakeExecutor:
    """What ``submit_slurm`` asks of a submitit executor, recorded."""

    def __init__(self) -> None:
        self.parameters: dict = {}
        self.calls: list = []

    def update_parameters(self, **parameters) -> None:
        self.parameters.update(parameters)

    def map_array(self, function, *arguments):
        self.calls.append((function, arguments))
        return [type("SubmittedJob", (), {"job_id": f"42_{i}"})() for i in range(len(arguments[0]))]


def test_slurm_submits_one_job_array_of_the_unfinished_runs(study: Path, tmp_path: Path) -> None:
    jobs = plan(load_study(study), tmp_path / "out", tmp_path / "runs")
    jobs[0].record_path.parent.mkdir(parents=True)
    jobs[0].record_path.write_text("{}")  # finished: not submitted again
    executor = FakeExecutor()
    ids = submit_slurm(jobs, threads=4, parameters={"timeout_min": 60}, executor=executor)
    ((function, (submitted, threads)),) = executor.calls
    assert function.__name__ == "run_job" and [job.name for job in submitted] == [job.name for job in jobs[1:]]
    assert threads == [4] * 3 and ids == ["42_0", "42_1", "42_2"]
    assert executor.parameters == {"cpus_per_task": 4, "timeout_min": 60}
    assert pickle.loads(pickle.dumps(submitted[0])).name == jobs[1].name  # submitit pickles each job


@pytest.mark.parametrize(
    "body, message",
    [("variants: {a: {overrides: [optim.nope=1]}}\nseeds: [0]", "unknown config key 'optim.nope'"),
     ("variants: {a: {}}", "has no seeds"),
     ("variants: {a: {overrides: [seed=3]}}\nseeds: [0]", "sets ['seed=3']"),
     ("variants: {a: {}}\nseeds: [0, 0]", "lists a seed twice"),
     ("variants: {a: {}}\nseeds: [0]\ncomparisons: [{reference: a, variants: [b]}]", "unknown variant(s) ['b']"),
     ("variants: {a: {}}\nseeds: [0]\nepochs: 3", "unknown key(s) ['epochs']")],
)  # fmt: skip
def test_study_file_errors_are_one_line(tmp_path: Path, body: str, message: str, capsys) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("config: synthetic\n" + body + "\n")
    assert main(["study", str(path), "--out", str(tmp_path / "out"), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "bad.yaml" in err
