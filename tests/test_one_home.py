"""Each fact of the engine has one home: a grep over wrim/ finds its literal in one file only (the file that names
it), so that a second copy fails here with the file that repeats it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # reads the wrim/ source tree

ROOT = Path(__file__).resolve().parents[1]
# (fact, pattern, the one file allowed to hold it)
FACTS = [
    ("the weights file name", r"""["']model\.safetensors["']""", "wrim/models/weights.py"),
    ("the metric order R1..mINP", r'"R1",\s*"R5"', None),  # built from the reported ranks in its home
    ("the metric names constant", r"^METRIC_NAMES\b.*=", "wrim/evaluation/metrics.py"),
    ("the amp choices", r'"bf16",\s*"fp16"', "wrim/engine/precision.py"),
    ("ImageNet mean / std", r"0\.485|0\.229", "wrim/data/transforms.py"),
    ("the memory-format expression", r"channels_last if|preserve_format", "wrim/engine/precision.py"),
    ("the autocast helper", r"torch\.autocast\([^)]*dtype=", "wrim/engine/precision.py"),
    ("best, else last", r'"best" if .*else "last"', "wrim/engine/rundir.py"),
    ("the unknown-name message of a registry", r"unknown (\{self\.kind\}|model|dataset) \{", "wrim/_registry.py"),
]


def _files_with(pattern: str, root: Path = ROOT) -> list[str]:
    regex = re.compile(pattern, re.MULTILINE)
    paths = sorted((root / "wrim").rglob("*.py"))
    return [p.relative_to(root).as_posix() for p in paths if regex.search(p.read_text(encoding="utf-8"))]


def _repeats(pattern: str, home: str | None, root: Path = ROOT) -> list[str]:
    return [f for f in _files_with(pattern, root) if f != home]


@pytest.mark.parametrize(("fact", "pattern", "home"), FACTS, ids=[fact for fact, _, _ in FACTS])
def test_one_home(fact: str, pattern: str, home: str | None) -> None:
    repeats = _repeats(pattern, home)
    assert not repeats, f"{fact} is written again in {repeats}; import it from {home or 'its home'}"


def test_the_check_names_the_file_that_repeats_a_fact(tmp_path: Path) -> None:
    for name, text in {"home.py": 'AMP = ("auto", "bf16", "fp16")', "copy.py": 'choices=["bf16", "fp16"]'}.items():
        (tmp_path / "wrim" / "engine").mkdir(parents=True, exist_ok=True)
        (tmp_path / "wrim" / "engine" / name).write_text(text + "\n")
    assert _repeats(r'"bf16",\s*"fp16"', "wrim/engine/home.py", tmp_path) == ["wrim/engine/copy.py"]
