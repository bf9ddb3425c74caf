"""Check a dataset copy before training: counts against the published statistics, every file, and its fingerprint.

The field's most common "results cannot be reproduced" report is a partial download, a wrong folder or a missing
file, found after a full run. [`check_dataset()`][wrim.data.check_dataset] (``wrim check-data --dataset NAME --root
PATH``) finds it in seconds to minutes:

- **counts** (``wrim.data.statistics``): the dataset is read with the readers training uses
  ([`SYSUMM01`][wrim.data.SYSUMM01], [`RegDB`][wrim.data.RegDB], [`LLCM`][wrim.data.LLCM]) and their train set and
  test protocol are counted against `PUBLISHED_STATISTICS`, each number with its source;
- **files**: every image file of the image folders is read and decoded with [`read_image()`][wrim.data.read_image] (the
  loaders' decoder), so zero-byte and truncated files are found, not only listed; files named in a list file but
  missing on disk, stray files (not an image, an image in no list), id folders in no id list and duplicate files
  (the same bytes under two names) are reported by name.

Any other registered reader (``wrim check-data --import my.py --dataset my_data``, the synthetic set, your own
``VIReIDDataset``) is checked by [`check_reader()`][wrim.data.check_reader]: its files, its identities and its
splits, with no published counts to compare. Every report ends with the dataset's fingerprint
(``wrim.data.fingerprint``): its version, counts and the hashes of its records and split files.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from wrim.data.check_files import DataCheckReport, Problem, _check_files, _Scan
from wrim.data.fingerprint import dataset_fingerprint
from wrim.data.statistics import (
    LLCM_NIR_CAMS,
    LLCM_VIS_CAMS,
    PUBLISHED_STATISTICS,
    REGDB_SPLITS,
    count_copy,
    count_rows,
    expected_numbers,
)
from wrim.data.sysu import SYSUMM01, read_rand_perm

__all__ = ["DataCheckReport", "Problem", "check_dataset"]


def _scan_sysu(root: Path) -> _Scan:
    scan = _Scan(root)
    lists = {}
    for name in ("train", "val", "test"):
        path = root / "exp" / f"{name}_id.txt"
        if scan.require(path, "id list file"):
            lists[f"exp/{name}_id.txt"] = scan.id_line(path)
    _report_overlaps(scan, lists)
    listed = set().union(*lists.values()) if len(lists) == 3 else None
    seen: set[int] = set()
    for cam in (*SYSUMM01.visible_cams, *SYSUMM01.infrared_cams):
        folder = root / f"cam{cam}"
        kind = "infrared" if cam in SYSUMM01.infrared_cams else "visible"
        if scan.require(folder, f"camera folder ({kind})"):
            seen |= set(scan.id_folders(folder, listed, "exp/*_id.txt list"))
    for list_name, ids in lists.items():
        for pid in sorted(ids - seen):
            scan.add("missing", f"cam*/{pid:04d}/", f"id {pid} of {list_name} has no folder in any camera")
    _mark_official_folders(scan, root / "exp" / "rand_perm_cam.mat")
    return scan


def _mark_official_folders(scan: _Scan, mat: Path) -> None:
    """Say so on the ``unlisted`` notes of id folders that the official ``rand_perm_cam.mat`` lists too.

    SYSU-MM01's evaluation file has image permutations for ids in none of ``exp/*_id.txt`` (ids seen by one camera
    only, which the README's 491 listed ids exclude): such folders belong to the published dataset.
    """
    if not mat.is_file():
        return
    try:
        official = read_rand_perm(mat)
    except (ImportError, ValueError, OSError):  # the reader (SYSUMM01) reports an unreadable file itself
        return
    for index, problem in enumerate(scan.problems):
        parts = problem.path.rstrip("/").split("/")
        if problem.kind != "unlisted" or len(parts) != 2 or not parts[0].startswith("cam"):
            continue
        if (int(parts[0][3:]), int(parts[1])) in official:
            detail = f"{problem.detail}; the official rand_perm_cam.mat lists it: a folder of the published dataset"
            scan.problems[index] = Problem(problem.kind, problem.path, detail)


def _report_overlaps(scan: _Scan, lists: Mapping[str, set[int]]) -> None:
    """Report ids that two id lists meant to be disjoint share."""
    names = list(lists)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            both = sorted(lists[a] & lists[b])
            if both:
                shown = ", ".join(map(str, both[:8])) + (" ..." if len(both) > 8 else "")
                scan.add("overlap", f"{a} + {b}", f"{len(both)} id(s) in both: {shown}")


def _list_pids(rels: list[str]) -> set[int]:
    """Person ids of listed ``<folder>/<pid>/<name>`` paths."""
    return {int(Path(rel).parent.name) for rel in rels if Path(rel).parent.name.isdigit()}


def _listed_images(scan: _Scan, lists: Mapping[Path, list[str]]) -> dict[str, str]:
    """``{relative image path: first list file naming it}``; reports listed images missing on disk."""
    listed: dict[str, str] = {}
    for path, rels in lists.items():
        for rel in rels:
            if rel not in listed:
                listed[rel] = scan.rel(path)
                if not (scan.root / rel).is_file():
                    scan.add("missing", rel, f"listed in {listed[rel]}")
    return listed


def _stray_images(scan: _Scan, folder: Path, listed: Mapping[str, str], what: str) -> None:
    """Walk ``folder/<pid>/<image>`` and report images that no list file names."""
    start = len(scan.images)
    scan.id_folders(folder, None, "")
    for path in scan.images[start:]:
        if path.relative_to(scan.root).as_posix() not in listed:
            scan.add("stray", path, f"in no {what}")


def _scan_regdb(root: Path) -> _Scan:
    scan = _Scan(root)
    lists: dict[Path, list[str]] = {}
    for t in REGDB_SPLITS:
        ids = {}
        for part in ("train", "test"):
            files = [root / "idx" / f"{part}_{modality}_{t}.txt" for modality in ("visible", "thermal")]
            for path in files:
                if scan.require(path, f"list file of split {t}"):
                    lists[path] = scan.pair_list(path)
            ids[f"idx/{part}_*_{t}.txt"] = _list_pids([rel for path in files for rel in lists.get(path, [])])
        _report_overlaps(scan, ids)
    listed = _listed_images(scan, lists)
    for name in ("Visible", "Thermal"):
        if scan.require(root / name, "image folder"):
            _stray_images(scan, root / name, listed, "idx list file")
    return scan


def _scan_llcm(root: Path) -> _Scan:
    scan = _Scan(root)
    lists = {}
    for modality in ("vis", "nir"):
        path = root / "idx" / f"train_{modality}.txt"
        if scan.require(path, "train list file"):
            lists[path] = scan.pair_list(path)
    listed = _listed_images(scan, lists)
    test_ids = None
    if scan.require(root / "idx" / "test_id.txt", "test id list file"):
        test_ids = scan.id_line(root / "idx" / "test_id.txt")
        _report_overlaps(scan, {"idx/train_*.txt": _list_pids(list(listed)), "idx/test_id.txt": test_ids})
    for modality in ("vis", "nir"):
        if scan.require(root / modality, "train image folder"):
            _stray_images(scan, root / modality, listed, "idx/train_*.txt list")
    seen: set[int] = set()
    for sub, cams in (("test_vis", LLCM_VIS_CAMS), ("test_nir", LLCM_NIR_CAMS)):
        if not scan.require(root / sub, "test image folder"):
            continue
        names = {f"cam{cam}" for cam in cams}
        for entry in sorted((root / sub).iterdir()):
            if entry.name not in names:
                scan.add("stray", entry, f"not one of the {sub} camera folders the protocol reads")
        for cam in cams:
            if scan.require(root / sub / f"cam{cam}", "camera folder"):
                seen |= set(scan.id_folders(root / sub / f"cam{cam}", test_ids, "idx/test_id.txt"))
    for pid in sorted((test_ids or set()) - seen):
        scan.add("missing", f"test_*/cam*/{pid:04d}/", f"id {pid} of idx/test_id.txt has no folder in any camera")
    return scan


_SCANS: dict[str, Callable[[Path], _Scan]] = {"sysu": _scan_sysu, "regdb": _scan_regdb, "llcm": _scan_llcm}


def check_dataset(
    dataset: str,
    root: str | os.PathLike | None,
    expected: Mapping[str, int] | None = None,
    decode: bool = True,
    workers: int | None = None,
    dataset_kwargs: Mapping[str, object] | None = None,
) -> DataCheckReport:
    """Check a dataset copy (``wrim check-data``): every file, the counts where published, and its fingerprint.

    SYSU-MM01, RegDB and LLCM are counted against `PUBLISHED_STATISTICS` and their folders walked (see the module
    docstring); ``"list"`` is ``wrim.data.list_dataset.check_list``; any other registered name is built by
    ``wrim.data.create_dataset`` and checked by [`check_reader()`][wrim.data.check_reader].

    Args:
        dataset: a registered dataset name (``"sysu"``, ``"regdb"``, ``"llcm"``, ``"list"``, ``"synthetic"`` or
            one registered with ``@wrim.data.register_dataset``).
        root: the dataset folder in its native layout (``None`` only for a dataset whose folder is optional).
        expected: numbers that replace published ones, by statistic key (a reduced copy, a test fixture).
        decode: decode every image with the loaders' decoder (``False``: only read the bytes, for hashing and
            zero-byte files).
        workers: threads reading the files (default ``min(8, cpu count)``).
        dataset_kwargs: further arguments of the dataset's reader (``--dataset-arg``), e.g. RegDB's ``trial``
            for the fingerprint, or ``file`` of a list dataset.

    Returns:
        The report; ``report.ok`` is ``True`` when every count matches and no file problem was found.

    Raises:
        ValueError: an unknown dataset (the registered names listed), a missing root or one that is not a folder,
            ``expected`` for a dataset without published numbers, or a bad ``expected`` key or value.
    """
    kwargs = dict(dataset_kwargs or {})
    workers = workers or min(8, os.cpu_count() or 1)
    if dataset not in PUBLISHED_STATISTICS and expected:
        raise ValueError(f"--expect: {dataset!r} has no published statistics to replace; drop --expect")
    if dataset == "list":
        from wrim.data.list_dataset import check_list

        return check_list(_folder(root, dataset), decode=decode, workers=workers, **kwargs)
    if dataset not in PUBLISHED_STATISTICS:
        from wrim.data._registry import create_dataset
        from wrim.data.reader_check import check_reader

        return check_reader(create_dataset(dataset, root, **kwargs), decode=decode, workers=workers)
    root = _folder(root, dataset)
    overrides = expected_numbers(dataset, expected)
    scan = _SCANS[dataset](root)
    found, refused = count_copy(dataset, root)
    for reason in refused:
        scan.add("reader", ".", reason)
    _check_files(scan, decode, workers)
    rows = count_rows(dataset, found, overrides)
    return DataCheckReport(
        dataset, root, rows, scan.problems, len(scan.images), decode, _fingerprint_of(dataset, root, kwargs)
    )


def _folder(root: str | os.PathLike | None, dataset: str) -> Path:
    if root is None:
        raise ValueError(f"--root is needed: pass the {dataset} dataset folder")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise ValueError(f"--root {str(path)!r} is not a folder: pass the {dataset} dataset folder")
    return path


def _fingerprint_of(dataset: str, root: Path, kwargs: Mapping[str, object]) -> dict[str, object] | None:
    """The fingerprint of the reader ``dataset`` on ``root`` (RegDB: split 1 unless ``trial`` is given); ``None``
    when the reader refuses the folder (the report names why)."""
    from wrim.data._registry import create_dataset

    try:
        return dataset_fingerprint(create_dataset(dataset, root, **kwargs))
    except ValueError:
        return None
