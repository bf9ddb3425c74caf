"""Shared test fixtures: device selection (``WRIM_TEST_DEVICE``), seeding, the CUDA, repository and version markers,
the Hypothesis profiles.

``@pytest.mark.repo`` skips a test that reads the repository's files beyond the package and tests (docs, examples,
README, CI scripts, the source tree) where they are absent. ``WRIM_TEST_INSTALLED=1`` (the installed-wheel job,
tests/wheel/run.sh) stops the session unless ``wrim`` is imported from a site-packages folder outside the tests'
tree, so that the suite cannot pass against a source tree by accident; the header names where wrim came from.

``@pytest.mark.needs(torch="2.4")`` skips a test of a feature that needs a newer dependency than wrim's floor, with
the version in the reason; ``@pytest.mark.needs_compile`` skips where ``torch.compile`` cannot work with the
installed versions (`wrim._versions.compile_unsupported_reason`).

Hypothesis (the property tests of ``tests/hostile``): the ``default`` profile draws few examples per property so the
default suite stays fast; ``HYPOTHESIS_PROFILE=slow`` draws many more. Draws are random (not derandomised); a failure
prints its seed and a ``@reproduce_failure`` blob, and ``pytest --hypothesis-seed=N`` replays the run.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import pytest
import torch
from hypothesis import settings

from wrim._versions import at_least, compile_unsupported_reason

TEST_DEVICE = torch.device(os.environ.get("WRIM_TEST_DEVICE", "cpu"))
ROOT = Path(__file__).resolve().parents[1]
#: what ``@pytest.mark.repo`` tests need beside tests/ (the source tree, docs, examples, README, CI scripts)
REPOSITORY_FILES = ("wrim/__init__.py", "docs/index.md", "examples", "README.md", "mkdocs.yml", ".ci/run")

settings.register_profile("default", max_examples=20, deadline=None, derandomize=False, print_blob=True)
settings.register_profile("slow", max_examples=400, deadline=None, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(**versions): skipped unless each package is at least that version")
    config.addinivalue_line("markers", "needs_compile: skipped where torch.compile cannot work here")


def pytest_report_header(config: pytest.Config) -> str:
    import wrim

    return f"wrim {wrim.__version__} from {Path(wrim.__file__).parent}"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("WRIM_TEST_INSTALLED") != "1":
        return
    import wrim

    package = Path(wrim.__file__).resolve().parent
    if package.parent.name != "site-packages" or package.is_relative_to(ROOT):
        pytest.exit(f"WRIM_TEST_INSTALLED=1 but wrim is imported from {package}, not an installed wheel", returncode=3)


def _version_skip_reason(item: pytest.Item) -> str | None:
    """Why ``item`` cannot run with the installed versions, or None."""
    for marker in item.iter_markers("needs"):
        for package, minimum in marker.kwargs.items():
            installed = importlib.metadata.version(package)
            if not at_least(installed, minimum):
                return f"needs {package}>={minimum} (installed {installed})"
    return compile_unsupported_reason() if item.get_closest_marker("needs_compile") else None


def missing_repository_files() -> list[str]:
    """The repository's files that ``@pytest.mark.repo`` tests read and that are absent here (none in a clone; the
    installed-wheel job runs the tests from the sdist, which holds the package's tests but not the rest)."""
    return [name for name in REPOSITORY_FILES if not (ROOT / name).exists()]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_cuda = None if torch.cuda.is_available() else pytest.mark.skip(reason="needs a CUDA GPU")
    missing = missing_repository_files()
    skip_repo = pytest.mark.skip(reason=f"needs the repository's files; absent here: {', '.join(missing)}")
    for item in items:
        if skip_cuda is not None and "cuda" in item.keywords:
            item.add_marker(skip_cuda)
        if missing and "repo" in item.keywords:
            item.add_marker(skip_repo)
        reason = _version_skip_reason(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def device() -> torch.device:
    return TEST_DEVICE
