"""Facts of the models written once: a grep over the wrim/ source for the copies the models once held.

Each fact has one home; a second copy elsewhere would drift from it (the weights file's name, the ImageNet
statistics, the reading of a safetensors header, the "unknown model" message).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # reads the wrim/ source tree

ROOT = Path(__file__).resolve().parents[2]

#: fact -> (pattern in code, the one file that may hold it, the subtree searched)
HOMES = {
    "the weights file's name": (r"[\"']model\.safetensors[\"']", "wrim/models/weights.py", "wrim/models"),
    "ImageNet mean": (r"0\.485", "wrim/data/transforms.py", "wrim/models"),
    "a safetensors header read": (r"get_slice\(", "wrim/models/weights.py", "wrim"),
    "the unknown model / dataset message": (r"unknown (model|dataset|\{self\.kind\})", "wrim/_registry.py", "wrim"),
}


def _code_lines(path: Path) -> list[str]:
    """The lines outside docstrings and comments (a rough cut: lines of triple-quoted blocks are skipped)."""
    lines, inside = [], False
    for line in path.read_text().splitlines():
        quotes = line.count('"""')
        if inside or quotes:
            inside = inside != (quotes % 2 == 1)
            continue
        lines.append(line.split("  #")[0])
    return lines


@pytest.mark.parametrize("fact", sorted(HOMES))
def test_one_home(fact: str) -> None:
    pattern, home, subtree = HOMES[fact]

    def holds(path: Path) -> bool:
        return any(re.search(pattern, line) for line in _code_lines(path))

    assert holds(ROOT / home), f"{home} no longer holds {fact}: update HOMES"
    copies = [path for path in (ROOT / subtree).rglob("*.py") if path != ROOT / home and holds(path)]
    assert copies == [], f"{fact} is written again in {sorted(str(p.relative_to(ROOT)) for p in copies)}"
