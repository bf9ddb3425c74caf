"""The wheel job's file checks find what they are for: a stray or missing file in the sdist or a wheel, two wheels
that differ, and the tree as git sees it (no ignored or deleted file)."""

from __future__ import annotations

import io
import shutil
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.wheel.check_dist import SDIST_GENERATED, SDIST_TOP_LEVEL, WHEEL_METADATA, check, tree_files

SOURCE = {
    "wrim/__init__.py": b"x = 1\n",
    "wrim/py.typed": b"",
    "wrim/configs/a.yaml": b"a: 1\n",
    "tests/test_a.py": b"def test(): pass\n",
    "docs/index.md": b"# docs\n",
    **{name: name.encode() for name in SDIST_TOP_LEVEL},
}
PACKAGE = {k: v for k, v in SOURCE.items() if k.startswith("wrim/")}


def _source(tmp_path: Path) -> Path:
    root = tmp_path / "src"
    for name, data in SOURCE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


def _sdist(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"wrim-0.2.0/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def _wheel(path: Path, files: dict[str, bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {f"wrim-0.2.0.dist-info/{name}": b"meta" for name in WHEEL_METADATA}
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in {**files, **metadata}.items():
            archive.writestr(name, data)
    return path


def _good_sdist() -> dict[str, bytes]:
    kept = {k: v for k, v in SOURCE.items() if not k.startswith("docs/")}
    return {**kept, **{name: b"generated" for name in SDIST_GENERATED}}


def _check(tmp_path: Path, sdist: dict[str, bytes], from_sdist: dict[str, bytes], direct: dict[str, bytes]) -> list:
    return check(
        _source(tmp_path),
        _sdist(tmp_path / "wrim-0.2.0.tar.gz", sdist),
        _wheel(tmp_path / "a" / "wrim-0.2.0-py3-none-any.whl", from_sdist),
        _wheel(tmp_path / "b" / "wrim-0.2.0-py3-none-any.whl", direct),
    )


def test_the_expected_files_pass(tmp_path: Path) -> None:
    assert _check(tmp_path, _good_sdist(), PACKAGE, PACKAGE) == []


def test_stray_and_missing_files_are_named(tmp_path: Path) -> None:
    sdist = {**_good_sdist(), "tests/__pycache__/test_a.cpython-311.pyc": b"\0", "docs/index.md": b"# docs\n"}
    del sdist["CITATION.cff"]
    without_config = {k: v for k, v in PACKAGE.items() if not k.endswith(".yaml")}
    assert _check(tmp_path, sdist, without_config, {**PACKAGE, "build/lib/wrim/old.py": b""}) == [
        "wrim-0.2.0.tar.gz: missing CITATION.cff",
        "wrim-0.2.0.tar.gz: stray docs/index.md",
        "wrim-0.2.0.tar.gz: stray tests/__pycache__/test_a.cpython-311.pyc",
        "wheel built from the sdist: missing wrim/configs/a.yaml",
        "direct wheel: stray build/lib/wrim/old.py",
    ]


def test_wheels_that_differ_in_a_file_are_named(tmp_path: Path) -> None:
    changed = {**PACKAGE, "wrim/__init__.py": b"x = 2\n"}
    assert _check(tmp_path, _good_sdist(), PACKAGE, changed) == ["the wheels differ in wrim/__init__.py"]


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_tree_is_what_git_sees(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    for name in ("kept.py", "deleted.py", "untracked.py", "ignored.pyc", ".gitignore"):
        (tmp_path / name).write_text("*.pyc\n" if name == ".gitignore" else "x\n")
    git("add", "kept.py", "deleted.py", ".gitignore")
    (tmp_path / "deleted.py").unlink()
    assert tree_files(tmp_path) == [".gitignore", "kept.py", "untracked.py"]
