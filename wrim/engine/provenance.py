"""Provenance: what produced a run, recorded in the run folder when it starts and completed when it stops.

A run's ``provenance.json`` holds one *segment* per process that trained it: the first start, then each resume.
A segment is written when the process starts (``ended: null``) and completed when it stops, however it stops
(``outcome``: ``"finished"``, ``"interrupted"`` or ``"failed: <error type>"``). Each segment records ([D] see
docs: Evaluation, section Provenance and protocol cards):

- ``wrim``: the version, and when wrim is imported from a git checkout its commit and whether the package's files
  (``wrim/``) differ from it (``dirty``, with the changed files);
- ``python``, ``torch``, ``torchvision``, ``timm``, ``numpy``: the versions that ran;
- ``device``: its type, its name (the CPU model or the GPU name), CUDA's version and the driver's, the process count;
- ``threads``: torch's intra- and inter-op threads and ``OMP_NUM_THREADS``; ``precision``: fp32 or the autocast type;
- ``config`` (resolved) and its ``config_sha256``, the ``seed``, the ``dataset``'s fingerprint (wrim.data.fingerprint);
- ``started`` and ``ended`` (UTC, ISO 8601), and ``epochs``: the epochs done at the segment's start and end.

A run resumed on other code therefore says so: its segments differ (`segments_differ`).
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

__all__ = ["COMPARED_FIELDS", "environment", "field_value", "git_state", "segments_differ", "utc_now"]

#: The fields of a segment that must agree for two numbers to be compared (``wrim compare``), as dotted paths.
COMPARED_FIELDS: tuple[str, ...] = (
    "wrim.commit",
    "wrim.dirty",
    "torch",
    "timm",
    "device.type",
    "precision",
)


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second (``2026-12-06T20:26:30Z``)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def git_state(package_dir: Path | None = None) -> dict[str, Any]:
    """The commit of the checkout wrim is imported from, and whether its ``wrim/`` files differ from it.

    Returns:
        ``{"source": "checkout", "commit": <40 hex>, "dirty": bool, "dirty_files": [...]}`` from a git checkout, or
        ``{"source": "installed", "commit": None, "dirty": None, "dirty_files": []}`` (a wheel, or no git).
    """
    package = Path(package_dir or Path(__file__).resolve().parents[1])
    root = package.parent
    unknown = {"source": "installed", "commit": None, "dirty": None, "dirty_files": []}
    if not (root / ".git").exists():
        return unknown
    try:
        commit = _git(root, "rev-parse", "HEAD").strip()
        changed = _git(root, "status", "--porcelain", "--untracked-files=all", "--", package.name)
    except (OSError, subprocess.SubprocessError):
        return unknown
    files = [line[3:] for line in changed.splitlines() if line.strip()]  # "XY path": two status letters, a space
    return {"source": "checkout", "commit": commit, "dirty": bool(files), "dirty_files": files[:50]}


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def _cpu_name() -> str:
    """The CPU model (``/proc/cpuinfo``'s ``model name`` on Linux), else what ``platform`` says."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _device(device: torch.device, world_size: int) -> dict[str, Any]:
    info: dict[str, Any] = {"type": device.type, "name": _cpu_name(), "cuda": None, "driver": None}
    if device.type == "cuda":
        info["name"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
        driver = Path("/proc/driver/nvidia/version")
        if driver.is_file():
            info["driver"] = driver.read_text(encoding="utf-8", errors="replace").split("\n", 1)[0].strip()
    info["processes"] = world_size
    return info


def _version(module: str) -> str | None:
    imported = sys.modules.get(module)
    if imported is None:
        try:
            imported = __import__(module)
        except ImportError:
            return None
    return getattr(imported, "__version__", None)


def environment(device: torch.device, precision: str, world_size: int = 1) -> dict[str, Any]:
    """The code, versions, device, threads and precision of this process (a segment's environment fields).

    Args:
        device: where the run computes.
        precision: ``"fp32"`` or ``"<dtype> autocast"``.
        world_size: the number of processes (DDP ranks).
    """
    from wrim.version import __version__

    return {
        "wrim": {"version": __version__, **git_state()},
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": _version("torchvision"),
        "timm": _version("timm"),
        "numpy": _version("numpy"),
        "device": _device(device, world_size),
        "threads": {
            "torch": torch.get_num_threads(),
            "interop": torch.get_num_interop_threads(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        },
        "precision": precision,
    }


def field_value(segment: dict[str, Any], path: str) -> Any:
    """A segment's value at a dotted ``path`` (``"wrim.commit"``); ``None`` where it is missing."""
    value: Any = segment
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def segments_differ(segments: list[dict[str, Any]]) -> list[str]:
    """The `COMPARED_FIELDS` on which the segments of one run disagree (a run resumed on other code), e.g.
    ``["wrim.commit: abc... -> def..."]``; empty when they agree."""
    differences = []
    for path in COMPARED_FIELDS:
        values = [field_value(segment, path) for segment in segments]
        if len({repr(v) for v in values}) > 1:
            differences.append(f"{path}: " + " -> ".join(str(v) for v in values))
    return differences
