"""Fixtures of the hostile-input tests: a bait module that proves, by a marker file, whether it was ever imported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.hostile._props import BAIT_MODULE


@pytest.fixture
def bait(tmp_path_factory, monkeypatch) -> Path:
    """An importable module ``wrim_hostile_bait`` (on ``sys.path`` for the test) whose import, or call of its
    ``run()``, creates a marker file; returns the marker's path, which must still not exist after the test."""
    folder = tmp_path_factory.mktemp("bait")
    marker = folder / "imported"
    touch = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    (folder / f"{BAIT_MODULE}.py").write_text(f"{touch}\n\n\ndef run(*args, **kwargs):\n    {touch}\n")
    monkeypatch.syspath_prepend(str(folder))
    yield marker
    sys.modules.pop(BAIT_MODULE, None)
