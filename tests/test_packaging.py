"""The wheel and sdist build, install into a fresh virtual environment and import with their data files.

The fresh environment borrows torch & co. from the interpreter running the tests through a ``.pth`` file that lists
that interpreter's own site-packages: ``venv``'s ``system_site_packages`` would give it the *base* interpreter's,
which lacks them when the tests run inside a virtualenv or conda environment.
"""

from __future__ import annotations

import site
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

from wrim.version import __version__ as wrim_version

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def running_site_packages() -> list[str]:
    """The existing site-packages folders of the running interpreter: its venv's / conda env's when it runs in one."""
    user_site = [site.getusersitepackages()] if site.ENABLE_USER_SITE else []
    folders = [*site.getsitepackages(), *user_site, sysconfig.get_path("purelib")]
    return [p for p in dict.fromkeys(folders) if Path(p).is_dir()]


def borrow_site_packages(env_dir: Path) -> Path:
    """Writes a ``.pth`` into ``env_dir``'s site-packages that adds the running interpreter's site-packages.

    Lines of a ``.pth`` file are appended to ``sys.path`` without processing the ``.pth`` files found there, so an
    editable install of wrim in the running environment stays invisible to the fresh one.
    """
    purelib = sysconfig.get_path("purelib", vars={"base": str(env_dir), "platbase": str(env_dir)})
    pth = Path(purelib) / "wrim_test_borrowed_site.pth"
    pth.parent.mkdir(parents=True, exist_ok=True)
    pth.write_text("\n".join(running_site_packages()) + "\n", encoding="utf-8")
    return pth


def test_running_site_packages_hold_torch() -> None:
    """Whatever the interpreter (system, venv, conda), the borrowed folders are where torch is installed."""
    import torch

    torch_parent = Path(torch.__file__).resolve().parents[1]
    assert any(torch_parent == Path(p).resolve() for p in running_site_packages()), (torch_parent, sys.prefix)


def test_borrow_site_packages_writes_a_pth_in_the_env(tmp_path: Path) -> None:
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    pth = borrow_site_packages(env_dir)
    assert pth.parent.name == "site-packages" and pth.parent.is_dir()
    assert pth.read_text().split() == running_site_packages()
    python = env_dir / "bin" / "python"
    paths = _run(python, "-c", "import sys; print('\\n'.join(sys.path))", cwd=tmp_path).split()
    assert set(running_site_packages()) <= set(paths)


@pytest.mark.repo  # builds from the checkout
def test_wheel_and_sdist_install_and_import(tmp_path: Path) -> None:
    pytest.importorskip("setuptools", minversion="77")  # pyproject's build requirement (built without isolation)
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-w", dist, cwd=tmp_path)
    wheels = list(dist.glob("wrim-*.whl"))
    assert len(wheels) == 1
    sdist_dir = tmp_path / "sdist"
    _run(sys.executable, "-c", f"from setuptools import build_meta as b; b.build_sdist({str(sdist_dir)!r})", cwd=ROOT)
    assert len(list(sdist_dir.glob("wrim-*.tar.gz"))) == 1
    # a fresh environment that borrows torch & co. from this interpreter, with wrim only from the wheel
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(env_dir)
    borrow_site_packages(env_dir)
    python = env_dir / "bin" / "python"
    site = tmp_path / "site"
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheels[0], "--target", site, cwd=tmp_path)
    probe = (
        "import sys; sys.path.insert(0, {site!r}); "
        "import wrim, wrim.engine; from wrim import MIIM, GRI, ModalityMIIM; "
        "from importlib import resources; "
        "assert wrim.__file__.startswith({site!r}), wrim.__file__; "
        "assert resources.files('wrim').joinpath('py.typed').is_file(); "
        "assert resources.files('wrim').joinpath('configs', 'synthetic.yaml').is_file(); "
        "print(wrim.__version__)"
    ).format(site=str(tmp_path / "site"))
    assert _run(python, "-c", probe, cwd=tmp_path).strip() == wrim_version
