"""SYSU-MM01's ``rand_perm_cam.mat`` (``wrim.data.sysu.read_rand_perm`` and the galleries it picks), hostile.

Properties: ``{(cam, pid): (trials, n) int64 matrix of indices >= 1}`` for cameras 1..6, or a one-line ValueError
naming the file; no other exception escapes (a damaged, truncated or HDF5 file included); nothing outside the file
is read; an index beyond a folder's images is refused when the gallery is drawn, naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.hostile._props import assert_confined, assert_one_line_naming, refusal, watched
from wrim.data.sysu import SYSUMM01, read_rand_perm

savemat = pytest.importorskip("scipy.io").savemat


def _cells(cams: int = 6, ids: int = 3, perm=lambda cam, pid: np.array([[1.0, 2.0], [2.0, 1.0]])) -> np.ndarray:
    """A ``rand_perm_cam`` cell array: ``cams`` cells of ``ids`` cells each holding ``perm(cam, pid)``."""
    out = np.empty((cams, 1), dtype=object)
    for cam in range(cams):
        per_id = np.empty((ids, 1), dtype=object)
        for pid in range(ids):
            per_id[pid, 0] = perm(cam + 1, pid + 1)
        out[cam, 0] = per_id
    return out


def _numeric_cameras() -> np.ndarray:
    """6 camera cells that hold numbers instead of a cell per person id."""
    out = np.empty((6, 1), dtype=object)
    for cam in range(6):
        out[cam, 0] = np.arange(4.0)
    return out


def _write(path: Path, content: dict | bytes, compress: bool = True) -> Path:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        savemat(str(path), content, do_compression=compress)
    return path


def test_the_official_layout_reads(tmp_path) -> None:
    path = _write(tmp_path / "rand_perm_cam.mat", {"rand_perm_cam": _cells()})
    perms = read_rand_perm(path)
    assert sorted(perms) == [(cam, pid) for cam in range(1, 7) for pid in range(1, 4)]
    assert all(p.dtype == np.int64 and p.tolist() == [[1, 2], [2, 1]] for p in perms.values())


_HDF5 = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, HDF5 schema 1.00 .".ljust(116) + b"\0" * 8 + b"\x00\x02IM"

# (content of the file, what the one-line message says)
ATTACKS = [
    (b"", "not a readable MATLAB file (MatReadError"),
    (b"hello world" * 20, "not a readable MATLAB file (ValueError: Unknown mat file type"),
    (_HDF5 + b"\0" * 200, "not a readable MATLAB file (NotImplementedError"),
    ("truncated", "not a readable MATLAB file"),
    ({"something_else": np.ones(3)}, "expected a MATLAB cell array named 'rand_perm_cam' of 6 cameras"),
    ({"rand_perm_cam": np.ones((6, 1))}, "expected a MATLAB cell array named 'rand_perm_cam' of 6 cameras"),
    ({"rand_perm_cam": _cells(cams=5)}, "of 6 cameras"),
    ({"rand_perm_cam": _cells(cams=7)}, "of 6 cameras"),
    ({"rand_perm_cam": {"a": 1}}, "of 6 cameras"),
    ({"rand_perm_cam": _numeric_cameras()}, "rand_perm_cam{1} must be a cell array of one cell per person id"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.array([[1.5, 2.0]]))}, "rand_perm_cam{1}{1} must hold 1-based"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.array([[np.nan, 2.0]]))}, "must hold 1-based image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.array([[np.inf, 2.0]]))}, "must hold 1-based image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.array([[0.0, 2.0]]))}, "must hold 1-based image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.array([[-3.0, 2.0]]))}, "must hold 1-based image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.array([[1e30, 2.0]]))}, "must hold 1-based image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.ones((2, 2, 2)))}, "must be a matrix of image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: "abc")}, "must be a matrix of image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: np.array([[1 + 1j]]))}, "must be a matrix of image indices"),
    ({"rand_perm_cam": _cells(perm=lambda c, p: _cells(1, 1))}, "must be a matrix of image indices"),
]


@pytest.mark.parametrize(("content", "message"), ATTACKS, ids=[f"{i}:{m[-22:]}" for i, (_, m) in enumerate(ATTACKS)])
def test_attacks_are_refused_in_one_line_naming_the_file(tmp_path, content, message) -> None:
    path = tmp_path / "rand_perm_cam.mat"
    if isinstance(content, str):  # a good file cut short
        content = _write(tmp_path / "good.mat", {"rand_perm_cam": _cells()}).read_bytes()[:-20]
    _write(path, content)
    with watched() as events, pytest.raises(ValueError) as info:
        read_rand_perm(path)
    assert message in str(info.value), str(info.value)
    assert_one_line_naming(info.value, path)
    assert_confined(events, tmp_path)


@pytest.fixture
def sysu_root(tmp_path) -> Path:
    """A tiny SYSU-MM01 tree: ids 1 (train) and 2 (test), two images per camera folder."""
    from PIL import Image

    root = tmp_path / "SYSU-MM01"
    for cam in range(1, 7):
        for pid in (1, 2):
            folder = root / f"cam{cam}" / f"{pid:04d}"
            folder.mkdir(parents=True)
            for k in (1, 2):
                Image.new("RGB", (4, 8), (cam, pid, k)).save(folder / f"{k:04d}.jpg")
    (root / "exp").mkdir()
    for name, ids in (("train", "1"), ("val", ""), ("test", "2")):
        (root / "exp" / f"{name}_id.txt").write_text(ids + "\n")
    return root


@pytest.mark.parametrize(
    ("perm", "message"),
    [(np.array([[3.0, 1.0]]), "picks images [3] of cam1/0002, which has 2 images"), (np.array([[1.0]]), "1 trials")],
    ids=["index_beyond_the_folder", "too_few_trials"],
)
def test_indices_the_copy_does_not_have_are_refused_naming_the_file(sysu_root, perm, message) -> None:
    path = _write(sysu_root / "exp" / "rand_perm_cam.mat", {"rand_perm_cam": _cells(ids=600, perm=lambda c, p: perm)})
    dataset = SYSUMM01(sysu_root)  # ids up to 600 in the file: those the copy lacks are never looked up
    with pytest.raises(ValueError) as info:
        dataset.test_split(trial=0 if "picks" in message else 1)
    assert message in str(info.value)
    assert_one_line_naming(info.value, path)


# ------------------------------------------------------------------------------------------------ by property

_MATRICES = st.one_of(
    st.lists(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=3),
             min_size=1, max_size=3).map(lambda rows: np.array([r + [1.0] * (3 - len(r)) for r in rows])),
    st.lists(st.integers(-5, 2**40), max_size=4).map(lambda v: np.array(v, dtype=np.int64)),
    st.text(max_size=4),
    st.just(np.zeros((0, 0))),
)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cams=st.integers(0, 8), ids=st.integers(0, 4), perms=st.lists(_MATRICES, min_size=1, max_size=6))
@example(cams=6, ids=2, perms=[np.array([[1.0, 2.0]])])
def test_any_cell_array_reads_as_indices_or_is_refused_in_one_line(tmp_path_factory, cams, ids, perms) -> None:
    folder = tmp_path_factory.mktemp("mat")
    path = _write(
        folder / "rand_perm_cam.mat", {"rand_perm_cam": _cells(cams, ids, lambda c, p: perms[(c + p) % len(perms)])}
    )
    with watched() as events:
        result, _ = refusal(lambda: read_rand_perm(path), path)
    assert_confined(events, folder)
    for (cam, pid), perm in (result or {}).items():
        assert 1 <= cam <= 6 and pid >= 1 and perm.dtype == np.int64 and perm.ndim == 2 and (perm >= 1).all()


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(min_value=0), data=st.binary(min_size=1, max_size=16), cut=st.integers(min_value=0))
def test_any_damaged_file_reads_or_is_refused_in_one_line(tmp_path_factory, at, data, cut) -> None:
    folder = tmp_path_factory.mktemp("mat")
    raw = bytearray(_write(folder / "good.mat", {"rand_perm_cam": _cells()}, compress=cut % 2 == 0).read_bytes())
    raw[at % len(raw) : at % len(raw) + len(data)] = data
    path = _write(folder / "rand_perm_cam.mat", bytes(raw[: len(raw) - cut % 64]))
    refusal(lambda: read_rand_perm(path), path)
