"""The docs speak about the library, not about how it is worked on: README.md, docs/**/*.md and the docstrings
under wrim/ name no work session, engineer, worktree or issue number of this project, and no commit of this
repository (its history goes to CHANGELOG.md, which is not checked). Code (fenced blocks, inline code spans) is
left out of the word check, so ``session = onnxruntime.InferenceSession(...)`` is fine, and so are links to other
projects' issues such as ``ZYK100/LLCM#28``. A hex string counts as a commit only when git resolves it to a commit
of this repository, so a weights file's hash (``resnet50-19c8e357.pth``) or a checkpoint set's id is not one."""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NARRATION = re.compile(r"\b(?:sessions?|engineers?|worktrees?)\b|\bissues?\s+#?\d+", re.IGNORECASE)
HEX = re.compile(r"(?<![\w.-])[0-9a-f]{7,40}(?![\w-])")
_CODE = re.compile(r"```.*?```|`[^`\n]+`", re.S)
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _pages() -> dict[str, str]:
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return {p.relative_to(ROOT).as_posix(): p.read_text(encoding="utf-8") for p in paths}


def _docstrings() -> dict[str, str]:
    """``{module path: its module, class and function docstrings joined}`` for every module under wrim/."""
    found = {}
    for path in sorted((ROOT / "wrim").rglob("*.py")):
        nodes = ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        docs = [ast.get_docstring(node, clean=False) for node in nodes if isinstance(node, _DOCUMENTED)]
        found[path.relative_to(ROOT).as_posix()] = "\n".join(doc for doc in docs if doc)
    return found


TEXTS = {**_pages(), **_docstrings()}


def _commits_among(candidates: list[str]) -> set[str]:
    """The candidates that git resolves to a commit of this repository (one ``git cat-file`` call)."""
    query = "".join(f"{c}^{{commit}}\n" for c in candidates)
    result = subprocess.run(
        ["git", "cat-file", "--batch-check"], cwd=ROOT, input=query, capture_output=True, text=True, check=True
    )
    return {c for c, line in zip(candidates, result.stdout.splitlines()) if line.split()[1:2] == ["commit"]}


@pytest.fixture(scope="module")
def commits() -> set[str] | None:
    """The hex strings of the texts that are commits of this repository; None outside a git checkout."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        return None
    return _commits_among(sorted({h for text in TEXTS.values() for h in HEX.findall(text) if re.search("[a-f]", h)}))


@pytest.mark.repo  # docs/ and the wrim/ source
def test_the_checks_see_what_they_look_for(commits) -> None:
    assert "docs/index.md" in TEXTS and "wrim/layers/miim.py" in TEXTS and len(TEXTS) > 60
    assert NARRATION.search("as the second session measured (issue 30)") and NARRATION.search("issue #12")
    assert not NARRATION.search("ZYK100/LLCM#28 (a GitHub issue of another project)")
    if commits is None:
        pytest.skip("not a git checkout: commits cannot be told from other hex strings")
    head = subprocess.run(["git", "rev-parse", "--short=7", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    short = head.stdout.strip()
    assert HEX.findall(f"measured at {short}.") == [short] and _commits_among([short, "19c8e357"]) == {short}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_no_narration_of_the_work(name: str, commits) -> None:
    text = TEXTS[name]
    hits = sorted({m.group(0) for m in NARRATION.finditer(_CODE.sub(" ", text))})
    hits += sorted({h for h in HEX.findall(text) if commits and h in commits})
    assert not hits, f"{name} narrates how the project is worked on: {hits} (history goes to CHANGELOG.md)"
