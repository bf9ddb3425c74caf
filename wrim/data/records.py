"""Plain records shared by every dataset reader, the loaders and ``wrim.evaluation``.

An [`ImageRecord`][wrim.data.ImageRecord] is one image on disk with its identity, camera and modality; a
[`TestSplit`][wrim.data.TestSplit] is the query / gallery pair of one trial of a dataset's evaluation protocol.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ImageRecord", "TestSplit"]


@dataclass(frozen=True)
class ImageRecord:
    """One image of a VI-ReID dataset.

    Attributes:
        path: absolute (or root-relative, as given to the reader) path of the image file.
        pid: person id. Train records hold relabelled ids ``0..C-1``; query / gallery records hold the dataset's own
            person id (e.g. SYSU-MM01's folder number), as the reference evaluation code does.
        camid: the dataset's camera number (SYSU-MM01 1..6, RegDB 1 = visible / 2 = thermal, LLCM 1..9).
        modality: ``wrim.VISIBLE`` (0) or ``wrim.INFRARED`` (1).
    """

    path: str
    pid: int
    camid: int
    modality: int


@dataclass(frozen=True)
class TestSplit:
    """Query and gallery of one trial of a protocol.

    Attributes:
        query: the probe images, in the reference code's order.
        gallery: the gallery images, in the reference code's order.
        protocol: the camera rule to pass to ``wrim.evaluation.evaluate``: ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        trial: the trial (gallery sampling seed for SYSU-MM01 / LLCM, the split number for RegDB).
    """

    __test__ = False  # not a pytest test class despite its name

    query: list[ImageRecord]
    gallery: list[ImageRecord]
    protocol: str
    trial: int
