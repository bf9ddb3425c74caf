"""Every ```python block of README.md and docs/**/*.md runs (the site build is checked in test_docs_site.py).

A block is executed in a fresh namespace, on the CPU, from a temporary working directory that also receives its
``tempfile`` folders and ``WRIM_CACHE``. A block may opt out only with the marker ``<!-- snippet: skip -->`` on the line
right before its fence; that is reserved for blocks that need a real dataset or a GPU, and the number of such
blocks is capped below. Global state a snippet may change (the fused-attention default, the model registry) is
restored after each block (the model and dataset registries too).
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

import wrim
from wrim.data import _registry as data_registry
from wrim.models import _registry

pytestmark = pytest.mark.repo  # runs README.md's and docs/' code blocks

ROOT = Path(__file__).resolve().parents[1]
SKIP_MARKER = "<!-- snippet: skip -->"
EXTRA_MODULES = ("onnx", "onnxruntime", "onnxscript", "huggingface_hub")  # pyproject extras onnx, hub
MAX_SKIPPED = 3
_FENCE_OPEN = re.compile(r"^```python\s*$")


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    skipped: bool

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT).as_posix()}:{self.line}"


def markdown_files() -> list[Path]:
    """README.md and every Markdown page of the docs site."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def extract_snippets(path: Path) -> list[Snippet]:
    """The ```python blocks of one Markdown file, with their skip marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    snippets = []
    index = 0
    while index < len(lines):
        if _FENCE_OPEN.match(lines[index]):
            start = index
            body = []
            index += 1
            while index < len(lines) and lines[index].strip() != "```":
                body.append(lines[index])
                index += 1
            if index == len(lines):
                raise ValueError(f"{path}:{start + 1}: unterminated ```python block")
            skipped = start > 0 and lines[start - 1].strip() == SKIP_MARKER
            snippets.append(Snippet(path, start + 1, "\n".join(body) + "\n", skipped))
        index += 1
    return snippets


SNIPPETS = [snippet for path in markdown_files() if path.is_file() for snippet in extract_snippets(path)]


@pytest.fixture
def snippet_env(tmp_path, monkeypatch):
    """A temporary working directory and cache, and the global state restored afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WRIM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # tempfile.mkdtemp() in a snippet lands here
    fused = wrim.use_fused_attn()
    registry, datasets = dict(_registry._ENTRYPOINTS), dict(data_registry._DATASETS)
    yield tmp_path
    wrim.set_fused_attn(fused)
    _registry._ENTRYPOINTS.clear()
    _registry._ENTRYPOINTS.update(registry)
    data_registry._DATASETS.clear()
    data_registry._DATASETS.update(datasets)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_snippet_runs(snippet: Snippet, snippet_env) -> None:
    if snippet.skipped:
        pytest.skip(f"{snippet.id} is marked {SKIP_MARKER} (needs a real dataset or a GPU)")
    code = compile(snippet.code, snippet.id, "exec")
    imported = [name for name in EXTRA_MODULES if f"import {name}" in snippet.code]
    missing_extras = [name for name in imported if importlib.util.find_spec(name) is None]
    if missing_extras:  # the floor job (tests/compat/run.sh) installs no onnx / hub extra; the main run has them all
        pytest.skip(f"{snippet.id} needs {', '.join(missing_extras)} (an optional extra)")
    exec(code, {"__name__": "__docs_snippet__"})


def test_snippets_are_found() -> None:
    by_file = {}
    for snippet in SNIPPETS:
        by_file.setdefault(snippet.path.name, []).append(snippet)
    assert by_file.get("README.md"), "README.md should hold its usage snippet in a ```python block"
    for page in ("index.md", "layers.md", "losses.md", "models.md", "datasets.md", "evaluation.md", "training.md"):
        assert by_file.get(page), f"docs/{page} has no ```python block"


def test_skipped_snippets_stay_few() -> None:
    skipped = [s.id for s in SNIPPETS if s.skipped]
    assert len(skipped) <= MAX_SKIPPED, f"too many snippets opt out of the test ({len(skipped)}): {skipped}"


def test_extract_snippets_marker(tmp_path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "text\n```python\nx = 1\n```\n\n" + SKIP_MARKER + "\n```python\nraise SystemExit\n```\n```bash\nls\n```\n",
        encoding="utf-8",
    )
    snippets = extract_snippets(page)
    assert [(s.line, s.code, s.skipped) for s in snippets] == [(2, "x = 1\n", False), (7, "raise SystemExit\n", True)]


def test_citing_page_matches_citation_cff() -> None:
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    page = (ROOT / "docs" / "citing.md").read_text(encoding="utf-8")
    paper = cff["preferred-citation"]
    assert f"title   = {{{cff['title']}}}" in page
    assert f"version = {{{cff['version']}}}" in page
    assert f"date    = {{{cff['date-released']}}}" in page
    assert f"title         = {{{paper['title']}}}" in page
    authors = " and ".join(f"{a['family-names']}, {a['given-names']}" for a in paper["authors"])
    assert f"author        = {{{authors}}}" in page


def test_bracket_pairs_are_escaped_outside_code() -> None:
    pytest.importorskip("griffe")
    spec = importlib.util.spec_from_file_location("source_markers", ROOT / "docs" / "_ext" / "source_markers.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    escape = module.escape_bracket_pairs
    assert escape("stride 1 ([P][N]) and [D]") == "stride 1 ([P]\\[N]) and [D]"
    assert escape("``x[a][b]`` but x[a][b]") == "``x[a][b]`` but x[a]\\[b]"
    assert escape(">>> x[0][1]") == ">>> x[0][1]"
    assert escape("see [`MIIM`][wrim.layers.MIIM] ([P][N])") == "see [`MIIM`][wrim.layers.MIIM] ([P]\\[N])"
    assert escape("```python\ny = x[0][1]\n```\nx[0][1]") == "```python\ny = x[0][1]\n```\nx[0]\\[1]"
