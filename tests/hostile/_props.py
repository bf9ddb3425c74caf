"""The properties every reader of other people's files must hold, as checks shared by the hostile-input tests.

- `refusal()`: the reader returned, or raised a ``ValueError`` / ``TypeError`` whose message is one line naming the
  file (and its line, where there is one); any other exception type is a failure.
- `watched()`: records, through a Python audit hook, every file opened, every folder listed, every module imported
  and every process started while the block runs; `assert_confined()` then checks that nothing outside the folder
  given was read or written, that no process was started and that no module named by the file was imported.
- `peak_growth_mb()`: the growth of the process's peak resident memory (Linux ``VmHWM``, reset through
  ``/proc/self/clear_refs``, after handing freed memory back to the system) while the block runs, or ``None``
  where it cannot be measured (checked once per process on a 64 MB block).
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

#: the name of the module a hostile file names (an architecture, a YAML tag, a pickle); it must never be imported
BAIT_MODULE = "wrim_hostile_bait"

_RUNS_CODE = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "subprocess.Popen", "os.startfile")
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_recording: list[list[tuple[str, str, bool]]] = []
_IGNORED_ROOTS = tuple(
    str(Path(p).resolve()) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path} if p and Path(p).is_dir()
)


def _audit(event: str, args: tuple[Any, ...]) -> None:
    """The audit hook: appends ``(kind, detail, writes)`` to the innermost recording, if any."""
    if not _recording:
        return
    if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        mode, flags = args[1], args[2] if len(args) > 2 and isinstance(args[2], int) else 0
        writes = bool(mode and any(c in mode for c in "wax+")) or bool(flags & _WRITE_FLAGS)
        _recording[-1].append(("open", os.fsdecode(args[0]), writes))
    elif event in ("os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        _recording[-1].append(("list", os.fsdecode(args[0]), False))
    elif event == "import":
        _recording[-1].append(("import", str(args[0]), False))
    elif event.startswith(_RUNS_CODE):
        _recording[-1].append(("run", f"{event} {args!r}"[:200], False))


sys.addaudithook(_audit)  # an audit hook cannot be removed: it records only inside `watched()`


@contextlib.contextmanager
def watched() -> Iterator[list[tuple[str, str, bool]]]:
    """Record the files opened (and whether for writing), folders listed, modules imported and processes started."""
    events: list[tuple[str, str, bool]] = []
    _recording.append(events)
    try:
        yield events
    finally:
        _recording.remove(events)


def _inside(path: str, folder: Path) -> bool:
    resolved = os.path.realpath(path)
    return resolved == str(folder) or resolved.startswith(str(folder) + os.sep)


def assert_confined(events: list[tuple[str, str, bool]], folder: Path) -> None:
    """Nothing outside ``folder`` was read, listed or written (Python's own files, the installed packages and
    ``/proc`` / ``/sys`` / ``/dev`` aside), no process was started and the bait module was not imported."""
    folder = Path(os.path.realpath(folder))
    system = ("/proc/", "/sys/", "/dev/")
    for kind, detail, writes in events:
        assert kind != "run", f"a process was started: {detail}"
        assert not (kind == "import" and BAIT_MODULE in detail), f"the module a file names was imported: {detail}"
        if kind in ("open", "list") and not _inside(detail, folder):
            assert not writes, f"wrote outside {folder}: {detail}"
            resolved = os.path.realpath(detail)
            assert resolved.startswith(system) or resolved.startswith(_IGNORED_ROOTS), (
                f"read outside {folder}: {detail}"
            )


def assert_one_line_naming(err: BaseException, path: Path, line: int | None = None) -> None:
    """``err`` is a ValueError / TypeError of one line that names ``path`` (as ``path:line`` when ``line``)."""
    assert isinstance(err, (ValueError, TypeError)), f"{type(err).__name__} escaped: {err}"
    text = str(err)
    assert text.strip() and len(text.splitlines()) == 1, f"not one line: {text!r}"
    where = str(path) if line is None else f"{path}:{line}"
    assert where in text or repr(where)[1:-1] in text, f"the message does not name {where}: {text}"


def refusal(call: Callable[[], Any], path: Path, line: int | None = None) -> tuple[Any, BaseException | None]:
    """``(result, None)`` when ``call()`` returns, ``(None, error)`` when it raised a one-line ValueError or
    TypeError naming ``path``; any other outcome fails the test."""
    try:
        return call(), None
    except Exception as err:  # the property: no other type escapes
        assert_one_line_naming(err, path, line)
        return None, err


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(key + ":"))


def _trim_malloc() -> None:
    """glibc's ``malloc_trim(0)``: free heap memory goes back to the system (nothing where libc is not glibc)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)  # the process's own symbols: libc's where it is linked in


@contextlib.contextmanager
def _resident_growth_mb() -> Iterator[list[float | None]]:
    """Yields a one-element list that holds, after the block, how many MB the peak resident memory (``VmHWM``) grew
    by, or ``None`` on a system without ``/proc/self/clear_refs``."""
    out: list[float | None] = [None]
    # Memory freed earlier but still resident would serve the block's allocations without growing the resident size
    # (after a training run in the same process, a 64 MB block read as 0 MB of growth): collect the garbage, hand
    # glibc's free memory back to the system, and collect nothing while the block runs.
    gc.collect()
    _trim_malloc()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # resets VmHWM to the current resident size
        start = _status_kb("VmRSS")
    except OSError:  # not Linux, or no permission: not measurable
        yield out
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield out
    finally:
        if collecting:
            gc.enable()
    out[0] = (_status_kb("VmHWM") - start) / 1024


@functools.cache
def _peak_is_measurable() -> bool:
    """Whether a 64 MB block written page by page shows as at least 48 MB of growth on this system."""
    with _resident_growth_mb() as growth:
        np.ones(8_000_000).sum()
    return growth[0] is not None and growth[0] >= 48


@contextlib.contextmanager
def peak_growth_mb() -> Iterator[list[float | None]]:
    """Yields a one-element list that holds, after the block, how many MB the peak resident memory grew by;
    ``None`` where this system cannot measure it (`_peak_is_measurable`), so that no check passes on a measure
    that reads 0 whatever the block allocates."""
    if not _peak_is_measurable():
        yield [None]
        return
    with _resident_growth_mb() as growth:
        yield growth
