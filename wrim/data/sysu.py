"""SYSU-MM01 (Wu et al., ICCV 2017) read from its native folders, with the AGW / DEEN evaluation protocol.

Layout (as distributed):

```text
SYSU-MM01/
  cam1/ cam2/ cam3/ cam4/ cam5/ cam6/      visible: cam1, cam2 (indoor), cam4, cam5 (outdoor)
    <pid:04d>/<img:04d>.jpg                 infrared: cam3 (indoor), cam6 (outdoor)
  exp/train_id.txt  exp/val_id.txt  exp/test_id.txt    each ONE line of comma-separated ids
```
"""

from __future__ import annotations

import os
import random
from pathlib import Path

from wrim.data.base import VIReIDDataset, list_images, relabel
from wrim.data.records import ImageRecord, TestSplit
from wrim.modality import INFRARED, VISIBLE

__all__ = ["SYSUMM01"]

_LAYOUT = """\
    <root>/
      cam1/ cam2/ cam3/ cam4/ cam5/ cam6/        (visible: cam1 cam2 cam4 cam5; infrared: cam3 cam6)
        0001/0001.jpg 0001/0002.jpg ...          (<pid:04d>/<img>.jpg; a pid folder may be absent in a camera)
      exp/train_id.txt exp/val_id.txt exp/test_id.txt   (each: one line of comma-separated ids, e.g. 1,2,4)"""


class SYSUMM01(VIReIDDataset):
    """SYSU-MM01 train set and its IR -> visible protocol (all-search / indoor-search, single- / multi-shot).

    Train set (``pre_process_sysu.py``): the ids of ``exp/train_id.txt`` and ``exp/val_id.txt`` merged, every image
    of the visible cameras 1, 2, 4, 5 and of the infrared cameras 3, 6, relabelled ``0..C-1`` in sorted order of the
    original ids (the reference relabels through ``enumerate(set(ir_pids))``, which is the same order for ids seen
    by an infrared camera; here an id seen only by visible cameras is kept instead of raising ``KeyError``).

    Protocol (``process_query_sysu`` / ``process_gallery_sysu`` in AGW and DEEN):

    - query: every image of the test ids from cam3 and cam6, for both modes; ids sorted, then cameras in order, then
      files in sorted name order;
    - gallery: visible cameras cam1, cam2, cam4, cam5 (``mode="all"``) or cam1, cam2 (``mode="indoor"``). The trial
      seeds Python's ``random`` (``random.seed(trial)``, here a private ``random.Random(trial)`` with the same
      stream) and, per test id (sorted) and camera folder that exists, ``random.choice`` picks one image from the
      sorted file list (``shots=1``, single-shot). ``shots=10`` is the original multi-shot protocol, which AGW and
      DEEN do not implement: ``random.sample`` of 10 images per id and camera (all of them when fewer), kept in
      sorted order;
    - camera rule (applied in ``wrim.evaluation.evaluate(protocol="sysu")``): for a cam3 query the reference
      ``eval_sysu`` drops **every** cam2 gallery image, whatever its identity (its docstring says "same pid and
      camid", the code does not check the pid).

    Quirks: only files with an image suffix are listed (the reference lists every file of the folder); an empty id
    folder is skipped (the reference would crash in ``random.choice``). Published numbers average trials ``0..9``.

    Args:
        root: the ``SYSU-MM01`` folder.
    """

    name = "sysu"
    default_trials = tuple(range(10))
    layout = _LAYOUT
    visible_cams: tuple[int, ...] = (1, 2, 4, 5)
    infrared_cams: tuple[int, ...] = (3, 6)
    indoor_cams: tuple[int, ...] = (1, 2)

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root)
        self._require(self.root, "dataset root folder")
        for cam in (*self.visible_cams, *self.infrared_cams):
            self._require(self.root / f"cam{cam}", "camera folder")
        exp = self.root / "exp"
        train_ids = self._read_id_line(exp / "train_id.txt") + self._read_id_line(exp / "val_id.txt", required=False)
        self.test_ids: list[int] = sorted(self._read_id_line(exp / "test_id.txt"))
        found = {pid for pid, _, _ in self._id_folders(self.test_ids, (*self.visible_cams, *self.infrared_cams))}
        self._warn_ids_without_images(self.test_ids, found, exp / "test_id.txt")
        records = self._collect(train_ids, self.visible_cams) + self._collect(train_ids, self.infrared_cams)
        self._warn_ids_without_images(train_ids, {r.pid for r in records}, exp / "train_id.txt")
        if not records:
            raise ValueError(f"{type(self).__name__}: no train image found under '{self.root}'. Expected:\n{_LAYOUT}")
        self.train = relabel(records)

    def _id_folders(self, ids: list[int], cams: tuple[int, ...]) -> list[tuple[int, int, Path]]:
        """``(pid, cam, folder)`` for each id, then camera, whose folder exists (the reference's loop order)."""
        out = []
        for pid in ids:
            for cam in cams:
                folder = self.root / f"cam{cam}" / f"{pid:04d}"
                if folder.is_dir():
                    out.append((pid, cam, folder))
        return out

    def _record(self, path: Path, pid: int, cam: int) -> ImageRecord:
        modality = INFRARED if cam in self.infrared_cams else VISIBLE
        return ImageRecord(str(path), pid, cam, modality)

    def _collect(self, ids: list[int], cams: tuple[int, ...]) -> list[ImageRecord]:
        return [
            self._record(path, pid, cam)
            for pid, cam, folder in self._id_folders(ids, cams)
            for path in list_images(folder)
        ]

    def test_split(self, trial: int | None = 0, mode: str = "all", shots: int = 1) -> TestSplit:
        """Query (all test-id images of cam3 / cam6) and a sampled visible gallery for one trial.

        Args:
            trial: gallery sampling seed, ``0..9`` in published results.
            mode: ``"all"`` (gallery cameras 1, 2, 4, 5) or ``"indoor"`` (cameras 1, 2).
            shots: ``1`` (single-shot, the AGW / DEEN protocol) or ``10`` (multi-shot).
        """
        trial = 0 if trial is None else int(trial)
        if mode not in ("all", "indoor"):
            raise ValueError(f"mode must be 'all' or 'indoor', got {mode!r}")
        if shots not in (1, 10):
            raise ValueError(f"shots must be 1 (single-shot) or 10 (multi-shot), got {shots!r}")
        ids = sorted(self.test_ids, key=lambda pid: f"{pid:04d}")  # the reference sorts the "%04d" strings
        query = self._collect(ids, self.infrared_cams)
        rng = random.Random(trial)
        gallery = []
        for pid, cam, folder in self._id_folders(ids, self.visible_cams if mode == "all" else self.indoor_cams):
            files = list_images(folder)
            if not files:
                continue
            picked = [rng.choice(files)] if shots == 1 else sorted(rng.sample(files, min(shots, len(files))))
            gallery.extend(self._record(path, pid, cam) for path in picked)
        return TestSplit(query=query, gallery=gallery, protocol="sysu", trial=trial)
