"""Fixtures of ``tests/data``: writers of tiny image files and list files for the dataset-layout fixture trees."""

from __future__ import annotations

from collections.abc import Callable, Iterable
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


def _write_regdb_lists(root: Path, trials: Iterable[int], split: Callable[[int], tuple[list[int], list[int]]]) -> None:
    """RegDB's ``idx/{train,test}_{visible,thermal}_{trial}.txt``: every image of the split's ids, labelled 0..n-1."""
    (root / "idx").mkdir()
    for trial in trials:
        for part, ids in zip(("train", "test"), split(trial)):
            for modality, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                lines = [
                    f"{p.relative_to(root).as_posix()} {label}"
                    for label, pid in enumerate(ids)
                    for p in sorted((root / folder / str(pid)).iterdir())
                ]
                (root / "idx" / f"{part}_{modality}_{trial}.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture
def write_regdb_lists() -> Callable[..., None]:
    return _write_regdb_lists
