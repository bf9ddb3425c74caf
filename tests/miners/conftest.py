"""Registers the loop references of tests/losses (the interop tests compare wrim's losses on mined pairs with them)."""

from __future__ import annotations

import runpy
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[1] / "losses" / "conftest.py"))
