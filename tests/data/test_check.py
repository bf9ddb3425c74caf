"""``wrim check-data`` on reduced native-layout trees: counts given as overrides, planted problems named, exit codes.

Every image of these trees is distinct noise (the ``write_image`` fixture of conftest.py writes uniform images, so
images of one id and camera would be byte-identical and read as duplicates). The expected numbers are derived from
each tree's design tables below, independently of the checker.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from wrim.cli import main
from wrim.data import LLCM, SYSUMM01, RegDB, check_counts, check_dataset
from wrim.data.statistics import PUBLISHED_STATISTICS

_seed = iter(range(10_000))


def _noise(path: Path, gray: bool = False) -> Path:
    """A small image of random pixels (distinct bytes for every call)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(next(_seed))
    arr = rng.integers(0, 256, (16, 8) if gray else (16, 8, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


# ---- SYSU-MM01: ids x cameras with per-(id, camera) image counts; 0 = no folder

SYSU_TRAIN, SYSU_VAL, SYSU_TEST = [1, 3], [2], [4, 5, 6]
SYSU_COUNTS = {  # pid: images in cam1..cam6
    1: (2, 1, 2, 0, 1, 2),
    2: (1, 0, 1, 2, 1, 1),
    3: (2, 2, 1, 1, 0, 1),
    4: (1, 2, 2, 0, 1, 1),
    5: (0, 1, 1, 1, 2, 0),
    6: (2, 0, 0, 1, 1, 2),
}
VIS, IR = (1, 2, 4, 5), (3, 6)


def _n(pids: list[int], cams: tuple[int, ...]) -> int:
    return sum(SYSU_COUNTS[p][c - 1] for p in pids for c in cams)


def _folders(pids: list[int], cams: tuple[int, ...]) -> int:
    return sum(SYSU_COUNTS[p][c - 1] > 0 for p in pids for c in cams)


SYSU_EXPECTED = {
    "train_ids": 3,
    "train_list_ids": 2,
    "val_list_ids": 1,
    "train_visible": _n(SYSU_TRAIN + SYSU_VAL, VIS),
    "train_infrared": _n(SYSU_TRAIN + SYSU_VAL, IR),
    "test_ids": 3,
    "query": _n(SYSU_TEST, IR),
    "gallery_all": _folders(SYSU_TEST, VIS),  # single-shot: one image per (test id, camera folder)
    "gallery_indoor": _folders(SYSU_TEST, (1, 2)),
}


@pytest.fixture
def sysu_root(tmp_path: Path) -> Path:
    root = tmp_path / "SYSU-MM01"
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True)
        for pid, counts in SYSU_COUNTS.items():
            for k in range(counts[cam - 1]):
                _noise(root / f"cam{cam}" / f"{pid:04d}" / f"{k + 1:04d}.jpg", gray=cam in IR)
    (root / "exp").mkdir()
    for name, ids in (("train", SYSU_TRAIN), ("val", SYSU_VAL), ("test", SYSU_TEST)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    return root


def _problems(report) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in report.problems:
        out.setdefault(p.kind, []).append(f"{p.path} {p.detail}")
    return out


def test_sysu_clean_copy_matches_its_numbers(sysu_root: Path) -> None:
    report = check_dataset("sysu", sysu_root, expected=SYSU_EXPECTED)
    assert report.ok, report.format()
    assert report.images == sum(map(sum, SYSU_COUNTS.values())) and report.decoded
    assert {r.statistic.key: r.found for r in report.rows} == SYSU_EXPECTED
    # without the overrides the published numbers apply: a reduced copy differs, every confirmed row named
    published = check_dataset("sysu", sysu_root, decode=False)
    assert not published.ok and not published.problems
    failing = {line.split(":")[0] for line in published.differences}
    assert failing == {s.key for s in PUBLISHED_STATISTICS["sysu"] if s.confirmed}
    assert "gallery_indoor" not in failing  # the unconfirmed figure is shown, not failed
    assert "differs?" in published.format()


def test_sysu_missing_camera_folder(sysu_root: Path) -> None:
    shutil.rmtree(sysu_root / "cam6")
    report = check_dataset("sysu", sysu_root, expected=SYSU_EXPECTED)
    problems = _problems(report)
    assert "cam6/ camera folder (infrared)" in problems["missing"]
    assert "missing camera folder" in problems["reader"][0]  # the training reader refuses it too
    assert not report.ok and all(row.found is None for row in report.rows)


def test_sysu_truncated_jpeg_and_zero_byte_file(sysu_root: Path) -> None:
    broken = sysu_root / "cam3" / "0004" / "0002.jpg"
    broken.write_bytes(broken.read_bytes()[:-40])
    (sysu_root / "cam1" / "0005").mkdir()
    (sysu_root / "cam1" / "0005" / "0001.jpg").write_bytes(b"")
    expected = {**SYSU_EXPECTED, "gallery_all": SYSU_EXPECTED["gallery_all"] + 1}
    expected["gallery_indoor"] += 1  # the empty file is listed by the reader: one more folder to sample
    report = check_dataset("sysu", sysu_root, expected=expected)
    problems = _problems(report)
    assert [p.split(" ")[0] for p in problems["unreadable"]] == ["cam3/0004/0002.jpg"]
    assert "truncated" in problems["unreadable"][0]
    assert problems["empty"] == ["cam1/0005/0001.jpg zero bytes"]
    assert not report.ok and all(row.matches for row in report.rows)
    # only listed (not decoded): the truncated file passes, the empty one does not
    assert set(_problems(check_dataset("sysu", sysu_root, expected=expected, decode=False))) == {"empty"}


def test_sysu_extra_id(sysu_root: Path) -> None:
    _noise(sysu_root / "cam1" / "0099" / "0001.jpg")  # an id folder in no id list
    report = check_dataset("sysu", sysu_root, expected=SYSU_EXPECTED)
    assert _problems(report)["unlisted"] == ["cam1/0099/ id 99 is in no exp/*_id.txt list (the readers skip it)"]
    assert all(row.matches for row in report.rows)  # the reader ignores it: only the walk finds it, as a note
    assert report.ok and "notes (do not fail the check) (1):" in report.format()

    (sysu_root / "exp" / "train_id.txt").write_text("1,3,99\n")  # ... now listed: the counts change
    report = check_dataset("sysu", sysu_root, expected=SYSU_EXPECTED)
    diffs = report.differences
    assert "train_ids: expected 3, found 4" in diffs and "train_list_ids: expected 2, found 3" in diffs
    n_visible = SYSU_EXPECTED["train_visible"]
    assert f"train_visible: expected {n_visible}, found {n_visible + 1}" in diffs
    assert not report.problems


def _write_rand_perm(root: Path, num_ids: int, trials: int = 10) -> None:
    """An official-format ``exp/rand_perm_cam.mat``: per camera and id, one permutation of its images per trial."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    cams = np.empty((1, 6), dtype=object)
    for cam in range(1, 7):
        per_id = np.empty((1, num_ids), dtype=object)
        for pid in range(1, num_ids + 1):
            folder = root / f"cam{cam}" / f"{pid:04d}"
            n = len(list(folder.iterdir())) if folder.is_dir() else 0
            per_id[0, pid - 1] = np.stack([rng.permutation(n) + 1.0 for _ in range(trials)]) if n else np.zeros((0, 0))
        cams[0, cam - 1] = per_id
    savemat(root / "exp" / "rand_perm_cam.mat", {"rand_perm_cam": cams})


def test_sysu_one_camera_ids_of_the_official_file_are_notes(sysu_root: Path) -> None:
    """The published dataset has id folders in no id list (ids seen by one camera), and its rand_perm_cam.mat lists
    them: notes that say so, exit 0."""
    pytest.importorskip("scipy")
    _noise(sysu_root / "cam5" / "0007" / "0001.jpg")
    _noise(sysu_root / "cam3" / "0008" / "0001.jpg", gray=True)
    _write_rand_perm(sysu_root, num_ids=8)
    report = check_dataset("sysu", sysu_root, expected=SYSU_EXPECTED)
    assert report.ok, report.format()
    notes = _problems(report)["unlisted"]
    assert [n.split(" ")[0] for n in notes] == ["cam5/0007/", "cam3/0008/"]  # visible cameras first
    assert all("rand_perm_cam.mat lists it: a folder of the published dataset" in n for n in notes)
    expect = [arg for key, value in SYSU_EXPECTED.items() for arg in ("--expect", f"{key}={value}")]
    assert main(["check-data", "--dataset", "sysu", "--root", str(sysu_root), "--no-decode", *expect]) == 0


def _split(total: int, parts: int) -> list[int]:
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]


@pytest.mark.slow
def test_sysu_real_layout_copy_with_the_published_numbers_passes(tmp_path: Path, capsys) -> None:
    """A full-size copy in SYSU-MM01's real layout: ids 1..533, 491 of them listed (296 train, 99 val, 96 test), the
    other 42 in one camera each and in rand_perm_cam.mat; the published totals (22,258 / 11,909 train images, 3,803
    queries, 301 / 112 gallery folders). No --expect: ``wrim check-data`` must exit 0 with 42 notes.

    The per-camera split of the totals is ours (no per-camera count is published in the sources we could read);
    the files are distinct byte strings, so the check runs with --no-decode.
    """
    pytest.importorskip("scipy")
    root = tmp_path / "SYSU-MM01"
    order = np.random.default_rng(0).permutation(np.arange(1, 534)).tolist()
    listed, unlisted = sorted(order[:491]), sorted(order[491:])
    train, val, test = listed[:296], listed[296:395], listed[395:]
    files: dict[tuple[int, int], int] = {}
    visible, infrared = _split(22258, 395 * 4), _split(11909, 395 * 2)
    for k, pid in enumerate(train + val):
        files.update({(cam, pid): visible[4 * k + j] for j, cam in enumerate(VIS)})
        files.update({(cam, pid): infrared[2 * k + j] for j, cam in enumerate(IR)})
    queries = _split(3803, 96 * 2)
    for k, pid in enumerate(test):
        files.update({(cam, pid): queries[2 * k + j] for j, cam in enumerate(IR)})
    indoor = [(cam, pid) for pid in test for cam in (1, 2)][:112]
    outdoor = [(cam, pid) for pid in test for cam in (4, 5)][: 301 - 112]
    files.update({pair: 12 for pair in indoor + outdoor})
    files.update({(k % 6 + 1, pid): 5 for k, pid in enumerate(unlisted)})
    for (cam, pid), count in files.items():
        folder = root / f"cam{cam}" / f"{pid:04d}"
        folder.mkdir(parents=True)
        for i in range(count):
            (folder / f"{i + 1:04d}.jpg").write_bytes(f"{cam}/{pid}/{i}".encode())
    (root / "exp").mkdir()
    for name, ids in (("train", train), ("val", val), ("test", test)):
        (root / "exp" / f"{name}_id.txt").write_text(",".join(map(str, ids)) + "\n")
    _write_rand_perm(root, num_ids=533)
    assert main(["check-data", "--dataset", "sysu", "--root", str(root), "--no-decode"]) == 0
    out = capsys.readouterr().out
    assert "notes (do not fail the check) (42):" in out and "OK: the copy matches" in out
    assert out.count("a folder of the published dataset") == 42


def test_sysu_duplicated_image_and_stray_file(sysu_root: Path) -> None:
    shutil.copyfile(sysu_root / "cam2" / "0001" / "0001.jpg", sysu_root / "cam2" / "0001" / "0007.jpg")
    (sysu_root / "cam4" / "0002" / "Thumbs.db").write_bytes(b"x")
    report = check_dataset("sysu", sysu_root, expected=SYSU_EXPECTED)
    problems = _problems(report)
    assert problems["duplicate"] == ["cam2/0001/0007.jpg same bytes as cam2/0001/0001.jpg"]
    assert problems["stray"] == ["cam4/0002/Thumbs.db not an image file"]
    assert [r.statistic.key for r in report.rows if not r.matches] == ["train_visible"]


def test_sysu_listed_id_without_folder_and_overlapping_lists(sysu_root: Path) -> None:
    (sysu_root / "exp" / "val_id.txt").write_text("2,3,42\n")
    problems = _problems(check_dataset("sysu", sysu_root, decode=False))
    assert problems["missing"] == ["cam*/0042/ id 42 of exp/val_id.txt has no folder in any camera"]
    assert problems["overlap"] == ["exp/train_id.txt + exp/val_id.txt 1 id(s) in both: 3"]


# ---- RegDB: 8 ids x 3 images per modality, all ten splits (rotations of the id list)

REGDB_IDS = list(range(1, 9))


def _regdb_split(trial: int) -> tuple[list[int], list[int]]:
    ids = REGDB_IDS[trial % 8 :] + REGDB_IDS[: trial % 8]
    return sorted(ids[:4]), sorted(ids[4:])


@pytest.fixture
def regdb_root(tmp_path: Path, write_regdb_lists) -> Path:
    root = tmp_path / "RegDB"
    for pid in REGDB_IDS:
        for k in range(3):
            _noise(root / "Visible" / str(pid) / f"male_front_v_{pid:05d}_{k + 1}.bmp")
            _noise(root / "Thermal" / str(pid) / f"male_front_t_{pid:05d}_{k + 1}.bmp", gray=True)
    write_regdb_lists(root, range(1, 11), _regdb_split)
    return root


REGDB_EXPECTED = {"ids": 8, "visible_per_id": 3, "thermal_per_id": 3, "train_ids": 4, "test_ids": 4}


def test_regdb_clean_copy_and_published_numbers(regdb_root: Path) -> None:
    report = check_dataset("regdb", regdb_root, expected=REGDB_EXPECTED)
    assert report.ok, report.format()
    assert {r.statistic.key: r.found for r in report.rows} == {**REGDB_EXPECTED, "splits": 10}
    assert report.images == 48
    published = check_dataset("regdb", regdb_root, decode=False)
    assert {line.split(":")[0] for line in published.differences} == set(REGDB_EXPECTED)


def test_regdb_missing_image_missing_list_overlap_and_uneven_ids(regdb_root: Path) -> None:
    (regdb_root / "Thermal" / "3" / "male_front_t_00003_2.bmp").unlink()
    (regdb_root / "idx" / "test_thermal_7.txt").unlink()
    train2 = regdb_root / "idx" / "train_visible_2.txt"
    train2.write_text(train2.read_text() + "Visible/1/male_front_v_00001_1.bmp 4\n")  # id 1 is a test id of split 2
    _noise(regdb_root / "Visible" / "5" / "male_front_v_00005_9.bmp")  # on disk, in no list
    report = check_dataset("regdb", regdb_root, expected=REGDB_EXPECTED)
    problems = _problems(report)
    assert problems["missing"] == [
        "idx/test_thermal_7.txt list file of split 7",
        "Thermal/3/male_front_t_00003_2.bmp listed in idx/train_thermal_1.txt",
    ]
    assert problems["overlap"] == ["idx/train_*_2.txt + idx/test_*_2.txt 1 id(s) in both: 1"]
    assert problems["stray"] == ["Visible/5/male_front_v_00005_9.bmp in no idx list file"]
    rows = {r.statistic.key: r for r in report.rows}
    # every split lists the missing file, so the reader refuses them all: nothing else can be counted
    assert rows["splits"].found == 9 and len(problems["reader"]) == 10


def test_regdb_uneven_images_per_id_named(regdb_root: Path) -> None:
    for trial in range(1, 11):  # drop one thermal image of id 6 from every list and from the disk
        for part in ("train", "test"):
            path = regdb_root / "idx" / f"{part}_thermal_{trial}.txt"
            path.write_text("".join(f"{line}\n" for line in path.read_text().splitlines() if "00006_3" not in line))
    (regdb_root / "Thermal" / "6" / "male_front_t_00006_3.bmp").unlink()
    report = check_dataset("regdb", regdb_root, expected=REGDB_EXPECTED)
    assert report.differences == [
        "thermal_per_id: expected 3, found not counted (split 1: thermal images per id differ: most have 3, 6: 2; "
        + "; ".join(f"split {t}: thermal images per id differ: most have 3, 6: 2" for t in range(2, 11))
        + ")"
    ]


# ---- LLCM: 3 train ids, 3 test ids; test_nir has no cam3

LLCM_TRAIN, LLCM_TEST = [1, 2, 3], [5, 6, 8]
LLCM_VIS_CAMS, LLCM_NIR_CAMS = range(1, 10), [1, 2, 4, 5, 6, 7, 8, 9]


def _llcm_has(pid: int, cam: int) -> bool:
    return (pid + cam) % 4 != 0


@pytest.fixture
def llcm_root(tmp_path: Path) -> Path:
    root = tmp_path / "LLCM"
    (root / "idx").mkdir(parents=True)
    lines = {"vis": [], "nir": []}
    for label, pid in enumerate(LLCM_TRAIN):
        for mod in ("vis", "nir"):
            for cam in (1, 4):
                rel = f"{mod}/{pid:04d}/{pid:04d}_c{cam:02d}_s1855{pid}_f70{cam}_{mod}.jpg"
                _noise(root / rel, gray=mod == "nir")
                lines[mod].append(f"{rel} {label}")
    for mod in ("vis", "nir"):
        (root / "idx" / f"train_{mod}.txt").write_text("\n".join(lines[mod]) + "\n")
    (root / "idx" / "test_id.txt").write_text(",".join(map(str, LLCM_TEST)) + "\n")
    for sub, cams in (("test_vis", LLCM_VIS_CAMS), ("test_nir", LLCM_NIR_CAMS)):
        for cam in cams:
            (root / sub / f"cam{cam}").mkdir(parents=True)
            for pid in LLCM_TEST:
                if _llcm_has(pid, cam):
                    _noise(root / sub / f"cam{cam}" / f"{pid:04d}" / f"{pid:04d}_c{cam:02d}_s1_f1.jpg")
    return root


LLCM_EXPECTED = {
    "train_ids": 3,
    "train_visible": 6,
    "train_infrared": 6,
    "test_ids": 3,
    "test_visible": sum(_llcm_has(p, c) for p in LLCM_TEST for c in LLCM_VIS_CAMS),
    "test_infrared": sum(_llcm_has(p, c) for p in LLCM_TEST for c in LLCM_NIR_CAMS),
}


def test_llcm_clean_copy_and_planted_problems(llcm_root: Path) -> None:
    report = check_dataset("llcm", llcm_root, expected=LLCM_EXPECTED)
    assert report.ok, report.format()
    assert {r.statistic.key: r.found for r in report.rows} == LLCM_EXPECTED

    _noise(llcm_root / "test_nir" / "cam3" / "0005" / "0005_c03_s1_f1.jpg")  # DEEN never reads test_nir/cam3
    _noise(llcm_root / "test_vis" / "cam2" / "0007" / "0007_c02_s1_f1.jpg")  # an extra test id
    (llcm_root / "nir" / "0002" / "0002_c01_s18552_f701_nir.jpg").unlink()
    report = check_dataset("llcm", llcm_root, expected=LLCM_EXPECTED)
    problems = _problems(report)
    assert problems["unlisted"] == ["test_vis/cam2/0007/ id 7 is in no idx/test_id.txt (the readers skip it)"]
    assert problems["stray"] == ["test_nir/cam3/ not one of the test_nir camera folders the protocol reads"]
    assert problems["missing"] == ["nir/0002/0002_c01_s18552_f701_nir.jpg listed in idx/train_nir.txt"]
    assert "missing image" in problems["reader"][0]


# ---- the cheap part, as `wrim train` runs it


def test_check_counts_warns_or_raises(sysu_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    dataset = SYSUMM01(sysu_root)
    assert check_counts(dataset, expected=SYSU_EXPECTED) == []
    with caplog.at_level(logging.WARNING, logger="wrim"):
        diffs = check_counts(dataset, expected={**SYSU_EXPECTED, "query": 3803})
    assert diffs == [f"query: expected 3,803, found {SYSU_EXPECTED['query']}"]
    (record,) = caplog.records
    assert "\n" not in record.getMessage() and "query: expected 3,803" in record.getMessage()
    with pytest.raises(ValueError, match="does not match the published statistics: train_ids: expected 395"):
        check_counts(dataset, strict=True)
    with pytest.raises(ValueError, match="unknown sysu statistic 'queries'.*valid keys"):
        check_counts(dataset, expected={"queries": 1})


def test_check_counts_on_regdb_and_llcm_readers(regdb_root: Path, llcm_root: Path) -> None:
    assert check_counts(RegDB(regdb_root, trial=3), expected=REGDB_EXPECTED, warn=False) == []
    assert check_counts(LLCM(llcm_root), expected=LLCM_EXPECTED, warn=False) == []
    assert len(check_counts(LLCM(llcm_root), warn=False)) == 6  # every published LLCM number differs here


def test_train_strict_check_stops_before_training(sysu_root: Path, tmp_path: Path, capsys) -> None:
    args = ["train", "--config", "sysu", f"data.root={sysu_root}", f"output_dir={tmp_path / 'runs'}", "progress=false"]
    assert main([*args, "data.strict_check=true"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "wrim check-data --dataset sysu" in err and "train_ids: expected 395" in err


def test_train_warns_in_one_line_and_goes_on(sysu_root: Path, tmp_path: Path, monkeypatch) -> None:
    class Reached(BaseException):  # not an Exception: the CLI turns those into one line and exit 2
        """Raised where training would build its loader: the count check has run by then."""

    def stop(*args, **kwargs):
        raise Reached

    monkeypatch.setattr("wrim.data.build_train_loader", stop)
    args = ["train", "--config", "sysu", f"data.root={sysu_root}", f"output_dir={tmp_path}", "run_name=warn"]
    with pytest.raises(Reached):
        main([*args, "progress=false"])
    log = (tmp_path / "warn" / "train.log").read_text().splitlines()
    (line,) = [line for line in log if "does not match the published statistics" in line]
    assert "train_ids: expected 395, found 3" in line and "data.strict_check=true makes this an error" in line


# ---- the command line


def test_cli_exit_codes(sysu_root: Path, capsys) -> None:
    expect = [arg for key, value in SYSU_EXPECTED.items() for arg in ("--expect", f"{key}={value}")]
    assert main(["check-data", "--dataset", "sysu", "--root", str(sysu_root), *expect]) == 0
    assert "OK: the copy matches" in capsys.readouterr().out
    assert main(["check-data", "--dataset", "sysu", "--root", str(sysu_root / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert main(["check-data", "--dataset", "sysu", "--root", str(sysu_root), "--expect", "queries=3"]) == 2
    assert "valid keys" in capsys.readouterr().err
    assert main(["check-data", "--dataset", "market", "--root", str(sysu_root)]) == 2  # any registered name parses
    assert "unknown dataset 'market'; checkable datasets: ['llcm', 'regdb', 'sysu']" in capsys.readouterr().err


def test_python_m_wrim_check_data_names_two_planted_problems(sysu_root: Path) -> None:
    """The README-style call: a truncated JPEG and a duplicated image, exit code 1, both named."""
    broken = sysu_root / "cam6" / "0002" / "0001.jpg"
    broken.write_bytes(broken.read_bytes()[:-40])
    shutil.copyfile(sysu_root / "cam1" / "0003" / "0001.jpg", sysu_root / "cam1" / "0003" / "0005.jpg")
    expect = [arg for key, value in SYSU_EXPECTED.items() for arg in ("--expect", f"{key}={value}")]
    cmd = [sys.executable, "-m", "wrim", "check-data", "--dataset", "sysu", "--root", str(sysu_root), *expect]
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert done.returncode == 1, done.stderr
    out = done.stdout
    assert "unreadable  cam6/0002/0001.jpg  does not decode" in out
    assert "duplicate   cam1/0003/0005.jpg  same bytes as cam1/0003/0001.jpg" in out
    assert "train visible images" in out and "DIFFERS" in out  # the copy is also one image too many
