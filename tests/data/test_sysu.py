"""SYSUMM01 on a tiny native-layout tree: train set, protocol counts and order against the reference loops."""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path

import pytest

from wrim import INFRARED, VISIBLE
from wrim.data import SYSUMM01, TestSplit
from wrim.evaluation.protocol import trial_splits

TRAIN, VAL, TEST = [1, 3], [2], [4, 5, 6, 12]


def _count(pid: int, cam: int) -> int:
    """Images of (pid, cam); 0 = folder absent. Some ids miss some cameras, counts vary, a few exceed 10."""
    if (pid * cam) % 7 == 0:
        return 0
    return 12 if (pid + cam) % 5 == 0 else 1 + (pid + 2 * cam) % 4


@pytest.fixture
def sysu_root(tmp_path: Path, write_image) -> Path:
    root = tmp_path / "SYSU-MM01"
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True)
        for pid in TRAIN + VAL + TEST:
            for k in range(_count(pid, cam)):
                write_image(root / f"cam{cam}" / f"{pid:04d}" / f"{k + 1:04d}.jpg", pid * 10 + cam, gray=cam in (3, 6))
    (root / "exp").mkdir()
    for name, ids in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return root


# ---- the reference code (AGW data_manager.py), written as loops


def _ref_ids(data_path: str) -> list[str]:
    with open(os.path.join(data_path, "exp/test_id.txt")) as file:
        ids = file.read().splitlines()
        ids = [int(y) for y in ids[0].split(",")]
        return ["%04d" % x for x in ids]  # noqa: UP031 (as the reference code)


def _ref_query(data_path: str) -> list[str]:
    files = []
    for pid in sorted(_ref_ids(data_path)):
        for cam in ["cam3", "cam6"]:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files.extend(sorted([img_dir + "/" + i for i in os.listdir(img_dir)]))
    return files


def _ref_gallery(data_path: str, mode: str, trial: int) -> list[str]:
    random.seed(trial)
    cams = ["cam1", "cam2", "cam4", "cam5"] if mode == "all" else ["cam1", "cam2"]
    files = []
    for pid in sorted(_ref_ids(data_path)):
        for cam in cams:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files.append(random.choice(sorted([img_dir + "/" + i for i in os.listdir(img_dir)])))
    return files


def test_train_set(sysu_root: Path) -> None:
    ds = SYSUMM01(sysu_root)
    ids = TRAIN + VAL
    n_vis = sum(_count(p, c) for p in ids for c in (1, 2, 4, 5))
    n_ir = sum(_count(p, c) for p in ids for c in (3, 6))
    assert len(ds.train) == n_vis + n_ir
    assert ds.num_classes == 3 and sorted({r.pid for r in ds.train}) == [0, 1, 2]
    for rec in ds.train:
        # reference parsing by offsets agrees with the regex / folder parsing
        assert rec.camid == int(rec.path[-15])
        assert sorted(ids)[rec.pid] == int(rec.path[-13:-9])
        assert rec.modality == (INFRARED if rec.camid in (3, 6) else VISIBLE)
    assert ds.default_trials == tuple(range(10))


@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_single_shot_matches_reference(sysu_root: Path, mode: str) -> None:
    ds = SYSUMM01(sysu_root)
    for trial in (0, 1, 7):
        split = ds.test_split(trial=trial, mode=mode)
        assert isinstance(split, TestSplit) and split.protocol == "sysu" and split.trial == trial
        assert [r.path for r in split.query] == _ref_query(str(sysu_root))
        assert [r.path for r in split.gallery] == _ref_gallery(str(sysu_root), mode, trial)
        for rec in split.query + split.gallery:
            assert rec.camid == int(rec.path[-15]) and rec.pid == int(rec.path[-13:-9])
        assert {r.modality for r in split.query} == {INFRARED}
        assert {r.modality for r in split.gallery} == {VISIBLE}
    cams = (1, 2, 4, 5) if mode == "all" else (1, 2)
    assert len(ds.test_split(0, mode=mode).gallery) == sum(_count(p, c) > 0 for p in TEST for c in cams)


def test_trials_resample_the_gallery(sysu_root: Path) -> None:
    ds = SYSUMM01(sysu_root)
    galleries = {tuple(r.path for r in ds.test_split(t).gallery) for t in range(10)}
    assert len(galleries) > 1


def test_multi_shot(sysu_root: Path) -> None:
    ds = SYSUMM01(sysu_root)
    split = ds.test_split(trial=3, mode="all", shots=10)
    assert len(split.gallery) == sum(min(10, _count(p, c)) for p in TEST for c in (1, 2, 4, 5))
    assert len({r.path for r in split.gallery}) == len(split.gallery)
    for pid in TEST:
        for cam in (1, 2, 4, 5):
            picked = [r.path for r in split.gallery if r.pid == pid and r.camid == cam]
            assert picked == sorted(picked)
    assert split.gallery != ds.test_split(trial=4, mode="all", shots=10).gallery


