"""Docstring and config references point at the documentation site by page title and section, and those exist.

The wheel ships no ``docs/*.md``, so a reference to a repository file cannot be followed from an installed package;
``docs: <page title>, section <heading>`` names a page of the site's navigation (mkdocs.yml) and a heading on it.
"""

import re
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.repo  # reads docs/ and mkdocs.yml

ROOT = Path(__file__).resolve().parents[1]
_REFERENCE = re.compile(
    r"docs: ([A-Z][\w -]*?)(?:, section ([A-Z0-9][\w -]*?(?: \([\w /]+\))?))?(?=[).;:,\]\n]| \[| -| or)"
)


def _shipped_sources() -> dict[str, str]:
    files = [*(ROOT / "wrim").rglob("*.py"), *(ROOT / "wrim").rglob("*.yaml")]
    return {p.relative_to(ROOT).as_posix(): p.read_text() for p in files}


def _nav_pages() -> dict[str, str]:
    """``{page title: file}`` from mkdocs.yml's navigation (nested sections flattened)."""

    def walk(items) -> dict[str, str]:
        out = {}
        for item in items:
            for title, value in item.items():
                out.update(walk(value) if isinstance(value, list) else {title: value})
        return out

    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.BaseLoader)
    return walk(config["nav"])


def test_no_reference_to_repository_doc_files() -> None:
    found = [
        f"{path}: {match}"
        for path, text in _shipped_sources().items()
        for match in re.findall(r"docs/[\w-]+\.md", text)
    ]
    assert not found, found


def test_every_page_and_section_reference_exists() -> None:
    pages = _nav_pages()
    titles = sorted(pages, key=len, reverse=True)  # the longest title that fits ("The paper" before "The")
    seen = 0
    for path, text in _shipped_sources().items():
        for start in (m.end() for m in re.finditer(r"docs: ", text)):
            rest = " ".join(text[start : start + 200].replace("#", " ").split())  # one line, comment marks dropped
            page = next((t for t in titles if rest.startswith(t)), None)
            assert page is not None, f"{path}: 'docs: {rest[:40]}...' names no page of mkdocs.yml's nav"
            seen += 1
            rest = rest[len(page) :]
            if rest.startswith(", section "):
                headings = re.findall(r"^#+ (.+)$", (ROOT / "docs" / pages[page]).read_text(), flags=re.MULTILINE)
                section = rest[len(", section ") :]
                name = re.split(r"[).;:\[]", section)[0].strip()  # where the reference's own text ends
                found = any(section.startswith(h) or (len(name) > 2 and h.startswith(name)) for h in headings)
                assert found, f"{path}: {page} has no section '{section[:40]}'"
    assert seen > 40  # the references are found, not skipped
