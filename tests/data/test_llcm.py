"""LLCM on a tiny native-layout tree: train lists, both directions against DEEN's loops, missing-path errors."""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import pytest

from wrim import INFRARED, VISIBLE
from wrim.data import LLCM

TRAIN, TEST = [1, 2, 3], [5, 6, 8]
VIS_CAMS, NIR_CAMS = range(1, 10), [1, 2, 4, 5, 6, 7, 8, 9]


def _count(pid: int, cam: int) -> int:
    return 0 if (pid + cam) % 4 == 0 else 1 + (pid * cam) % 3


@pytest.fixture
def llcm_root(tmp_path: Path, write_image) -> Path:
    root = tmp_path / "LLCM"
    (root / "idx").mkdir(parents=True)
    lines = {"vis": [], "nir": []}
    for label, pid in enumerate(TRAIN):
        for mod in ("vis", "nir"):
            for cam in (1, 4):
                rel = f"{mod}/{pid:04d}/{pid:04d}_c{cam:02d}_s1855{pid}_f70{cam}_{mod}.jpg"
                write_image(root / rel, pid, gray=mod == "nir")
                lines[mod].append(f"{rel} {label}")
    for mod in ("vis", "nir"):
        (root / "idx" / f"train_{mod}.txt").write_text("\n".join(lines[mod]) + "\n")
    (root / "idx" / "test_id.txt").write_text(",".join(map(str, TEST)) + "\n")
    for sub, cams in (("test_vis", VIS_CAMS), ("test_nir", NIR_CAMS)):
        for cam in cams:
            (root / sub / f"cam{cam}").mkdir(parents=True)
            for pid in TEST:
                for k in range(_count(pid, cam)):
                    name = f"{pid:04d}_c{cam:02d}_s{k}_f{k}.jpg"
                    write_image(root / sub / f"cam{cam}" / f"{pid:04d}" / name, pid + cam, gray=sub == "test_nir")
    return root


# ---- DEEN data_manager.py, written as loops (mode 1 = VIS, mode 2 = NIR)


def _ref_cameras(mode: int) -> list[str]:
    return [f"test_vis/cam{c}" for c in VIS_CAMS] if mode == 1 else [f"test_nir/cam{c}" for c in NIR_CAMS]


def _ref_ids(data_path: str) -> list[str]:
    with open(os.path.join(data_path, "idx/test_id.txt")) as file:
        ids = file.read().splitlines()
        return ["%04d" % int(y) for y in ids[0].split(",")]  # noqa: UP031 (as the reference code)


def _ref_query(data_path: str, mode: int) -> list[str]:
    files = []
    for pid in sorted(_ref_ids(data_path)):
        for cam in _ref_cameras(mode):
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files.extend(sorted([img_dir + "/" + i for i in os.listdir(img_dir)]))
    return files


def _ref_gallery(data_path: str, mode: int, trial: int) -> list[str]:
    random.seed(trial)
    files = []
    for pid in sorted(_ref_ids(data_path)):
        for cam in _ref_cameras(mode):
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files.append(random.choice(sorted([img_dir + "/" + i for i in os.listdir(img_dir)])))
    return files


def _ref_cam_pid(path: str, root: Path) -> tuple[int, int]:
    rel = "/" + os.path.relpath(path, root)  # DEEN's split('cam') needs a root without "cam" in it
    return int(rel.split("cam")[1][0]), int(rel.split("cam")[1][2:6])


def test_train_set(llcm_root: Path) -> None:
    ds = LLCM(llcm_root)
    assert ds.num_classes == 3 and len(ds.train) == 12
    assert {r.camid for r in ds.train} == {1, 4}
    assert sum(r.modality == INFRARED for r in ds.train) == 6
    assert ds.default_trials == tuple(range(10))


@pytest.mark.parametrize("trial", [0, 4])
def test_i2v_matches_reference(llcm_root: Path, trial: int) -> None:
    split = LLCM(llcm_root).test_split(trial=trial, direction="i2v")
    assert split.protocol == "llcm" and split.trial == trial
    assert [r.path for r in split.query] == _ref_query(str(llcm_root), mode=2)
    assert [r.path for r in split.gallery] == _ref_gallery(str(llcm_root), mode=1, trial=trial)
    assert {r.modality for r in split.query} == {INFRARED} and {r.modality for r in split.gallery} == {VISIBLE}
    for rec in split.query + split.gallery:
        assert (rec.camid, rec.pid) == _ref_cam_pid(rec.path, llcm_root)
    assert len(split.gallery) == sum(_count(p, c) > 0 for p in TEST for c in VIS_CAMS)


@pytest.mark.parametrize("trial", [0, 4])
def test_v2i_reproduces_the_role_swap(llcm_root: Path, trial: int) -> None:
    split = LLCM(llcm_root).test_split(trial=trial, direction="v2i")
    # DEEN test_mode=[2, 1]: the sampled NIR "gallery" is used as the probe set, every VIS image as the gallery
    assert [r.path for r in split.query] == _ref_gallery(str(llcm_root), mode=2, trial=trial)
    assert [r.path for r in split.gallery] == _ref_query(str(llcm_root), mode=1)
    assert {r.modality for r in split.query} == {INFRARED}
    assert len(split.query) == sum(_count(p, c) > 0 for p in TEST for c in NIR_CAMS)


