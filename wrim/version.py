"""wrim's version and its release date (CHANGELOG.md and CITATION.cff say the same; a test checks it)."""

__version__ = "0.2.0"
RELEASE_DATE = "2026-12-07"
