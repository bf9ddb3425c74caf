"""LLCM (Zhang & Wang, DEEN, CVPR 2023) read from its native folders and list files, with DEEN's protocol.

Layout (as distributed):

```text
LLCM/
  idx/train_vis.txt  idx/train_nir.txt      "<path relative to LLCM/> <int label>" per line
  idx/test_vis.txt   idx/test_nir.txt  idx/test_id.txt (one line of comma-separated test ids)
  vis/<pid:04d>/<pid>_c<cc>_s<digits>_f<digits>_vis.jpg      nir/<pid:04d>/..._nir.jpg     (train)
  test_vis/cam{1..9}/<pid:04d>/*.jpg        test_nir/cam{1,2,4,5,6,7,8,9}/<pid:04d>/*.jpg   (no test_nir/cam3)
```
"""

from __future__ import annotations

import functools
import os
import random
import re
from pathlib import Path

from wrim.data._registry import register_dataset
from wrim.data.base import VIReIDDataset, list_images, relabel
from wrim.data.records import ImageRecord, TestSplit
from wrim.modality import INFRARED, VISIBLE

__all__ = ["LLCM"]

_LAYOUT = """\
    <root>/
      idx/train_vis.txt idx/train_nir.txt     (each line: '<path relative to root> <int label>')
      idx/test_id.txt                         (one line of comma-separated test ids)
      vis/0001/0001_c01_s185535_f7010_vis.jpg ...   nir/0001/0001_c01_s185535_f7010_nir.jpg ...
      test_vis/cam1 .. test_vis/cam9/<pid:04d>/*.jpg
      test_nir/cam1 cam2 cam4 .. cam9/<pid:04d>/*.jpg     (there is no test_nir/cam3)"""

_TRAIN_CAM = re.compile(r"_c(\d+)_")
_VIS_CAMS = (1, 2, 3, 4, 5, 6, 7, 8, 9)
_NIR_CAMS = (1, 2, 4, 5, 6, 7, 8, 9)


@register_dataset("llcm")
class LLCM(VIReIDDataset):
    """LLCM train set and DEEN's test protocol in both directions.

    Train set (DEEN ``LLCMData``): the images of ``idx/train_vis.txt`` / ``idx/train_nir.txt``, labels relabelled
    ``0..C-1`` in sorted label order (713 ids), camera id parsed from the ``_c<cc>_`` field of the file name.

    Protocol (DEEN ``process_query_llcm`` / ``process_gallery_llcm``, ``test.py``): test ids from
    ``idx/test_id.txt`` (sorted), cameras in the reference's fixed order (``test_vis/cam1..9``,
    ``test_nir/cam1,2,4..9``), files in sorted order; the sampled side seeds ``random.seed(trial)`` (here a private
    ``random.Random(trial)``) and takes one ``random.choice`` per (id, camera) folder. Trials ``0..9`` are averaged.

    - ``direction="i2v"`` (``test_mode=[1, 2]``, the default): query = every NIR image, gallery = one sampled VIS
      image per (id, camera).
    - ``direction="v2i"`` (``test_mode=[2, 1]``): DEEN samples the **NIR** side (one per id and camera) as its
      "gallery" and uses every VIS image as "query", then computes ``gall @ query.T`` and calls
      ``eval_llcm(-d, gall_label, query_label, gall_cam, query_cam)``: the sampled NIR images become the probes and
      all VIS images the gallery. This reader returns exactly those roles (query = sampled NIR, gallery = all VIS),
      so ``evaluate(protocol="llcm")`` reproduces DEEN's "VIS to IR" numbers without any flag. Note that it is an
      IR-probe ranking despite its name.

    Camera rule (``protocol="llcm"``): a gallery image with the query's pid **and** camera id is dropped (VIS and
    NIR share camera ids, so the same-camera cross-modal match is removed). DEEN parses camid / pid with
    ``p.split('cam')[1]``, which breaks when the root path contains "cam"; here they come from the folder names.

    Versions (the ``version`` attribute, which ``wrim check-data`` prints): ``"cvpr2023"`` when the copy's six
    counts (train ids, train visible and infrared images, test ids, test visible and infrared images) equal the
    paper's (DEEN Sec. 4.2: 713, 16,946, 13,975, 351, 8,680, 7,166), ``"unclassified"`` otherwise. [D] That is all a
    copy can be classified by. The field reports that the authors changed LLCM after the paper (ZYK100/LLCM#28),
    and in June 2023 the DEEN README replaced the paper's LLCM table ("we have made some updates to the results";
    DEEN's VIS to IR R1 62.5 became 69.21). No count or file list of a changed release has been published. On the
    same day the authors' test code (``AGW/test.py``, 2023-06-20) switched its VIS to IR evaluation to the role swap
    of ``direction="v2i"`` (sampled NIR probes against every VIS image), which by itself moves that column: R1 is
    above mAP in every row of the new table (DEEN 69.21 / 55.52), below it in the paper (62.5 / 65.8), while the IR
    to VIS column barely moved (54.9 / 62.9 in the paper, 55.52 / 62.07 in the README). So a copy whose counts
    differ from the paper's is ``"unclassified"``: a partial or modified copy, or a release whose changes are not
    public; wrim cannot tell which. The record hash and the ``split_files`` hashes of ``wrim.data.fingerprint`` tell
    two copies apart in every case.

    Args:
        root: the ``LLCM`` folder.
    """

    name = "llcm"
    default_trials = tuple(range(10))
    layout = _LAYOUT

    def __init__(self, root: str | os.PathLike) -> None:
        super().__init__(root)
        self._require(self.root, "dataset root folder")
        for sub, cams in (("test_vis", _VIS_CAMS), ("test_nir", _NIR_CAMS)):
            for cam in cams:
                self._require(self.root / sub / f"cam{cam}", "camera folder")
        self.test_ids: list[int] = self._read_id_line(self.root / "idx" / "test_id.txt")
        self.train = relabel(self._read_train("train_vis.txt", VISIBLE) + self._read_train("train_nir.txt", INFRARED))

    @functools.cached_property
    def version(self) -> str:
        """``"cvpr2023"`` (the paper's counts) or ``"unclassified"``; see the class docstring, section Versions."""
        from wrim.data.statistics import llcm_version

        return llcm_version(self)

    @property
    def split_files(self) -> tuple[Path, ...]:
        """``idx/train_vis.txt``, ``idx/train_nir.txt`` and ``idx/test_id.txt``."""
        return tuple(self.root / "idx" / name for name in ("train_vis.txt", "train_nir.txt", "test_id.txt"))

    def _read_train(self, list_name: str, modality: int) -> list[ImageRecord]:
        records = []
        for rel, label in self._read_pair_list(self.root / "idx" / list_name):
            path = self.root / rel
            match = _TRAIN_CAM.search(path.name)
            if match is None:
                raise ValueError(
                    f"idx/{list_name}: cannot read the camera from '{rel}'; expected names like "
                    "'0001_c01_s185535_f7010_vis.jpg'"
                )
            self._require(path, f"image (listed in idx/{list_name})")
            records.append(ImageRecord(str(path), label, int(match.group(1)), modality))
        return records

    def _folders(self, sub: str, cams: tuple[int, ...]) -> list[tuple[int, int, Path]]:
        ids = sorted(self.test_ids, key=lambda pid: f"{pid:04d}")  # the reference sorts the "%04d" strings
        out = []
        for pid in ids:
            for cam in cams:
                folder = self.root / sub / f"cam{cam}" / f"{pid:04d}"
                if folder.is_dir():
                    out.append((pid, cam, folder))
        return out

    def _all(self, sub: str, cams: tuple[int, ...], modality: int) -> list[ImageRecord]:
        return [
            ImageRecord(str(path), pid, cam, modality)
            for pid, cam, folder in self._folders(sub, cams)
            for path in list_images(folder)
        ]

    def _sampled(self, sub: str, cams: tuple[int, ...], modality: int, trial: int) -> list[ImageRecord]:
        rng = random.Random(trial)
        out = []
        for pid, cam, folder in self._folders(sub, cams):
            files = list_images(folder)
            if files:
                out.append(ImageRecord(str(rng.choice(files)), pid, cam, modality))
        return out

    def test_split(self, trial: int | None = 0, direction: str = "i2v") -> TestSplit:
        """Query / gallery of one trial.

        Args:
            trial: sampling seed, ``0..9`` in published results.
            direction: ``"i2v"`` (NIR query, sampled VIS gallery) or ``"v2i"`` (DEEN's role swap: sampled NIR
                probes against every VIS image; see the class docstring).
        """
        trial = 0 if trial is None else int(trial)
        if direction == "i2v":
            query = self._all("test_nir", _NIR_CAMS, INFRARED)
            gallery = self._sampled("test_vis", _VIS_CAMS, VISIBLE, trial)
        elif direction == "v2i":
            query = self._sampled("test_nir", _NIR_CAMS, INFRARED, trial)
            gallery = self._all("test_vis", _VIS_CAMS, VISIBLE)
        else:
            raise ValueError(f"direction must be 'i2v' or 'v2i', got {direction!r}")
        return TestSplit(query=query, gallery=gallery, protocol="llcm", trial=trial)
