"""The rendered docs site reads as it is written: one ``mkdocs build --strict``, then its HTML is checked.

The build runs once per module (the ``site`` fixture); each test reads the built pages. A page fails when it
shows reST as text (Sphinx roles, ``.. math::``, ``Example::``), TeX outside a math container (what a reader
sees as a backslash wall), a table cell with attributes other than alignment (``attr_list`` eating ``{...}``),
an asset (script, stylesheet, font, image) loaded from outside the site, a missing image, or a Python line in a
code block longer than ``MAX_CODE_LINE`` characters.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

pytestmark = pytest.mark.repo  # builds the site from docs/

ROOT = Path(__file__).resolve().parents[1]
MAX_CODE_LINE = 100

ROLE = re.compile(r":(?:py:)?(?:class|meth|func|attr|mod|obj|data|exc|const|ref|doc|math|term):`?")
RAW_TEX = re.compile(r"\\(?:[A-Za-z]{2,}|[()\[\]])|\$\$")
TD_ATTRIBUTES = {"align", "style", "colspan", "rowspan"}
ASSET_LINK_RELS = {"stylesheet", "icon", "preload", "modulepreload", "manifest", "apple-touch-icon", "preconnect"}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)|@import\s+['\"]([^'\"]+)['\"]")
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
_HIDDEN = {"script", "style", "template", "title"}
_CODE = {"code", "pre", "kbd", "samp"}


@dataclass
class Page:
    """What one HTML page shows a reader, split by where the text sits."""

    path: Path
    prose: list[str] = field(default_factory=list)  # visible text outside code and math
    text: list[str] = field(default_factory=list)  # visible text outside math (code included)
    code_blocks: list[tuple[str, str]] = field(default_factory=list)  # (language, text) of each <pre>
    td_attributes: list[str] = field(default_factory=list)
    assets: list[str] = field(default_factory=list)  # script src, asset link href, img / source src
    images: list[str] = field(default_factory=list)
    blockquotes: int = 0


class _PageParser(HTMLParser):
    def __init__(self, page: Page) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.stack: list[tuple[str, bool]] = []  # (tag, opens a math container)
        self.pre: list[str] | None = None
        self.language = ""

    def _inside(self, tags: set[str]) -> bool:
        return any(tag in tags for tag, _ in self.stack)

    def _in_math(self) -> bool:
        return any(is_math for _, is_math in self.stack)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "td":
            self.page.td_attributes += [name for name, _ in attrs if name not in TD_ATTRIBUTES]
        if tag == "script" and values.get("src"):
            self.page.assets.append(values["src"])
        if tag == "link" and ASSET_LINK_RELS & set((values.get("rel") or "").split()) and values.get("href"):
            self.page.assets.append(values["href"])
        if tag in {"img", "source", "iframe", "embed"} and values.get("src"):
            self.page.assets.append(values["src"])
            if tag == "img":
                self.page.images.append(values["src"])
        classes = (values.get("class") or "").split()
        if tag == "div" and any(name.startswith("language-") for name in classes):
            self.language = next(name for name in classes if name.startswith("language-"))[len("language-") :]
        if tag == "pre":
            self.pre = []
        if tag == "blockquote":
            self.page.blockquotes += 1
        if tag not in _VOID:
            self.stack.append((tag, "arithmatex" in classes or "katex" in classes))

    def handle_endtag(self, tag: str) -> None:
        if tag == "pre" and self.pre is not None:
            self.page.code_blocks.append((self.language, "".join(self.pre)))
            self.pre, self.language = None, ""
        for index in range(len(self.stack) - 1, -1, -1):
            if self.stack[index][0] == tag:
                del self.stack[index:]
                break

    def handle_data(self, data: str) -> None:
        if self.pre is not None:
            self.pre.append(data)
        if self._inside(_HIDDEN) or self._in_math():
            return
        self.page.text.append(data)
        if not self._inside(_CODE):
            self.page.prose.append(data)


def parse_page(path: Path) -> Page:
    page = Page(path)
    parser = _PageParser(page)
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return page


def build_site(target: Path) -> str:
    """``mkdocs build --strict`` into ``target``; returns the build log (fails the test on any warning)."""
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"), "-d", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{log[-6000:]}"
    assert "WARNING" not in log, log[-6000:]
    return log


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    target = tmp_path_factory.mktemp("docs") / "site"
    build_site(target)
    yield target
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture(scope="module")
def pages(site) -> dict[str, Page]:
    return {path.relative_to(site).as_posix(): parse_page(path) for path in sorted(site.rglob("*.html"))}


def _per_page(pages: dict[str, Page], pattern: re.Pattern, attribute: str) -> dict[str, list[str]]:
    found = {}
    for name, page in pages.items():
        hits = pattern.findall(" ".join(getattr(page, attribute)))
        if hits:
            found[name] = hits
    return found


def _summary(found: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {len(hits)} ({', '.join(sorted(set(hits))[:5])})" for name, hits in found.items())


def _local_file(site: Path, page: Path, url: str) -> Path:
    """The file a site-relative or root-relative (``/<site_url path>/...``) URL points at."""
    path = unquote(urlsplit(url).path)
    if path.startswith("/"):
        prefix = urlsplit(_site_url()).path
        return site / path[len(prefix) :] if path.startswith(prefix) else site / path.lstrip("/")
    return (page.parent / path).resolve()


def _site_url() -> str:
    match = re.search(r"^site_url:\s*(\S+)", (ROOT / "mkdocs.yml").read_text(encoding="utf-8"), re.M)
    return match.group(1) if match else "/"


def _is_external(url: str) -> bool:
    parts = urlsplit(url)
    return bool(parts.scheme and parts.scheme not in {"data"}) or url.startswith("//")


def test_site_builds(site) -> None:
    assert (site / "index.html").is_file() and (site / "api" / "layers" / "index.html").is_file()


def test_no_sphinx_roles(pages) -> None:
    found = _per_page(pages, ROLE, "text")
    assert not found, f"raw Sphinx roles shown as text: {_summary(found)}"


def test_no_rest_directives(pages) -> None:
    math = _per_page(pages, re.compile(r"\.\. math::"), "text")
    literal = _per_page(pages, re.compile(r"\bExamples?::"), "prose")
    assert not math, f"literal '.. math::' blocks: {_summary(math)}"
    assert not literal, f"literal 'Example::' (a reST literal-block marker): {_summary(literal)}"


def test_api_docstrings_render_as_markdown(pages) -> None:
    """A docstring section the parser did not recognise (``Example:``) renders as nested blockquotes."""
    found = {name: page.blockquotes for name, page in pages.items() if name.startswith("api/") and page.blockquotes}
    assert not found, f"blockquotes on API pages (an unrecognised docstring section?): {found}"


def test_returns_sections_read_as_one_value(site) -> None:
    """wrim returns one unnamed value: a Name column means a "word: text" line was read as a named return, a
    second row means a continuation line was not indented."""
    table = re.compile(r"Returns:</span></p>\s*<table>(.*?)</table>", re.S)
    found = []
    for path in sorted((site / "api").glob("*/index.html")):
        for body in table.findall(path.read_text(encoding="utf-8")):
            if "<th>Name</th>" in body or body.count('<tr class="doc-section-item">') > 1:
                text = re.sub(r"<[^>]+>|\s+", " ", body)
                found.append(f"{path.parent.name}: {text[:120]}")
    assert not found, f"Returns sections read as named or several values: {found}"


def test_no_tex_outside_math(pages) -> None:
    found = _per_page(pages, RAW_TEX, "prose")
    assert not found, f"TeX outside a math container (renders as raw backslashes): {_summary(found)}"


def test_math_is_delimited_for_the_renderer(site) -> None:
    """Every math container holds one ``\\(...\\)`` or ``\\[...\\]`` span, which katex-render.js renders."""
    container = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.S)
    bad, count = [], 0
    for path in site.rglob("*.html"):
        for _, body in container.findall(path.read_text(encoding="utf-8")):
            count += 1
            body = body.strip()
            if not (body.startswith(("\\(", "\\[")) and body.endswith(("\\)", "\\]"))):
                bad.append(f"{path.relative_to(site)}: {body[:60]}")
    assert count >= 30, "the Layers, Losses and Evaluation pages hold equations"
    assert not bad, f"math the renderer would not see: {bad[:5]}"


def test_table_cells_have_no_stray_attributes(pages) -> None:
    found = {name: page.td_attributes for name, page in pages.items() if page.td_attributes}
    assert not found, f"<td> attributes other than alignment (attr_list read '{{...}}' in a cell?): {found}"


def test_assets_are_local_and_exist(site, pages) -> None:
    external, missing = [], []
    for name, page in pages.items():
        for url in page.assets:
            if _is_external(url):
                external.append(f"{name}: {url}")
                continue
            if not _local_file(site, page.path, url).is_file():
                missing.append(f"{name}: {url}")
    for css in site.rglob("*.css"):
        for match in CSS_URL.finditer(css.read_text(encoding="utf-8")):
            url = match.group(1) or match.group(2)
            if url.startswith("data:") or url.startswith("#"):
                continue
            if _is_external(url):
                external.append(f"{css.relative_to(site)}: {url}")
            elif not _local_file(site, css, url).is_file():
                missing.append(f"{css.relative_to(site)}: {url}")
    assert not external, f"assets loaded from outside the site: {external[:10]}"
    assert not missing, f"assets referenced but not in the site: {missing[:10]}"


def test_figures_are_shown(pages) -> None:
    images = Counter(Path(urlsplit(url).path).name for page in pages.values() for url in page.images)
    figures = ("architecture.svg", "miim.svg", "modality_miim.svg", "cmkic.svg", "curves.png", "ranklist.png")
    for figure in (*figures, "gate_maps.png"):
        assert images[figure] >= 1, f"no page shows {figure}"


def test_code_lines_fit(pages) -> None:
    long = []
    for name, page in pages.items():
        if name.startswith("api/"):
            continue  # signatures are laid out by mkdocstrings
        for language, block in page.code_blocks:
            if language == "bibtex":
                continue  # a citation is copied whole, not read
            long += [f"{name}: {line[:60]}..." for line in block.splitlines() if len(line) > MAX_CODE_LINE]
    assert not long, f"code lines over {MAX_CODE_LINE} characters: {long[:10]}"


def test_checks_catch_each_defect(tmp_path) -> None:
    """The parser behind the checks sees each defect the site once had (a hand-written page, no build)."""
    page = tmp_path / "page.html"
    page.write_text(
        '<html><head><script src="https://cdn.example/mathjax.js"></script>'
        '<link rel="preconnect" href="https://fonts.gstatic.com"></head><body>'
        "<p>Built by :class:<code>WRIMNet</code>. Example::</p><p>.. math::</p><p>\\[\\begin{aligned} x</p>"
        '<div class="arithmatex">\\[ \\frac{a}{b} \\]</div><table><tr><td 1_ 4_ 8>K</td><td align="left">1</td></tr>'
        '</table><blockquote>merged</blockquote><img src="figures/missing.png"><div class="language-python highlight">'
        "<pre><code>" + "x" * (MAX_CODE_LINE + 1) + "</code></pre></div></body></html>",
        encoding="utf-8",
    )
    parsed = parse_page(page)
    prose, text = " ".join(parsed.prose), " ".join(parsed.text)
    assert ROLE.search(text) and re.search(r"\bExamples?::", prose) and ".. math::" in text
    assert RAW_TEX.findall(prose) == ["\\[", "\\begin"], "TeX inside the arithmatex container is not prose"
    assert parsed.td_attributes == ["1_", "4_", "8"]
    assert [url for url in parsed.assets if _is_external(url)] == [
        "https://cdn.example/mathjax.js",
        "https://fonts.gstatic.com",
    ]
    assert parsed.images == ["figures/missing.png"] and not _local_file(tmp_path, page, "figures/missing.png").is_file()
    assert parsed.blockquotes == 1
    assert parsed.code_blocks == [("python", "x" * (MAX_CODE_LINE + 1))]