def test_bad_protocol_arguments(sysu_root: Path) -> None:
    ds = SYSUMM01(sysu_root)
    with pytest.raises(ValueError, match="mode"):
        ds.test_split(mode="outdoor")
    with pytest.raises(ValueError, match="shots"):
        ds.test_split(shots=5)


@pytest.mark.parametrize("missing", ["exp/test_id.txt", "exp/val_id.txt", "cam6"])
def test_missing_path_is_a_value_error(sysu_root: Path, missing: str) -> None:
    target = sysu_root / missing
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(ValueError, match=missing.split("/")[-1]) as err:
        SYSUMM01(sysu_root)
    assert "exp/train_id.txt" in str(err.value)  # the expected layout is shown


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="nowhere"):
        SYSUMM01(tmp_path / "nowhere")


# ---- the training order of pre_process_sysu.py, written as its loops


def _ref_train_files(data_path: str) -> tuple[list[str], list[str]]:
    def read(name: str) -> list[str]:
        with open(os.path.join(data_path, f"exp/{name}_id.txt")) as file:
            return ["%04d" % int(y) for y in file.read().splitlines()[0].split(",")]  # noqa: UP031

    id_train = read("train")
    id_train.extend(read("val"))
    files_rgb, files_ir = [], []
    for pid in sorted(id_train):
        for cam in ["cam1", "cam2", "cam4", "cam5"]:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files_rgb.extend(sorted([img_dir + "/" + i for i in os.listdir(img_dir)]))
        for cam in ["cam3", "cam6"]:
            img_dir = os.path.join(data_path, cam, pid)
            if os.path.isdir(img_dir):
                files_ir.extend(sorted([img_dir + "/" + i for i in os.listdir(img_dir)]))
    return files_rgb, files_ir


def test_train_order_is_the_reference_sorted_merged_id_list(sysu_root: Path) -> None:
    assert sorted(TRAIN + VAL) != TRAIN + VAL  # the fixture's train + val list is not sorted: the order matters
    ds = SYSUMM01(sysu_root)
    files_rgb, files_ir = _ref_train_files(str(sysu_root))
    assert [r.path for r in ds.train if r.modality == VISIBLE] == files_rgb
    assert [r.path for r in ds.train if r.modality == INFRARED] == files_ir
    assert [r.path for r in ds.train] == files_rgb + files_ir  # visible block, then infrared


# ---- the official multi-shot protocol from rand_perm_cam.mat

NUM_PIDS = 12  # the .mat has one cell per person id 1..NUM_PIDS, as the official one has 533


def _write_rand_perm(path: Path, seed: int = 0, trials: int = 10) -> dict[tuple[int, int], list[list[int]]]:
    """An official-layout rand_perm_cam.mat: 6 cells (cameras) of NUM_PIDS cells of (trials, n) 1-based indices."""
    savemat = pytest.importorskip("scipy.io").savemat
    np = pytest.importorskip("numpy")
    rng = random.Random(seed)
    perms: dict[tuple[int, int], list[list[int]]] = {}
    cams = np.empty((6, 1), dtype=object)
    for cam in range(1, 7):
        per_id = np.empty((NUM_PIDS, 1), dtype=object)
        for pid in range(1, NUM_PIDS + 1):
            n = _count(pid, cam) if pid in TRAIN + VAL + TEST else 0
            rows = [rng.sample(range(1, n + 1), n) for _ in range(trials)] if n else []
            per_id[pid - 1, 0] = np.array(rows, dtype=np.float64).reshape(len(rows), n)  # MATLAB doubles
            if n:
                perms[(cam, pid)] = rows
        cams[cam - 1, 0] = per_id
    savemat(str(path), {"rand_perm_cam": cams})
    return perms


@pytest.mark.parametrize("shots", [1, 10])
@pytest.mark.parametrize("mode", ["all", "indoor"])
def test_official_gallery_follows_rand_perm_cam(sysu_root: Path, tmp_path: Path, mode: str, shots: int) -> None:
    perms = _write_rand_perm(tmp_path / "rand_perm_cam.mat")
    ds = SYSUMM01(sysu_root, rand_perm_file=tmp_path / "rand_perm_cam.mat")
    assert ds.gallery_sampling == "official_mat"
    cams = (1, 2, 4, 5) if mode == "all" else (1, 2)
    for trial in range(10):
        split = ds.test_split(trial, mode=mode, shots=shots)
        expected = [
            str(sysu_root / f"cam{cam}" / f"{pid:04d}" / f"{index:04d}.jpg")  # fixture files are 0001.jpg ...
            for pid in sorted(TEST)
            for cam in cams
            if (cam, pid) in perms
            for index in perms[(cam, pid)][trial][:shots]
        ]
        assert [r.path for r in split.gallery] == expected
        assert [r.path for r in split.query] == _ref_query(str(sysu_root))  # the query never changes


