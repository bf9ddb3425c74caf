"""Checkpoint sets: written into a fresh folder, verified by a manifest, published by one atomic pointer update.

A run folder holds its checkpoints as *sets*::

    <run>/checkpoints/e0003-<id>/model.safetensors   # the weights (wrim.models.save_weights)
    <run>/checkpoints/e0003-<id>/state.pt            # optimiser, scheduler, epoch, RNG states, ... (tensors,
                                                     # numbers, strings, lists, dicts: torch.load(weights_only=True))
    <run>/checkpoints/e0003-<id>/manifest.json       # epoch, step, config hash, size and SHA-256 of both files
    <run>/last.json                                  # pointer: {"set": "checkpoints/e0003-<id>", "epoch": 3, ...}
    <run>/best.json                                  # pointer to the set with the best R1 (and that R1)

A set is written into ``checkpoints/.tmp-*``, every file and the folder are fsync-ed, and the folder is renamed to
its final name; only then is the pointer replaced (``os.replace`` of a fsync-ed temporary file, atomic on POSIX and
Windows). A stop at any moment therefore leaves the previous pointer and its set intact ([D] docs: Training,
"Checkpoints"). Loading checks the manifest (sizes and digests); a damaged ``last`` set is skipped with a warning
for the newest complete one. The newest ``keep`` sets are kept, plus the sets the pointers name. A full disk is
reported with the mount point, the bytes needed and the bytes free.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import random
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from wrim._files import file_sha256, umask_mode
from wrim.models.weights import WEIGHTS_FILE

__all__ = [
    "CheckpointError",
    "atomic_write",
    "capture_rng_state",
    "checkpoint_exists",
    "clean_stale_temporaries",
    "ctrl_c_deferred",
    "load_checkpoint",
    "prune_checkpoints",
    "publish_checkpoint",
    "read_pointer",
    "restore_rng_state",
    "save_checkpoint",
]

log = logging.getLogger("wrim")

SETS = "checkpoints"
MANIFEST = "manifest.json"
WEIGHTS = WEIGHTS_FILE  # wrim.models.weights: the one home of the name
STATE = "state.pt"


class CheckpointError(ValueError):
    """A checkpoint cannot be written (full disk) or no complete checkpoint can be read."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # folders cannot be opened on Windows; its rename is durable without it
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_file(path: Path, write: Callable[[Path], None]) -> None:
    """Writes one file with ``write(path)``, fsyncs it and gives it the umask's permissions (0666 & ~umask)."""
    write(path)
    with open(path, "rb") as f:
        os.fsync(f.fileno())
    os.chmod(path, umask_mode(0o666))


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp_path)``, fsyncs it, then renames ``tmp_path`` over ``path`` (atomic replace).

    Args:
        path: the final file.
        write: a function that writes the whole file at the path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        _write_file(Path(tmp), write)
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def capture_rng_state() -> dict[str, Any]:
    """The python, numpy and torch (CPU and every CUDA device) RNG states, as tensors and plain values."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()  # noqa: NPY002 (the global state is what gets seeded)
    state: dict[str, Any] = {
        "python": {"version": py_version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss": py_gauss},
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Restores states captured by `capture_rng_state()`."""
    py = state["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
    nps = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (nps["name"], nps["keys"].numpy().astype(np.uint32), nps["pos"], nps["has_gauss"], nps["gauss"])
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _mount_point(path: Path) -> Path:
    path = path.resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def _disk_full(directory: Path, needed: int) -> CheckpointError:
    free = shutil.disk_usage(directory).free
    return CheckpointError(
        f"disk full: the checkpoint needs {needed / 1e6:.1f} MB in {str(directory)!r} (filesystem mounted at "
        f"{str(_mount_point(directory))!r}), {free / 1e6:.1f} MB are free; the previous checkpoint is kept. "
        "Free space or move output_dir, then resume with wrim train --resume"
    )


def read_pointer(directory: str | Path, tag: str) -> dict[str, Any] | None:
    """The content of ``<directory>/<tag>.json`` (``set``, ``epoch`` and the tag's extra fields), or None.

    Raises:
        CheckpointError: the file is damaged, or its ``set`` is not ``checkpoints/<name>`` inside the run folder.
    """
    path = Path(directory) / f"{tag}.json"
    if not path.is_file():
        return None
    try:
        pointer = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as err:
        raise CheckpointError(
            f"{str(path)!r} is damaged ({' '.join(str(err).split())}); delete it to fall back to the newest set"
        ) from err
    if not isinstance(pointer, dict) or not isinstance(pointer.get("set"), str):
        raise CheckpointError(f"{str(path)!r} is not a wrim checkpoint pointer (no 'set' entry)")
    folder, _, name = pointer["set"].partition("/")
    if folder != SETS or not _plain_name(name):
        raise CheckpointError(f"{str(path)!r} points at {pointer['set']!r}, not at a set {SETS}/<name> of its run")
    return pointer


def _plain_name(name: str) -> bool:
    """Whether ``name`` is one file or folder name on every system (no separator, drive, ``..`` or control)."""
    return name not in ("", ".", "..") and not any(c in name for c in "/\\:") and name.isprintable()


def checkpoint_exists(directory: str | Path, tag: str = "last") -> bool:
    """Whether ``<directory>/<tag>.json`` points at a checkpoint set (``tag="any"``: whether any set exists)."""
    directory = Path(directory)
    if tag == "any":
        return any((directory / f"{t}.json").is_file() for t in ("last", "best")) or bool(_sets(directory))
    return (directory / f"{tag}.json").is_file()


def _sets(directory: Path) -> list[Path]:
    """The published sets (not temporaries), newest epoch first."""
    folder = directory / SETS
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), reverse=True)


@contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Holds a Ctrl-C (SIGINT) that arrives inside the block until the block is done, then delivers it.

    Wraps the write and publication of a checkpoint, so that an interrupt during a save stops the run right after
    the epoch's checkpoint is complete instead of losing it. SIGKILL cannot be held: the save's temporary folder
    and atomic pointer cover that case. Outside the main thread (where Python delivers signals) it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        signal.raise_signal(signal.SIGINT)  # the handler in force now (KeyboardInterrupt by default)


def save_checkpoint(directory: str | Path, model: nn.Module, state: dict[str, Any], config_sha256: str = "") -> Path:
    """Writes a checkpoint set ``<directory>/checkpoints/e<epoch>-<id>/`` (not yet published).

    Args:
        directory: the run folder.
        model: the (unwrapped) model whose weights are saved.
        state: must hold ``epoch`` (finished epochs); tensors, numbers, strings, lists and dicts only (it is read
            back with ``torch.load(weights_only=True)``).
        config_sha256: the run config's digest, recorded in the manifest.

    Returns:
        The set's folder; pass it to `publish_checkpoint()`.

    Raises:
        CheckpointError: the disk is full (names the mount point, the bytes needed and free); nothing is left.
    """
    from wrim.models import save_weights

    directory = Path(directory)
    folder = directory / SETS
    folder.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    state_bytes = buffer.getvalue()
    weight_bytes = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    needed = len(state_bytes) + weight_bytes
    if shutil.disk_usage(folder).free < needed:
        raise _disk_full(folder, needed)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder))
    try:
        os.chmod(tmp, umask_mode(0o777))
        _write_file(tmp / WEIGHTS, lambda p: save_weights(model, p))
        _write_file(tmp / STATE, lambda p: p.write_bytes(state_bytes))
        manifest = {
            "format": 1,
            "epoch": int(state["epoch"]),
            "step": int(state.get("step", 0)),
            "config_sha256": config_sha256,
            "files": {name: {"bytes": (tmp / name).stat().st_size, "sha256": file_sha256(tmp / name)}
                      for name in (WEIGHTS, STATE)},
        }  # fmt: skip
        _write_file(tmp / MANIFEST, lambda p: p.write_text(json.dumps(manifest, indent=2), encoding="utf-8"))
        _fsync_dir(tmp)
        final = folder / f"e{int(state['epoch']):04d}-{time.time_ns():x}"
        os.rename(tmp, final)
        _fsync_dir(folder)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if err.errno == errno.ENOSPC:
            raise _disk_full(folder, needed) from err
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def publish_checkpoint(directory: str | Path, tag: str, set_dir: str | Path, **info: Any) -> None:
    """Points ``<directory>/<tag>.json`` at ``set_dir`` in one atomic replace (``info`` is stored with it)."""
    directory = Path(directory)
    pointer = {"set": Path(set_dir).relative_to(directory).as_posix(), **info}
    atomic_write(directory / f"{tag}.json", lambda p: p.write_text(json.dumps(pointer), encoding="utf-8"))


def prune_checkpoints(directory: str | Path, keep: int) -> None:
    """Removes every set but the newest ``keep`` and those ``last.json`` / ``best.json`` point at."""
    directory = Path(directory)
    named = set()
    for tag in ("last", "best"):
        pointer = read_pointer(directory, tag)
        if pointer is not None:
            named.add((directory / pointer["set"]).resolve())
    for old in _sets(directory)[keep:]:
        if old.resolve() not in named:
            shutil.rmtree(old, ignore_errors=True)


