"""Your own visible-infrared data: one CSV list file, any folder layout (registered as dataset ``list``).

The file (default ``<root>/list.csv``) is UTF-8 with a header naming the columns ``path,pid,camera,modality,split``
(in any order; other columns are ignored), one image per row:

```text
path,pid,camera,modality,split
day/alice_01.jpg,alice,gate,visible,train
night/alice_07.png,alice,gate-ir,infrared,train
q/0001.jpg,17,1,0,query
g/0002.jpg,17,2,1,gallery
```

- ``path``: the image, relative to ``root``;
- ``pid``: any string or integer identity; ``camera``: any string or integer camera;
- ``modality``: ``visible`` / ``infrared`` (or ``0`` / ``1``); ``split``: ``train``, ``query`` or ``gallery``.

Train identities are relabelled ``0..C-1``; the test split is the file's query and gallery rows ([D] one trial,
``0``). Identities and cameras that are all integers keep their numbers; otherwise they are numbered in sorted
order. The camera rule: every gallery image is kept (RegDB's rule, ``protocol="regdb"``), or with
``exclude_same_camera=True`` a query's same-identity gallery images from its own camera are dropped (the
Market-1501 convention, LLCM's rule, ``protocol="llcm"``). A malformed row is a ``ValueError`` naming ``file:line``.
A path must stay inside ``root`` on every system: no absolute path, drive letter, ``..``, backslash or control
character ([D] docs: Threat model). ``wrim check-data --dataset list --root DIR`` checks every file (see
`check_list()`).
"""

from __future__ import annotations

import csv
import io
import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING

from wrim.data._registry import register_dataset
from wrim.data.base import VIReIDDataset, relabel
from wrim.data.records import ImageRecord, TestSplit
from wrim.modality import INFRARED, VISIBLE

if TYPE_CHECKING:
    from wrim.data.check_files import DataCheckReport, _Scan

__all__ = ["COLUMNS", "ListDataset", "ListRow", "check_list", "read_list_file"]

#: The columns the list file's header must name.
COLUMNS: tuple[str, ...] = ("path", "pid", "camera", "modality", "split")

_MODALITIES = {"visible": VISIBLE, "0": VISIBLE, "infrared": INFRARED, "1": INFRARED}
_SPLITS = ("train", "query", "gallery")


@dataclass(frozen=True)
class ListRow:
    """One parsed row of a list file (identity and camera still as written)."""

    line: int
    path: str
    pid: str
    camera: str
    modality: int
    split: str


def _records(text: str, where: str) -> Iterator[tuple[int, list[str] | ValueError]]:
    """``(line, cells)`` of each CSV record of ``text`` (``line`` its first physical line); a record the CSV module
    cannot split (a field over its size limit, a NUL byte on older Pythons) comes as a ``file:line`` ValueError."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        line = reader.line_num + 1
        try:
            cells: list[str] | ValueError = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            cells = ValueError(f"{where}:{line}: not a CSV record ({err})")
        yield line, cells


def _header(records: Iterator[tuple[int, list[str] | ValueError]], where: str) -> dict[str, int]:
    """Column name -> index, from the first record; raises when a column is missing or named twice."""
    _, header = next(records, (1, None))
    if isinstance(header, ValueError):
        raise header
    if header is None:
        raise ValueError(f"{where}:1: the file is empty; the first line must be the header {','.join(COLUMNS)}")
    names = [name.strip().lower() for name in header]
    twice = [c for c in COLUMNS if names.count(c) > 1]
    if twice:
        raise ValueError(f"{where}:1: the header names column(s) {twice} more than once")
    index = {name: i for i, name in enumerate(names)}
    missing = [c for c in COLUMNS if c not in index]
    if missing:
        raise ValueError(f"{where}:1: the header lacks column(s) {missing}; it must name {','.join(COLUMNS)}")
    return index


def _path_problem(path: str) -> str | None:
    """Why ``path`` may not name a file inside the root on every system, or None."""
    if any(unicodedata.category(char) == "Cc" for char in path):
        return "holds a control character"
    if "\\" in path:
        return "holds a backslash (separate folders with /)"
    if PurePosixPath(path).is_absolute() or PureWindowsPath(path).drive or ".." in PurePosixPath(path).parts:
        return "must be relative to the root, inside it"
    if not PurePosixPath(path).parts:
        return "names the root itself, not a file in it"
    return None


def _parse_row(cells: list[str], index: dict[str, int], line: int, where: str) -> ListRow:
    """One data row; raises a ``file:line`` ValueError naming the problem."""
    if len(cells) < len(index):
        raise ValueError(f"{where}:{line}: expected {len(index)} comma-separated fields, got {len(cells)}")
    value = {name: cells[i].strip() for name, i in index.items() if name in COLUMNS}
    empty = [name for name in COLUMNS if not value[name]]
    if empty:
        raise ValueError(f"{where}:{line}: empty {empty[0]!r}")
    problem = _path_problem(value["path"])
    if problem is not None:
        raise ValueError(f"{where}:{line}: path {value['path']!r} {problem}")
    modality = _MODALITIES.get(value["modality"].lower())
    if modality is None:
        raise ValueError(f"{where}:{line}: modality must be visible, infrared, 0 or 1, got {value['modality']!r}")
    if value["split"].lower() not in _SPLITS:
        raise ValueError(f"{where}:{line}: split must be train, query or gallery, got {value['split']!r}")
    return ListRow(line, value["path"], value["pid"], value["camera"], modality, value["split"].lower())


def read_list_file(path: str | os.PathLike, collect: list[str] | None = None) -> list[ListRow]:
    """Parses a list file.

    Args:
        path: the CSV file.
        collect: when given, a malformed row's one-line message is appended here and the row skipped (what
            ``wrim check-data`` does); otherwise the first one is raised.

    Raises:
        ValueError: a missing or non-UTF-8 file, a bad header, or (without ``collect``) a malformed or repeated row.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"list file {str(path)!r} not found: write one with the header {','.join(COLUMNS)}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[: err.start].count(b"\n") + 1
        raise ValueError(f"{path}: not UTF-8 ({err.reason} at line {line}, byte {err.start})") from None
    records = _records(text, str(path))
    index = _header(records, str(path))
    rows: list[ListRow] = []
    first_line: dict[str, int] = {}
    for line, cells in records:
        try:
            if isinstance(cells, ValueError):
                raise cells
            if not any(cell.strip() for cell in cells):
                continue
            row = _parse_row(cells, index, line, str(path))
            if row.path in first_line:
                raise ValueError(f"{path}:{line}: {row.path!r} is already listed at line {first_line[row.path]}")
        except ValueError as err:
            if collect is None:
                raise
            collect.append(str(err))
            continue
        first_line[row.path] = line
        rows.append(row)
    return rows


def _codes(values: set[str]) -> dict[str, int]:
    """Integer codes: the integers themselves when every value is one, else the sorted order."""
    if all(v.lstrip("-").isdigit() for v in values):
        return {v: int(v) for v in values}
    return {v: i for i, v in enumerate(sorted(values))}


@register_dataset("list")
class ListDataset(VIReIDDataset):
    """A VI-ReID dataset described by one CSV list file (see the module docstring for the format).

    Args:
        root: the folder the listed paths are relative to.
        file: the list file (default ``<root>/list.csv``; a relative path is taken inside ``root``).
        exclude_same_camera: drop, for each query, the gallery images of the same identity from the same camera
            (Market-1501's convention); ``False`` keeps every gallery image.

    Raises:
        ValueError: a malformed list file (``file:line`` and the problem), no train row, or no query / gallery row.
    """

    name = "list"
    default_trials = (0,)
    layout = "  <root>/list.csv   header path,pid,camera,modality,split; one row per image, paths relative to root"

    def __init__(
        self, root: str | os.PathLike, file: str | os.PathLike | None = None, exclude_same_camera: bool = False
    ) -> None:
        super().__init__(root)
        self.file = self.root / (file if file is not None else "list.csv")
        self.exclude_same_camera = exclude_same_camera
        rows = read_list_file(self.file)
        pids, cams = _codes({r.pid for r in rows}), _codes({r.camera for r in rows})
        by_split: dict[str, list[ImageRecord]] = {split: [] for split in _SPLITS}
        for r in rows:
            record = ImageRecord(str(self.root / r.path), pids[r.pid], cams[r.camera], r.modality)
            by_split[r.split].append(record)
        for split, records in by_split.items():
            if not records:
                raise ValueError(f"{self.file}: no {split!r} row; the file must list train, query and gallery images")
        self.train = relabel(sorted(by_split["train"], key=lambda r: r.modality))  # visible first, then infrared
        self.query, self.gallery = by_split["query"], by_split["gallery"]
        self.split_files = (self.file,)

    def test_split(self, trial: int | None = None) -> TestSplit:
        """The file's query and gallery (one trial, ``0``).

        Raises:
            ValueError: a trial other than 0.
        """
        if trial not in (None, 0):
            raise ValueError(f"ListDataset has one trial (0), got trial={trial!r}")
        return TestSplit(self.query, self.gallery, "llcm" if self.exclude_same_camera else "regdb", 0)


def check_list(
    root: str | os.PathLike, file: str | os.PathLike | None = None, decode: bool = True, workers: int | None = None
) -> DataCheckReport:
    """``wrim check-data --dataset list``: every malformed row, and every listed file and identity.

    Reported: malformed rows (``file:line``), listed files missing on disk, unreadable or zero-byte files,
    duplicate files (same bytes), an identity in both train and the test split (``overlap``) and a query identity
    without any gallery image (``no_gallery``), and the reader's refusal (``reader``, e.g. no query row). There are
    no published counts to compare; the report ends with the list's fingerprint (``wrim.data.fingerprint``).

    Returns:
        A [`DataCheckReport`][wrim.data.DataCheckReport]; ``ok`` when nothing was found.
    """
    from wrim.data.check_files import DataCheckReport, _check_files, _Scan
    from wrim.data.fingerprint import dataset_fingerprint

    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"--root {str(root)!r} is not a folder: pass the folder list.csv's paths are relative to")
    scan = _Scan(root)
    list_file = root / (file if file is not None else "list.csv")
    malformed: list[str] = []
    rows = read_list_file(list_file, collect=malformed)
    for message in malformed:
        where, _, detail = message.partition(": ")
        scan.add("malformed", Path(where).name, detail)
    for row in rows:
        path = root / row.path
        if path.is_file():
            scan.images.append(path)
        else:
            scan.add("missing", row.path, f"listed at {list_file.name}:{row.line}")
    _check_identities(scan, rows)
    _check_files(scan, decode, workers or min(8, os.cpu_count() or 1))
    fingerprint = None
    if not malformed:
        try:
            fingerprint = dataset_fingerprint(ListDataset(root, file))
        except ValueError as err:  # e.g. no query row: the reader refuses the file
            scan.add("reader", list_file.name, str(err).splitlines()[0])
    return DataCheckReport("list", root, [], scan.problems, len(scan.images), decode, fingerprint)


def _check_identities(scan: _Scan, rows: list[ListRow]) -> None:
    """Reports identities in both train and test, and query identities with no gallery image."""
    ids = {split: {r.pid for r in rows if r.split == split} for split in _SPLITS}
    for pid in sorted(ids["train"] & (ids["query"] | ids["gallery"])):
        scan.add("overlap", f"pid {pid}", "is in train and in the test split (the protocol needs unseen identities)")
    for pid in sorted(ids["query"] - ids["gallery"]):
        scan.add("no_gallery", f"pid {pid}", "has query images but no gallery image (no match can be found)")