def test_rand_perm_cam_found_under_exp_and_switchable_off(sysu_root: Path) -> None:
    perms = _write_rand_perm(sysu_root / "exp" / "rand_perm_cam.mat", seed=1)
    ds = SYSUMM01(sysu_root)
    pid, cam = next((p, c) for p in sorted(TEST) for c in (1, 2, 4, 5) if (c, p) in perms)
    first = ds.test_split(2, shots=1).gallery[0]
    assert first.path.endswith(f"cam{cam}/{pid:04d}/{perms[(cam, pid)][2][0]:04d}.jpg")
    agw = SYSUMM01(sysu_root, rand_perm_file=False)
    assert agw.gallery_sampling == "agw_seed"
    assert [r.path for r in agw.test_split(2).gallery] == _ref_gallery(str(sysu_root), "all", 2)


def test_gallery_choice_is_logged_at_evaluation_time(sysu_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    agw = SYSUMM01(sysu_root)
    with caplog.at_level(logging.INFO, logger="wrim"):
        agw.test_split(0, shots=1)  # reading a split (check-data, the trainer's protocol check) says nothing
        assert "galleries" not in caplog.text
        trial_splits(agw, [0, 1], {"shots": 1})  # what evaluate_protocol and the trainer's evaluation call
        trial_splits(agw, [0], {"shots": 1})  # once per mode and shots, not per trial or evaluation
        trial_splits(agw, [0], {"shots": 10})
    lines = [r.getMessage() for r in caplog.records if "galleries" in r.getMessage()]
    assert len(lines) == 2 and "AGW / DEEN seeded sampling" in lines[0] and "NOT the official" in lines[1]
    _write_rand_perm(sysu_root / "exp" / "rand_perm_cam.mat", seed=1)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="wrim"):
        trial_splits(SYSUMM01(sysu_root), [0], {"mode": "indoor", "shots": 1})  # the file in exp/ changes it too
    assert "(mode=indoor, shots=1): the official rand_perm_cam.mat" in caplog.text


def test_rand_perm_cam_errors(sysu_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="rand_perm_cam.mat file"):
        SYSUMM01(sysu_root, rand_perm_file=tmp_path / "missing.mat")
    savemat = pytest.importorskip("scipy.io").savemat
    savemat(str(tmp_path / "other.mat"), {"something": [1, 2]})
    with pytest.raises(ValueError, match="'rand_perm_cam'"):
        SYSUMM01(sysu_root, rand_perm_file=tmp_path / "other.mat")
    _write_rand_perm(tmp_path / "short.mat", trials=3)
    with pytest.raises(ValueError, match="3 trials"):
        SYSUMM01(sysu_root, rand_perm_file=tmp_path / "short.mat").test_split(5)
    monkeypatch.setitem(__import__("sys").modules, "scipy.io", None)  # scipy missing
    with pytest.raises(ImportError, match="needs scipy: pip install scipy"):
        SYSUMM01(sysu_root, rand_perm_file=tmp_path / "short.mat")


def test_id_files_are_parsed_on_every_line(sysu_root: Path, caplog) -> None:
    (sysu_root / "exp" / "train_id.txt").write_text("\n1, 3\n  \n99\n")  # blank first line, spaces, several lines
    dataset = SYSUMM01(sysu_root)
    assert dataset.num_classes == len(TRAIN + VAL)
    assert "1 id(s) listed in" in caplog.text and "train_id.txt have no image" in caplog.text and "[99]" in caplog.text
    (sysu_root / "exp" / "train_id.txt").write_text("1,x\n")
    with pytest.raises(ValueError, match=r"train_id\.txt:1: expected integer ids .* 'x'"):
        SYSUMM01(sysu_root)


def test_empty_test_split_fails_at_construction(sysu_root: Path) -> None:
    (sysu_root / "exp" / "test_id.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"test_id\.txt holds no ids"):
        SYSUMM01(sysu_root)


def test_version_says_whether_the_official_galleries_are_there(sysu_root: Path) -> None:
    """The same copy without and with exp/rand_perm_cam.mat: two versions, told apart by the fingerprint (its
    version, the .mat among the hashed split files, and the records of the gallery it draws)."""
    import hashlib

    from wrim.data.fingerprint import dataset_fingerprint, format_fingerprint

    seeded = dataset_fingerprint(SYSUMM01(sysu_root))
    assert seeded["version"] == "without rand_perm_cam.mat"
    assert set(seeded["files"]) == {"exp/train_id.txt", "exp/val_id.txt", "exp/test_id.txt"}
    mat = sysu_root / "exp" / "rand_perm_cam.mat"
    _write_rand_perm(mat)
    official = dataset_fingerprint(SYSUMM01(sysu_root))
    assert official["version"] == "with rand_perm_cam.mat"
    assert official["files"]["exp/rand_perm_cam.mat"] == hashlib.sha256(mat.read_bytes()).hexdigest()
    assert official["files"]["exp/test_id.txt"] == seeded["files"]["exp/test_id.txt"]
    assert official["counts"]["train"] == seeded["counts"]["train"] and official["sha256"] != seeded["sha256"]
    assert format_fingerprint(official).startswith("dataset sysu (with rand_perm_cam.mat), records sha256 ")
    assert SYSUMM01(sysu_root, rand_perm_file=False).version == "without rand_perm_cam.mat"
