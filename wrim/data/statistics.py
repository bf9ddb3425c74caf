"""The published statistics of SYSU-MM01, RegDB and LLCM, and the count check of a dataset copy against them.

[`check_counts()`][wrim.data.check_counts] counts a built reader ([`SYSUMM01`][wrim.data.SYSUMM01],
[`RegDB`][wrim.data.RegDB], [`LLCM`][wrim.data.LLCM]): its train set and test protocol, against
`PUBLISHED_STATISTICS`, each number with its source. It reads no image: ``wrim train`` runs it at start on a real
dataset (a one-line warning, or a ``ValueError`` with ``data.strict_check=true``), and
[`check_dataset()`][wrim.data.check_dataset] (``wrim check-data``) adds the file checks of ``wrim.data.check``.

A statistic marked unconfirmed (no source could be read for it) is shown and compared but does not fail the check
([D]: a number nobody could confirm should not turn a correct copy into a failed check).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wrim.data._registry import create_dataset
from wrim.data.base import VIReIDDataset, pid_number
from wrim.modality import INFRARED, VISIBLE

if TYPE_CHECKING:  # the readers are built by name (the registry): LLCM.version asks this module for its version
    from wrim.data.llcm import LLCM
    from wrim.data.regdb import RegDB
    from wrim.data.sysu import SYSUMM01

__all__ = [
    "LLCM_NIR_CAMS",
    "LLCM_VIS_CAMS",
    "PUBLISHED_STATISTICS",
    "REGDB_SPLITS",
    "CountRow",
    "Statistic",
    "check_counts",
    "count_copy",
    "count_rows",
    "expected_numbers",
    "llcm_version",
]

log = logging.getLogger("wrim")


@dataclass(frozen=True)
class Statistic:
    """One published number of a dataset.

    Attributes:
        key: the name used by overrides (``--expect key=value``), e.g. ``"train_visible"``.
        description: what is counted, and how wrim counts it.
        value: the published number.
        source: where the number comes from (short; the full references: docs: Datasets and protocols, section
            Checking a dataset copy).
        confirmed: ``False`` when no source could be read for the number: it is compared and shown, but a
            difference does not fail the check.
    """

    key: str
    description: str
    value: int
    source: str
    confirmed: bool = True


# Short source labels; the full references, and what was not confirmed: docs: Datasets and protocols, section
# Checking a dataset copy.
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
REGDB_SPLITS = range(1, 11)
LLCM_VIS_CAMS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
LLCM_NIR_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)


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


def llcm_version(dataset: LLCM) -> str:
    """``"cvpr2023"`` when the six LLCM counts of ``dataset`` equal the paper's (DEEN Sec. 4.2), else
    ``"unclassified"`` (the rule and its sources: [`LLCM`][wrim.data.LLCM], section Versions)."""
    found = _llcm_counts(dataset)
    paper = all(found[stat.key][0] == stat.value for stat in PUBLISHED_STATISTICS["llcm"])
    return "cvpr2023" if paper else "unclassified"


_COUNTERS: dict[str, Callable[..., dict[str, tuple[int | None, str]]]] = {
    "sysu": _sysu_counts,
    "regdb": _regdb_counts,
    "llcm": _llcm_counts,
}


def expected_numbers(dataset: str, expected: Mapping[str, int] | None) -> dict[str, int]:
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


def count_rows(
    dataset: str, found: Mapping[str, tuple[int | None, str]], expected: Mapping[str, int]
) -> list[CountRow]:
    """One row per published statistic of ``dataset``: the expected number (or its override) and what was found."""
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
    rows = [row for row in count_rows(name, found, expected_numbers(name, expected)) if row.statistic.key in found]
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


def count_copy(dataset: str, root: Path) -> tuple[dict[str, tuple[int | None, str]], list[str]]:
    """Counts of the readers training uses on the folder ``root``, and why a reader refused it (then not counted)."""
    refused: list[str] = []
    if dataset != "regdb":
        try:
            return _COUNTERS[dataset](create_dataset(dataset, root)), refused
        except ValueError as err:
            return {}, [f"the {dataset} reader refused the folder: {str(err).splitlines()[0]}"]
    splits = {}
    for t in REGDB_SPLITS:
        try:
            splits[t] = _regdb_counts(create_dataset("regdb", root, trial=t))
        except ValueError as err:
            refused.append(f"RegDB(trial={t}) refused the folder: {str(err).splitlines()[0]}")
    complete = sum(all((root / "idx" / f"{stem}_{t}.txt").is_file() for stem in _REGDB_STEMS) for t in REGDB_SPLITS)
    found: dict[str, tuple[int | None, str]] = {"splits": (complete, "")}
    for key in next(iter(splits.values()), {}):
        notes = [f"split {t}: {counts[key][1]}" for t, counts in splits.items() if counts[key][1]]
        values = {t: counts[key][0] for t, counts in splits.items()}
        found[key] = (None, "; ".join(notes)) if notes else _uniform(values, "splits")
    return found, refused
