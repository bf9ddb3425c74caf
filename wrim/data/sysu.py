"""SYSU-MM01 (Wu et al., ICCV 2017) read from its native folders, with the AGW / DEEN evaluation protocol.

Layout (as distributed):

```text
SYSU-MM01/
  cam1/ cam2/ cam3/ cam4/ cam5/ cam6/      visible: cam1, cam2 (indoor), cam4, cam5 (outdoor)
    <pid:04d>/<img:04d>.jpg                 infrared: cam3 (indoor), cam6 (outdoor)
  exp/train_id.txt  exp/val_id.txt  exp/test_id.txt    each ONE line of comma-separated ids
  exp/rand_perm_cam.mat                     optional: the official gallery permutations (see SYSUMM01)
```
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np

from wrim.data._registry import register_dataset
from wrim.data.base import VIReIDDataset, list_images, relabel
from wrim.data.records import ImageRecord, TestSplit
from wrim.modality import INFRARED, VISIBLE

__all__ = ["SYSUMM01", "read_rand_perm"]

log = logging.getLogger("wrim")

_LAYOUT = """\
    <root>/
      cam1/ cam2/ cam3/ cam4/ cam5/ cam6/        (visible: cam1 cam2 cam4 cam5; infrared: cam3 cam6)
        0001/0001.jpg 0001/0002.jpg ...          (<pid:04d>/<img>.jpg; a pid folder may be absent in a camera)
      exp/train_id.txt exp/val_id.txt exp/test_id.txt   (each: one line of comma-separated ids, e.g. 1,2,4)
      exp/rand_perm_cam.mat                      (optional: the official gallery permutations)"""


@register_dataset("sysu")
class SYSUMM01(VIReIDDataset):
    """SYSU-MM01 train set and its IR -> visible protocol (all-search / indoor-search, single- / multi-shot).

    Train set (``pre_process_sysu.py``): the ids of ``exp/train_id.txt`` and ``exp/val_id.txt`` merged and sorted
    (the reference sorts the merged ``"%04d"`` id list), then for each id the visible cameras 1, 2, 4, 5 and for
    each id the infrared cameras 3, 6, files in sorted name order: the reference's record order, so a seed gives the
    reference's sampler sequence. Labels are ``0..C-1`` in sorted order of the original ids (the reference
    relabels through ``enumerate(set(ir_pids))``, which is the same order for ids seen by an infrared camera; here
    an id seen only by visible cameras is kept instead of raising ``KeyError``).

    Protocol (``process_query_sysu`` / ``process_gallery_sysu`` in AGW and DEEN):

    - query: every image of the test ids from cam3 and cam6, for both modes; ids sorted, then cameras in order, then
      files in sorted name order;
    - gallery: visible cameras cam1, cam2, cam4, cam5 (``mode="all"``) or cam1, cam2 (``mode="indoor"``), per test
      id (sorted) and camera folder that exists, ``shots`` images: 1 (single-shot) or 10 (multi-shot). Which
      images depends on ``gallery_sampling``:

      - ``"official_mat"`` (when ``rand_perm_cam.mat`` of the SYSU-MM01 evaluation code is given or found in
        ``exp/``): the official protocol. ``rand_perm_cam{cam}{pid}(trial + 1, 1:shots)`` are 1-based indices into
        the (cam, pid) folder's sorted image list (the rows of the official code's feature matrix), taken in that
        order; an empty permutation skips the (cam, pid); fewer than ``shots`` entries take them all.
      - ``"agw_seed"`` (no file): the AGW / DEEN sampling. The trial seeds Python's ``random``
        (``random.seed(trial)``, here a private ``random.Random(trial)`` with the same stream) and
        ``random.choice`` picks one image from the sorted file list (single-shot, identical to the reference
        code). AGW and DEEN have no multi-shot; ``shots=10`` here draws ``random.sample`` of 10 images (all of them
        when fewer), kept in sorted order: the multi-shot *setting*, not the official images (those need the file).
    - camera rule (applied in ``wrim.evaluation.evaluate(protocol="sysu")``): for a cam3 query the reference
      ``eval_sysu`` drops **every** cam2 gallery image, whatever its identity (its docstring says "same pid and
      camid", the code does not check the pid).

    Quirks: only files with an image suffix are listed (the reference lists every file of the folder); an empty id
    folder is skipped (the reference would crash in ``random.choice``). Published numbers average trials ``0..9``.

    Args:
        root: the ``SYSU-MM01`` folder.
        rand_perm_file: the official ``rand_perm_cam.mat`` (github.com/wuancong/SYSU-MM01,
            ``evaluation/data_split/``); ``None`` uses ``<root>/exp/rand_perm_cam.mat`` when it exists; ``False``
            always uses the AGW sampling. Reading it needs scipy (the ``matlab`` extra).
    """

    name = "sysu"
    default_trials = tuple(range(10))
    layout = _LAYOUT
    visible_cams: tuple[int, ...] = (1, 2, 4, 5)
    infrared_cams: tuple[int, ...] = (3, 6)
    indoor_cams: tuple[int, ...] = (1, 2)

    def __init__(self, root: str | os.PathLike, rand_perm_file: str | os.PathLike | bool | None = None) -> None:
        super().__init__(root)
        self._require(self.root, "dataset root folder")
        for cam in (*self.visible_cams, *self.infrared_cams):
            self._require(self.root / f"cam{cam}", "camera folder")
        exp = self.root / "exp"
        train_ids = self._read_id_line(exp / "train_id.txt") + self._read_id_line(exp / "val_id.txt", required=False)
        train_ids = sorted(train_ids, key=lambda pid: f"{pid:04d}")  # the reference sorts the merged "%04d" strings
        self.test_ids: list[int] = sorted(self._read_id_line(exp / "test_id.txt"))
        found = {pid for pid, _, _ in self._id_folders(self.test_ids, (*self.visible_cams, *self.infrared_cams))}
        self._warn_ids_without_images(self.test_ids, found, exp / "test_id.txt")
        records = self._collect(train_ids, self.visible_cams) + self._collect(train_ids, self.infrared_cams)
        self._warn_ids_without_images(train_ids, {r.pid for r in records}, exp / "train_id.txt")
        if not records:
            raise ValueError(f"{type(self).__name__}: no train image found under '{self.root}'. Expected:\n{_LAYOUT}")
        self.train = relabel(records)
        if rand_perm_file is None and (exp / "rand_perm_cam.mat").is_file():
            rand_perm_file = exp / "rand_perm_cam.mat"
        if rand_perm_file is True:
            raise ValueError("rand_perm_file must be a path, None (auto: exp/rand_perm_cam.mat) or False; got True")
        self.rand_perm: dict[tuple[int, int], np.ndarray] | None = None
        self.rand_perm_file: Path | None = None
        if rand_perm_file is not None and rand_perm_file is not False:
            self.rand_perm_file = self._require(Path(rand_perm_file), "rand_perm_cam.mat file")
            self.rand_perm = read_rand_perm(self.rand_perm_file)
        self._logged_galleries: set[tuple[str, int]] = set()

    @property
    def version(self) -> str:
        """``"with rand_perm_cam.mat"`` or ``"without rand_perm_cam.mat"``: whether this copy's galleries are the
        official ones.

        [D] SYSU-MM01 has one release of images and id lists; two copies differ in whether the official evaluation
        file ``rand_perm_cam.mat`` (github.com/wuancong/SYSU-MM01, ``evaluation/data_split/``) is there, and with it
        which images every gallery trial holds (`gallery_sampling`). Its sha256 is in ``split_files``.
        """
        return "without rand_perm_cam.mat" if self.rand_perm_file is None else "with rand_perm_cam.mat"

    @property
    def split_files(self) -> tuple[Path, ...]:
        """``exp/train_id.txt``, ``exp/val_id.txt``, ``exp/test_id.txt`` and the ``rand_perm_cam.mat`` read, if any."""
        lists = tuple(self.root / "exp" / f"{name}_id.txt" for name in ("train", "val", "test"))
        return lists + (() if self.rand_perm_file is None else (self.rand_perm_file,))

    @property
    def gallery_sampling(self) -> str:
        """``"official_mat"`` (galleries from ``rand_perm_cam.mat``) or ``"agw_seed"`` (AGW / DEEN sampling)."""
        return "agw_seed" if self.rand_perm is None else "official_mat"

    def _id_folders(self, ids: list[int], cams: tuple[int, ...]) -> list[tuple[int, int, Path]]:
        """``(pid, cam, folder)`` for each id, then camera, whose folder exists, in the order of ``ids``."""
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
            shots: ``1`` (single-shot, the AGW / DEEN protocol) or ``10`` (multi-shot); the images follow
                ``gallery_sampling``.
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
            if self.rand_perm is not None:
                picked = self._official_pick(files, pid, cam, trial, shots)
            elif shots == 1:
                picked = [rng.choice(files)]
            else:
                picked = sorted(rng.sample(files, min(shots, len(files))))
            gallery.extend(self._record(path, pid, cam) for path in picked)
        return TestSplit(query=query, gallery=gallery, protocol="sysu", trial=trial)

    def describe_galleries(self, shots: int = 1) -> str:
        """One line saying how the galleries of ``shots`` images are drawn (logged once per mode and shots)."""
        if self.rand_perm is not None:
            return f"the official rand_perm_cam.mat ({self.rand_perm_file}; trial t = its row t + 1)"
        if shots == 1:
            return (
                "AGW / DEEN seeded sampling (random.Random(trial)), not the official rand_perm_cam.mat (give "
                "rand_perm_file= or put it in exp/ for the official galleries)"
            )
        return (
            "seeded random.sample of 10 images per id and camera: the multi-shot setting, NOT the official "
            "multi-shot galleries (those need rand_perm_cam.mat: rand_perm_file= or exp/)"
        )

    def log_galleries(self, mode: str = "all", shots: int = 1) -> None:
        """Log how the galleries of ``mode`` / ``shots`` are drawn, once per pair (evaluation calls it, not checks)."""
        if (mode, shots) not in self._logged_galleries:
            self._logged_galleries.add((mode, shots))
            log.info(
                "%s galleries (mode=%s, shots=%d): %s", type(self).__name__, mode, shots, self.describe_galleries(shots)
            )

    def _official_pick(self, files: list[Path], pid: int, cam: int, trial: int, shots: int) -> list[Path]:
        """The first ``shots`` entries of ``rand_perm_cam{cam}{pid}(trial + 1, :)`` as images of ``files``."""
        perm = self.rand_perm.get((cam, pid))
        if perm is None or perm.size == 0:
            return []
        if trial >= perm.shape[0]:
            raise ValueError(
                f"{self.rand_perm_file} has {perm.shape[0]} trials for cam{cam}/{pid:04d}; got trial={trial}"
            )
        indices = [int(i) for i in perm[trial, :shots]]
        if min(indices) < 1 or max(indices) > len(files):
            raise ValueError(
                f"{self.rand_perm_file} picks images {indices} of cam{cam}/{pid:04d}, which has {len(files)} images: "
                "the file does not belong to this copy of SYSU-MM01"
            )
        return [files[i - 1] for i in indices]


def read_rand_perm(path: str | os.PathLike) -> dict[tuple[int, int], np.ndarray]:
    """Read SYSU-MM01's official ``rand_perm_cam.mat`` into ``{(cam, pid): (trials, n) 1-based image indices}``.

    The file holds one MATLAB variable ``rand_perm_cam``: a cell array of 6 cells (cameras 1..6), each a cell array
    with one cell per person id (cell ``pid`` for id ``pid``), each a (trials, images) matrix whose row ``t`` is a
    permutation of the 1-based indices of that camera's images of that person (empty where the person is absent).

    Raises:
        ImportError: scipy is not installed (the ``matlab`` extra).
        ValueError: the file is no MATLAB file, or has no ``rand_perm_cam`` cell array of 6 cell arrays of index
            matrices (whole numbers from 1).
    """
    try:
        from scipy.io import loadmat
    except ImportError as err:
        raise ImportError("reading rand_perm_cam.mat needs scipy: pip install scipy (the matlab extra)") from err
    try:
        content = loadmat(str(path), variable_names=["rand_perm_cam"])
    except Exception as err:  # MatReadError, OSError, ValueError, NotImplementedError (v7.3), ...: a damaged file
        reason = " ".join(str(err).split())
        raise ValueError(f"{path}: not a readable MATLAB file ({type(err).__name__}: {reason})") from None
    cams = content.get("rand_perm_cam")
    if cams is None or cams.dtype != object or cams.size != 6:
        raise ValueError(
            f"{path}: expected a MATLAB cell array named 'rand_perm_cam' of 6 cameras (the official SYSU-MM01 file)"
        )
    out = {}
    for cam, per_id in enumerate(cams.ravel(), start=1):
        if not (isinstance(per_id, np.ndarray) and per_id.dtype == object):
            raise ValueError(f"{path}: rand_perm_cam{{{cam}}} must be a cell array of one cell per person id")
        for pid, perm in enumerate(per_id.ravel(), start=1):
            perm = np.asarray(perm)
            if perm.size:
                out[(cam, pid)] = _index_matrix(perm, f"{path}: rand_perm_cam{{{cam}}}{{{pid}}}")
    return out


def _index_matrix(perm: np.ndarray, where: str) -> np.ndarray:
    """``perm`` as a (trials, n) int64 matrix, checked: real whole numbers from 1 (below 2**31), at most 2-D."""
    if perm.dtype.kind not in "iuf" or perm.ndim > 2:
        raise ValueError(f"{where} must be a matrix of image indices, got {perm.dtype} of shape {perm.shape}")
    if not (np.isfinite(perm).all() and (perm == np.round(perm)).all() and perm.min() >= 1 and perm.max() < 2**31):
        first = perm.ravel()[:8].tolist()
        raise ValueError(f"{where} must hold 1-based image indices (whole numbers from 1), got {first}")
    return np.atleast_2d(perm).astype(np.int64)
