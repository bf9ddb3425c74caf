"""Numbers from one place: the figures of docs/performance.md (the main job, the test suite, the benchmarks) are
stated there only; README, the other pages and the shipped configs' comments link to it instead of copying them."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # reads README.md and docs/

ROOT = Path(__file__).resolve().parents[1]
PERFORMANCE = ROOT / "docs" / "performance.md"
# a measured figure has four significant digits or more (26.12, 1.345, 3.9e-5 is not one); shorter numbers (0.47,
# 1.15) recur by coincidence in unrelated tables, such as the synthetic study's in reproducing.md
_FIGURE = re.compile(r"(?<![\w.])(?:\d{2,}\.\d{2,}|\d\.\d{3,})(?![\w.])|\d+ min \d+ s|\d+ s wall|\d+ passed")


def _other_places() -> list[Path]:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    return [p for p in pages if p != PERFORMANCE] + sorted((ROOT / "wrim" / "configs").glob("*.yaml"))


def _checked_text(path: Path) -> str:
    """The page's text; in docs/reproducing.md without the study's result tables (the runner's output, with hundreds
    of four-digit metrics: one of them equalled a FLOP count of performance.md by coincidence)."""
    text = path.read_text(encoding="utf-8")
    if path.name != "reproducing.md" or "### Results\n" not in text:
        return text
    head, rest = text.split("### Results\n", 1)
    results, heading, tail = rest.partition("\n## ")  # the Results section may end the page
    kept = "\n".join("" if line.startswith("|") else line for line in results.split("\n"))  # line numbers kept
    return head + "### Results\n" + kept + heading + tail


def test_performance_figures_are_stated_once():
    figures = set(_FIGURE.findall(PERFORMANCE.read_text(encoding="utf-8")))
    assert len(figures) > 50  # the page's measurements are found
    copies = []
    for path in _other_places():
        text = _checked_text(path)
        for figure in sorted(figures):
            for match in re.finditer(r"(?<![\w.])" + re.escape(figure) + r"(?![\w.])", text):
                copies.append(f"{path.relative_to(ROOT)}:{text[: match.start()].count(chr(10)) + 1}: {figure}")
    assert not copies, "figures of docs/performance.md copied elsewhere (link to it instead):\n" + "\n".join(copies)


def test_front_pages_quote_no_metric_of_the_main_job():
    for path in (ROOT / "README.md", ROOT / "docs" / "index.md", ROOT / "wrim" / "configs" / "synthetic.yaml"):
        text = path.read_text(encoding="utf-8")
        quoted = re.findall(r"\b(?:R1|mAP|mINP) \d+(?:\.\d+)?", text)
        assert not quoted, f"{path.name} quotes {quoted}: the main job's figures live in docs/performance.md"
