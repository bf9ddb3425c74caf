"""Base class of the dataset readers and the folder / list-file helpers they share.

Readers parse camera and person ids from folder and file names with regular expressions (never from fixed
character offsets of the path, as the reference code does), and fail early with a ``ValueError`` that names the
missing path and prints the expected layout.
"""

from __future__ import annotations

import abc
import logging
import os
import re
from collections import Counter
from pathlib import Path

from wrim.data.records import ImageRecord, TestSplit
from wrim.modality import INFRARED, VISIBLE

__all__ = ["IMAGE_EXTENSIONS", "VIReIDDataset", "cam_number", "list_images", "pid_number", "relabel"]

#: File name suffixes (lower case) treated as images when a reader lists a folder.
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".bmp", ".webp")

log = logging.getLogger("wrim")

_CAM_DIR = re.compile(r"^cam(\d+)$")
_PID_DIR = re.compile(r"^(\d+)$")


class VIReIDDataset(abc.ABC):
    """A visible-infrared re-id dataset: a relabelled train set plus a protocol that builds query / gallery.

    Subclasses fill ``train`` (relabelled ids ``0..C-1``) in ``__init__`` and implement
    [`test_split()`][wrim.data.VIReIDDataset.test_split].

    Attributes:
        name: short dataset name (``"sysu"``, ``"regdb"``, ``"llcm"``, ``"synthetic"``).
        root: the dataset folder.
        train: the train images, visible first then infrared.
        default_trials: the trials the field averages over (SYSU-MM01 / LLCM / synthetic ``0..9``, RegDB the split
            the reader was built for). A reader without them needs ``eval.final_trials`` to be trained.
        version: which version of the dataset this copy is, where the dataset exists in several (SYSU-MM01 with or
            without its official ``rand_perm_cam.mat``, LLCM by its counts); ``None`` when one version is known.
            ``wrim.data.fingerprint.dataset_fingerprint`` records it.
        split_files: the split or list files the reader read (id lists, ``idx/*.txt``, ``list.csv``);
            ``wrim.data.fingerprint.dataset_fingerprint`` hashes each.
    """

    name: str = ""
    default_trials: tuple[int, ...] = ()
    layout: str = ""
    version: str | None = None
    split_files: tuple[Path, ...] = ()

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root).expanduser()
        self.train: list[ImageRecord] = []

    @property
    def num_classes(self) -> int:
        """Number of train identities (the classifier size)."""
        return len({r.pid for r in self.train})

    @abc.abstractmethod
    def test_split(self, trial: int | None = None, **protocol: object) -> TestSplit:
        """Build the query / gallery of one trial of the evaluation protocol."""

    def summary(self) -> dict[str, int]:
        """Image and identity counts of the train set (for logs)."""
        mods = Counter(r.modality for r in self.train)
        return {
            "train_ids": self.num_classes,
            "train_visible": mods.get(VISIBLE, 0),
            "train_infrared": mods.get(INFRARED, 0),
        }

    def __repr__(self) -> str:
        stats = ", ".join(f"{k}={v}" for k, v in self.summary().items())
        return f"{type(self).__name__}(root='{self.root}', {stats})"

    # ------------------------------------------------------------------ helpers shared by the readers

    def _require(self, path: Path, what: str = "folder") -> Path:
        """Return ``path`` if it exists, else raise a ValueError naming it and showing the expected layout."""
        if not path.exists():
            raise ValueError(
                f"{type(self).__name__}: missing {what} '{path}'. Expected the dataset's native layout under "
                f"root='{self.root}':\n{self.layout}"
            )
        return path

    def _read_id_line(self, path: Path, required: bool = True) -> list[int]:
        """Read an id file (SYSU-MM01 ``exp/*_id.txt``, LLCM ``idx/test_id.txt``): integer ids separated by commas
        and/or white space, on any number of lines (blank lines ignored).

        Args:
            path: the file.
            required: the file must hold at least one id (it defines a split that must not be empty).

        Raises:
            ValueError: a token that is not an integer (file, line and token named) or a required file without ids.
        """
        ids = []
        for lineno, line in enumerate(self._require(path, "id list file").read_text().splitlines(), 1):
            for tok in re.split(r"[,\s]+", line.strip()):
                if not tok:
                    continue
                if not tok.lstrip("-").isdigit():
                    raise ValueError(f"{path}:{lineno}: expected integer ids separated by commas, got {tok!r}")
                ids.append(int(tok))
        if required and not ids:
            raise ValueError(f"{path} holds no ids: the split it defines would be empty")
        return ids

    def _warn_ids_without_images(self, ids: list[int], found: set[int], source: Path) -> None:
        """Logs the ids listed in ``source`` that have no image (are not in ``found``)."""
        missing = sorted(set(ids) - found)
        if missing:
            log.warning("%s: %d id(s) listed in %s have no image and are ignored: %s",
                        type(self).__name__, len(missing), source, missing[:20])  # fmt: skip

    def _read_pair_list(self, path: Path) -> list[tuple[str, int]]:
        """Read a ``"<relative path> <int label>"`` list file (RegDB / LLCM ``idx/*.txt``)."""
        pairs = []
        for lineno, line in enumerate(self._require(path, "list file").read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.strip().rsplit(" ", 1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(f"{path}:{lineno}: expected '<relative path> <int label>', got {line!r}")
            pairs.append((parts[0], int(parts[1])))
        return pairs


def list_images(folder: Path) -> list[Path]:
    """Image files of ``folder`` in sorted name order (the order the reference code samples from)."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def cam_number(folder: Path) -> int:
    """Camera number of a ``cam<k>`` folder."""
    match = _CAM_DIR.match(folder.name)
    if match is None:
        raise ValueError(f"expected a camera folder named 'cam<k>', got '{folder}'")
    return int(match.group(1))


def pid_number(folder: Path) -> int:
    """Person id of a ``<digits>`` folder (e.g. ``0012`` -> 12)."""
    match = _PID_DIR.match(folder.name)
    if match is None:
        raise ValueError(f"expected a person folder named by digits (e.g. '0012'), got '{folder}'")
    return int(match.group(1))


def relabel(records: list[ImageRecord]) -> list[ImageRecord]:
    """Map the person ids of ``records`` to ``0..C-1`` in sorted order of the original ids."""
    pid2label = {pid: label for label, pid in enumerate(sorted({r.pid for r in records}))}
    return [ImageRecord(r.path, pid2label[r.pid], r.camid, r.modality) for r in records]
