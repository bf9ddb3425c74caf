"""Shared test fixtures: device selection (``WRIM_TEST_DEVICE``), seeding, the CUDA marker, the version markers and
the Hypothesis profiles.

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

import pytest
import torch
from hypothesis import settings

from wrim._versions import at_least, compile_unsupported_reason

TEST_DEVICE = torch.device(os.environ.get("WRIM_TEST_DEVICE", "cpu"))

settings.register_profile("default", max_examples=20, deadline=None, derandomize=False, print_blob=True)
settings.register_profile("slow", max_examples=400, deadline=None, derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(**versions): skipped unless each package is at least that version")
    config.addinivalue_line("markers", "needs_compile: skipped where torch.compile cannot work here")


def _version_skip_reason(item: pytest.Item) -> str | None:
    """Why ``item`` cannot run with the installed versions, or None."""
    for marker in item.iter_markers("needs"):
        for package, minimum in marker.kwargs.items():
            installed = importlib.metadata.version(package)
            if not at_least(installed, minimum):
                return f"needs {package}>={minimum} (installed {installed})"
    return compile_unsupported_reason() if item.get_closest_marker("needs_compile") else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_cuda = None if torch.cuda.is_available() else pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if skip_cuda is not None and "cuda" in item.keywords:
            item.add_marker(skip_cuda)
        reason = _version_skip_reason(item)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def device() -> torch.device:
    return TEST_DEVICE