def clean_stale_temporaries(directory: str | Path) -> list[Path]:
    """Removes half-written sets (``checkpoints/.tmp-*``) and files (``.*.tmp``) left by a killed run.

    Call it only while holding the run folder's lock. Returns what was removed.
    """
    directory = Path(directory)
    stale = [*directory.glob(f"{SETS}/.tmp-*"), *directory.glob(".*.tmp")]
    for path in stale:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


def _verify(set_dir: Path) -> dict[str, Any]:
    """Checks a set against its manifest; returns the manifest or raises CheckpointError with the reason."""
    manifest_path = set_dir / MANIFEST
    if not manifest_path.is_file():
        raise CheckpointError(f"{str(set_dir)!r} has no {MANIFEST} (not a complete checkpoint set)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as err:
        raise CheckpointError(f"{str(manifest_path)!r} is damaged ({' '.join(str(err).split())})") from err
    entry = {"bytes": int, "sha256": str}
    if not (
        isinstance(files, dict)
        and sorted(files) == sorted((WEIGHTS, STATE))
        and all(isinstance(meta, dict) and all(isinstance(meta.get(k), t) for k, t in entry.items())
                for meta in files.values())
    ):  # fmt: skip
        raise CheckpointError(
            f"{str(manifest_path)!r} is damaged: its 'files' must give the bytes and sha256 of {WEIGHTS} and {STATE}"
        )
    for name, meta in files.items():
        path = set_dir / name
        if not path.is_file():
            raise CheckpointError(f"{str(path)!r} is missing")
        size = path.stat().st_size
        if size != meta["bytes"] or file_sha256(path) != meta["sha256"]:
            raise CheckpointError(
                f"{str(path)!r} is damaged ({size} bytes, manifest says {meta['bytes']}, or its SHA-256 differs)"
            )
    return manifest


def _load_set(set_dir: Path, model: nn.Module | None) -> dict[str, Any]:
    from wrim.models import load_weights

    manifest = _verify(set_dir)
    try:
        state = torch.load(set_dir / STATE, map_location="cpu", weights_only=True)
    except Exception as err:  # a verified file that torch cannot read: written by another torch, or tampered
        reason = " ".join(str(err).split())
        raise CheckpointError(f"{str(set_dir / STATE)!r} cannot be read ({type(err).__name__}: {reason})") from err
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
        raise CheckpointError(f"{str(set_dir / STATE)!r} is not a wrim training state (a mapping with an epoch)")
    if model is not None:
        load_weights(model, set_dir / WEIGHTS)
    state["checkpoint_set"] = str(set_dir)
    state["config_sha256"] = manifest.get("config_sha256", "")
    return state


def load_checkpoint(directory: str | Path, tag: str = "last", model: nn.Module | None = None) -> dict[str, Any]:
    """Loads and verifies the set ``<directory>/<tag>.json`` points at.

    For ``tag="last"``, a missing or damaged set is skipped, with a warning, for the newest complete set.

    Args:
        directory: the run folder.
        tag: ``"last"`` or ``"best"``.
        model: when given, its weights are loaded in place (``wrim.models.load_weights``).

    Returns:
        The state dict (``torch.load(weights_only=True)``) plus ``checkpoint_set``, the folder that was read.

    Raises:
        CheckpointError: no pointer, or no complete set (each reason listed).
    """
    directory = Path(directory)
    try:
        pointer = read_pointer(directory, tag)
    except CheckpointError as err:
        if tag != "last" or not _sets(directory):  # no set to fall back to: the pointer's problem is the error
            raise
        log.warning("%s", err)
        pointer = None
    if pointer is None and (tag != "last" or not _sets(directory)):
        raise CheckpointError(f"{str(directory)!r} holds no {tag!r} checkpoint ({tag}.json); is it a wrim run folder?")
    candidates = [directory / pointer["set"]] if pointer is not None else []
    if tag == "last":
        candidates += [s for s in _sets(directory) if pointer is None or s.name != Path(pointer["set"]).name]
    reasons = []
    for set_dir in candidates:
        try:
            state = _load_set(set_dir, model)
        except CheckpointError as err:
            reasons.append(str(err))
            continue
        if reasons:
            log.warning("checkpoint %s: %s; falling back to %s (epoch %d)", tag, reasons[0], set_dir, state["epoch"])
        return state
    raise CheckpointError(f"no complete {tag!r} checkpoint in {str(directory)!r}: " + "; ".join(reasons))
