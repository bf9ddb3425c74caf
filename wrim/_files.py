"""File-system helpers shared by the data and engine packages."""

from __future__ import annotations

import os

__all__ = ["umask_mode"]


def umask_mode(mode: int) -> int:
    """``mode`` with the process umask applied: what ``open``/``mkdir`` would give (``tempfile.mkdtemp`` gives 0700)."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask
