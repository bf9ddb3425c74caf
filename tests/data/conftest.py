"""Fixtures of ``tests/data``: a writer of tiny image files for the dataset-layout fixture trees."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def _write_image(path: Path, value: int, gray: bool = False, size: tuple[int, int] = (8, 4)) -> Path:
    """Write a tiny (H, W) = ``size`` image whose pixels encode ``value``; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.full((*size, 1 if gray else 3), value % 256, dtype=np.uint8)
    if not gray:
        arr[..., 1] = (value * 7) % 256
    Image.fromarray(arr[..., 0] if gray else arr).save(path)
    return path


@pytest.fixture
def write_image() -> Callable[..., Path]:
    return _write_image
