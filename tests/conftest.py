"""Shared test fixtures: device selection (``WRIM_TEST_DEVICE``), seeding and the CUDA marker."""

from __future__ import annotations

import os

import pytest
import torch

TEST_DEVICE = torch.device(os.environ.get("WRIM_TEST_DEVICE", "cpu"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip_cuda = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip_cuda)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def device() -> torch.device:
    return TEST_DEVICE
