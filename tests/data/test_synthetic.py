"""SyntheticVIReID: deterministic bytes, SYSU-MM01 layout and protocol, cache behaviour."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wrim import INFRARED, VISIBLE
from wrim.data import SYSUMM01, SyntheticVIReID, read_image
from wrim.data import synthetic as synthetic_module

TINY = {"num_ids": 4, "num_test_ids": 3, "images_per_camera": 2, "img_size": (48, 24)}


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    a = SyntheticVIReID(tmp_path / "a", seed=3, **TINY)
    b = SyntheticVIReID(tmp_path / "b", seed=3, **TINY)
    c = SyntheticVIReID(tmp_path / "c", seed=4, **TINY)
    files_a, files_b, files_c = _files(a.root), _files(b.root), _files(c.root)
    assert len(files_a) > 20 and files_a == files_b
    shared = set(files_a) & set(files_c)
    assert any(files_a[k] != files_c[k] for k in shared if k.endswith(".jpg"))


def test_layout_is_read_by_sysu_reader(tmp_path: Path) -> None:
    ds = SyntheticVIReID(tmp_path / "set", seed=0, **TINY)
    assert sorted(p.name for p in ds.root.iterdir()) == [
        "cam1", "cam2", "cam3", "cam4", "cam5", "cam6", "exp", "manifest.json",
    ]  # fmt: skip
    for name in ("train_id.txt", "val_id.txt", "test_id.txt"):
        assert len((ds.root / "exp" / name).read_text().splitlines()) == 1
    sysu = SYSUMM01(ds.root)
    assert sysu.train == ds.train and ds.num_classes == 4
    mods = {r.modality for r in ds.train}
    assert mods == {VISIBLE, INFRARED}
    for pid in range(ds.num_classes):  # every train identity is seen by both modalities
        assert {r.modality for r in ds.train if r.pid == pid} == {VISIBLE, INFRARED}
    split = ds.test_split(trial=1, mode="all")
    assert split.protocol == "sysu"
    assert len({r.pid for r in split.query}) == 3 and {r.camid for r in split.query} <= {3, 6}
    assert {r.pid for r in split.gallery} == {r.pid for r in split.query}
    assert split.gallery == sysu.test_split(trial=1, mode="all").gallery
    rgb = read_image(split.gallery[0].path)
    ir = read_image(split.query[0].path)
    assert rgb.shape == ir.shape == (3, 48, 24)
    assert (ir[0] == ir[1]).all() and (ir[1] == ir[2]).all()  # single-channel infrared file


def test_cache_dir_and_reuse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRIM_CACHE", str(tmp_path / "cache"))
    first = SyntheticVIReID(**TINY)
    assert first.root.parent == tmp_path / "cache" / "synthetic"
    assert (first.root / "manifest.json").is_file()
    assert not [p for p in first.root.parent.iterdir() if p.name.startswith(".")]  # temporary folder removed

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("regenerated a complete set")

    monkeypatch.setattr(synthetic_module, "generate", fail)
    again = SyntheticVIReID(**TINY)
    assert again.root == first.root and again.train == first.train


def test_generated_folder_follows_the_umask(tmp_path: Path) -> None:
    # a set generated in a temporary folder (mkdtemp: 0700) keeps the mode a plain mkdir would give, so a shared
    # cache stays readable by the group when the umask allows it
    old = os.umask(0o022)
    try:
        ds = SyntheticVIReID(tmp_path / "set", seed=0, **TINY)
    finally:
        os.umask(old)
    assert ds.root.stat().st_mode & 0o777 == 0o755


def test_existing_folders_are_checked(tmp_path: Path) -> None:
    SyntheticVIReID(tmp_path / "set", seed=0, **TINY)
    with pytest.raises(ValueError, match="different arguments"):
        SyntheticVIReID(tmp_path / "set", seed=1, **TINY)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty"):
        SyntheticVIReID(tmp_path / "other", **TINY)
    (tmp_path / "empty").mkdir()
    assert SyntheticVIReID(tmp_path / "empty", **TINY).num_classes == 4


@pytest.mark.parametrize(
    "kwargs",
    [{"num_ids": 0}, {"images_per_camera": 0}, {"img_size": (16, 8)}, {"ir_material_weight": 1.5}, {"seed": -1}],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SyntheticVIReID(tmp_path / "x", **{**TINY, **kwargs})
