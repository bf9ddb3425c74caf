"""RegDB on a tiny native-layout tree: list parsing, directions, trials and missing-file errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from wrim import INFRARED, VISIBLE
from wrim.data import RegDB

IDS = list(range(1, 9))


def _split(trial: int) -> tuple[list[int], list[int]]:
    """Train / test ids of a trial: a rotation of the id list, like RegDB's random halves."""
    ids = IDS[trial:] + IDS[:trial]
    return sorted(ids[:4]), sorted(ids[4:])


@pytest.fixture
def regdb_root(tmp_path: Path, write_image, write_regdb_lists) -> Path:
    root = tmp_path / "RegDB"
    for pid in IDS:
        for k in range(3):
            gender = "male" if pid % 2 else "female"
            write_image(root / "Visible" / str(pid) / f"{gender}_front_v_{pid:05d}_{k + 1}.bmp", pid)
            write_image(root / "Thermal" / str(pid) / f"{gender}_front_t_{pid:05d}_{k + 1}.bmp", pid, gray=True)
    write_regdb_lists(root, (1, 2), _split)
    return root


def _ref_list(path: Path) -> tuple[list[str], list[int]]:
    """AGW ``load_data`` / ``process_test_regdb``: split each line on one space."""
    with open(path) as f:
        data_file_list = f.read().splitlines()
        files = [s.split(" ")[0] for s in data_file_list]
        labels = [int(s.split(" ")[1]) for s in data_file_list]
    return files, labels


@pytest.mark.parametrize("trial", [1, 2])
def test_train_and_test_lists(regdb_root: Path, trial: int) -> None:
    ds = RegDB(regdb_root, trial=trial)
    assert ds.default_trials == (trial,) and ds.num_classes == 4
    vis_files, vis_labels = _ref_list(regdb_root / "idx" / f"train_visible_{trial}.txt")
    train_vis = [r for r in ds.train if r.modality == VISIBLE]
    assert [r.path for r in train_vis] == [str(regdb_root / f) for f in vis_files]
    assert [r.pid for r in train_vis] == vis_labels
    assert {r.camid for r in train_vis} == {1} and {r.camid for r in ds.train if r.modality == INFRARED} == {2}

    v2t = ds.test_split(direction="v2t")
    q_files, q_labels = _ref_list(regdb_root / "idx" / f"test_visible_{trial}.txt")
    g_files, g_labels = _ref_list(regdb_root / "idx" / f"test_thermal_{trial}.txt")
    assert [r.path for r in v2t.query] == [str(regdb_root / f) for f in q_files]
    assert [r.pid for r in v2t.query] == q_labels and [r.pid for r in v2t.gallery] == g_labels
    assert v2t.protocol == "regdb" and v2t.trial == trial
    assert {r.modality for r in v2t.query} == {VISIBLE} and {r.modality for r in v2t.gallery} == {INFRARED}

    t2v = ds.test_split(trial=trial, direction="t2v")
    assert t2v.query == v2t.gallery and t2v.gallery == v2t.query


def test_trials_are_different_splits(regdb_root: Path) -> None:
    assert RegDB(regdb_root, trial=1).train != RegDB(regdb_root, trial=2).train


def test_bad_arguments(regdb_root: Path) -> None:
    ds = RegDB(regdb_root, trial=1)
    with pytest.raises(ValueError, match="trial 1"):
        ds.test_split(trial=2)
    with pytest.raises(ValueError, match="direction"):
        ds.test_split(direction="i2v")
    with pytest.raises(ValueError, match="1..10"):
        RegDB(regdb_root, trial=0)


@pytest.mark.parametrize("name", ["train_thermal_1.txt", "test_visible_1.txt"])
def test_missing_list_file(regdb_root: Path, name: str) -> None:
    (regdb_root / "idx" / name).unlink()
    with pytest.raises(ValueError, match=name) as err:
        RegDB(regdb_root, trial=1)
    assert "Visible/<pid>" in str(err.value)


def test_missing_image(regdb_root: Path) -> None:
    victim = sorted((regdb_root / "Thermal" / "2").iterdir())[0]
    victim.unlink()
    ds_trial = next(t for t in (1, 2) if 2 in _split(t)[0])
    with pytest.raises(ValueError, match=victim.name):
        RegDB(regdb_root, trial=ds_trial)


def test_malformed_line(regdb_root: Path) -> None:
    (regdb_root / "idx" / "train_visible_1.txt").write_text("Visible/1/x.bmp\n")
    with pytest.raises(ValueError, match="int label"):
        RegDB(regdb_root, trial=1)
