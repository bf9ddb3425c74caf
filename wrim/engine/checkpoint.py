"""Checkpoints without arbitrary pickles, written atomically, and the random state needed for exact resumes.

A checkpoint ``<dir>/<tag>`` is two files:

- ``<tag>.safetensors``: the model weights (``wrim.models.save_weights``);
- ``<tag>.state.pt``: optimiser, scheduler, epoch, sampler epoch, best metric and the python / numpy / torch RNG
  states, made only of tensors, numbers, strings, lists and dicts, so that ``torch.load(weights_only=True)`` reads
  it (no code runs when it is loaded).

Each file is written to a temporary name in the same folder, flushed to disk, then renamed over the old one with
``os.replace`` (atomic on POSIX and Windows): an interrupted save leaves the previous checkpoint intact. The
state file is written after the weights and names their SHA-256 digest, so a pair from two different saves is
detected when loading.
"""

from __future__ import annotations

import hashlib
import os
import random
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = [
    "atomic_write",
    "capture_rng_state",
    "checkpoint_exists",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
]


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Calls ``write(tmp_path)`` and then renames ``tmp_path`` over ``path`` (atomic replace).

    Args:
        path: the final file.
        write: a function that writes the whole file at the path it is given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checkpoint_exists(directory: str | Path, tag: str = "last") -> bool:
    """Whether ``<directory>/<tag>.safetensors`` and ``<tag>.state.pt`` both exist."""
    directory = Path(directory)
    return (directory / f"{tag}.safetensors").is_file() and (directory / f"{tag}.state.pt").is_file()


def save_checkpoint(directory: str | Path, tag: str, model: nn.Module, state: dict[str, Any]) -> Path:
    """Writes ``<directory>/<tag>.safetensors`` (weights) and ``<tag>.state.pt`` (everything else), atomically.

    Args:
        directory: the run folder.
        tag: ``"last"``, ``"best"`` or any name.
        model: the (unwrapped) model whose weights are saved.
        state: tensors, numbers, strings, lists and dicts only (checked by loading it back with
            ``weights_only=True`` semantics).

    Returns:
        The weights file's path.
    """
    from wrim.models import save_weights

    directory = Path(directory)
    weights = directory / f"{tag}.safetensors"
    atomic_write(weights, lambda p: save_weights(model, p))
    full_state = dict(state, weights_sha256=_sha256(weights))
    atomic_write(directory / f"{tag}.state.pt", lambda p: torch.save(full_state, p))
    return weights


def load_checkpoint(directory: str | Path, tag: str, model: nn.Module | None = None) -> dict[str, Any]:
    """Loads a checkpoint written by `save_checkpoint()`.

    Args:
        directory: the run folder.
        tag: the checkpoint's tag.
        model: when given, its weights are loaded in place (``wrim.models.load_weights``).

    Returns:
        The state dict (loaded with ``torch.load(weights_only=True)``).

    Raises:
        ValueError: a missing file, or weights that do not belong to the state file (an interrupted copy).
    """
    from wrim.models import load_weights

    directory = Path(directory)
    weights = directory / f"{tag}.safetensors"
    state_path = directory / f"{tag}.state.pt"
    for p in (weights, state_path):
        if not p.is_file():
            raise ValueError(f"checkpoint file {str(p)!r} is missing; is {str(directory)!r} a wrim run folder?")
    state = torch.load(state_path, map_location="cpu", weights_only=True)
    if state.get("weights_sha256") != _sha256(weights):
        raise ValueError(f"{str(weights)!r} does not match {str(state_path)!r} (the files come from different saves)")
    if model is not None:
        load_weights(model, weights)
    return state