def test_bad_direction(llcm_root: Path) -> None:
    with pytest.raises(ValueError, match="direction"):
        LLCM(llcm_root).test_split(direction="t2v")


@pytest.mark.parametrize("missing", ["idx/test_id.txt", "idx/train_nir.txt", "test_nir/cam9"])
def test_missing_path_is_a_value_error(llcm_root: Path, missing: str) -> None:
    target = llcm_root / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ValueError, match=missing.split("/")[-1]) as err:
        LLCM(llcm_root)
    assert "test_nir/cam1 cam2 cam4" in str(err.value)


def test_unparsable_train_name(llcm_root: Path, write_image) -> None:
    write_image(llcm_root / "vis" / "0001" / "badname.jpg", 1)
    (llcm_root / "idx" / "train_vis.txt").write_text("vis/0001/badname.jpg 0\n")
    with pytest.raises(ValueError, match="camera"):
        LLCM(llcm_root)


# ---- versions: a copy with the paper's counts (DEEN Sec. 4.2) and one without

PAPER = {"train_ids": 713, "train_visible": 16946, "train_infrared": 13975, "test_ids": 351, "test_visible": 8680,
         "test_infrared": 7166}  # fmt: skip


def _spread(total: int, slots: int) -> list[int]:
    """``total`` images over ``slots`` folders, as evenly as possible (the first ``total % slots`` get one more)."""
    base, extra = divmod(total, slots)
    return [base + (i < extra) for i in range(slots)]


def _write_paper_sized_llcm(root: Path) -> None:
    """An LLCM tree with the paper's numbers of identities and images (empty files: only names and counts matter)."""
    (root / "idx").mkdir(parents=True)
    for mod, total in (("vis", PAPER["train_visible"]), ("nir", PAPER["train_infrared"])):
        lines = []
        for label, count in enumerate(_spread(total, PAPER["train_ids"])):
            folder = root / mod / f"{label + 1:04d}"
            folder.mkdir(parents=True)
            for k in range(count):
                (folder / f"{label + 1:04d}_c01_s{k}_f{k}_{mod}.jpg").touch()
                lines.append(f"{mod}/{label + 1:04d}/{label + 1:04d}_c01_s{k}_f{k}_{mod}.jpg {label}")
        (root / "idx" / f"train_{mod}.txt").write_text("\n".join(lines) + "\n")
    test_ids = range(PAPER["train_ids"] + 1, PAPER["train_ids"] + PAPER["test_ids"] + 1)
    (root / "idx" / "test_id.txt").write_text(",".join(map(str, test_ids)) + "\n")
    for sub, cams, total in (
        ("test_vis", VIS_CAMS, PAPER["test_visible"]),
        ("test_nir", NIR_CAMS, PAPER["test_infrared"]),
    ):
        folders = [(cam, pid) for pid in test_ids for cam in cams]
        for (cam, pid), count in zip(folders, _spread(total, len(folders))):
            folder = root / sub / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for k in range(count):
                (folder / f"{pid:04d}_c{cam:02d}_s{k}_f{k}.jpg").touch()


@pytest.mark.slow
def test_versions_are_told_apart_by_the_papers_counts(tmp_path: Path) -> None:
    """A copy with DEEN's published counts is ``cvpr2023``; the same copy missing one listed train image is
    ``unclassified``, and its fingerprint (records and list-file hashes) differs. Slow: 46,767 files."""
    from wrim.data.fingerprint import dataset_fingerprint

    root = tmp_path / "LLCM"
    _write_paper_sized_llcm(root)
    paper = LLCM(root)
    assert paper.version == "cvpr2023"
    before = dataset_fingerprint(paper)
    assert before["version"] == "cvpr2023" and before["counts"]["train"]["ids"] == 713
    assert set(before["files"]) == {"idx/train_vis.txt", "idx/train_nir.txt", "idx/test_id.txt"}

    lines = (root / "idx" / "train_nir.txt").read_text().splitlines()
    (root / (lines[-1].rsplit(" ", 1)[0])).unlink()
    (root / "idx" / "train_nir.txt").write_text("\n".join(lines[:-1]) + "\n")  # 13,974 train infrared images
    changed = LLCM(root)
    assert changed.version == "unclassified"
    after = dataset_fingerprint(changed)
    assert after["counts"]["train"]["infrared"] == PAPER["train_infrared"] - 1
    assert after["sha256"] != before["sha256"]
    assert after["files"]["idx/train_nir.txt"] != before["files"]["idx/train_nir.txt"]
    assert after["files"]["idx/train_vis.txt"] == before["files"]["idx/train_vis.txt"]


def test_a_reduced_copy_is_unclassified(llcm_root: Path) -> None:
    assert LLCM(llcm_root).version == "unclassified"
    assert [p.relative_to(llcm_root).as_posix() for p in LLCM(llcm_root).split_files] == [
        "idx/train_vis.txt", "idx/train_nir.txt", "idx/test_id.txt"
    ]  # fmt: skip
