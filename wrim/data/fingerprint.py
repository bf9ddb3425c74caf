"""A dataset's fingerprint: what a number was measured on, in a form two runs can compare.

Two copies of a dataset give comparable numbers only when they hold the same images under the same labels and the
same protocol draws the same galleries. The fingerprint says so in a few fields ([D]; see
docs: Evaluation, section Provenance and protocol cards):

- ``name`` and ``version``: the reader's name and, where a dataset exists in several versions, which one this copy
  is (the reader's ``version`` attribute, e.g. whether SYSU-MM01's official gallery permutations are present);
- ``counts``: images per split and modality (train, and the query / gallery of the first default trial under the
  default protocol) and identities per split;
- ``sha256``: a hash over every train, query and gallery record (its path relative to the dataset root, person id,
  camera and modality), in the reader's order, so that a changed file list or label changes it while the machine
  the copy lives on does not;
- ``files``: the sha256 of each split or list file the reader declares (``split_files``), when it declares any.

Image contents are not hashed (reading every image would cost minutes on the real sets); the file lists are.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from pathlib import Path
from typing import Any

from wrim._files import file_sha256
from wrim.data.base import VIReIDDataset
from wrim.data.records import ImageRecord
from wrim.modality import INFRARED, VISIBLE

__all__ = ["dataset_fingerprint", "format_fingerprint"]

_MODALITY_NAMES = {VISIBLE: "visible", INFRARED: "infrared"}


def _relative(path: str, root: Path) -> str:
    """``path`` relative to the dataset root when it lies below it, with forward slashes; else the path as given."""
    try:
        return Path(path).resolve().relative_to(root).as_posix()
    except ValueError:
        return Path(path).as_posix()


def _split_counts(records: list[ImageRecord]) -> dict[str, int]:
    modalities = Counter(r.modality for r in records)
    counts = {name: modalities.get(modality, 0) for modality, name in _MODALITY_NAMES.items()}
    counts["ids"] = len({r.pid for r in records})
    return counts


def dataset_fingerprint(dataset: VIReIDDataset, protocol: dict[str, Any] | None = None) -> dict[str, Any]:
    """The fingerprint of ``dataset``: name, version, counts per split and modality, and hashes of its records.

    Args:
        dataset: a dataset reader (any registered one, or your own ``VIReIDDataset``).
        protocol: the protocol arguments of the test split that is counted (e.g. ``{"mode": "all", "shots": 1}``);
            default the reader's own defaults. The split is the first of ``dataset.default_trials`` (trial 0 when
            the reader lists none).

    Returns:
        ``{"name", "version", "counts": {"train": {...}, "query": {...}, "gallery": {...}}, "sha256", "files"}``.
    """
    root = Path(dataset.root).resolve() if getattr(dataset, "root", None) is not None else Path(os.curdir).resolve()
    trial = next(iter(dataset.default_trials), 0)
    split = dataset.test_split(trial, **(protocol or {}))
    digest = hashlib.sha256()
    for part, records in (("train", dataset.train), ("query", split.query), ("gallery", split.gallery)):
        for record in records:
            line = f"{part}\t{_relative(record.path, root)}\t{record.pid}\t{record.camid}\t{record.modality}\n"
            digest.update(line.encode("utf-8"))
    files = {
        _relative(str(path), root): file_sha256(path)
        for path in getattr(dataset, "split_files", ())
        if Path(path).is_file()
    }
    return {
        "name": dataset.name or type(dataset).__name__,
        "version": getattr(dataset, "version", None),
        "counts": {
            "train": _split_counts(dataset.train),
            "query": _split_counts(split.query),
            "gallery": _split_counts(split.gallery),
            "trial": trial,
        },
        "sha256": digest.hexdigest(),
        "files": files,
    }


def format_fingerprint(fingerprint: dict[str, Any]) -> str:
    """The fingerprint as a few lines for a terminal (``wrim check-data`` prints it)."""
    counts = fingerprint["counts"]
    version = fingerprint["version"] or "one version known"
    lines = [f"dataset {fingerprint['name']} ({version}), records sha256 {fingerprint['sha256'][:16]}"]
    for part in ("train", "query", "gallery"):
        c = counts[part]
        trial = f" (trial {counts['trial']})" if part != "train" else ""
        lines.append(f"  {part:<8}{c['visible']:>7} visible {c['infrared']:>7} infrared {c['ids']:>6} ids{trial}")
    lines += [f"  file {name}: sha256 {sha[:16]}" for name, sha in fingerprint["files"].items()]
    return "\n".join(lines)
