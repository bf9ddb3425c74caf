"""The release is stated once and the same everywhere: ``wrim.__version__`` and ``RELEASE_DATE``, the newest dated
section of CHANGELOG.md (below an ``[Unreleased]`` section), CITATION.cff, README's "Citing a version" and the
software BibTeX (docs/citing.md and the model card)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from wrim.models.model_card import SOFTWARE_BIBTEX
from wrim.version import RELEASE_DATE, __version__

ROOT = Path(__file__).resolve().parents[1]
_SECTION = re.compile(r"^## \[([^\]]+)\](?: - (\d{4}-\d{2}-\d{2}))?$", re.M)


def test_the_changelog_dates_this_version_under_an_unreleased_section() -> None:
    sections = _SECTION.findall((ROOT / "CHANGELOG.md").read_text(encoding="utf-8"))
    assert sections[0] == ("Unreleased", ""), "CHANGELOG.md starts with '## [Unreleased]' for work not released"
    assert sections[1] == (__version__, RELEASE_DATE), f"the newest release in CHANGELOG.md is {sections[1]}"
    dates = [date for _, date in sections[1:]]
    assert all(dates) and dates == sorted(dates, reverse=True), "every release is dated, newest first"


def test_citation_cff_names_this_version_and_date() -> None:
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text(encoding="utf-8"))
    assert (str(cff["version"]), str(cff["date-released"])) == (__version__, RELEASE_DATE)


def test_the_software_bibtex_names_this_version_and_date() -> None:
    assert f"version = {{{__version__}}}" in SOFTWARE_BIBTEX and f"date    = {{{RELEASE_DATE}}}" in SOFTWARE_BIBTEX


@pytest.mark.repo
def test_readme_and_the_citing_page_name_this_release() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"{__version__} of {RELEASE_DATE}" in readme.split("### Citing a version", 1)[1]
    assert SOFTWARE_BIBTEX in (ROOT / "docs" / "citing.md").read_text(encoding="utf-8")
