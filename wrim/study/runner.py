"""Running a study: every variant x seed as one ``wrim train`` run, resumable, on local workers or on SLURM.

Each run trains in its own process (``python -m wrim train``) with ``threads`` torch threads, in
``<runs_dir>/<variant>-seed<S>``; when it finishes, its *record* goes to ``<out>/runs/<variant>-seed<S>.json``: the
study's variant and seed, the run's final metrics with their protocol card, its per-epoch history, its full
provenance (every segment: code, versions, device, config, dataset), its wall and CPU time. A record exists only for
a finished run, so the same command continues a stopped study: finished runs are skipped, interrupted ones resume
from their last checkpoint (and their provenance then holds two segments, which the record and ``wrim compare``
disclose). A study never mixes code: a record, or an interrupted run, made on another commit (or with another
dirty state) than the code now running is refused in one line, unless ``allow_mixed`` ([D] see
docs: Training, section Studies over seeds).

On Linux each run receives SIGTERM when the runner dies, however it dies (its last published checkpoint is kept, and
its provenance shows the epochs it had done), so a killed study leaves no run behind; where that is not available, a
restarted runner waits for a run another process still trains, then records it.
"""

from __future__ import annotations

import concurrent.futures
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wrim.engine.checkpoint import checkpoint_exists
from wrim.engine.provenance import git_state
from wrim.engine.rundir import RunFolder, RunLock, RunLockedError, read_json, run_record, write_json
from wrim.study.spec import StudySpec, Variant

__all__ = ["Job", "check_one_code_version", "plan", "run_job", "run_local", "submit_slurm"]


@dataclass(frozen=True)
class Job:
    """One run of a study: its variant and seed, where it trains and where its record goes."""

    spec: StudySpec
    variant: Variant
    seed: int
    runs_dir: Path
    out: Path

    @property
    def name(self) -> str:
        return f"{self.variant.key}-seed{self.seed}"

    @property
    def run_dir(self) -> Path:
        return self.runs_dir / self.name

    @property
    def record_path(self) -> Path:
        return self.out / "runs" / f"{self.name}.json"


def plan(spec: StudySpec, out: Path, runs_dir: Path) -> list[Job]:
    """Every job of the study, seeds interleaved (`StudySpec.jobs`)."""
    return [Job(spec, variant, seed, Path(runs_dir), Path(out)) for variant, seed in spec.jobs()]


def _code() -> dict[str, Any]:
    """The code now running: version, commit and dirty state (``wrim.engine.provenance.git_state``)."""
    from wrim.version import __version__

    return {"version": __version__, **{k: v for k, v in git_state().items() if k in ("commit", "dirty")}}


def _recorded_code(segment: dict[str, Any]) -> dict[str, Any]:
    code = segment.get("wrim") or {}
    return {"version": code.get("version"), "commit": code.get("commit"), "dirty": code.get("dirty")}


def check_one_code_version(jobs: list[Job]) -> None:
    """Refuse a study whose records or interrupted runs were made by other code than the code now running.

    Raises:
        ValueError: one line naming the first record or run folder made on another commit, version or dirty state.
    """
    now = _code()
    for job in jobs:
        segments: list[dict[str, Any]] = []
        if job.record_path.is_file():
            segments = (read_json(job.record_path).get("provenance") or {}).get("segments") or []
            where = str(job.record_path)
        elif checkpoint_exists(job.run_dir, "any"):
            segments = (RunFolder(job.run_dir).read_provenance() or {}).get("segments") or []
            where = str(job.run_dir)
        for segment in segments:
            made = _recorded_code(segment)
            if made != now:
                raise ValueError(
                    f"{where} was made by wrim {made['version']} at commit {made['commit']} (dirty {made['dirty']}), "
                    f"not by the code now running ({now['version']} at {now['commit']}, dirty {now['dirty']}): run the "
                    "study from that commit, use another --out / --runs-dir, or pass --allow-mixed"
                )


def _stop_with_parent() -> None:
    """In the child, before exec: ask Linux to send SIGTERM when the runner dies (no orphaned training runs; SIGINT
    would not do, a background shell starts its jobs with SIGINT ignored)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _command(job: Job) -> list[str]:
    """``python -m wrim train``: a fresh run, or ``--resume`` of an interrupted one (its saved config)."""
    imports = [argument for module in job.spec.imports for argument in ("--import", module)]
    train = [sys.executable, "-m", "wrim", "train", "--config", job.spec.config, *imports]
    if checkpoint_exists(job.run_dir, "any"):
        return [*train, "--resume", str(job.run_dir), "progress=false"]
    overrides = job.spec.run_overrides(job.variant, job.seed)
    return [*train, *overrides, "progress=false", f"output_dir={job.runs_dir}", f"run_name={job.name}"]


def _train(job: Job, threads: int) -> tuple[int, float, float | None]:
    """Runs the job's training process; ``(exit code, wall seconds, CPU seconds of it and its children)``."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    job.runs_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(job.runs_dir / f"{job.name}.out", "a", encoding="utf-8") as log:
        popen = {"preexec_fn": _stop_with_parent} if sys.platform.startswith("linux") else {}
        proc = subprocess.Popen(_command(job), stdout=log, stderr=subprocess.STDOUT, env=env, **popen)
        if hasattr(os, "wait4"):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu = usage.ru_utime + usage.ru_stime
        else:
            proc.wait()
            cpu = None
    return proc.returncode, time.perf_counter() - start, cpu


