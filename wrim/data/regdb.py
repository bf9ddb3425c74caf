"""RegDB (Nguyen et al., Sensors 2017) read from its native folders and list files, with the AGW protocol.

Layout (as distributed with the AGW index files):

```text
RegDB/
  Visible/<pid>/<name>.bmp   Thermal/<pid>/<name>.bmp
  idx/train_visible_{t}.txt  idx/train_thermal_{t}.txt  idx/test_visible_{t}.txt  idx/test_thermal_{t}.txt
  (t = 1..10; each line "<path relative to RegDB/> <int label>", e.g. "Visible/1/male_front_v_00007_1.bmp 0")
```
"""

from __future__ import annotations

import os
from pathlib import Path

from wrim.data._registry import register_dataset
from wrim.data.base import VIReIDDataset, relabel
from wrim.data.records import ImageRecord, TestSplit
from wrim.modality import INFRARED, VISIBLE

__all__ = ["RegDB"]

_LAYOUT = """\
    <root>/
      Visible/<pid>/<name>.bmp        Thermal/<pid>/<name>.bmp
      idx/train_visible_<t>.txt  idx/train_thermal_<t>.txt  idx/test_visible_<t>.txt  idx/test_thermal_<t>.txt
          (t = 1..10; each line: '<path relative to root> <int label>', e.g. 'Visible/1/male_front_v_00007_1.bmp 0')"""

_VISIBLE_CAM, _THERMAL_CAM = 1, 2
_STEMS = ("train_visible", "train_thermal", "test_visible", "test_thermal")


@register_dataset("regdb")
class RegDB(VIReIDDataset):
    """RegDB: one of the ten random train / test splits, and its visible <-> thermal protocol.

    Each trial ``t`` (1..10) is its own split (206 train ids, 206 test ids) with its own trained model in the
    field, so the trial is chosen at construction and ``test_split`` only evaluates that split: published numbers
    average ten models, one per trial.

    Train set (AGW ``RegDBData``): the images of ``idx/train_visible_{t}.txt`` and ``idx/train_thermal_{t}.txt``
    with their listed labels, relabelled ``0..C-1`` in sorted label order (the lists already hold ``0..205``, so
    this keeps them). Camera ids: 1 visible, 2 thermal.

    Protocol (AGW ``test.py``): ``direction="v2t"`` (default) queries with every ``test_visible_{t}`` image against
    every ``test_thermal_{t}`` image; ``direction="t2v"`` (``--tvsearch``, where the reference computes
    ``gall_feat @ query_feat.T`` and passes the thermal labels as query labels) swaps the roles. There is no
    sampling and no camera rule (``protocol="regdb"``). Query / gallery pids are the labels of the test lists.

    Args:
        root: the ``RegDB`` folder.
        trial: the split, ``1..10``.
    """

    name = "regdb"
    layout = _LAYOUT

    def __init__(self, root: str | os.PathLike, trial: int = 1) -> None:
        super().__init__(root)
        if not 1 <= int(trial) <= 10:
            raise ValueError(f"RegDB trial must be in 1..10, got {trial}")
        self.trial = int(trial)
        self.default_trials = (self.trial,)
        self._require(self.root, "dataset root folder")
        for stem in _STEMS:
            self._require(self.root / "idx" / f"{stem}_{self.trial}.txt", "list file")
        records = self._read("train_visible", VISIBLE) + self._read("train_thermal", INFRARED)
        self.train = relabel(records)

    @property
    def split_files(self) -> tuple[Path, ...]:
        """The four list files of this reader's split, ``idx/{train,test}_{visible,thermal}_{trial}.txt``."""
        return tuple(self.root / "idx" / f"{stem}_{self.trial}.txt" for stem in _STEMS)

    def _read(self, stem: str, modality: int) -> list[ImageRecord]:
        """Records of ``idx/{stem}_{trial}.txt``; every listed image must exist."""
        cam = _VISIBLE_CAM if modality == VISIBLE else _THERMAL_CAM
        records = []
        for rel, label in self._read_pair_list(self.root / "idx" / f"{stem}_{self.trial}.txt"):
            path = self.root / rel
            self._require(path, f"image (listed in idx/{stem}_{self.trial}.txt)")
            records.append(ImageRecord(str(path), label, cam, modality))
        return records

    def test_split(self, trial: int | None = None, direction: str = "v2t") -> TestSplit:
        """Query / gallery of this reader's split.

        Args:
            trial: ``None`` or the reader's own trial (RegDB's trial is fixed at construction).
            direction: ``"v2t"`` (visible query, thermal gallery) or ``"t2v"`` (thermal query, visible gallery).
        """
        if trial is not None and int(trial) != self.trial:
            raise ValueError(
                f"this RegDB reader was built for trial {self.trial}; build RegDB(root, trial={trial}) to evaluate "
                "another split (each split has its own trained model)"
            )
        if direction not in ("v2t", "t2v"):
            raise ValueError(f"direction must be 'v2t' (visible to thermal) or 't2v', got {direction!r}")
        visible = self._read("test_visible", VISIBLE)
        thermal = self._read("test_thermal", INFRARED)
        query, gallery = (visible, thermal) if direction == "v2t" else (thermal, visible)
        return TestSplit(query=query, gallery=gallery, protocol="regdb", trial=self.trial)
