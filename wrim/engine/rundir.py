"""One run per folder: unique run-folder names and an exclusive lock held for the run's life.

A fresh run is called ``<name>-<UTC date>-<time>-<microseconds>-<pid>`` (two runs started in the same second, even
from one process, get different folders). `RunLock` holds ``<run>/.lock`` with ``fcntl.flock`` where it
exists (released by the kernel when the process dies, even by SIGKILL), else by creating it with ``O_EXCL``; the
file names the holder's pid, which a second run prints before exiting ([D] docs: Training, "Run folder").
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wrim.engine.config import Config

__all__ = ["RunLock", "RunLockedError", "is_run_of", "new_run_name"]

LOCK = ".lock"
_STAMP = r"\d{8}-\d{6}(-\d{6}-\d+)?"


class RunLockedError(ValueError):
    """Another live process holds the run folder's lock."""


def new_run_name(name: str) -> str:
    """``<name>-YYYYmmdd-HHMMSS-<microseconds>-<pid>`` in UTC."""
    return f"{name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}-{os.getpid()}"


def is_run_of(folder: str | Path, name: str) -> bool:
    """Whether ``folder`` is named like a fresh run of config ``name`` (exactly, not by prefix)."""
    return re.fullmatch(re.escape(name) + "-" + _STAMP, Path(folder).name) is not None


class RunLock:
    """An exclusive lock on a run folder, held from `acquire()` to `release()` (or the process's end).

    Args:
        run_dir: the run folder (must exist).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> None:
        """Takes the lock.

        Raises:
            RunLockedError: another process holds it (the message names its pid).
        """
        busy = RunLockedError(
            f"{str(self.path.parent)!r} is in use by another wrim run (pid {{}}); wait for it, stop it, or choose "
            "another run_name"
        )
        try:
            import fcntl
        except ImportError:  # Windows: O_EXCL, the file is removed by release()
            try:
                self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise RunLockedError(str(busy).format(self._holder())) from None
        else:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RunLockedError(str(busy).format(self._holder())) from None
            os.ftruncate(fd, 0)
            self._fd = fd
        os.write(self._fd, str(os.getpid()).encode())
        os.fsync(self._fd)

    def release(self) -> None:
        """Releases the lock (idempotent)."""
        if self._fd is None:
            return
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None
        try:
            import fcntl  # noqa: F401
        except ImportError:
            self.path.unlink(missing_ok=True)


def find_latest_run(output_dir: str | Path, name: str) -> Path | None:
    """The newest ``<output_dir>/<name>-<timestamp>-<pid>`` run folder (exact name, not a prefix) with a checkpoint."""
    from wrim.engine.checkpoint import checkpoint_exists

    folder = Path(output_dir)
    runs = (
        [p for p in folder.iterdir() if is_run_of(p, name) and checkpoint_exists(p, "last")] if folder.is_dir() else []
    )
    return max(runs, key=lambda p: (p / "last.json").stat().st_mtime) if runs else None


def resume_folder(config: Config, run_dir: str | Path | None) -> Path:
    """The folder ``--resume`` continues: ``run_dir``, else ``output_dir/run_name``, else the config's newest run."""
    if run_dir is not None:
        return Path(run_dir)
    if config.run_name is not None:
        return Path(config.output_dir) / config.run_name
    found = find_latest_run(config.output_dir, config.name)
    if found is None:
        raise ValueError(f"--resume: no run of config {config.name!r} with a checkpoint in {config.output_dir!r}")
    return found


def choose_run_dir(config: Config, requested: Path | None, resume: bool) -> Path:
    """The run folder: the resumed one, ``requested``, ``output_dir/run_name`` or a new ``output_dir/<name>-...``."""
    if resume:
        return resume_folder(config, requested)
    if requested is not None:
        return requested
    if config.run_name is not None:
        return Path(config.output_dir) / config.run_name
    return Path(config.output_dir) / new_run_name(config.name)