def _wait_for_other_process(job: Job, log: Any) -> None:
    """Wait while another live process holds the run's lock (a run left training by a runner that was killed)."""
    if not job.run_dir.is_dir():
        return
    lock = RunLock(job.run_dir)
    while True:
        try:
            lock.acquire()
        except RunLockedError as err:
            log(f"waiting: {err}")
            time.sleep(30)
            continue
        lock.release()
        return


def run_job(job: Job, threads: int = 1, log: Any = print) -> dict[str, Any]:
    """Trains one job (resuming it when interrupted; a finished run is only recorded) and writes its record.

    Raises:
        RuntimeError: the training process failed (its exit code and the log's last line).
    """
    _wait_for_other_process(job, log)
    wall, cpu = 0.0, 0.0
    if RunFolder(job.run_dir).read_final_metrics() is None:
        log(f"{'resume' if checkpoint_exists(job.run_dir, 'any') else 'start'} {job.name}")
        code, wall, cpu = _train(job, threads)
        if code != 0:
            lines = (job.runs_dir / f"{job.name}.out").read_text(encoding="utf-8", errors="replace").splitlines()
            last = next((line for line in reversed(lines) if line.strip()), "")
            raise RuntimeError(f"{job.name}: wrim train exited with {code}: {last.strip()}")
    record = {
        "format": 1,
        "study": job.spec.name,
        "variant": job.variant.key,
        "label": job.variant.label,
        "seed": job.seed,
        "base_config": Path(job.spec.config).name,
        "overrides": list(job.spec.overrides) + list(job.variant.overrides),
        "time_s": round(wall, 1),  # this process's share; 0 when an earlier runner's process trained it
        "cpu_s": None if cpu is None else round(cpu, 1),
        "threads": threads,
        **run_record(job.run_dir),
    }
    write_json(job.record_path, record)
    return record


def run_local(jobs: list[Job], workers: int = 1, threads: int = 1, log: Any = print) -> list[str]:
    """Runs every job without a record on ``workers`` local processes; returns the failures (one line each)."""
    todo = [job for job in jobs if not job.record_path.is_file()]
    for job in jobs:
        if job.record_path.is_file():
            log(f"skip {job.name}: finished ({job.record_path})")
    failures: list[str] = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        running = {pool.submit(run_job, job, threads, log): job for job in todo}
        for future in concurrent.futures.as_completed(running):
            job = running[future]
            try:
                record = future.result()
            except RuntimeError as err:
                failures.append(str(err))
                log(f"FAILED {err}")
                continue
            metrics = record["metrics"]
            log(f"done {job.name}: R1 {metrics['R1']:.2f} mAP {metrics['mAP']:.2f} ({record['time_s'] / 60:.1f} min)")
    return failures


def submit_slurm(jobs: list[Job], threads: int, parameters: dict[str, Any], executor: Any = None) -> list[str]:
    """Submits every job without a record as one SLURM job array through submitit; returns the job ids.

    Args:
        jobs: the study's jobs.
        threads: CPUs per task (``cpus_per_task``) and torch threads per run.
        parameters: further ``executor.update_parameters`` arguments (``slurm_partition``, ``timeout_min``,
            ``gpus_per_node``, ``slurm_array_parallelism``, ...).
        executor: a submitit executor (default ``submitit.AutoExecutor(folder=<out>/slurm)``).
    """
    todo = [job for job in jobs if not job.record_path.is_file()]
    if not todo:
        return []
    if executor is None:
        try:
            import submitit
        except ImportError:
            raise ValueError("--executor slurm needs submitit: pip install 'wrim[slurm]'") from None
        executor = submitit.AutoExecutor(folder=str(todo[0].out / "slurm"))
    executor.update_parameters(cpus_per_task=threads, **parameters)
    submitted = executor.map_array(run_job, todo, [threads] * len(todo))
    return [str(getattr(job, "job_id", job)) for job in submitted]


def summary_line(jobs: list[Job]) -> str:
    """How many of the jobs have a record."""
    done = sum(job.record_path.is_file() for job in jobs)
    return f"{done} of {len(jobs)} runs finished"


def read_records(out: Path) -> list[dict[str, Any]]:
    """Every record under ``<out>/runs`` (sorted by file name)."""
    return [read_json(path) for path in sorted((Path(out) / "runs").glob("*.json"))]
