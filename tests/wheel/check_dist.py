"""The wheel job's file checks (tests/wheel/run.sh): what the sdist and the wheel hold, against the source tree.

Usage:

    python tests/wheel/check_dist.py copy-tree REPO DEST
        copies the tree as git sees it (tracked files and untracked ones that are not ignored) to DEST: a build
        from DEST cannot pick up build/, *.egg-info or other leftovers of the checkout
    python tests/wheel/check_dist.py check SOURCE SDIST WHEEL_FROM_SDIST DIRECT_WHEEL
        lists the sdist; fails (exit 1, naming each file) unless the sdist holds exactly the expected files, each
        wheel holds exactly the package's files and its metadata, and the two wheels are equal file by file

Expected, from SOURCE (the copy): the sdist holds every file under ``wrim/`` and ``tests/``, the top-level files
in ``SDIST_TOP_LEVEL`` and what setuptools generates (``SDIST_GENERATED``); a wheel holds every file under
``wrim/`` (Python modules, ``py.typed``, the shipped configs) and its ``.dist-info`` files (``WHEEL_METADATA``).
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

SDIST_TOP_LEVEL = ("CHANGELOG.md", "CITATION.cff", "LICENSE", "MANIFEST.in", "README.md", "pyproject.toml")
SDIST_GENERATED = (
    "PKG-INFO",
    "setup.cfg",
    "wrim.egg-info/PKG-INFO",
    "wrim.egg-info/SOURCES.txt",
    "wrim.egg-info/dependency_links.txt",
    "wrim.egg-info/entry_points.txt",
    "wrim.egg-info/requires.txt",
    "wrim.egg-info/top_level.txt",
)
WHEEL_METADATA = ("METADATA", "RECORD", "WHEEL", "entry_points.txt", "licenses/LICENSE", "top_level.txt")
_PACKAGED = ("wrim/", "tests/")


def tree_files(repo: Path) -> list[str]:
    """The files of ``repo`` as git sees them: tracked and not deleted, or untracked and not ignored."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=repo,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (repo / name).is_file()})


def copy_tree(repo: Path, dest: Path) -> int:
    for name in tree_files(repo):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((repo / name).read_bytes())
        target.chmod((repo / name).stat().st_mode)
    return 0


def source_files(source: Path) -> set[str]:
    return {p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()}


def expected_sdist(source: set[str]) -> set[str]:
    packaged = {name for name in source if name.startswith(_PACKAGED)}
    return packaged | {n for n in SDIST_TOP_LEVEL if n in source} | set(SDIST_GENERATED)


def expected_wheel(source: set[str], dist_info: str) -> set[str]:
    return {n for n in source if n.startswith("wrim/")} | {f"{dist_info}/{n}" for n in WHEEL_METADATA}


def sdist_names(path: Path) -> set[str]:
    """The sdist's files, without its ``wrim-X.Y.Z/`` prefix."""
    with tarfile.open(path) as archive:
        return {m.name.split("/", 1)[1] for m in archive.getmembers() if m.isfile()}


def wheel_contents(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist() if not name.endswith("/")}


def _difference(what: str, found: set[str], expected: set[str]) -> list[str]:
    return [f"{what}: missing {n}" for n in sorted(expected - found)] + [
        f"{what}: stray {n}" for n in sorted(found - expected)
    ]


def check(source: Path, sdist: Path, from_sdist: Path, direct: Path) -> list[str]:
    """Every problem found (empty: the sdist and both wheels hold what they should, and the wheels are equal)."""
    files = source_files(source)
    problems = _difference(sdist.name, sdist_names(sdist), expected_sdist(files))
    wheels = {"wheel built from the sdist": wheel_contents(from_sdist), "direct wheel": wheel_contents(direct)}
    dist_info = "-".join(direct.name.split("-")[:2]) + ".dist-info"
    for what, contents in wheels.items():
        problems += _difference(what, set(contents), expected_wheel(files, dist_info))
    first, second = wheels.values()
    problems += [
        f"the wheels differ in {name}" for name in sorted(set(first) & set(second)) if first[name] != second[name]
    ]
    return problems


def main(argv: list[str]) -> int:
    if argv[:1] == ["copy-tree"] and len(argv) == 3:
        return copy_tree(Path(argv[1]), Path(argv[2]))
    if argv[:1] != ["check"] or len(argv) != 5:
        print(__doc__, file=sys.stderr)
        return 2
    source, sdist, from_sdist, direct = (Path(a) for a in argv[1:])
    names = sorted(sdist_names(sdist))
    print(f"{sdist.name}: {len(names)} files")
    print("\n".join(f"  {n}" for n in names))
    wheel_names = sorted(wheel_contents(direct))
    print(f"{direct.name}: {len(wheel_names)} files")
    print("\n".join(f"  {n}" for n in wheel_names))
    problems = check(source, sdist, from_sdist, direct)
    for problem in problems:
        print(f"check_dist: {problem}", file=sys.stderr)
    if problems:
        print(f"check_dist: {len(problems)} problems", file=sys.stderr)
        return 1
    print("check_dist: the sdist and the wheels hold the expected files; the two wheels are equal file by file")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
