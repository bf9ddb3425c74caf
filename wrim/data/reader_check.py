"""Check any dataset reader before training: its files, its identities and its splits (``wrim check-data`` for a
dataset without published statistics: one registered with ``--import``, the synthetic set, your own reader).

The published datasets are checked by [`check_dataset()`][wrim.data.check_dataset] against their published counts
and native layouts; this module checks what every reader gives, whatever its layout ([D]: what makes a run fail
late is a file that does not decode, labels the classifier cannot hold, or a trial whose gallery lacks a query's
identity; a train identity of one modality only is noted, since the sampler skips it).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

from wrim.data.base import VIReIDDataset
from wrim.data.check_files import DataCheckReport, _check_files, _Scan
from wrim.data.fingerprint import dataset_fingerprint
from wrim.data.records import ImageRecord

__all__ = ["check_reader"]


def check_reader(dataset: VIReIDDataset, decode: bool = True, workers: int | None = None) -> DataCheckReport:
    """Check any reader: its files, its identities and its splits (``wrim check-data --dataset NAME`` for a dataset
    without published statistics).

    - **splits**: every trial of ``default_trials`` builds a query and a gallery with the reader's default
      protocol, neither empty (a reader without ``default_trials`` is named: training it needs
      ``eval.final_trials``);
    - **identities**: train labels are ``0..C-1`` (the classifier's rows), a train identity with images of one
      modality only is noted (no cross-modality batch can hold it), and every query identity has a gallery image;
    - **files**: every train, query and gallery image exists, is not empty and decodes (``decode=True``); files
      with the same bytes are named.

    The problems' kinds are those of ``wrim.data.check_files.Problem``.

    Args:
        dataset: the reader, e.g. ``wrim.data.create_dataset("my_data", root)``.
        decode: decode every image with the loaders' decoder.
        workers: threads reading the files (default ``min(8, cpu count)``).

    Returns:
        A [`DataCheckReport`][wrim.data.DataCheckReport] without count rows; ``ok`` when no problem was found.
    """
    problems = _Scan(Path.cwd())  # problems named by identity or trial, no path
    records = list(dataset.train)
    _check_train_labels(problems, records)
    trials = tuple(dataset.default_trials)
    if not trials:
        problems.add("split", "default_trials", "the reader lists no default trials: set eval.final_trials to train it")
    for trial in trials or (0,):
        records += _check_split(problems, dataset, trial)
    paths = sorted({Path(r.path).resolve() for r in records})
    root = Path(dataset.root).resolve() if getattr(dataset, "root", None) is not None else None
    below = root is not None and all(p.is_relative_to(root) for p in paths)
    scan = _Scan(root if below or not paths else Path(os.path.commonpath(paths)))
    scan.problems = problems.problems
    for path in paths:
        if path.is_file():
            scan.images.append(path)
        else:
            scan.add("missing", path.relative_to(scan.root).as_posix(), "listed by the reader, not on disk")
    _check_files(scan, decode, workers or min(8, os.cpu_count() or 1))
    name = dataset.name or type(dataset).__name__
    fingerprint = dataset_fingerprint(dataset) if not any(p.kind == "split" for p in scan.problems) else None
    return DataCheckReport(name, scan.root, [], scan.problems, len(scan.images), decode, fingerprint)


def _check_train_labels(scan: _Scan, records: list[ImageRecord]) -> None:
    """Train labels ``0..C-1``, and identities whose images are of one modality only (noted)."""
    if not records:
        scan.add("split", "train", "the reader has no train image")
        return
    labels = sorted({r.pid for r in records})
    if labels != list(range(len(labels))):
        scan.add("labels", "train", f"labels must be 0..{len(labels) - 1} (relabel them), got {labels[:8]} ...")
    modalities: dict[int, set[int]] = defaultdict(set)
    for r in records:
        modalities[r.pid].add(r.modality)
    for pid in sorted(p for p, mods in modalities.items() if len(mods) < 2):
        scan.add("one_modality", f"train id {pid}", "has images of one modality only: no batch trains on them")


def _check_split(scan: _Scan, dataset: VIReIDDataset, trial: int) -> list[ImageRecord]:
    """The query and gallery of ``trial``: built, not empty, every query identity in the gallery."""
    try:
        split = dataset.test_split(trial)
    except Exception as err:  # a reader's own bug is reported, not raised: the other checks still run
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        scan.add("split", f"trial {trial}", f"test_split({trial}) failed: {type(err).__name__}: {first}")
        return []
    for part in ("query", "gallery"):
        if not getattr(split, part):
            scan.add("split", f"trial {trial}", f"the {part} is empty")
    gallery = {r.pid for r in split.gallery}
    for pid in sorted({r.pid for r in split.query} - gallery):
        scan.add("no_gallery", f"trial {trial} id {pid}", "has query images but no gallery image")
    return [*split.query, *split.gallery]
