"""File-system helpers shared by the data and engine packages."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

__all__ = ["file_sha256", "umask_mode"]


def file_sha256(path: str | Path) -> str:
    """The SHA-256 hex digest of the file at ``path``, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def umask_mode(mode: int) -> int:
    """``mode`` with the process umask applied: what ``open``/``mkdir`` would give (``tempfile.mkdtemp`` gives 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask
