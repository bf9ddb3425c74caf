"""Check a copy of SYSU-MM01, RegDB or LLCM before training: counts against the published statistics, every file.

The field's most common "results cannot be reproduced" report is a partial download, a wrong folder or a missing
file, found after a full run. [`check_dataset()`][wrim.data.check_dataset] (``wrim check-data --dataset NAME --root
PATH``) finds it in seconds to minutes:

- **counts**: the dataset is read with the readers training uses ([`SYSUMM01`][wrim.data.SYSUMM01],
  [`RegDB`][wrim.data.RegDB], [`LLCM`][wrim.data.LLCM]) and their train set and test protocol are counted against
  `PUBLISHED_STATISTICS`, each number with its source (docs/datasets.md#checking-a-dataset-copy lists them);
- **files**: every image file of the image folders is read and decoded with [`read_image()`][wrim.data.read_image] (the
  loaders' decoder), so zero-byte and truncated files are found, not only listed; files named in a list file but
  missing on disk, stray files (not an image, an image in no list), id folders in no id list and duplicate files
  (the same bytes under two names) are reported by name.

[`check_counts()`][wrim.data.check_counts] is the cheap part (counts only, no file read) that ``wrim train`` runs at
start on a real
dataset: a one-line warning, or a ``ValueError`` with ``data.strict_check=true``.

A statistic marked unconfirmed (no source could be read for it) is shown and compared but does not fail the check
([D]: a number nobody could confirm should not turn a correct copy into a failed check).
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wrim.data.base import IMAGE_EXTENSIONS, VIReIDDataset, pid_number
from wrim.data.llcm import LLCM
from wrim.data.loader import read_image
from wrim.data.regdb import RegDB
from wrim.data.sysu import SYSUMM01
from wrim.modality import INFRARED, VISIBLE

__all__ = [
    "PUBLISHED_STATISTICS",
    "CountRow",
    "DataCheckReport",
    "Problem",
    "Statistic",
    "check_counts",
    "check_dataset",
]

log = logging.getLogger("wrim")


@dataclass(frozen=True)
class Statistic:
    """One published number of a dataset.

    Attributes:
        key: the name used by overrides (``--expect key=value``), e.g. ``"train_visible"``.
        description: what is counted, and how wrim counts it.
        value: the published number.
        source: where the number comes from (short; docs/datasets.md gives the full references).
        confirmed: ``False`` when no source could be read for the number: it is compared and shown, but a
            difference does not fail the check.
    """

    key: str
    description: str
    value: int
    source: str
    confirmed: bool = True


# Short source labels; docs/datasets.md#checking-a-dataset-copy gives the full references and what was not confirmed.
_SYSU_README = "SYSU-MM01 README"  # github.com/wuancong/SYSU-MM01, "Evaluation Protocol"
_SYSU_PAPER = "Wu'17, quoted"  # Wu et al. ICCV 2017 protocol as quoted by later papers (e.g. CycleTrans, Sec. V-A)
_REGDB = "DEEN 5.1, Tab. 1"  # Nguyen et al. Sensors 2017, restated in DEEN (CVPR 2023) Sec. 5.1 and Table 1
_REGDB_SPLIT = "AGW code"  # mangye16/Cross-Modal-Re-ID-baseline: n_class = 206, trials 1..10, idx/*_{1..10}.txt
_LLCM = "DEEN 4.2"  # Zhang & Wang, CVPR 2023 (arXiv 2303.14481), Sec. 4.2 "Evaluation Protocol"

#: The published statistics checked by :func:`check_dataset`, per dataset name.
PUBLISHED_STATISTICS: dict[str, tuple[Statistic, ...]] = {
    "sysu": (
        Statistic("train_ids", "train ids (exp/train_id.txt + exp/val_id.txt)", 395, _SYSU_README),
        Statistic("train_list_ids", "ids in exp/train_id.txt", 296, _SYSU_README),
        Statistic("val_list_ids", "ids in exp/val_id.txt", 99, _SYSU_README),
        Statistic("train_visible", "train visible images (cam1, cam2, cam4, cam5)", 22258, _SYSU_PAPER),
        Statistic("train_infrared", "train infrared images (cam3, cam6)", 11909, _SYSU_PAPER),
        Statistic("test_ids", "test ids (exp/test_id.txt)", 96, _SYSU_README),
        Statistic("query", "infrared queries (test ids, cam3 + cam6)", 3803, _SYSU_PAPER),
        Statistic("gallery_all", "all-search gallery per trial (single-shot)", 301, _SYSU_PAPER),
        Statistic(
            "gallery_indoor", "indoor-search gallery per trial (single-shot)", 112, "unconfirmed", confirmed=False
        ),
    ),
    "regdb": (
        Statistic("ids", "ids (train + test of a split)", 412, _REGDB),
        Statistic("visible_per_id", "visible images of every id", 10, _REGDB),
        Statistic("thermal_per_id", "thermal images of every id", 10, _REGDB),
        Statistic("splits", "complete idx splits (4 list files each)", 10, _REGDB_SPLIT),
        Statistic("train_ids", "train ids of every split", 206, _REGDB_SPLIT),
        Statistic("test_ids", "test ids of every split", 206, _REGDB_SPLIT),
    ),
    "llcm": (
        Statistic("train_ids", "train ids (idx/train_vis.txt, idx/train_nir.txt)", 713, _LLCM),
        Statistic("train_visible", "train visible images", 16946, _LLCM),
        Statistic("train_infrared", "train infrared images", 13975, _LLCM),
        Statistic("test_ids", "test ids (idx/test_id.txt)", 351, _LLCM),
        Statistic("test_visible", "test visible images (test_vis, test ids)", 8680, _LLCM),
        Statistic("test_infrared", "test infrared images (test_nir, test ids)", 7166, _LLCM),
    ),
}

_REGDB_STEMS = ("train_visible", "train_thermal", "test_visible", "test_thermal")
_REGDB_SPLITS = range(1, 11)
_LLCM_VIS_CAMS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
_LLCM_NIR_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)


@dataclass(frozen=True)
class CountRow:
    """One statistic compared with what the reader found.

    Attributes:
        statistic: the published statistic.
        expected: the number compared against (the published one, or an override).
        found: what the reader counted; ``None`` when it could not be counted (see ``note``).
        note: why a number is missing, or which ids / splits differ.
        overridden: ``expected`` was given by the caller instead of the published number.
    """

    statistic: Statistic
    expected: int
    found: int | None
    note: str = ""
    overridden: bool = False

    @property
    def matches(self) -> bool:
        return self.found == self.expected

    @property
    def fails(self) -> bool:
        """A difference that fails the check (unconfirmed published numbers only warn)."""
        return not self.matches and (self.overridden or self.statistic.confirmed)

    def describe(self) -> str:
        found = "not counted" if self.found is None else f"{self.found:,}"
        note = f" ({self.note})" if self.note else ""
        return f"{self.statistic.key}: expected {self.expected:,}, found {found}{note}"


@dataclass(frozen=True)
class Problem:
    """A file-level problem, named by its path relative to the dataset root.

    Attributes:
        kind: ``"missing"`` (listed or required, not on disk), ``"unreadable"`` (does not decode), ``"empty"`` (zero
            bytes), ``"stray"`` (not an image, an image in no list, a folder the protocol never reads),
            ``"unlisted"`` (an id folder in no id list: reported, not failed, see `fails`), ``"duplicate"``
            (same bytes as another file), ``"overlap"`` (an id in two disjoint lists), ``"malformed"`` (a list file
            line) or ``"reader"`` (the dataset reader refused the folder).
        path: the file or folder, relative to the root.
        detail: what is wrong.
    """

    kind: str
    path: str
    detail: str

    @property
    def fails(self) -> bool:
        """Every kind but ``"unlisted"`` fails the check.

        [D] The readers never read an id folder that no id list names, so it cannot change training; and the
        SYSU-MM01 README defines its 491 listed ids as those seen by at least two cameras, so a correct copy may hold
        other id folders (not verified here: no copy was available). Such folders are named, as notes.
        """
        return self.kind != "unlisted"

    def describe(self) -> str:
        return f"{self.kind:<10}  {self.path}  {self.detail}".rstrip()


@dataclass
class DataCheckReport:
    """The result of [`check_dataset()`][wrim.data.check_dataset].

    Attributes:
        dataset: ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        root: the checked folder.
        rows: one row per statistic.
        problems: the file-level problems.
        images: number of image files found in the image folders.
        decoded: whether every image file was decoded (``False`` with ``decode=False``).
    """

    dataset: str
    root: Path
    rows: list[CountRow]
    problems: list[Problem] = field(default_factory=list)
    images: int = 0
    decoded: bool = True

    @property
    def differences(self) -> list[str]:
        """One line per failing statistic and per problem (empty when the copy matches)."""
        return [row.describe() for row in self.rows if row.fails] + [p.describe() for p in self.problems if p.fails]

    @property
    def ok(self) -> bool:
        return not self.differences

    def format(self) -> str:
        """The table printed by ``wrim check-data``."""
        how = "decoded" if self.decoded else "not decoded (--no-decode)"
        lines = [f"{self.dataset} at {self.root}: {self.images:,} image files, {how}"]
        header = f"  {'statistic':<52} {'expected':>9} {'found':>9}  {'status':<8} source"
        lines += [header, "  " + "-" * (len(header) - 2)]
        for row in self.rows:
            found = "-" if row.found is None else f"{row.found:,}"
            status = "ok" if row.matches else ("DIFFERS" if row.fails else "differs?")
            source = "given (--expect)" if row.overridden else row.statistic.source
            lines.append(f"  {row.statistic.description:<52} {row.expected:>9,} {found:>9}  {status:<8} {source}")
            if row.note and not row.matches:
                lines.append(f"  {'':<52} {'':>9} {'':>9}  {'':<8} ^ {row.note}")
        for title, fails in (("problems", True), ("notes (do not fail the check)", False)):
            listed = [p for p in self.problems if p.fails == fails]
            if listed:
                lines.append(f"{title} ({len(listed)}):")
                lines += [f"  {p.describe()}" for p in listed]
        n = len(self.differences)
        lines.append("OK: the copy matches" if n == 0 else f"{n} difference(s): the copy does not match")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- counts


def _uniform(counts: Mapping[int, int], what: str) -> tuple[int | None, str]:
    """The value shared by every key of ``counts``, or ``None`` and a note naming the keys that differ."""
    values = sorted(set(counts.values()))
    if len(values) == 1:
        return values[0], ""
    if not values:
        return None, f"no {what}"
    common = max(values, key=lambda v: sum(1 for c in counts.values() if c == v))
    odd = [f"{k}: {v}" for k, v in sorted(counts.items()) if v != common][:6]
    return None, f"{what} differ: most have {common}, " + ", ".join(odd)


def _path_pid(path: str) -> int:
    return pid_number(Path(path).parent)


def _sysu_counts(ds: SYSUMM01) -> dict[str, tuple[int | None, str]]:
    summary = ds.summary()
    exp = ds.root / "exp"
    split_all = ds.test_split(0, mode="all")
    return {
        "train_ids": (summary["train_ids"], ""),
        "train_list_ids": (len(set(ds._read_id_line(exp / "train_id.txt"))), ""),
        "val_list_ids": (len(set(ds._read_id_line(exp / "val_id.txt"))), ""),
        "train_visible": (summary["train_visible"], ""),
        "train_infrared": (summary["train_infrared"], ""),
        "test_ids": (len(set(ds.test_ids)), ""),
        "query": (len(split_all.query), ""),
        "gallery_all": (len(split_all.gallery), ""),
        "gallery_indoor": (len(ds.test_split(0, mode="indoor").gallery), ""),
    }


def _regdb_counts(ds: RegDB) -> dict[str, tuple[int | None, str]]:
    split = ds.test_split()
    test = split.query + split.gallery
    per_id: dict[int, dict[int, int]] = {VISIBLE: defaultdict(int), INFRARED: defaultdict(int)}
    for rec in ds.train + test:
        per_id[rec.modality][_path_pid(rec.path)] += 1
    ids = set(per_id[VISIBLE]) | set(per_id[INFRARED])
    for modality in (VISIBLE, INFRARED):  # an id without images of a modality has 0 of them
        for pid in ids:
            per_id[modality].setdefault(pid, 0)
    return {
        "ids": (len(ids), ""),
        "visible_per_id": _uniform(per_id[VISIBLE], "visible images per id"),
        "thermal_per_id": _uniform(per_id[INFRARED], "thermal images per id"),
        "train_ids": (len({_path_pid(r.path) for r in ds.train}), ""),
        "test_ids": (len({_path_pid(r.path) for r in test}), ""),
    }


def _llcm_counts(ds: LLCM) -> dict[str, tuple[int | None, str]]:
    summary = ds.summary()
    return {
        "train_ids": (summary["train_ids"], ""),
        "train_visible": (summary["train_visible"], ""),
        "train_infrared": (summary["train_infrared"], ""),
        "test_ids": (len(set(ds.test_ids)), ""),
        "test_visible": (len(ds.test_split(0, direction="v2i").gallery), ""),
        "test_infrared": (len(ds.test_split(0, direction="i2v").query), ""),
    }


_COUNTERS: dict[str, Callable[..., dict[str, tuple[int | None, str]]]] = {
    "sysu": _sysu_counts,
    "regdb": _regdb_counts,
    "llcm": _llcm_counts,
}


def _expected(dataset: str, expected: Mapping[str, int] | None) -> dict[str, int]:
    """Validated overrides of the published numbers."""
    keys = [s.key for s in PUBLISHED_STATISTICS[dataset]]
    out = {}
    for key, value in (expected or {}).items():
        if key not in keys:
            raise ValueError(f"unknown {dataset} statistic {key!r} in the expected numbers; valid keys: {keys}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"the expected number of {key!r} must be a non-negative integer, got {value!r}")
        out[key] = value
    return out


def _rows(dataset: str, found: Mapping[str, tuple[int | None, str]], expected: Mapping[str, int]) -> list[CountRow]:
    rows = []
    for stat in PUBLISHED_STATISTICS[dataset]:
        value, note = found.get(stat.key, (None, ""))
        rows.append(CountRow(stat, expected.get(stat.key, stat.value), value, note, stat.key in expected))
    return rows


def check_counts(
    dataset: VIReIDDataset, expected: Mapping[str, int] | None = None, strict: bool = False, warn: bool = True
) -> list[str]:
    """The cheap part of [`check_dataset()`][wrim.data.check_dataset]: count a built reader against the published
    statistics.

    No image is read. ``wrim train`` calls it on a real dataset at start. Datasets without published statistics
    (the synthetic set) pass.

    Args:
        dataset: a [`SYSUMM01`][wrim.data.SYSUMM01], [`RegDB`][wrim.data.RegDB] (its one split) or
            [`LLCM`][wrim.data.LLCM] reader.
        expected: numbers that replace published ones, by statistic key (e.g. for a reduced copy).
        strict: raise instead of warning.
        warn: log the one-line warning (``False`` on non-zero DDP ranks).

    Returns:
        One line per failing statistic (empty when the counts match).

    Raises:
        ValueError: with ``strict=True``, when a count differs (one line naming the differences); an unknown key
            in ``expected``.
    """
    name = dataset.name
    if name not in PUBLISHED_STATISTICS:
        return []
    found = _COUNTERS[name](dataset)  # a RegDB reader holds one split: its split count is not checked here
    rows = [row for row in _rows(name, found, _expected(name, expected)) if row.statistic.key in found]
    diffs = [row.describe() for row in rows if row.fails]
    if diffs:
        msg = (
            f"{name} at '{dataset.root}' does not match the published statistics: {'; '.join(diffs)}. "
            f"Run `wrim check-data --dataset {name} --root {dataset.root}` for the full check"
        )
        if strict:
            raise ValueError(msg + " (or set data.strict_check=false to train anyway)")
        if warn:
            log.warning(msg + " (data.strict_check=true makes this an error)")
    return diffs


# ---------------------------------------------------------------------------------------------------- layout


class _Scan:
    """Image files and file-level problems collected while walking a dataset's folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images: list[Path] = []
        self.problems: list[Problem] = []

    def rel(self, path: Path) -> str:
        rel = path.relative_to(self.root).as_posix()
        return rel + "/" if path.is_dir() else rel

    def add(self, kind: str, path: Path | str, detail: str) -> None:
        self.problems.append(Problem(kind, path if isinstance(path, str) else self.rel(path), detail))

    def require(self, path: Path, what: str) -> bool:
        if path.exists():
            return True
        self.add("missing", path.relative_to(self.root).as_posix() + ("" if path.suffix else "/"), what)
        return False

    def id_line(self, path: Path) -> set[int]:
        """Ids of a one-line comma-separated id file (SYSU-MM01 ``exp/*_id.txt``, LLCM ``idx/test_id.txt``)."""
        lines = path.read_text().splitlines()
        first = lines[0] if lines else ""
        try:
            return {int(tok) for tok in first.split(",") if tok.strip()}
        except ValueError:
            self.add("malformed", path, f"expected one line of comma-separated integer ids, got {first[:60]!r}")
            return set()

    def pair_list(self, path: Path) -> list[str]:
        """Relative image paths of a ``"<relative path> <int label>"`` list file; reports malformed lines."""
        paths = []
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.strip().rsplit(" ", 1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                self.add("malformed", f"{self.rel(path)}:{lineno}", f"expected '<relative path> <int label>': {line!r}")
                continue
            paths.append(parts[0])
        return paths

    def id_folders(self, folder: Path, ids: set[int] | None, id_source: str) -> dict[int, Path]:
        """Walk ``folder/<pid>/<image>``: collect images, report stray entries and ids not in ``ids``."""
        found = {}
        for entry in sorted(folder.iterdir()):
            if not entry.is_dir() or not entry.name.isdigit():
                self.add("stray", entry, "not a person-id folder (digits)")
                continue
            pid = int(entry.name)
            if ids is not None and pid not in ids:
                self.add("unlisted", entry, f"id {pid} is in no {id_source} (the readers skip it)")
            found[pid] = entry
            for file in sorted(entry.iterdir()):
                if file.is_file() and file.suffix.lower() in IMAGE_EXTENSIONS:
                    self.images.append(file)
                else:
                    self.add("stray", file, "not an image file")
        return found


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
    return scan


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
    for t in _REGDB_SPLITS:
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
    for sub, cams in (("test_vis", _LLCM_VIS_CAMS), ("test_nir", _LLCM_NIR_CAMS)):
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


# ---------------------------------------------------------------------------------------------------- files


def _check_file(path: Path, decode: bool) -> tuple[str | None, str | None, str]:
    """``(problem kind or None, content hash or None, detail)`` of one image file."""
    try:
        data = path.read_bytes()
    except OSError as err:
        return "unreadable", None, f"cannot be read: {err.strerror or err}"
    if not data:
        return "empty", None, "zero bytes"
    digest = hashlib.blake2b(data, digest_size=16).hexdigest()
    if decode:
        try:
            read_image(path)
        except (RuntimeError, OSError, ValueError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            return "unreadable", digest, f"does not decode: {first.split(', ')[-1][:100]}"
    return None, digest, ""


def _check_files(scan: _Scan, decode: bool, workers: int) -> None:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda p: _check_file(p, decode), scan.images))
    by_hash: dict[str, list[Path]] = defaultdict(list)
    for path, (kind, digest, detail) in zip(scan.images, results):
        if kind is not None:
            scan.add(kind, path, detail)
        if digest is not None:
            by_hash[digest].append(path)
    for paths in by_hash.values():
        for dup in paths[1:]:
            scan.add("duplicate", dup, f"same bytes as {scan.rel(paths[0])}")


def _count(dataset: str, root: Path, scan: _Scan) -> dict[str, tuple[int | None, str]]:
    """Counts of the readers training uses; a reader that refuses the folder is reported and not counted."""
    if dataset != "regdb":
        try:
            return _COUNTERS[dataset](SYSUMM01(root) if dataset == "sysu" else LLCM(root))
        except ValueError as err:
            scan.add("reader", ".", f"the {dataset} reader refused the folder: {str(err).splitlines()[0]}")
            return {}
    splits = {}
    for t in _REGDB_SPLITS:
        try:
            splits[t] = _regdb_counts(RegDB(root, trial=t))
        except ValueError as err:
            scan.add("reader", ".", f"RegDB(trial={t}) refused the folder: {str(err).splitlines()[0]}")
    complete = sum(all((root / "idx" / f"{stem}_{t}.txt").is_file() for stem in _REGDB_STEMS) for t in _REGDB_SPLITS)
    found: dict[str, tuple[int | None, str]] = {"splits": (complete, "")}
    for key in next(iter(splits.values()), {}):
        notes = [f"split {t}: {counts[key][1]}" for t, counts in splits.items() if counts[key][1]]
        values = {t: counts[key][0] for t, counts in splits.items()}
        found[key] = (None, "; ".join(notes)) if notes else _uniform(values, "splits")
    return found


def check_dataset(
    dataset: str,
    root: str | os.PathLike,
    expected: Mapping[str, int] | None = None,
    decode: bool = True,
    workers: int | None = None,
) -> DataCheckReport:
    """Check a dataset copy: counts against `PUBLISHED_STATISTICS` and every image file.

    Args:
        dataset: ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        root: the dataset folder in its native layout (docs/datasets.md).
        expected: numbers that replace published ones, by statistic key (a reduced copy, a test fixture).
        decode: decode every image with the loaders' decoder (``False``: only read the bytes, for hashing and
            zero-byte files).
        workers: threads reading the files (default ``min(8, cpu count)``).

    Returns:
        The report; ``report.ok`` is ``True`` when every count matches and no file problem was found.

    Raises:
        ValueError: an unknown dataset, a root that is not a folder, or a bad ``expected`` key or value.
    """
    if dataset not in PUBLISHED_STATISTICS:
        raise ValueError(f"unknown dataset {dataset!r}; checkable datasets: {sorted(PUBLISHED_STATISTICS)}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise ValueError(f"--root {str(root)!r} is not a folder: pass the {dataset} dataset folder")
    overrides = _expected(dataset, expected)
    scan = _SCANS[dataset](root)
    found = _count(dataset, root, scan)
    _check_files(scan, decode, workers or min(8, os.cpu_count() or 1))
    return DataCheckReport(dataset, root, _rows(dataset, found, overrides), scan.problems, len(scan.images), decode)
