"""The report of a dataset check and the file checks every check shares: `Problem`, `DataCheckReport`, and the walk
that collects image files and problems (``wrim.data.check`` for the published datasets, ``wrim.data.list_dataset``
for a ``list.csv``, ``wrim.data.reader_check`` for any reader).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from wrim.data.base import IMAGE_EXTENSIONS
from wrim.data.fingerprint import format_fingerprint
from wrim.data.loader import read_image
from wrim.data.statistics import CountRow

__all__ = ["NOTE_KINDS", "DataCheckReport", "Problem"]

#: Problem kinds that are notes: shown, but they do not fail the check (see `Problem.fails`).
NOTE_KINDS = ("unlisted", "one_modality")


@dataclass(frozen=True)
class Problem:
    """A file-level problem, named by its path relative to the dataset root.

    Attributes:
        kind: ``"missing"`` (listed or required, not on disk), ``"unreadable"`` (does not decode), ``"empty"`` (zero
            bytes), ``"stray"`` (not an image, an image in no list, a folder the protocol never reads),
            ``"unlisted"`` (an id folder in no id list: reported, not failed, see `fails`), ``"duplicate"``
            (same bytes as another file), ``"overlap"`` (an id in two disjoint lists), ``"malformed"`` (a list file
            line), ``"reader"`` (the dataset reader refused the folder), and for any reader (``check_reader``)
            ``"labels"`` (train labels that are not ``0..C-1``), ``"split"`` (a trial's query or gallery cannot be
            built or is empty), ``"no_gallery"`` (a query identity without a gallery image) and ``"one_modality"``
            (a train identity with images of one modality only: a note, see `fails`).
        path: the file or folder, relative to the root.
        detail: what is wrong.
    """

    kind: str
    path: str
    detail: str

    @property
    def fails(self) -> bool:
        """Every kind but the notes ``"unlisted"`` and ``"one_modality"`` fails the check.

        [D] A train identity with images of one modality never enters a cross-modality batch (the sampler skips
        it), so its images do not train, but the others still do: a note.

        [D] The readers never read an id folder that no id list names, so it cannot change training; and the
        published SYSU-MM01 holds such folders: its README defines the 491 listed ids as those seen by at least two
        cameras, and its official ``rand_perm_cam.mat`` lists images of ids in none of ``exp/*_id.txt`` (the note
        says so when the file is there). Such folders are named, as notes; they never fail the check.
        """
        return self.kind not in NOTE_KINDS

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
        fingerprint: the dataset's fingerprint (``wrim.data.fingerprint.dataset_fingerprint``); ``None`` when
            its reader refused the folder.
    """

    dataset: str
    root: Path | None
    rows: list[CountRow]
    problems: list[Problem] = field(default_factory=list)
    images: int = 0
    decoded: bool = True
    fingerprint: dict[str, object] | None = None

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
        lines += [header, "  " + "-" * (len(header) - 2)] if self.rows else []
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
        if self.fingerprint is not None:
            lines.append(format_fingerprint(self.fingerprint))
        n = len(self.differences)
        lines.append("OK: the copy matches" if n == 0 else f"{n} difference(s): the copy does not match")
        return "\n".join(lines)


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
